"""Model checkpoints: one ``.safetensors`` file, weights plus JSON metadata in its header.

safetensors stores raw tensors and a JSON header, nothing executable, so loading a model never
runs code from the file (unlike ``torch.load`` on a pickle). geosr's metadata sits under the
header key ``"geosr"`` as one JSON document described by :class:`ModelMeta`.

This module builds, loads and saves models (and their strength dial); the metadata and its
card are :mod:`geosr.model_card`, the file I/O and its refusals :mod:`geosr.safetensors_io`.
Their names are importable from here too.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from geosr.errors import CheckpointError, ModelError, ModelNotFoundError
from geosr.model_card import FORMAT, GUIDED_FORMAT, GuidedMeta, ModelMeta, Normalization
from geosr.models import PRESETS, GeneratorConfig, build_generator
from geosr.models.guided import GuidedConfig, GuidedModel
from geosr.safetensors_io import (
    _check_weights,
    _cpu_tensors,
    load_tensors,
    read_header,
    save_tensors,
)
from geosr.training_domain import TrainingDomain

log = logging.getLogger(__name__)

METADATA_KEY = "geosr"
WEIGHTS_DIR = Path(__file__).parent / "weights"
#: Names users may pass instead of a path; ``default`` is the bundled SRGAN.
ALIASES = {"default": "srgan"}
#: Tensor-name prefix of the fidelity (PSNR) endpoint in a file that carries a strength dial.
FIDELITY_PREFIX = "fidelity."


def build_model(
    bands: int | None = 4,
    scale: int = 4,
    arch: str = "srresnet",
    preset: str | None = None,
    **config: Any,
) -> nn.Module:
    """Build an untrained generator with default metadata attached as ``model.meta``.

    Args:
        bands: bands of the rasters it will see; ``None`` builds a band-shared model that
            works on any band count.
        scale: 2, 4 or 8.
        arch: generator architecture (``"srresnet"``).
        preset: ``"fast"`` (48 channels, 7 blocks, reconstruction at LR resolution: the bundled
            models), ``"compact"`` (32, 8, no BN) or ``"paper"`` (64 channels, 16 blocks, BN).
        **config: any :class:`~geosr.models.GeneratorConfig` field, overriding the preset.

    Example:
        >>> model = build_model(bands=4, scale=4, preset="compact")
        >>> model.meta.bands, model.meta.scale
        (4, 4)
    """
    options: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ModelError(f"unknown preset {preset!r}; use one of {', '.join(PRESETS)}")
        options.update(PRESETS[preset])
    options.update(config)
    band_shared = bands is None
    generator_config = GeneratorConfig(
        bands=1 if band_shared else int(bands), scale=scale, arch=arch, **options
    )
    model = build_generator(generator_config)
    model.meta = ModelMeta(generator=generator_config, band_shared=band_shared)
    return model


def model_meta(model: nn.Module) -> ModelMeta:
    """The metadata attached to a generator (built or loaded by geosr)."""
    meta = getattr(model, "meta", None)
    if not isinstance(meta, ModelMeta):
        raise ModelError(
            "this module carries no geosr metadata; build it with geosr.build_model or "
            "load it with geosr.load_model"
        )
    return meta


def save_model(model: nn.Module, path: str | os.PathLike[str], **meta_updates: Any) -> Path:
    """Write a generator and its metadata to one ``.safetensors`` file, atomically.

    Keyword arguments replace fields of ``model.meta`` in the file (e.g. ``normalization=``,
    ``trained_on=``, ``name=``) without changing the model object. A model with a strength
    dial (:func:`with_endpoints`, or loaded from such a file) is saved with both endpoints
    while its weights are still the dial's at its strength; once they have moved (trained
    or edited) the file holds them as one network without a dial, which is what the module
    computes. ``default_strength=None`` also saves one network.

    Raises:
        ModelError: ``default_strength`` asked for a model without a strength dial.
    """
    meta = model_meta(model)
    if meta_updates:
        meta = replace(meta, **meta_updates)
    weights = _cpu_tensors(model.state_dict())
    endpoints = _unchanged_endpoints(model, weights)
    if endpoints is not None and meta.default_strength is not None:
        fidelity, texture = endpoints
        tensors = {
            **_cpu_tensors(texture),
            **{FIDELITY_PREFIX + k: v for k, v in _cpu_tensors(fidelity).items()},
        }
        return save_tensors(path, tensors, {METADATA_KEY: meta.to_dict()})
    if meta_updates.get("default_strength") is not None:
        raise ModelError(
            "default_strength needs a model with a strength dial whose weights are still the "
            "dial's; build one from a PSNR model and its GAN fine-tune with with_endpoints "
            "(geosr blend --default-strength)"
        )
    if getattr(model, "endpoints", None) is not None and meta.default_strength is not None:
        log.info("%s: the weights have left the strength dial; saved as one network", path)
    plain = replace(meta, default_strength=None)
    return save_tensors(path, weights, {METADATA_KEY: plain.to_dict()})


def _unchanged_endpoints(
    model: nn.Module, weights: Mapping[str, torch.Tensor]
) -> tuple[dict, dict] | None:
    """The endpoints of a model with a strength dial whose ``weights`` are still the dial's
    at its strength, bit for bit; None without a dial or once training or an edit moved them
    (saving the endpoints then would throw that work away)."""
    endpoints = getattr(model, "endpoints", None)
    strength = getattr(model, "strength", None)
    if endpoints is None or strength is None:
        return None
    expected = interpolate_states(*endpoints, strength)
    if expected.keys() != weights.keys():
        return None
    for key, value in expected.items():
        found = weights[key]
        if (
            found.dtype != value.dtype
            or found.shape != value.shape
            or not torch.equal(found, value)
        ):
            return None
    return endpoints


def load_model(
    path_or_name: str | os.PathLike[str] = "default", strength: float | None = None
) -> nn.Module:
    """Load a generator from a ``.safetensors`` file or a bundled model name.

    Never unpickles: a ``torch.save`` file is refused with an explanation. The model comes
    back in eval mode on the CPU with ``model.meta`` set.

    Args:
        path_or_name: a ``.safetensors`` file or a bundled name (``"default"``, ``"srgan"``).
        strength: for a model with a strength dial (``srgan``), 0 (the PSNR model) to 1 (the
            GAN endpoint); values between interpolate the two networks' weights (ESRGAN's
            network interpolation). Default: the model's ``default_strength``. A model
            without a dial refuses a strength.
    """
    path = resolve_model_path(path_or_name)
    stat = path.stat()
    meta, weights, endpoints = _load_weights(path, (stat.st_mtime_ns, stat.st_size), strength)
    model = build_generator(meta.generator)
    model.load_state_dict(weights, strict=True)  # copies: the cached tensors stay untouched
    model.meta = meta
    model.endpoints = endpoints
    model.strength = None if endpoints is None else _strength_or_default(meta, strength)
    return model.eval()


def with_strength(model: nn.Module, strength: float | None) -> nn.Module:
    """``model`` at another ``strength`` (a new module; ``None`` returns ``model`` itself)."""
    if strength is None:
        return model
    meta = model_meta(model)
    endpoints = getattr(model, "endpoints", None)
    if endpoints is None:
        raise ModelError(_no_dial_message(meta.name or "this model"))
    strength = check_strength(strength)
    result = build_generator(meta.generator)
    result.load_state_dict(interpolate_states(*endpoints, strength))
    result.meta, result.endpoints, result.strength = meta, endpoints, strength
    return result.eval()


def with_endpoints(fidelity: nn.Module, texture: nn.Module, default_strength: float) -> nn.Module:
    """One model with a strength dial from a PSNR model and its GAN fine-tune: strength 0 is
    ``fidelity``, 1 is ``texture``. It carries ``texture``'s metadata and runs at
    ``default_strength``; :func:`save_model` writes both endpoints to one file."""
    a, b = model_meta(fidelity), model_meta(texture)
    _check_interpolable(a, b)
    endpoints = (_cpu_tensors(fidelity.state_dict()), _cpu_tensors(texture.state_dict()))
    dial = build_generator(b.generator)
    dial.meta = replace(b, default_strength=check_strength(default_strength))
    dial.endpoints = endpoints
    return with_strength(dial, default_strength)


def check_strength(strength: Any) -> float:
    """A strength as a float in [0, 1], or a one-line error."""
    try:
        value = float(strength)
    except (TypeError, ValueError):
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise ModelError(
            f"strength must be a number from 0 (fidelity) to 1 (texture), got {strength!r}"
        )
    return value


def interpolate_states(
    fidelity: Mapping[str, torch.Tensor], texture: Mapping[str, torch.Tensor], strength: float
) -> dict[str, torch.Tensor]:
    """``(1 - strength) * fidelity + strength * texture``, key by key (integer tensors such as
    BN counters are ``texture``'s)."""
    return {
        k: (1.0 - strength) * fidelity[k] + strength * v if v.is_floating_point() else v
        for k, v in texture.items()
    }


@functools.lru_cache(maxsize=16)
def _load_weights(
    path: Path, stamp: tuple[int, int], strength: float | None
) -> tuple[ModelMeta, dict[str, torch.Tensor], tuple[dict, dict] | None]:
    """Metadata, weights at ``strength`` and the endpoints of a file, read and interpolated
    once per (file version, strength): ``stamp`` is its mtime and size."""
    tensors, metadata = load_tensors(path)
    if METADATA_KEY not in metadata:
        raise CheckpointError(
            f"{path} has no geosr metadata: it was not written by geosr.save_model; "
            "build the model with geosr.build_model, load its weights, and save it with geosr.save_model"
        )
    _refuse_guided(path, metadata)
    try:
        meta = ModelMeta.from_dict(metadata[METADATA_KEY])
    except (TypeError, KeyError, ValueError) as exc:
        raise CheckpointError(
            f"{path} has invalid geosr metadata ({exc}); re-export the model"
        ) from None
    fidelity = {
        k[len(FIDELITY_PREFIX) :]: v for k, v in tensors.items() if k.startswith(FIDELITY_PREFIX)
    }
    texture = {k: v for k, v in tensors.items() if not k.startswith(FIDELITY_PREFIX)}
    expected = build_generator(meta.generator).state_dict()
    _check_weights(path, expected, texture)
    if meta.default_strength is None:
        if fidelity:
            raise CheckpointError(
                f"{path} holds fidelity weights but no default_strength; re-export the model"
            )
        if strength is not None:
            raise ModelError(_no_dial_message(meta.name or path.name))
        return meta, texture, None
    _check_weights(path, expected, fidelity)
    weights = interpolate_states(fidelity, texture, _strength_or_default(meta, strength))
    return meta, weights, (fidelity, texture)


def _strength_or_default(meta: ModelMeta, strength: float | None) -> float:
    return check_strength(meta.default_strength if strength is None else strength)


def _no_dial_message(name: str) -> str:
    return (
        f"model {name} has no GAN endpoint, so it has no strength to set; leave out "
        "strength, or use a model with a strength dial such as 'srgan'"
    )


def read_meta(path_or_name: str | os.PathLike[str]) -> ModelMeta:
    """Read a checkpoint's metadata without building the model."""
    path = resolve_model_path(path_or_name)
    metadata = read_header(path)
    if METADATA_KEY not in metadata:
        raise CheckpointError(
            f"{path} has no geosr metadata: it was not written by geosr.save_model"
        )
    _refuse_guided(path, metadata)
    return ModelMeta.from_dict(metadata[METADATA_KEY])


def _refuse_guided(path: Path, metadata: Mapping[str, Any]) -> None:
    if (metadata.get(METADATA_KEY) or {}).get("format") == GUIDED_FORMAT:
        raise ModelError(
            f"{path.name} is a guided model (it brings a product's coarse bands to its finest "
            "grid); pass it as guided= (--guided), and a super-resolution model as model="
        )


def build_guided(meta: GuidedMeta) -> GuidedModel:
    """An untrained guided model with ``meta`` attached as ``model.meta``."""
    model = GuidedModel(meta.stages)
    model.meta = meta
    return model


def save_guided(model: GuidedModel, path: str | os.PathLike[str], **meta_updates: Any) -> Path:
    """Write a guided model and its metadata to one ``.safetensors`` file, atomically."""
    meta = model.meta
    if meta_updates:
        meta = replace(meta, **meta_updates)
    return save_tensors(path, _cpu_tensors(model.state_dict()), {METADATA_KEY: meta.to_dict()})


def load_guided(path_or_name: str | os.PathLike[str]) -> GuidedModel:
    """Load a guided model (``s2-guided``, ``landsat-pan`` or a ``.safetensors`` file) in eval
    mode on the CPU, with ``model.meta``; never unpickles."""
    path = resolve_model_path(path_or_name)
    tensors, metadata = load_tensors(path)
    meta = _guided_meta(path, metadata)
    model = build_guided(meta)
    _check_weights(path, model.state_dict(), tensors)
    model.load_state_dict(tensors, strict=True)
    return model.eval()


def read_guided_meta(path_or_name: str | os.PathLike[str]) -> GuidedMeta:
    """A guided model's metadata, without building it."""
    path = resolve_model_path(path_or_name)
    return _guided_meta(path, read_header(path))


def is_guided(path_or_name: str | os.PathLike[str]) -> bool:
    """Whether a model file or bundled name holds a guided model."""
    metadata = read_header(resolve_model_path(path_or_name))
    return (metadata.get(METADATA_KEY) or {}).get("format") == GUIDED_FORMAT


def _guided_meta(path: Path, metadata: Mapping[str, Any]) -> GuidedMeta:
    data = metadata.get(METADATA_KEY)
    if not isinstance(data, Mapping):
        raise CheckpointError(f"{path} has no geosr metadata: it was not written by geosr")
    if data.get("format") == FORMAT:
        raise ModelError(
            f"{path} is a super-resolution model, not a guided one; pass it as model= (--model)"
        )
    try:
        return GuidedMeta.from_dict(data)
    except (TypeError, KeyError, ValueError) as exc:
        if isinstance(exc, ModelError):
            raise
        raise CheckpointError(f"{path} has invalid guided metadata ({exc}); re-export it") from None


def interpolate_models(fidelity: nn.Module, texture: nn.Module, alpha: float) -> nn.Module:
    """Network interpolation of ESRGAN (Wang et al. 2018, section 3.4): the weights
    ``alpha * fidelity + (1 - alpha) * texture`` of two generators of one architecture, e.g.
    the PSNR-pretrained model and its GAN fine-tune. It trades texture for fidelity smoothly,
    without the artefacts of blending outputs. The result carries ``texture``'s metadata."""
    if not 0.0 <= alpha <= 1.0:
        raise ModelError(f"alpha must be between 0 and 1, got {alpha}")
    a, b = model_meta(fidelity), model_meta(texture)
    _check_interpolable(a, b)
    blended = build_generator(b.generator)
    blended.load_state_dict(
        interpolate_states(fidelity.state_dict(), texture.state_dict(), 1.0 - alpha)
    )
    trained_on = {
        **b.trained_on,
        "interpolation": {"alpha": alpha, "fidelity_model": a.name, "texture_model": b.name},
    }
    blended.meta = replace(b, trained_on=trained_on, default_strength=None)
    return blended.eval()


def _check_interpolable(a: ModelMeta, b: ModelMeta) -> None:
    if a.generator != b.generator or a.band_shared != b.band_shared:
        raise ModelError("only generators of the same architecture can be interpolated")
    if a.normalization != b.normalization:
        raise ModelError(
            "the two models normalise their inputs differently; interpolate models from one training run"
        )


def bundled_models() -> list[str]:
    """Names of the models shipped in the package."""
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors"))


def resolve_model_path(path_or_name: str | os.PathLike[str]) -> Path:
    """Map a bundled model name (``default``, ``srgan``, ...) or a path to an existing file."""
    text = os.fspath(path_or_name)
    name = ALIASES.get(text, text)
    bundled = WEIGHTS_DIR / f"{name}.safetensors"
    if os.sep not in text and not text.endswith(".safetensors") and bundled.is_file():
        return bundled
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if path.exists():
        raise CheckpointError(f"{path} is not a file; pass a .safetensors model file")
    names = bundled_models()
    if os.sep not in text and not text.endswith(".safetensors"):
        if not names:
            raise ModelNotFoundError(
                f"no model named {text!r}: no default model is bundled with this geosr yet; "
                "pass a .safetensors file (model=... / --model)"
            )
        raise ModelNotFoundError(
            f"no model named {text!r}; bundled models are: {', '.join(names)}, or pass a .safetensors file"
        )
    raise ModelNotFoundError(f"model file {path} does not exist; check the path")


__all__ = [
    "ALIASES",
    "FIDELITY_PREFIX",
    "FORMAT",
    "GUIDED_FORMAT",
    "METADATA_KEY",
    "WEIGHTS_DIR",
    "GuidedConfig",
    "GuidedMeta",
    "ModelMeta",
    "Normalization",
    "TrainingDomain",
    "build_guided",
    "build_model",
    "bundled_models",
    "check_strength",
    "interpolate_models",
    "interpolate_states",
    "is_guided",
    "load_guided",
    "load_model",
    "load_tensors",
    "model_meta",
    "read_guided_meta",
    "read_header",
    "read_meta",
    "resolve_model_path",
    "save_guided",
    "save_model",
    "save_tensors",
    "with_endpoints",
    "with_strength",
]
