"""The scenes ``geosr evaluate`` scores: an HR crop read and degraded to LR as a lower
resolution sensor would deliver it, or an LR/HR pair read as given."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rasterio.windows import Window

from geosr.data.dataset import validation_cut
from geosr.data.degradations import DegradationConfig
from geosr.errors import InputError
from geosr.nodata import valid_mask
from geosr.raster import RasterInfo, open_info, open_raster
from geosr.sources import is_local


def _scene_name(info: RasterInfo) -> str:
    """How the reports name a scene: a local file by its file name, a remote one by its
    label (the URL without query string or user information)."""
    return Path(info.name).name if is_local(info.name) else info.label


def _read_hr(
    source: str | os.PathLike[str],
    scale: int,
    max_size: int,
    bands: Sequence[int] | None,
    holdout: float | None,
    patch: int,
) -> tuple[np.ndarray, dict, RasterInfo]:
    """The HR crop evaluated, its profile, and the scene as :func:`open_info` describes it."""
    info = open_info(source, bands)
    top, rows = 0, info.height
    if holdout is not None:
        cut = validation_cut(info.height, holdout, patch)
        if cut is None:
            raise InputError(
                f"{info.label} has no held-out strip at --holdout {holdout} --patch {patch} (too short); "
                "it was used for training only"
            )
        top, rows = cut, info.height - cut
    height = min(rows, max_size) // scale * scale
    width = min(info.width, max_size) // scale * scale
    if height < 4 * scale or width < 4 * scale:
        raise InputError(
            f"{info.label} is too small to evaluate at x{scale}; it needs at least {4 * scale} pixels per side"
        )
    window = Window((info.width - width) // 2, top + (rows - height) // 2, width, height)
    with open_raster(info.name) as src:
        hr = src.read(list(info.selected), window=window)
        transform = src.window_transform(window)
    profile = {
        "crs": info.crs,
        "transform": transform,
        "dtype": info.dtype,
        "count": len(info.selected),
    }
    return hr, profile, info


def _read_pair(
    lr_source: str | os.PathLike[str],
    hr_source: str | os.PathLike[str],
    scale: int,
    bands: Sequence[int] | None,
) -> tuple[np.ndarray, np.ndarray, dict, RasterInfo]:
    """LR and HR, the profile of the LR written for the model, and the HR's description."""
    lr_info, hr_info = open_info(lr_source, bands), open_info(hr_source, bands)
    if (hr_info.width, hr_info.height) != (lr_info.width * scale, lr_info.height * scale):
        raise InputError(
            f"{hr_info.label} is {hr_info.width}x{hr_info.height} but {lr_info.label} x{scale} "
            f"is {lr_info.width * scale}x{lr_info.height * scale}; the HR grid must be exactly "
            f"the LR grid x{scale}"
        )
    if len(lr_info.selected) != len(hr_info.selected):
        raise InputError(
            f"{lr_info.label} and {hr_info.label} have different band counts; select matching bands"
        )
    with open_raster(lr_info.name) as src:
        lr = src.read(list(lr_info.selected))
    with open_raster(hr_info.name) as src:
        hr = src.read(list(hr_info.selected))
    profile = {
        "crs": hr_info.crs,
        "transform": hr_info.transform,
        "dtype": lr_info.dtype,
        "count": len(lr_info.selected),
    }
    return lr, hr, profile, hr_info


def _degrade(hr: np.ndarray, nodata: float | None, scale: int, kind: str, dtype: str) -> np.ndarray:
    """LR in the scene's own dtype, as a real lower-resolution sensor would deliver it; an LR
    pixel whose footprint touches nodata is nodata."""
    valid = valid_mask(hr, nodata).all(axis=0)
    filled = np.where(valid, hr, 0).astype(np.float64)
    if not valid.all():
        fill = np.array([b[valid].mean() if valid.any() else 0.0 for b in filled])
        filled = np.where(valid, filled, fill[:, None, None])
    lr = (
        DegradationConfig(kind=kind)
        .apply_numpy(filled.astype(np.float32), scale, kind)
        .astype(np.float64)
    )
    _, h, w = lr.shape
    lr_valid = valid.reshape(h, scale, w, scale).all(axis=(1, 3))
    target = np.dtype(dtype)
    if target.kind in "ui":
        info = np.iinfo(target)
        lr = np.clip(np.rint(lr), info.min, info.max)
    lr = lr.astype(target)
    if nodata is not None:
        lr[:, ~lr_valid] = nodata
    elif target.kind == "f":
        lr[:, ~lr_valid] = np.nan
    return lr
