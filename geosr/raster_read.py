"""Reading rasters lazily and in samples: window readers for dask (bands, masks, quality
bands), the lazy arrays and masks built on them, and decimated reads for statistics.

:class:`WindowReader` opens the dataset per window (handles are neither thread-safe nor
picklable), so the same dask graph runs on threads, processes or a ``dask.distributed``
cluster.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import dask.array as da
import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.windows import Window

from geosr.errors import NotARasterError
from geosr.raster_info import QualitySource, RasterInfo, _gdal_reason, open_raster
from geosr.sources import redact


class WindowReader:
    """Array-like view of selected bands, reading each requested window from the dataset.

    ``dask.array.from_array(reader, chunks=...)`` turns it into a lazy array. The dataset is
    reopened for every read, so reads are safe from any thread or process; a remote one is
    read window by window (range requests), never whole.
    """

    def __init__(
        self,
        name: str,
        bands: Sequence[int],
        height: int,
        width: int,
        dtype: str,
        label: str | None = None,
    ):
        self.name = name
        self.label = label or redact(name)
        self.bands = list(bands)
        self.shape: tuple[int, ...] = (len(self.bands), height, width)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        *band_key, rows, cols = key
        row0, row1, _ = rows.indices(self.shape[-2])
        col0, col1, _ = cols.indices(self.shape[-1])
        window = Window(col0, row0, col1 - col0, row1 - row0)
        try:
            # not open_raster: catch_warnings is not thread-safe, and this runs in dask threads
            with rasterio.open(self.name) as src:
                return self.read(src, band_key[0] if band_key else slice(None), window)
        except RasterioError as exc:
            raise NotARasterError(
                f"cannot read {self.label} at rows {row0}-{row1}, columns {col0}-{col1}: "
                f"{redact(_gdal_reason(exc))}; the file is corrupt or truncated, or the "
                "connection to it failed"
            ) from None

    def read(self, src: rasterio.DatasetReader, bands: slice, window: Window) -> np.ndarray:
        return src.read(self.bands[bands], window=window)


class MaskReader(WindowReader):
    """Array-like (y, x) view of a dataset's per-dataset mask (GDAL's: 0 = masked, 255 = valid)."""

    def __init__(self, name: str, band: int, height: int, width: int, label: str | None = None):
        super().__init__(name, [band], height, width, "uint8", label)
        self.shape = (height, width)
        self.ndim = 2

    def read(self, src: rasterio.DatasetReader, bands: slice, window: Window) -> np.ndarray:
        return src.read_masks(self.bands[0], window=window)


class QualityReader(WindowReader):
    """Array-like (y, x) view of a quality band as a mask: 0 where its rule masks a pixel,
    255 where the pixel is clear."""

    def __init__(self, source: QualitySource, height: int, width: int, label: str | None = None):
        super().__init__(source.name, [1], height, width, "uint8", label)
        self.rule = source.rule
        self.shape = (height, width)
        self.ndim = 2

    def read(self, src: rasterio.DatasetReader, bands: slice, window: Window) -> np.ndarray:
        return clear_pixels(self.rule, src.read(1, window=window))


def clear_pixels(rule: Any, flags: np.ndarray) -> np.ndarray:
    """A quality band's values as a GDAL-style mask: 0 where ``rule`` masks, else 255."""
    return np.where(rule.masked(flags), 0, 255).astype(np.uint8)


def lazy_array(info: RasterInfo, chunk_size: int) -> da.Array:
    """The selected bands as a dask array (bands, y, x), one chunk per ``chunk_size`` square."""
    reader = WindowReader(info.name, info.selected, info.height, info.width, info.dtype, info.label)
    chunks = (len(info.selected), chunk_size, chunk_size)
    return _from_reader(reader, chunks, _read_token(info, chunk_size, "bands"))


def lazy_mask(info: RasterInfo, chunk_size: int) -> da.Array | None:
    """Where the raster's pixels are valid, as a dask array (y, x) that is 0 where masked: its
    alpha band, or its per-dataset mask (internal or ``.msk``), and where its quality bands
    (:attr:`RasterInfo.quality`) flag nothing; None if it has none of these."""
    valid = None
    if info.alpha is not None:
        reader = WindowReader(
            info.name, [info.alpha], info.height, info.width, info.dtype, info.label
        )
        chunks: tuple[int, ...] = (1, chunk_size, chunk_size)
        valid = _from_reader(reader, chunks, _read_token(info, chunk_size, "alpha"))[0]
    elif info.mask:
        reader = MaskReader(info.name, info.network_bands[0], info.height, info.width, info.label)
        valid = _from_reader(
            reader, (chunk_size, chunk_size), _read_token(info, chunk_size, "mask")
        )
    for number, source in enumerate(info.quality):
        flags = QualityReader(source, info.height, info.width, info.label)
        token = _read_token(info, chunk_size, f"quality{number}")
        clear = _from_reader(flags, (chunk_size, chunk_size), token)
        valid = clear if valid is None else da.where(clear != 0, valid, 0)
    return valid


