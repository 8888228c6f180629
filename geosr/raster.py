"""Raster I/O: open and validate rasters, read them lazily, and write outputs atomically.

Nothing here knows about models. Inputs are GDAL dataset names (see :mod:`geosr.sources`):
local files, URLs, cloud objects, or an in-memory VRT stacking single-band files. This module
opens and validates them (:func:`open_info`); the rest lives beside it, and every name is
importable from here too:

- :mod:`geosr.raster_info`: :class:`RasterInfo`, what an opened raster is, and ``open_raster``;
- :mod:`geosr.raster_read`: window readers, lazy arrays and masks, decimated samples (reads go
  through :class:`WindowReader`, which opens the dataset per window, so the same dask graph
  runs on threads, processes or a ``dask.distributed`` cluster);
- :mod:`geosr.raster_output`: output paths, atomic writes, the GeoTIFF profile, the carried
  georeference and metadata, the block writer and the COG rewrite.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import rasterio
from rasterio.enums import ColorInterp, MaskFlags
from rasterio.errors import RasterioError, RasterioIOError
from rasterio.windows import Window

from geosr.errors import InputError, InputNotFoundError, NotARasterError, NotGeoreferencedWarning
from geosr.raster_info import (
    SUPPORTED_DTYPES,
    QualitySource,
    RasterInfo,
    Source,
    Sources,
    _gdal_reason,
    open_raster,
)
from geosr.raster_output import (
    DEFLATE_LEVEL,
    BlockWriter,
    atomic_path,
    check_output_path,
    compression_options,
    copy_georeference,
    copy_metadata,
    default_output_path,
    output_block_size,
    output_profile,
    scale_gcps,
    scale_rpcs,
    translate_to_cog,
)
from geosr.raster_read import (
    DEFAULT_STATS_PIXELS,
    MaskReader,
    QualityReader,
    WindowReader,
    clear_pixels,
    decimated_shape,
    lazy_array,
    lazy_mask,
    read_decimated,
    read_sample,
    sample_array,
    sample_mask,
)
from geosr.sources import (
    StackMember,
    check_same_grid,
    dataset_name,
    dataset_names,
    is_local,
    name_stem,
    redact,
    stack_vrt,
)

log = logging.getLogger(__name__)


def open_info(source: Sources, bands: Sequence[int] | None = None) -> RasterInfo:
    """Open ``source``, check it is a readable raster geosr can process, and describe it.

    ``source`` is a local path, a URL (``https://``, ``s3://``, ``gs://``, ``az://``), a GDAL
    name (``/vsicurl/...``, ``/vsis3/...``, a ``.vrt``), or a sequence of single-band rasters
    on one grid, stacked in order (band descriptions from their file names).

    Raises:
        InputNotFoundError: a local file, or a remote object, does not exist.
        NotARasterError: GDAL cannot read it, or it is corrupt or truncated.
        InputError: complex data, no bands, an invalid band selection, or a stack of rasters
            on different grids.
    """
    if isinstance(source, str | os.PathLike):
        name = dataset_name(source)
        info = open_dataset_info(name, _label(source, name), (name,), name_stem(name))
    else:
        info = _open_stack(list(source))  # an iterator can be read only once
    label = info.label
    if info.dtype.startswith("complex"):
        raise InputError(
            f"{label} holds complex values ({info.dtype}); geosr needs real-valued bands, "
            "e.g. convert to amplitude first (gdal_calc.py or numpy.abs)"
        )
    if info.dtype not in SUPPORTED_DTYPES:
        raise InputError(f"{label} has unsupported data type {info.dtype}; convert it to float32")
    info = select_bands(info, bands)
    if not info.georeferenced:
        warnings.warn(
            f"{label} has no CRS or geotransform; the output will be upscaled in pixel space "
            "and is not georeferenced either",
            NotGeoreferencedWarning,
            stacklevel=2,
        )
    return info


def select_bands(info: RasterInfo, bands: Sequence[int] | None) -> RasterInfo:
    """``info`` with ``bands`` (1-based numbers) selected for processing; all when None.

    Raises:
        InputError: a band the raster lacks, or only its alpha band.
    """
    if bands:
        bad = [b for b in bands if not 1 <= int(b) <= info.count]
        if bad:
            raise InputError(
                f"band(s) {', '.join(map(str, bad))} do not exist in {info.label}, which has "
                f"{info.count} band(s) numbered 1 to {info.count}"
            )
        info = dataclasses.replace(info, bands=tuple(int(b) for b in bands))
    if not info.network_bands:
        raise InputError(
            f"band {info.alpha} of {info.label} is its alpha band (a mask, carried as it is); "
            "select at least one other band"
        )
    return info


def _label(source: Source, name: str) -> str:
    return name if is_local(name) else redact(os.fspath(source))


def check_exists(name: str, label: str) -> None:
    """Refuse a local file that does not exist, or a folder, in one line (``label`` names it)."""
    if not is_local(name):
        return  # GDAL tells when it opens it; stat() on a URL would mean another request
    path = Path(name)
    if not path.exists():
        raise InputNotFoundError(f"input {label} does not exist; check the path")
    if path.is_dir():
        raise NotARasterError(f"input {label} is a folder; pass a raster file such as a GeoTIFF")


def open_dataset_info(name: str, label: str, files: tuple[str, ...], stem: str) -> RasterInfo:
    """Open the GDAL dataset ``name`` (a file, URL or VRT XML), describe it and read its first
    and last blocks; ``files`` are the dataset names it reads, ``stem`` starts output names."""
    check_exists(name, label)
    try:
        with open_raster(name) as src:
            info = _describe(src, name, label, files, stem)
            _probe_blocks(src, label)
    except RasterioIOError as exc:
        raise open_error(name, label, exc) from None
    return info


def open_error(name: str, label: str, exc: BaseException) -> InputError | InputNotFoundError:
    """The one-line geosr error for GDAL failing to open ``name``."""
    reason = redact(_gdal_reason(exc))
    if not is_local(name) and not name.lstrip().startswith("<"):
        if any(s in reason for s in ("404", "does not exist", "No such file")):
            return InputNotFoundError(
                f"input {label} was not found ({reason}); check the URL or object name"
            )
        return NotARasterError(
            f"cannot read {label} ({reason}); check the URL, that the server answers range "
            "requests, and the credentials in GDAL's environment (AWS_*, GS_*, AZURE_*, GDAL_HTTP_*)"
        )
    if name.lower().endswith((".jp2", ".j2k")) and "JP2OpenJPEG" not in _drivers():
        return NotARasterError(
            f"{label} is JPEG 2000, which this GDAL cannot read (no JP2OpenJPEG driver); "
            "install rasterio's wheels, which bundle it, or a GDAL built with OpenJPEG"
        )
    return NotARasterError(
        f"{label} is not a raster GDAL can read ({reason}); pass a GeoTIFF or another GDAL raster"
    )


def _drivers() -> set[str]:
    with rasterio.Env() as env:
        return set(env.drivers())


def _open_stack(sources: Sequence[Source]) -> RasterInfo:
    members = [
        _stack_member(source, name)
        for source, name in zip(sources, dataset_names(sources), strict=True)
    ]
    check_same_grid(members)
    first = members[0].label
    label = f"stack of {first}" + (f" and {len(members) - 1} more" if len(members) > 1 else "")
    files = tuple(m.name for m in members)
    return open_dataset_info(
        stack_vrt(members), label, files, f"{name_stem(members[0].name)}_stack"
    )


def _stack_member(source: Source, name: str) -> StackMember:
    label = _label(source, name)
    check_exists(name, label)
    try:
        with open_raster(name) as src:
            if src.count != 1:
                raise InputError(
                    f"{label} has {src.count} bands but a stack takes single-band rasters; pass "
                    "it alone (with bands=[...] to select) or one file per band"
                )
            return StackMember(
                name=name,
                label=label,
                width=src.width,
                height=src.height,
                dtype=src.dtypes[0],
                crs=src.crs,
                transform=src.transform,
                nodata=src.nodata,
                block=tuple(src.block_shapes[0]),
                unit=src.units[0] or None,
                scale=src.scales[0],
                offset=src.offsets[0],
                mask=MaskFlags.per_dataset in src.mask_flag_enums[0],
            )
    except RasterioIOError as exc:
        raise open_error(name, label, exc) from None


def _describe(
    src: rasterio.DatasetReader, name: str, label: str, files: tuple[str, ...], stem: str
) -> RasterInfo:
    if src.count == 0:
        raise InputError(f"{label} has no raster bands; pass a raster with at least one band")
    colorinterp = tuple(src.colorinterp)
    alpha = next((b for b, ci in enumerate(colorinterp, 1) if ci == ColorInterp.alpha), None)
    data_band = next((b for b in range(1, src.count + 1) if b != alpha), None)
    flags = src.mask_flag_enums[data_band - 1] if data_band else ()
    gcps, gcp_crs = src.gcps
    return RasterInfo(
        name=name,
        label=label,
        width=src.width,
        height=src.height,
        count=src.count,
        dtype=src.dtypes[0],
        crs=src.crs,
        transform=src.transform,
        nodata=src.nodata,
        descriptions=tuple(src.descriptions),
        colorinterp=colorinterp,
        tags=dict(src.tags()),
        band_tags=tuple(dict(src.tags(b)) for b in range(1, src.count + 1)),
        units=tuple(src.units),
        scales=tuple(src.scales),
        offsets=tuple(src.offsets),
        block_shape=tuple(src.block_shapes[0]),
        files=files,
        stem=stem,
        alpha=alpha,
        # an alpha band is the mask GDAL reports for the other bands; it is read as a band
        mask=alpha is None and MaskFlags.per_dataset in flags,
        gcps=tuple(gcps),
        gcp_crs=gcp_crs if gcps else None,
        rpcs=src.rpcs,
    )


def _probe_blocks(src: rasterio.DatasetReader, label: str) -> None:
    """Read the first and the last block, so a truncated file fails now, not hours later."""
    block_h, block_w = src.block_shapes[0]
    last_row = max(0, src.height - min(block_h, src.height))
    last_col = max(0, src.width - min(block_w, src.width))
    for row, col in ((0, 0), (last_row, last_col)):
        window = Window(col, row, min(block_w, src.width), min(block_h, src.height))
        try:
            src.read(1, window=window)
        except RasterioError as exc:
            raise NotARasterError(
                f"{label} is corrupt or truncated ({redact(_gdal_reason(exc))}); re-download or "
                "re-export it"
            ) from None


__all__ = [
    "DEFAULT_STATS_PIXELS",
    "DEFLATE_LEVEL",
    "SUPPORTED_DTYPES",
    "BlockWriter",
    "MaskReader",
    "QualityReader",
    "QualitySource",
    "RasterInfo",
    "Source",
    "Sources",
    "WindowReader",
    "atomic_path",
    "check_exists",
    "check_output_path",
    "clear_pixels",
    "compression_options",
    "copy_georeference",
    "copy_metadata",
    "decimated_shape",
    "default_output_path",
    "lazy_array",
    "lazy_mask",
    "open_dataset_info",
    "open_error",
    "open_info",
    "open_raster",
    "output_block_size",
    "output_profile",
    "read_decimated",
    "read_sample",
    "sample_array",
    "sample_mask",
    "scale_gcps",
    "scale_rpcs",
    "select_bands",
    "translate_to_cog",
]
