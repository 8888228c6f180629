"""Normalisation statistics: the per-band affine map the network's inputs go through, from a
model's fixed values or a scene's own percentiles (a decimated sample, in the graph or read)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np

from geosr.checkpoint import ModelMeta
from geosr.errors import ConfigError, ModelError
from geosr.nodata import valid_mask
from geosr.raster import DEFAULT_STATS_PIXELS


@dataclass(frozen=True)
class BandStats:
    """Per-band affine normalisation ``x_norm = (x - offset) / scale``."""

    offset: np.ndarray
    scale: np.ndarray

    def __post_init__(self) -> None:
        if self.offset.shape != self.scale.shape:
            raise ConfigError("normalisation offset and scale need one value per band")


def scene_statistics(
    sample: np.ndarray,
    nodata: float | None,
    percentiles: tuple[float, float] = (1.0, 99.0),
    mask: np.ndarray | None = None,
) -> BandStats:
    """Robust per-band statistics of a scene sample (bands, y, x): p_low -> 0, p_high -> 1.
    Pixels where ``mask`` (y, x) is 0 are left out, as nodata is."""
    offsets, scales = [], []
    for band in sample:
        values = band[valid_mask(band, nodata, mask)].astype(np.float64)
        if values.size == 0:
            low, high = 0.0, 1.0
        else:
            low, high = np.percentile(values, percentiles)
        span = high - low
        if not span > 0:
            span = max(abs(low), 1.0)
        offsets.append(low)
        scales.append(span)
    return BandStats(np.asarray(offsets, np.float32), np.asarray(scales, np.float32))


def model_statistics(
    meta: ModelMeta,
    bands: int,
    sample: Callable[[], tuple[np.ndarray, np.ndarray | None]],
    nodata: float | None,
) -> BandStats:
    """The normalisation a model asks for: its stored values, or the scene's own, from
    ``sample()``: a decimated (bands, y, x) sample and its (y, x) mask (0 = masked) or None."""
    norm = meta.normalization
    if norm.mode == "fixed":
        offset = np.asarray(norm.offset, np.float32)
        scale = np.asarray(norm.scale, np.float32)
        if offset.size == 1 and bands > 1:
            offset, scale = np.repeat(offset, bands), np.repeat(scale, bands)
        if offset.size != bands:
            raise ModelError(
                f"the model stores normalisation for {offset.size} band(s) but the raster has {bands}"
            )
        return BandStats(offset, scale)
    data, mask = sample()
    return scene_statistics(data, nodata, norm.percentiles, mask)


def _graph_statistics(
    array: da.Array, mask: da.Array | None, nodata: float | None, percentiles: Sequence[float]
) -> Any:
    """The scene statistics as one task of the computation's own graph (a ``Delayed``) over
    the chunks :func:`_chunk_sample` picks: a chunk is read once for the sample and the
    upscale alike (unoptimised delayed parts keep the array's own keys; optimising would fuse
    the reads into new tasks and read those chunks twice)."""

    def parts(source: da.Array) -> list[Any]:
        return [p.to_delayed(optimize_graph=False).ravel()[0] for p in _chunk_sample(source)]

    masks = None if mask is None else parts(mask[None])
    return dask.delayed(_sample_statistics, pure=True)(
        parts(array), masks, nodata, tuple(percentiles)
    )


def _sample_statistics(
    parts: list[np.ndarray],
    masks: list[np.ndarray] | None,
    nodata: float | None,
    percentiles: tuple[float, float],
) -> BandStats:
    bands = parts[0].shape[0]
    sample = np.concatenate([p.reshape(bands, -1) for p in parts], axis=1)[:, None]
    mask = None if masks is None else np.concatenate([m.reshape(-1) for m in masks])[None]
    return scene_statistics(sample, nodata, percentiles, mask)


def _chunk_sample(array: da.Array, max_pixels: int = DEFAULT_STATS_PIXELS) -> list[da.Array]:
    """A decimated sample of a dask array (bands, y, x), as single-chunk pieces: every pixel
    when they fit ``max_pixels`` per band; else whole chunks on a regular sub-grid (so most
    chunks are not needed before the statistics are known), thinned by a whole step."""
    _, height, width = array.shape
    array = array.rechunk({0: -1})
    ny, nx = array.numblocks[1:]
    if height * width <= max_pixels:
        step = 1
    else:
        chunk_pixels = max(array.chunks[1]) * max(array.chunks[2])
        wanted = max(1, math.ceil(max_pixels / chunk_pixels))
        step = max(1, math.floor(math.sqrt(ny * nx / wanted)))
    picked = [
        array.blocks[:, iy, ix]
        for iy in range(step // 2, ny, step)
        for ix in range(step // 2, nx, step)
    ]
    pixels = sum(block.shape[1] * block.shape[2] for block in picked)
    thin = max(1, math.ceil(math.sqrt(pixels / max_pixels)))
    return [block[:, ::thin, ::thin] if thin > 1 else block for block in picked]
