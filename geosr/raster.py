"""Raster I/O: open and validate GeoTIFFs, read them lazily, and write outputs atomically.

Nothing here knows about models. Reads go through :class:`WindowReader`, which opens the file
per window (handles are neither thread-safe nor picklable), so the same dask graph runs on
threads, processes or a ``dask.distributed`` cluster.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import RasterioError, RasterioIOError
from rasterio.windows import Window

from geosr.errors import (
    InputError,
    InputNotFoundError,
    NotARasterError,
    NotGeoreferencedWarning,
    OutputError,
    OutputExistsError,
)
from geosr.fileutil import default_file_mode

log = logging.getLogger(__name__)

#: dtypes geosr reads and writes (GDAL's real-valued types).
SUPPORTED_DTYPES = (
    "uint8",
    "int8",
    "uint16",
    "int16",
    "uint32",
    "int32",
    "int64",
    "uint64",
    "float32",
    "float64",
)


@dataclass(frozen=True)
class RasterInfo:
    """What geosr needs to know about a source raster, read once when it is opened."""

    path: Path
    width: int
    height: int
    count: int
    dtype: str
    crs: CRS | None
    transform: Affine
    nodata: float | None
    descriptions: tuple[str | None, ...]
    colorinterp: tuple[ColorInterp, ...]
    tags: dict[str, str]
    band_tags: tuple[dict[str, str], ...]
    units: tuple[str | None, ...]
    scales: tuple[float, ...]
    offsets: tuple[float, ...]
    block_shape: tuple[int, int]
    bands: tuple[int, ...] = field(default=())  # 1-based band indexes selected for processing

    @property
    def georeferenced(self) -> bool:
        return self.crs is not None and not self.transform.is_identity

    @property
    def selected(self) -> tuple[int, ...]:
        return self.bands or tuple(range(1, self.count + 1))

    def band_names(self) -> list[str]:
        return [self.descriptions[b - 1] or f"band {b}" for b in self.selected]


def open_raster(path: str | os.PathLike[str], mode: str = "r", **kwargs: Any) -> Any:
    """``rasterio.open`` without rasterio's own not-georeferenced warning (geosr warns once, in
    its own words, when the input is opened)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        return rasterio.open(path, mode, **kwargs)


