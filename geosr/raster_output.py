"""Writing outputs: where they go and what they may not overwrite, atomic writes, the GeoTIFF
profile, the georeference and metadata carried from the input (GCPs and RPCs rescaled to the
finer grid), the block writer ``dask.array.store`` fills, and the COG rewrite.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attr
import numpy as np
import rasterio
from affine import Affine
from rasterio.control import GroundControlPoint
from rasterio.enums import ColorInterp
from rasterio.errors import RasterioError
from rasterio.rpc import RPC
from rasterio.windows import Window

from geosr.errors import OutputError, OutputExistsError
from geosr.fileutil import default_file_mode
from geosr.raster_info import RasterInfo, Sources, open_raster
from geosr.sources import (
    dataset_names,
    is_local,
    name_stem,
    redact,
)


def default_output_path(source: Sources, scale: int) -> Path:
    """Where an output goes when none is named: ``scene.tif`` -> ``scene_x4.tif`` beside a
    local input; a remote input's file name (``https://host/a/scene.tif?sig=...`` ->
    ``scene_x4.tif``) in the current folder; a stack's first file name plus ``_stack``
    (``B2.tif, B3.tif, ...`` -> ``B2_stack_x4.tif``) beside it, or in the current folder."""
    stack = not isinstance(source, str | os.PathLike)
    name = dataset_names(source)[0]
    folder = Path(name).parent if is_local(name) else Path.cwd()
    return folder / f"{name_stem(name)}{'_stack' if stack else ''}_x{scale}.tif"


def check_output_path(
    inputs: Sequence[Path], output: str | os.PathLike[str], overwrite: bool
) -> Path:
    """Refuse outputs that would overwrite an input, clobber a file, land nowhere or are not
    local files."""
    text = os.fspath(output)
    if text.startswith("/vsi") or "://" in text:
        raise OutputError(
            f"output {redact(text)} is not a local file; geosr writes outputs locally: pass a "
            "local path and copy the result afterwards (e.g. with rio or gdal_translate)"
        )
    output_path = Path(text).expanduser()
    if output_path.exists() and any(
        p.exists() and output_path.resolve() == p.resolve() for p in inputs
    ):
        raise OutputError(
            f"output {output_path} is the input file; geosr never overwrites its input, choose another output path"
        )
    if output_path.is_dir():
        raise OutputError(
            f"output {output_path} is a folder; pass a file path such as {output_path / 'out.tif'}"
        )
    if output_path.exists() and not overwrite:
        raise OutputExistsError(
            f"output {output_path} already exists; pass overwrite=True (--overwrite) to replace it"
        )
    parent = output_path.parent
    if not parent.is_dir():
        raise OutputError(f"output folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"output folder {parent} is not writable; choose another output path")
    return output_path


@contextlib.contextmanager
def atomic_path(final: Path, suffix: str = ".tif") -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it over ``final`` only on success.

    On any exception, KeyboardInterrupt included, the temporary file is removed, so an
    interrupted run leaves no partial output and an existing output stays as it was.
    """
    fd, name = tempfile.mkstemp(
        prefix=f".{final.stem}.", suffix=f".geosr-tmp{suffix}", dir=final.parent
    )
    os.close(fd)
    tmp = Path(name)
    tmp.chmod(default_file_mode())  # mkstemp makes 0600; outputs get the usual umask mode
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        for leftover in (tmp, *(Path(f"{tmp}{ext}") for ext in (".aux.xml", ".ovr", ".msk"))):
            leftover.unlink(missing_ok=True)


def output_block_size(chunk_out: int) -> int:
    """Largest TIFF tile side (multiple of 16, at most 512) dividing the output chunk side, so
    each tile is written exactly once."""
    for size in (512, 256, 128, 64, 32, 16):
        if chunk_out % size == 0:
            return size
    return 256


#: Deflate level of outputs: level 1 compresses 3-4x faster than GDAL's default 6 and the
#: files of real SR outputs come out 0-10 % larger (measured in benchmarks/).
DEFLATE_LEVEL = 1


def compression_options(floating: bool) -> dict[str, Any]:
    """GeoTIFF creation options for compressed, tiled outputs, compressed on every core."""
    return {
        "compress": "deflate",
        "predictor": 3 if floating else 2,
        "zlevel": DEFLATE_LEVEL,
        "num_threads": "ALL_CPUS",  # GDAL compresses tiles in parallel; writes hold a lock
        "bigtiff": "IF_SAFER",
        "sparse_ok": True,
    }


def output_profile(info: RasterInfo, scale: int, block: int) -> dict[str, Any]:
    """GeoTIFF creation profile: same CRS, transform x Affine.scale(1/scale), dtype, nodata."""
    floating = np.dtype(info.dtype).kind == "f"
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": info.width * scale,
        "height": info.height * scale,
        "count": len(info.selected),
        "dtype": info.dtype,
        "crs": info.crs,
        "transform": info.transform @ Affine.scale(1 / scale),
        "nodata": info.nodata,
        "tiled": True,
        "blockxsize": block,
        "blockysize": block,
        **compression_options(floating),
    }
    if len(info.selected) == 3 and info.dtype == "uint8":
        ci = [info.colorinterp[b - 1] for b in info.selected]
        if ci == [ColorInterp.red, ColorInterp.green, ColorInterp.blue]:
            profile["photometric"] = "RGB"
    if not info.has_transform:
        profile.pop("crs")  # GCPs and RPCs carry their own CRS (copy_georeference)
        if info.transform.is_identity:
            profile.pop("transform")
    return profile


