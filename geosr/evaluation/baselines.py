"""The methods ``geosr evaluate`` scores: the model's variants (strengths, the x8
self-ensemble, strength 0's band ratios kept), each run through :func:`geosr.upscale` on the
LR written as a real GeoTIFF, and the classical baselines (bicubic, Lanczos)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from affine import Affine
from torch import nn

from geosr.checkpoint import model_meta
from geosr.engine import keeps_spectra, resolve_model, upscale
from geosr.errors import ConfigError
from geosr.metrics import bicubic_upsample, lanczos_upsample
from geosr.raster import open_raster

#: The model's method name when no strengths are asked for.
MODEL_METHOD = "model"
#: Appended to a model method's name when it runs with the x8 self-ensemble.
TTA_SUFFIX = " +tta"
SPECTRA_SUFFIX = " +spectra"
#: The classical baselines, scored after the model's methods.
BASELINES = ("bicubic", "lanczos")
#: How each baseline upsamples the LR (filled where invalid) to the HR grid.
_UPSAMPLERS = {"bicubic": bicubic_upsample, "lanczos": lanczos_upsample}


@dataclass(frozen=True)
class ModelVariant:
    """One way of running the model: its method name, the network (at its strength),
    whether it runs with the x8 self-ensemble and whether it keeps strength 0's band ratios."""

    name: str
    net: nn.Module
    tta: bool = False
    preserve_spectra: bool = False


def model_variants(
    model: str | os.PathLike[str] | nn.Module,
    strengths: Sequence[float] | None = None,
    tta: bool = False,
    preserve_spectra: bool = False,
) -> list[ModelVariant]:
    """The model's methods: ``"model"`` at its own strength, or ``"strength S"`` for each of
    ``strengths`` (increasing, duplicates dropped); with ``preserve_spectra`` each strength
    above 0 is followed by its ``" +spectra"`` twin (strength 0's band ratios kept), and with
    ``tta`` each method by its ``" +tta"`` twin. A strength, or ``preserve_spectra``, for a
    model without a dial is a :class:`~geosr.errors.ModelError`."""
    if strengths is None:
        runs = [(MODEL_METHOD, resolve_model(model))]
    else:
        if len(strengths) == 0:
            raise ConfigError("no strength given; pass strengths from 0 to 1, or none at all")
        nets = sorted((resolve_model(model, s) for s in strengths), key=lambda n: n.strength)
        runs = list({f"strength {n.strength:g}": n for n in nets}.items())
    variants = []
    for name, net in runs:
        for spectra in (False, True) if keeps_spectra(net, preserve_spectra) else (False,):
            label = name + (SPECTRA_SUFFIX if spectra else "")
            variants.append(ModelVariant(label, net, preserve_spectra=spectra))
            if tta:
                variants.append(ModelVariant(label + TTA_SUFFIX, net, True, spectra))
    return variants


@dataclass(frozen=True)
class _RunOptions:
    chunk_size: int | None
    device: str
    consistency: bool


def _write_lr(path: Path, lr: np.ndarray, profile: dict, nodata: float | None, scale: int) -> Path:
    """The LR input as a GeoTIFF whose bands are all data: MINISBLACK, since GDAL would make
    a 4-band byte file RGBA and the pipeline carry its 4th band (NAIP's NIR) as alpha."""
    bands, h, w = lr.shape
    with open_raster(
        path,
        "w",
        driver="GTiff",
        photometric="MINISBLACK",
        width=w,
        height=h,
        count=bands,
        dtype=lr.dtype,
        crs=profile["crs"],
        transform=profile["transform"] @ Affine.scale(scale),
        nodata=nodata,
    ) as dst:
        dst.write(lr)
    return path


def _warm_up(
    lr: np.ndarray,
    profile: dict,
    nodata: float | None,
    variant: ModelVariant,
    work: Path,
    options: _RunOptions,
) -> None:
    """One tiny upscale (the LR's centre 16x16 pixels) before the timed ones, so the first
    method timed does not also pay the one-off start-up (imports, thread pools, kernel
    set-up: about 0.3 s on a CPU)."""
    side = min(16, lr.shape[1], lr.shape[2])
    row, col = (lr.shape[1] - side) // 2, (lr.shape[2] - side) // 2
    tile = lr[:, row : row + side, col : col + side]
    scale = model_meta(variant.net).scale
    path = _write_lr(work / "warm_up_lr.tif", tile, profile, nodata, scale)
    _run_model(path, work / "warm_up_sr.tif", variant, options)


def _run_model(
    lr_path: Path, sr_path: Path, variant: ModelVariant, options: _RunOptions
) -> tuple[np.ndarray, float]:
    """The variant's output through :func:`geosr.upscale`, and the wall time of that call."""
    start = time.perf_counter()
    upscale(
        lr_path,
        sr_path,
        model=variant.net,
        chunk_size=options.chunk_size,
        device=options.device,
        consistency=options.consistency,
        overwrite=True,
        tta=variant.tta,
        preserve_spectra=variant.preserve_spectra,
    )
    seconds = time.perf_counter() - start
    with open_raster(sr_path) as src:
        return src.read().astype(np.float64), seconds


def _run_baseline(method: str, lr: np.ndarray, scale: int) -> tuple[np.ndarray, float]:
    """A baseline's upsampling of ``lr`` (float, no nodata), and its wall time."""
    start = time.perf_counter()
    pred = _UPSAMPLERS[method](lr, scale)
    return pred, time.perf_counter() - start
