"""The uncertainty path: each output pixel's expected error (:mod:`geosr.uncertainty`)
computed lazily over halo'd chunks, beside the upscaled bands or in a file of its own."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr

from geosr.engine.plan import core_window, halo_blocks
from geosr.engine.stats import BandStats
from geosr.nodata import valid_mask
from geosr.uncertainty import HALO as UNCERTAINTY_HALO
from geosr.uncertainty import uncertainty_block

#: What the uncertainty raster holds, as its GEOSR_UNCERTAINTY tag says.
UNCERTAINTY_MEANING = (
    "expected absolute error of each output pixel, in the band's units (geosr.uncertainty)"
)


@dataclass(frozen=True)
class _UncertaintyPlan:
    stats: BandStats
    halo: tuple[int, int]
    numblocks: tuple[int, int]
    nodata: float | None
    scale: int
    strength: float
    carry: tuple[int, ...] = ()


def _uncertainty_chunk(
    block: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    plan: _UncertaintyPlan,
    block_id: tuple[int, ...] | None = None,
) -> np.ndarray:
    top, bottom, left, right = core_window(block.shape, block_id, plan.halo, plan.numblocks)
    bands = np.delete(block, plan.carry, axis=0) if plan.carry else block
    valid = valid_mask(bands, plan.nodata, mask)
    error = uncertainty_block(
        bands, valid, plan.stats.offset, plan.stats.scale, plan.scale, plan.strength
    )
    s = plan.scale
    error = error[:, top * s : bottom * s, left * s : right * s]
    if plan.carry:  # an alpha band is carried exactly: no error
        positions = [c - i for i, c in enumerate(plan.carry)]
        error = np.insert(error, positions, np.float32(0), axis=0)
    return error


def uncertainty_array(
    array: da.Array,
    stats: BandStats,
    nodata: float | None,
    scale: int,
    strength: float,
    mask: da.Array | None = None,
    carry: Sequence[int] = (),
) -> da.Array:
    """Lazy per-pixel uncertainty (float32, NaN where masked) of upscaling ``array`` (bands,
    y, x) by ``scale``: the expected absolute error of each output pixel, in the band's units
    (:mod:`geosr.uncertainty`). It needs no network, only the input and ``stats``, the
    normalisation the network saw; chunks get a halo, so the values do not depend on them."""
    blocks = halo_blocks(array, UNCERTAINTY_HALO, mask)
    plan = _UncertaintyPlan(
        stats=stats,
        halo=blocks.halo,
        numblocks=blocks.numblocks,
        nodata=nodata,
        scale=scale,
        strength=strength,
        carry=tuple(sorted(int(c) for c in carry)),
    )
    return da.map_blocks(
        _uncertainty_chunk,
        blocks.extended,
        *blocks.masks,
        plan=dask.delayed(plan, pure=True),
        chunks=blocks.output_chunks(scale),
        dtype=np.float32,
        token=f"geosr-uncertainty-x{scale}",
        meta=np.empty((0, 0, 0), np.float32),
    )


def with_uncertainty(upscaled: xr.DataArray, error: da.Array) -> xr.Dataset:
    """The Dataset ``upscale_dataarray(uncertainty=True)`` returns: ``upscaled`` and its
    ``uncertainty`` (float32, NaN nodata, same grid, bands described as ``<band>
    uncertainty``)."""
    names = upscaled.attrs.get("long_name")
    band_dim = upscaled.dims[0]
    if not isinstance(names, list | tuple):
        coord = upscaled.coords.get(band_dim)
        names = (
            [str(v) for v in coord.values]
            if coord is not None and coord.dtype.kind in "OU"
            else [f"band {i}" for i in range(1, upscaled.shape[0] + 1)]
        )
    attrs = {
        "long_name": [f"{name} uncertainty" for name in names],
        "geosr_uncertainty": UNCERTAINTY_MEANING,
        "geosr_model": upscaled.attrs.get("geosr_model", ""),
        "geosr_scale": upscaled.attrs.get("geosr_scale", ""),
    }
    error_da = xr.DataArray(error, dims=upscaled.dims, coords=upscaled.coords, attrs=attrs)
    error_da = error_da.rio.write_nodata(np.nan, encoded=False)
    return xr.Dataset({"upscaled": upscaled, "uncertainty": error_da})


def uncertainty_path(output: str | os.PathLike[str]) -> Path:
    """Where ``upscale(uncertainty=True)`` writes the uncertainty beside ``output``:
    ``scene_x4.tif`` -> ``scene_x4_uncertainty.tif`` (``.zarr`` likewise)."""
    path = Path(output)
    return path.with_name(f"{path.stem}_uncertainty{path.suffix}")
