"""Outputs: a (lazy) DataArray streamed into a GeoTIFF or a Zarr store, and the uncertainty
written beside an upscaled file, on its grid."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dask.array as da
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr

from geosr.engine.uncertainty import UNCERTAINTY_MEANING, uncertainty_path
from geosr.errors import ConfigError, InputError
from geosr.raster import (
    RasterInfo,
    check_output_path,
    compression_options,
    copy_georeference,
    output_block_size,
    output_profile,
)
from geosr.version import __version__
from geosr.writer import ProgressCallback, write_raster
from geosr.zarr_store import check_zarr_output, grid_transform, is_zarr_output, write_zarr

log = logging.getLogger(__name__)


def write(
    data: xr.DataArray,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    cog: bool = False,
    progress: bool | ProgressCallback = False,
    scheduler: Any = None,
    num_workers: int | None = None,
    format: str | None = None,
) -> Path:
    """Stream a (lazy) georeferenced DataArray, such as :func:`upscale_dataarray`'s result,
    into a tiled, compressed GeoTIFF, atomically, on threads or a dask.distributed cluster;
    into a Zarr store (:func:`geosr.zarr_store.write_zarr`) for a ``.zarr`` path or
    ``format="zarr"``.

    CRS, transform and nodata come from the ``rio`` accessor; band descriptions from the
    ``long_name`` attribute or string band labels; ``geosr_*`` attributes become tags.
    """
    if is_zarr_output(path, format):
        _check_zarr_options(cog)
        return write_zarr(
            data,
            path,
            overwrite=overwrite,
            progress=progress,
            scheduler=scheduler,
            num_workers=num_workers,
        )
    if data.ndim == 2:
        data = data.expand_dims("band")
    if data.ndim != 3:
        raise InputError(f"expected a DataArray with dims (band, y, x), got {data.dims}")
    out_path = check_output_path((), path, overwrite)
    array = data.data if isinstance(data.data, da.Array) else da.asarray(data.data)
    if array.chunks[0] != (array.shape[0],):
        array = array.rechunk({0: -1})
    write_raster(
        array,
        out_path,
        _geotiff_profile(data, array),
        _describe(data, array.shape[0]),
        cog=cog,
        progress=progress,
        scheduler=scheduler,
        num_workers=num_workers,
    )
    return out_path


def _geotiff_profile(data: xr.DataArray, array: da.Array) -> dict[str, Any]:
    """The profile of a tiled, compressed GeoTIFF of ``array`` (bands, y, x) with ``data``'s
    georeference and nodata (none for integers whose nodata is NaN)."""
    count, height, width = array.shape
    block = output_block_size(array.chunks[1][0])
    floating = array.dtype.kind == "f"
    nodata = data.rio.nodata if data.rio.nodata is not None else data.rio.encoded_nodata
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": count,
        "dtype": array.dtype.name,
        "transform": grid_transform(data),
        "nodata": None if nodata is None or (not floating and math.isnan(nodata)) else nodata,
        "tiled": True,
        "blockxsize": block,
        "blockysize": block,
        **compression_options(floating),
    }
    if data.rio.crs is not None:
        profile["crs"] = data.rio.crs
    return profile


def _describe(data: xr.DataArray, count: int) -> Callable[[Any], None]:
    """What is written into the open GeoTIFF of ``data``'s ``count`` bands: its ``geosr_*``
    attributes as tags, band descriptions from ``long_name`` or string band labels."""
    names = data.attrs.get("long_name")
    if isinstance(names, str):
        names = (names,) * count if count == 1 else None
    if (
        names is None
        and data.dims[0] in data.coords
        and data.coords[data.dims[0]].dtype.kind in "OU"
    ):
        names = [str(v) for v in data.coords[data.dims[0]].values]
    tags = {k.upper(): str(v) for k, v in data.attrs.items() if k.startswith("geosr_")}

    def decorate(dst: Any) -> None:
        dst.update_tags(**tags)
        for index, name in enumerate(names or (), start=1):
            if name:
                dst.set_band_description(index, str(name))

    return decorate


def _check_zarr_options(cog: bool) -> None:
    if cog:
        raise ConfigError(
            "cog=True (--cog) makes a GeoTIFF, not a Zarr store; drop it, or write a .tif output"
        )


def _uncertainty_output(
    out_path: Path,
    uncertainty: bool,
    out_scale: int,
    to_zarr: bool,
    info: RasterInfo,
    overwrite: bool,
) -> Path | None:
    """The uncertainty's path, checked before any work; None when none is asked for."""
    if not uncertainty:
        return None
    if out_scale == 1:
        raise ConfigError(
            "uncertainty=True (--uncertainty) estimates the super-resolution's error, but this "
            "resolution runs the aligner only; drop one of them"
        )
    error_path = uncertainty_path(out_path)
    if to_zarr:
        return check_zarr_output(error_path, overwrite, info.local_files)
    return check_output_path(info.local_files, error_path, overwrite)


def _write_uncertainty(
    error: xr.DataArray,
    path: Path,
    info: RasterInfo,
    scale: int,
    label: str,
    to_zarr: bool,
    overwrite: bool,
    options: dict[str, Any],
) -> None:
    """The uncertainty beside the output, on its grid and georeference, atomically;
    ``options`` are the output's ``progress``, ``scheduler`` and ``num_workers``."""
    tags = {
        "GEOSR_MODEL": label,
        "GEOSR_SCALE": str(scale),
        "GEOSR_VERSION": __version__,
        "GEOSR_UNCERTAINTY": UNCERTAINTY_MEANING,
    }
    if to_zarr:
        write_zarr(error, path, overwrite=overwrite, name="uncertainty", **options)
        return
    profile = output_profile(info, scale, output_block_size(error.data.chunks[1][0]))
    profile.update(dtype="float32", nodata=float("nan"), **compression_options(True))
    profile.pop("photometric", None)
    names = [f"{info.descriptions[b - 1] or f'band {b}'} uncertainty" for b in info.selected]

    def decorate(dst: Any) -> None:
        dst.update_tags(**tags)
        for index, name in enumerate(names, start=1):
            dst.set_band_description(index, name)
        copy_georeference(dst, info, scale)

    write_raster(error.data, path, profile, decorate, **options)
    log.info("wrote the uncertainty to %s", path)
