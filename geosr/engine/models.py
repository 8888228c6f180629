"""The generator an upscale runs, and what it accepts: loading it at a strength, its label
in the outputs' tags, its halo, and the checks of scale, bands and dtype before any work."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from geosr.checkpoint import ALIASES, ModelMeta, load_model, model_meta, with_strength
from geosr.errors import BandMismatchError, InputError, ModelError
from geosr.nodata import FILL_RADIUS

log = logging.getLogger(__name__)


def resolve_model(
    model: str | os.PathLike[str] | nn.Module, strength: float | None = None
) -> nn.Module:
    """A loaded generator from a module, a ``.safetensors`` path or a bundled model name, at
    ``strength`` when given (models with a strength dial only; see :func:`geosr.load_model`)."""
    if isinstance(model, nn.Module):
        model_meta(model)  # raises if it carries no metadata
        return with_strength(model, strength)
    return load_model(model, strength)


def keeps_spectra(net: nn.Module, preserve_spectra: bool) -> bool:
    """Whether ``preserve_spectra`` changes anything: on, and ``net`` above strength 0. Models
    without a strength dial refuse it: they have no fidelity endpoint to take the ratios from."""
    if not preserve_spectra:
        return False
    if getattr(net, "endpoints", None) is None:
        name = model_meta(net).name or "this model"
        raise ModelError(
            f"preserve_spectra needs a model with a strength dial (srgan), and {name} has "
            "none; drop preserve_spectra (--preserve-spectra) or use model='srgan'"
        )
    return net.strength > 0


def model_label(
    model: Any, net: nn.Module, tta: bool = False, preserve_spectra: bool = False
) -> str:
    """The model as the GEOSR_MODEL tag names it: the file or bundled name (an alias such as
    ``default`` as the model it stands for), else the loaded model's own name; then the
    strength of a model with a strength dial, the band ratios kept and the self-ensemble."""
    if isinstance(model, str | os.PathLike):
        text = os.fspath(model)
        label = Path(ALIASES.get(text, text)).name
    else:
        label = model_meta(net).name or "custom"
    strength = getattr(net, "strength", None)
    if strength is not None:
        label += f", strength {strength:g}"
        if keeps_spectra(net, preserve_spectra):
            label += ", spectra of strength 0"
    return label + (", tta x8" if tta else "")


def _strength_of(net: nn.Module) -> float:
    """The strength the error model is told: the dial's, 0 (fidelity) without one."""
    strength = getattr(net, "strength", None)
    return 0.0 if strength is None else float(strength)


def _hint_preserve_spectra(net: nn.Module, preserve_spectra: bool, bands: int) -> None:
    """Say when preserve_spectra would pay. It stays off by default: at the default strength
    it changes little for twice the network time (docs/uncertainty.md, "Spectral fidelity")."""
    strength = getattr(net, "strength", None)
    if not preserve_spectra and bands > 1 and strength is not None and strength >= 0.5:
        log.info(
            "at strength %g, preserve_spectra=True (--preserve-spectra) keeps strength 0's "
            "band ratios: on the validation scenes SAM -7 %% at 0.5 and -20 %% at 1, PSNR "
            "+0.1 to +0.2 dB, for a second network pass",
            strength,
        )


def default_halo(model: nn.Module, may_have_nodata: bool) -> int:
    """The generator's receptive radius, plus the nodata fill's reach when it can matter."""
    return model.receptive_radius() + (FILL_RADIUS if may_have_nodata else 0)


def check_bands(meta: ModelMeta, count: int, source: str) -> None:
    if meta.bands is not None and meta.bands != count:
        names = f" ({', '.join(meta.band_names)})" if meta.band_names else ""
        raise BandMismatchError(
            f"the model expects {meta.bands} band(s){names} but {source} has {count}; select "
            f"{meta.bands} bands with bands=[...] (--bands 1,2,...) or use a band-shared model"
        )


def check_scale(meta: ModelMeta, scale: int | None) -> None:
    if scale is not None and int(scale) != meta.scale:
        raise ModelError(
            f"this model upscales x{meta.scale} only, not x{scale}; pass a x{scale} model or scale={meta.scale}"
        )


def check_dtype(dtype: np.dtype, source: str) -> None:
    if dtype.kind == "c":
        raise InputError(
            f"{source} holds complex values ({dtype}); geosr needs real-valued bands, e.g. take numpy.abs first"
        )
    if dtype.kind not in "uif":
        raise InputError(f"{source} has unsupported data type {dtype}; convert it to float32")