def _from_reader(reader: WindowReader, chunks: tuple[int, ...], token: str) -> da.Array:
    return da.from_array(
        reader, chunks=chunks, lock=False, asarray=True, fancy=False, name=f"geosr-read-{token}"
    )


def _read_token(info: RasterInfo, chunk_size: int, what: str) -> str:
    """Graph key of a read: changes with the local files' content, the bands and the chunking
    (remote objects are named by their URL)."""
    from dask.base import tokenize

    stats = [(str(p.resolve()), p.stat().st_mtime_ns, p.stat().st_size) for p in info.local_files]
    return tokenize(info.name, stats, info.selected, chunk_size, what)


#: Pixels per band read (decimated) for a scene's statistics, in inference and training alike.
DEFAULT_STATS_PIXELS = 1_000_000


def read_sample(info: RasterInfo, max_pixels: int = DEFAULT_STATS_PIXELS) -> np.ndarray:
    """A decimated read of the selected bands (at most ``max_pixels`` per band) for statistics."""
    with open_raster(info.name) as src:
        return read_decimated(src, info.selected, max_pixels)[0]


def sample_mask(info: RasterInfo, max_pixels: int = DEFAULT_STATS_PIXELS) -> np.ndarray | None:
    """The pixels of :func:`read_sample` that its alpha band, per-dataset mask and quality
    bands leave valid, as a boolean (y, x) array; None when the raster has none of these."""
    valid = None
    if info.alpha is not None or info.mask:
        with open_raster(info.name) as src:
            if info.alpha is not None:
                valid = read_decimated(src, [info.alpha], max_pixels)[0][0] > 0
            else:
                shape = decimated_shape(info.height, info.width, max_pixels)
                masks = src.read_masks(
                    info.network_bands[0], out_shape=shape, resampling=Resampling.nearest
                )
                valid = masks > 0
    for source in info.quality:
        with open_raster(source.name) as src:
            clear = clear_pixels(source.rule, read_decimated(src, [1], max_pixels)[0][0]) > 0
        valid = clear if valid is None else valid & clear
    return valid


def read_decimated(
    src: rasterio.DatasetReader,
    indexes: Sequence[int],
    max_pixels: int,
    window: Window | None = None,
    masks: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Bands ``indexes`` of ``window`` (default: all) decimated to at most ``max_pixels``
    pixels per band by nearest neighbour, and their masks when ``masks`` is set.

    GDAL answers from overviews when the file has them, so statistics stay cheap on big
    scenes. Both inference and training statistics read through here.
    """
    window = window or Window(0, 0, src.width, src.height)
    shape = (len(indexes), *decimated_shape(int(window.height), int(window.width), max_pixels))
    options = {"out_shape": shape, "window": window, "resampling": Resampling.nearest}
    data = src.read(list(indexes), **options)
    return data, src.read_masks(list(indexes), **options) if masks else None


def sample_array(array: da.Array, max_pixels: int = DEFAULT_STATS_PIXELS) -> np.ndarray:
    """What :func:`read_decimated` reads from a file, taken from a (bands, y, x) array instead:
    the same pixels as GDAL's nearest-neighbour decimation of a file without overviews."""
    _, height, width = array.shape
    rows, cols = decimated_shape(height, width, max_pixels)
    # GDAL's nearest neighbour of output pixel i is source pixel floor((i + 0.5) * size / out)
    pick_rows = ((np.arange(rows) + 0.5) * (height / rows)).astype(np.int64)
    pick_cols = ((np.arange(cols) + 0.5) * (width / cols)).astype(np.int64)
    return np.asarray(array[:, pick_rows, :][:, :, pick_cols].compute(scheduler="threads"))


def decimated_shape(height: int, width: int, max_pixels: int) -> tuple[int, int]:
    """Rows and columns of an even decimation by a whole step to at most ``max_pixels``."""
    step = max(1, math.ceil(math.sqrt(height * width / max_pixels)))
    return max(1, height // step), max(1, width // step)