def open_info(path: str | os.PathLike[str], bands: Sequence[int] | None = None) -> RasterInfo:
    """Open ``path``, check it is a readable raster geosr can process, and describe it.

    Raises:
        InputNotFoundError: the file does not exist.
        NotARasterError: GDAL cannot read it, or it is corrupt or truncated.
        InputError: complex data, no bands, or an invalid band selection.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise InputNotFoundError(f"input {path} does not exist; check the path")
    if path.is_dir():
        raise NotARasterError(f"input {path} is a folder; pass a raster file such as a GeoTIFF")
    try:
        with open_raster(path) as src:
            info = _describe(src, path)
            _probe_blocks(src, path)
    except RasterioIOError as exc:
        raise NotARasterError(
            f"{path} is not a raster GDAL can read ({_gdal_reason(exc)}); pass a GeoTIFF or another GDAL raster"
        ) from None
    if info.dtype.startswith("complex"):
        raise InputError(
            f"{path} holds complex values ({info.dtype}); geosr needs real-valued bands, "
            "e.g. convert to amplitude first (gdal_calc.py or numpy.abs)"
        )
    if info.dtype not in SUPPORTED_DTYPES:
        raise InputError(f"{path} has unsupported data type {info.dtype}; convert it to float32")
    if bands:
        bad = [b for b in bands if not 1 <= int(b) <= info.count]
        if bad:
            raise InputError(
                f"band(s) {', '.join(map(str, bad))} do not exist in {path}, which has "
                f"{info.count} band(s) numbered 1 to {info.count}"
            )
        info = _with_bands(info, tuple(int(b) for b in bands))
    if not info.georeferenced:
        warnings.warn(
            f"{path} has no CRS or geotransform; the output will be upscaled in pixel space "
            "and is not georeferenced either",
            NotGeoreferencedWarning,
            stacklevel=2,
        )
    return info


def _describe(src: rasterio.DatasetReader, path: Path) -> RasterInfo:
    if src.count == 0:
        raise InputError(f"{path} has no raster bands; pass a raster with at least one band")
    return RasterInfo(
        path=path,
        width=src.width,
        height=src.height,
        count=src.count,
        dtype=src.dtypes[0],
        crs=src.crs,
        transform=src.transform,
        nodata=src.nodata,
        descriptions=tuple(src.descriptions),
        colorinterp=tuple(src.colorinterp),
        tags=dict(src.tags()),
        band_tags=tuple(dict(src.tags(b)) for b in range(1, src.count + 1)),
        units=tuple(src.units),
        scales=tuple(src.scales),
        offsets=tuple(src.offsets),
        block_shape=tuple(src.block_shapes[0]),
    )


def _with_bands(info: RasterInfo, bands: tuple[int, ...]) -> RasterInfo:
    return RasterInfo(**{**info.__dict__, "bands": bands})


def _probe_blocks(src: rasterio.DatasetReader, path: Path) -> None:
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
                f"{path} is corrupt or truncated ({_gdal_reason(exc)}); re-download or re-export it"
            ) from None


def _gdal_reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.rstrip(".")


class WindowReader:
    """Array-like view of selected bands, reading each requested window from disk.

    ``dask.array.from_array(reader, chunks=...)`` turns it into a lazy array. The file is
    reopened for every read, so reads are safe from any thread or process.
    """

    def __init__(self, path: Path, bands: Sequence[int], height: int, width: int, dtype: str):
        self.path = Path(path)
        self.bands = list(bands)
        self.shape = (len(self.bands), height, width)
        self.dtype = np.dtype(dtype)
        self.ndim = 3

    def __getitem__(self, key: tuple[slice, slice, slice]) -> np.ndarray:
        band_slice, rows, cols = key
        bands = self.bands[band_slice]
        row0, row1, _ = rows.indices(self.shape[1])
        col0, col1, _ = cols.indices(self.shape[2])
        window = Window(col0, row0, col1 - col0, row1 - row0)
        try:
            # not open_raster: catch_warnings is not thread-safe, and this runs in dask threads
            with rasterio.open(self.path) as src:
                return src.read(bands, window=window)
        except RasterioError as exc:
            raise NotARasterError(
                f"cannot read {self.path} at rows {row0}-{row1}, columns {col0}-{col1}: "
                f"{_gdal_reason(exc)}; the file is corrupt or truncated"
            ) from None


def lazy_array(info: RasterInfo, chunk_size: int) -> da.Array:
    """The selected bands as a dask array (bands, y, x), one chunk per ``chunk_size`` square."""
    reader = WindowReader(info.path, info.selected, info.height, info.width, info.dtype)
    chunks = (len(info.selected), chunk_size, chunk_size)
    return da.from_array(
        reader,
        chunks=chunks,
        lock=False,
        asarray=True,
        fancy=False,
        name=f"geosr-read-{_read_token(info, chunk_size)}",
    )


def _read_token(info: RasterInfo, chunk_size: int) -> str:
    """Graph key of a read: changes with the file's content, the bands and the chunking."""
    from dask.base import tokenize

    stat = info.path.stat()
    return tokenize(
        str(info.path.resolve()), stat.st_mtime_ns, stat.st_size, info.selected, chunk_size
    )


def read_sample(info: RasterInfo, max_pixels: int = 1_000_000) -> np.ndarray:
    """A decimated read of the selected bands (at most ``max_pixels`` per band) for statistics.

    GDAL answers from overviews when the file has them, so this stays cheap on big scenes.
    """
    step = max(1, math.ceil(math.sqrt(info.width * info.height / max_pixels)))
    shape = (len(info.selected), max(1, info.height // step), max(1, info.width // step))
    with open_raster(info.path) as src:
        return src.read(list(info.selected), out_shape=shape, resampling=Resampling.nearest)


# --- output -------------------------------------------------------------------------------------


def default_output_path(input_path: Path, scale: int) -> Path:
    """``scene.tif`` -> ``scene_x4.tif`` beside the input."""
    return input_path.with_name(f"{input_path.stem}_x{scale}.tif")


def check_output_path(input_path: Path | None, output_path: Path, overwrite: bool) -> Path:
    """Refuse outputs that would overwrite the input, clobber a file, or land nowhere."""
    output_path = Path(output_path).expanduser()
    if (
        input_path is not None
        and output_path.exists()
        and input_path.exists()
        and output_path.resolve() == input_path.resolve()
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
        for leftover in (tmp, Path(f"{tmp}.aux.xml"), Path(f"{tmp}.ovr")):
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
    if not info.georeferenced:
        profile.pop("crs")
        if info.transform.is_identity:
            profile.pop("transform")
    return profile


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
    interruption) are dropped.
    """

    def __init__(
        self, dataset: rasterio.io.DatasetWriter, on_block: Callable[[], None] | None = None
    ):
        self.dataset = dataset
        self.on_block = on_block
        self.lock = threading.Lock()
        self.closed = False

    def __setitem__(self, key: tuple[slice, slice, slice], value: np.ndarray) -> None:
        _, rows, cols = key
        window = Window.from_slices(rows, cols)
        with self.lock:
            if self.closed:
                return
            self.dataset.write(value, window=window)
        if self.on_block is not None:
            self.on_block()

    def close(self) -> None:
        with self.lock:
            self.closed = True


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
