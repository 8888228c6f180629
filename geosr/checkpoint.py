"""Model checkpoints: one ``.safetensors`` file, weights plus JSON metadata in its header.

safetensors stores raw tensors and a JSON header, nothing executable, so loading a model never
runs code from the file (unlike ``torch.load`` on a pickle). geosr's metadata sits under the
header key ``"geosr"`` as one JSON document described by :class:`ModelMeta`.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import pickletools
import struct
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from geosr.contract import TrainingDomain
from geosr.errors import CheckpointError, ModelError, ModelNotFoundError
from geosr.fileutil import default_file_mode
from geosr.models import PRESETS, GeneratorConfig, build_generator
from geosr.models.guided import GuidedConfig, GuidedModel

log = logging.getLogger(__name__)

FORMAT = "geosr-model/1"
#: The format of guided models (:mod:`geosr.models.guided`).
GUIDED_FORMAT = "geosr-guided/1"
METADATA_KEY = "geosr"
WEIGHTS_DIR = Path(__file__).parent / "weights"
#: Names users may pass instead of a path; ``default`` is the bundled SRGAN.
ALIASES = {"default": "srgan"}
_MAX_HEADER_BYTES = 100 * 1024 * 1024
#: Tensor-name prefix of the fidelity (PSNR) endpoint in a file that carries a strength dial.
FIDELITY_PREFIX = "fidelity."


@dataclass(frozen=True)
class Normalization:
    """How raster values become network inputs: ``x_norm = (x - offset) / scale`` per band.

    ``mode="fixed"`` uses the stored per-band ``offset``/``scale`` (learned from the training
    scenes). ``mode="scene"`` computes them for each input scene from its own robust
    ``percentiles`` (p_low -> 0, p_high -> 1), which is what lets a band-shared model work on
    any sensor; statistics are scene-wide, never per chunk, so tiles stay seamless.
    """

    mode: str = "scene"
    offset: tuple[float, ...] | None = None
    scale: tuple[float, ...] | None = None
    percentiles: tuple[float, float] = (1.0, 99.0)

    def __post_init__(self) -> None:
        if self.mode not in ("fixed", "scene"):
            raise ModelError(f"normalization mode must be 'fixed' or 'scene', got {self.mode!r}")
        if self.mode == "fixed":
            if self.offset is None or self.scale is None or len(self.offset) != len(self.scale):
                raise ModelError(
                    "fixed normalization needs per-band offset and scale of equal length"
                )
            if any(s == 0 for s in self.scale):
                raise ModelError("normalization scale must not be zero")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Normalization:
        values = dict(data)
        for key in ("offset", "scale", "percentiles"):
            if values.get(key) is not None:
                values[key] = tuple(float(v) for v in values[key])
        return cls(**values)


@dataclass(frozen=True)
class ModelMeta:
    """Everything needed to use a generator on rasters, stored beside its weights.

    Attributes:
        generator: the architecture config; rebuilding from it gives the exact module.
        band_shared: the network has one input band and is applied to every band of a raster
            in turn, so one model serves any band count.
        band_names: names of the bands a multiband model expects, in order.
        normalization: see :class:`Normalization`.
        value_range: (low, high) of the raster values the model was trained on.
        trained_on: free-form provenance (scenes, sensors, degradation, steps, hardware).
        name, description: shown by ``geosr info``.
        default_strength: set when the file carries two endpoints, the PSNR model
            (strength 0) and its GAN fine-tune (strength 1): the strength used when none is
            asked for. None: one set of weights, no strength dial.
        domain: the training scenes' domain (:class:`~geosr.contract.TrainingDomain`, or
            its dict), which ``upscale`` checks inputs against; None (older files): no check.
    """

    generator: GeneratorConfig
    band_shared: bool = False
    band_names: tuple[str, ...] | None = None
    normalization: Normalization = field(default_factory=Normalization)
    value_range: tuple[float, float] | None = None
    trained_on: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    description: str | None = None
    default_strength: float | None = None
    domain: TrainingDomain | None = None

    def __post_init__(self) -> None:
        _domain_field(self)

    @property
    def scale(self) -> int:
        return self.generator.scale

    @property
    def bands(self) -> int | None:
        """Bands a raster must have, or None when any count works (band-shared)."""
        return None if self.band_shared else self.generator.bands

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["format"] = FORMAT
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelMeta:
        values = dict(data)
        fmt = values.pop("format", None)
        if fmt != FORMAT:
            raise CheckpointError(f"unknown checkpoint format {fmt!r}; this geosr reads {FORMAT}")
        values["generator"] = GeneratorConfig.from_dict(values["generator"])
        values["normalization"] = Normalization.from_dict(values.get("normalization") or {})
        for key in ("band_names", "value_range"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        if values.get("domain") is not None:
            values["domain"] = TrainingDomain.from_dict(values["domain"])
        return cls(**values)

    def summary(self) -> str:
        """Human-readable multi-line description, as ``geosr info`` prints it."""
        g = self.generator
        lines = [
            f"name:          {self.name or '(unnamed)'}",
            f"architecture:  {g.arch}, width {g.width}, {g.blocks} blocks, "
            f"batch norm {'on' if g.batch_norm else 'off'}, skip {g.skip}",
            f"scale:         x{g.scale}",
            "bands:         any (band-shared network)"
            if self.band_shared
            else f"bands:         {g.bands}",
        ]
        if self.band_names:
            lines.append(f"band names:    {', '.join(self.band_names)}")
        n = self.normalization
        if n.mode == "fixed":
            pairs = ", ".join(
                f"{o:g}/{s:g}" for o, s in zip(n.offset or (), n.scale or (), strict=True)
            )
            lines.append(f"normalization: fixed offset/scale per band: {pairs}")
        else:
            lines.append(
                f"normalization: per scene, percentiles {n.percentiles[0]:g}-{n.percentiles[1]:g}"
            )
        if self.value_range:
            lines.append(f"value range:   {self.value_range[0]:g} to {self.value_range[1]:g}")
        if self.description:
            lines.append(f"description:   {self.description}")
        if self.default_strength is not None:
            lines.append(
                f"strength:      0 (fidelity, the PSNR model) to 1 (texture, the GAN endpoint); "
                f"default {self.default_strength:g}"
            )
        for key, value in self.trained_on.items():
            lines.append(f"trained on:    {key}: {value}")
        lines += _domain_lines(self.domain)
        return "\n".join(lines)


def _domain_field(meta: Any) -> None:
    """A ``domain`` given as a dict becomes a TrainingDomain (frozen dataclasses' way)."""
    if isinstance(meta.domain, Mapping):
        object.__setattr__(meta, "domain", TrainingDomain.from_dict(meta.domain))
    elif meta.domain is not None and not isinstance(meta.domain, TrainingDomain):
        raise ModelError(
            f"domain must be a TrainingDomain or its dict, got {type(meta.domain).__name__}"
        )


def _domain_lines(domain: TrainingDomain | None) -> list[str]:
    """The card's training-domain section (``geosr info``)."""
    if domain is None:
        return ["training domain: not recorded (inputs are not checked)"]
    return ["training domain (upscale warns about inputs outside it):"] + [
        f"  {line}" for line in domain.summary_lines()
    ]


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


def _cpu_tensors(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


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


def _check_weights(
    path: Path, expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor]
) -> None:
    missing, unexpected = _compare_keys(expected, found)
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: weights do not match the architecture in its metadata "
            f"(missing {len(missing)}: {', '.join(missing[:3])}; unexpected {len(unexpected)}: "
            f"{', '.join(unexpected[:3])}); re-export the model with geosr.save_model"
        )
    for key, tensor in expected.items():
        if found[key].shape != tensor.shape:
            raise CheckpointError(
                f"{path}: weights do not match the architecture in its metadata ({key} is "
                f"{tuple(found[key].shape)}, expected {tuple(tensor.shape)}); "
                "re-export the model with geosr.save_model"
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


@dataclass(frozen=True)
class GuidedMeta:
    """Everything needed to use a guided model on products, stored beside its weights.

    Attributes:
        stages: the networks by stage name, each with its target and guide band names and
            its ratio (:class:`~geosr.models.guided.GuidedConfig`).
        normalization: per-band, per-scene robust percentiles (statistics of the whole
            product, never per chunk, so tiles stay seamless).
        holdout: fraction of rows (at the bottom of each product) kept out of training, the
            rows ``geosr evaluate --guided`` scores by default.
        mtf: the sensor MTF at Nyquist of the Gaussian that degraded training inputs.
        trained_on, name, description: provenance, shown by ``geosr info``.
        domain: the training products' domain (:class:`~geosr.contract.TrainingDomain`),
            for the card; None (older files): not recorded.
    """

    stages: dict[str, GuidedConfig]
    normalization: Normalization = field(default_factory=Normalization)
    holdout: float = 0.2
    mtf: float = 0.3
    trained_on: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    description: str | None = None
    domain: TrainingDomain | None = None

    def __post_init__(self) -> None:
        _domain_field(self)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stages"] = {k: v.to_dict() for k, v in self.stages.items()}
        data["format"] = GUIDED_FORMAT
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GuidedMeta:
        values = dict(data)
        fmt = values.pop("format", None)
        if fmt != GUIDED_FORMAT:
            raise CheckpointError(
                f"unknown guided model format {fmt!r}; this geosr reads {GUIDED_FORMAT}"
            )
        values["stages"] = {k: GuidedConfig.from_dict(v) for k, v in values["stages"].items()}
        values["normalization"] = Normalization.from_dict(values.get("normalization") or {})
        if values.get("domain") is not None:
            values["domain"] = TrainingDomain.from_dict(values["domain"])
        return cls(**values)

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(t for cfg in self.stages.values() for t in cfg.targets)

    def summary(self) -> str:
        """Human-readable multi-line description, as ``geosr info`` prints it."""
        lines = [f"name:          {self.name or '(unnamed)'}", "kind:          guided"]
        for stage, cfg in self.stages.items():
            lines.append(
                f"stage {stage}: {', '.join(cfg.targets)} x{cfg.ratio}, guided by "
                f"{', '.join(cfg.guides)} (width {cfg.width}, {cfg.blocks} blocks)"
            )
        n = self.normalization
        lines.append(
            f"normalization: per scene, percentiles {n.percentiles[0]:g}-{n.percentiles[1]:g}"
        )
        if self.description:
            lines.append(f"description:   {self.description}")
        for key, value in self.trained_on.items():
            lines.append(f"trained on:    {key}: {value}")
        if self.domain is not None:
            lines += _domain_lines(self.domain)
        return "\n".join(lines)


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


# --- raw safetensors I/O, shared with training checkpoints -------------------------------------


def save_tensors(
    path: str | os.PathLike[str], tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, Any]
) -> Path:
    """Write tensors and JSON-serialisable metadata, via a temporary file and a rename."""
    path = Path(path)
    if not path.parent.is_dir():
        raise CheckpointError(f"cannot write {path}: folder {path.parent} does not exist")
    header = {key: json.dumps(value) for key, value in metadata.items()}
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(dict(tensors), tmp_name, metadata=header)
        os.chmod(tmp_name, default_file_mode())  # mkstemp makes 0600
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def load_tensors(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read tensors and metadata, turning every kind of damage into a CheckpointError."""
    path = Path(path)
    metadata = read_header(path)
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{path} is corrupt or truncated ({_first_line(exc)}); re-download or re-export it"
        ) from None
    return tensors, metadata


def read_header(path: Path) -> dict[str, Any]:
    """Validate a safetensors file and return its decoded metadata dict.

    safetensors parses the file first; only a file it refuses is classified (pickle, empty,
    truncated, corrupt) for the message, because any byte, 0x80 included, can begin a valid
    safetensors header length.
    """
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except SafetensorError as exc:
        raise CheckpointError(_refusal(path, exc)) from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return {key: json.loads(value) for key, value in raw.items()}
    except (TypeError, json.JSONDecodeError):
        raise CheckpointError(f"{path} has corrupt metadata; re-download or re-export it") from None


def _refusal(path: Path, exc: BaseException) -> str:
    """The one-line reason a file safetensors refused is not a usable checkpoint."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            header_len = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
            framed = 0 < header_len <= min(size - 8, _MAX_HEADER_BYTES)
            header = f.read(header_len) if framed else b""
    except OSError as error:
        return f"cannot read {path}: {error.strerror or error}"
    if _is_torch_pickle(head):
        return (
            f"{path} is a PyTorch pickle (torch.save) file, which can run code when loaded; "
            "geosr reads only .safetensors. If you trust its source, convert it: load it in "
            "PyTorch, then save it with geosr.save_model"
        )
    if len(head) < 8:
        return f"{path} is empty or truncated; re-download or re-export it"
    if not framed:
        return (
            f"{path} is not a safetensors file, or it is truncated; pass a .safetensors model "
            "written by geosr.save_model"
        )
    try:
        if not isinstance(json.loads(header), dict):
            raise ValueError("the header is not a JSON object")
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return f"{path} has a corrupt safetensors header; re-download or re-export it"
    return f"{path} is corrupt or truncated ({_first_line(exc)}); re-download or re-export it"


def _is_torch_pickle(head: bytes) -> bool:
    """torch.save's zip archive, or a raw pickle stream: PROTO 2-5 and then a real opcode
    (a safetensors length 0x0280-0x0580 has a zero byte there instead)."""
    if head.startswith(b"PK\x03\x04"):
        return True
    return (
        len(head) >= 3
        and head[0] == 0x80
        and 2 <= head[1] <= 5
        and chr(head[2]) in pickletools.code2op
    )


def _compare_keys(
    expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor]
) -> tuple[list[str], list[str]]:
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    return missing, unexpected


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