def copy_georeference(dst: rasterio.io.DatasetWriter, info: RasterInfo, scale: int) -> None:
    """Carry GCPs and RPCs, rescaled to the output grid (the transform is in the profile)."""
    if info.gcps:
        dst.gcps = (scale_gcps(info.gcps, scale), info.gcp_crs)
    if info.rpcs is not None:
        dst.rpcs = scale_rpcs(info.rpcs, scale)


def scale_gcps(gcps: Sequence[GroundControlPoint], scale: int) -> list[GroundControlPoint]:
    """GCPs of a grid ``scale`` times finer: GDAL's GCP pixel/line count from the top-left
    corner of the first pixel, so the same ground point sits at ``scale`` times them."""
    return [
        GroundControlPoint(
            row=g.row * scale, col=g.col * scale, x=g.x, y=g.y, z=g.z, id=g.id, info=g.info
        )
        for g in gcps
    ]


def scale_rpcs(rpcs: RPC, scale: int) -> RPC:
    """RPCs of a grid ``scale`` times finer. RPC line/sample count from the centre of the
    first pixel (GDAL adds 0.5 to reach its corner-based pixel/line), so an RPC line ``l``
    is corner-based ``l + 0.5``, which becomes ``scale * (l + 0.5)`` on the output grid:
    line ``scale * l + (scale - 1) / 2``. The offsets map that way and the scales multiply."""
    shift = (scale - 1) / 2
    return attr.evolve(
        rpcs,
        line_off=rpcs.line_off * scale + shift,
        samp_off=rpcs.samp_off * scale + shift,
        line_scale=rpcs.line_scale * scale,
        samp_scale=rpcs.samp_scale * scale,
    )


def copy_metadata(
    dst: rasterio.io.DatasetWriter, info: RasterInfo, extra_tags: dict[str, str]
) -> None:
    """Carry dataset tags, band descriptions, colour interpretation, units, scales and offsets."""
    dst.update_tags(**info.tags, **extra_tags)
    for out_index, band in enumerate(info.selected, start=1):
        if info.descriptions[band - 1]:
            dst.set_band_description(out_index, info.descriptions[band - 1])
        if info.band_tags[band - 1]:
            dst.update_tags(out_index, **info.band_tags[band - 1])
        if info.units[band - 1]:
            dst.set_band_unit(out_index, info.units[band - 1])
    dst.scales = [info.scales[b - 1] for b in info.selected]
    dst.offsets = [info.offsets[b - 1] for b in info.selected]
    with contextlib.suppress(ValueError, RasterioError):
        dst.colorinterp = [info.colorinterp[b - 1] for b in info.selected]


class BlockWriter:
    """Target for ``dask.array.store``: writes each computed block into an open dataset.

    Writes are serialised by a lock (GDAL handles are not thread-safe) and reported to
    ``on_block``. Blocks that arrive after :meth:`close` (workers finishing after an
    interruption) are dropped. :meth:`mask_target` takes (y, x) blocks of the dataset's mask.
    """

    def __init__(
        self, dataset: rasterio.io.DatasetWriter, on_block: Callable[[], None] | None = None
    ):
        self.dataset = dataset
        self.on_block = on_block
        self.lock = threading.Lock()
        self.closed = False

    def __setitem__(self, key: tuple[slice, slice, slice], value: np.ndarray) -> None:
        if self.write(key, value) and self.on_block is not None:
            self.on_block()

    def write(self, key: tuple[slice, ...], value: np.ndarray, mask: bool = False) -> bool:
        """Write ``value`` (bands, y, x), or a (y, x) mask, at ``key``; False once closed."""
        window = Window.from_slices(*key[-2:])
        with self.lock:
            if self.closed:
                return False
            if mask:
                self.dataset.write_mask(value, window=window)
            else:
                self.dataset.write(value, window=window)
        return True

    def mask_target(self) -> _MaskTarget:
        return _MaskTarget(self)

    def close(self) -> None:
        with self.lock:
            self.closed = True


class _MaskTarget:
    """``dask.array.store`` target for the mask of a :class:`BlockWriter`'s dataset."""

    def __init__(self, writer: BlockWriter) -> None:
        self.writer = writer

    def __setitem__(self, key: tuple[slice, slice], value: np.ndarray) -> None:
        self.writer.write(key, value, mask=True)


def translate_to_cog(src_path: Path, dst_path: Path, block: int) -> None:
    """Rewrite a finished GeoTIFF as a Cloud-Optimised GeoTIFF with averaged overviews."""
    from rasterio.shutil import copy as rio_copy

    with open_raster(src_path) as src:
        floating = np.dtype(src.dtypes[0]).kind == "f"
    rio_copy(
        src_path,
        dst_path,
        driver="COG",
        compress="DEFLATE",
        predictor="FLOATING_POINT" if floating else "YES",
        blocksize=min(block, 512),
        overview_resampling="AVERAGE",
        bigtiff="IF_SAFER",
    )
