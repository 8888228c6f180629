"""Raster I/O: open and validate rasters, read them lazily, and write outputs atomically.

Nothing here knows about models. Inputs are GDAL dataset names (see :mod:`geosr.sources`):
local files, URLs, cloud objects, or an in-memory VRT stacking single-band files. Reads go
through :class:`WindowReader`, which opens the dataset per window (handles are neither
thread-safe nor picklable), so the same dask graph runs on threads, processes or a
``dask.distributed`` cluster.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import re
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import attr
import dask.array as da
import numpy as np
import rasterio
from affine import Affine
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.errors import RasterioError, RasterioIOError
from rasterio.rpc import RPC
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

#: What ``geosr.upscale`` takes as input: one raster, or single-band rasters to stack.
Source = str | os.PathLike[str]
Sources = Source | Sequence[Source]


@dataclass(frozen=True)
class QualitySource:
    """A quality band on a raster's grid and the rule saying which of its values are masked
    (any picklable object with ``masked(values) -> bool array``, such as a product's
    :class:`geosr.products.model.QualityRule`)."""

    name: str = field(repr=False)  # GDAL dataset name (a VRT on the raster's grid)
    rule: Any


@dataclass(frozen=True)
class RasterInfo:
    """What geosr needs to know about a source raster, read once when it is opened."""

    name: str = field(repr=False)  # GDAL dataset name; for a stack, VRT XML naming its files
    label: str  # the input as messages name it: query strings and user information removed
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
    files: tuple[str, ...] = field(default=(), repr=False)  # the input's dataset names
    stem: str = "raster"  # output names start with it
    alpha: int | None = None  # 1-based number of the alpha band, if any
    mask: bool = False  # a per-dataset mask (internal or .msk sidecar) hides pixels
    gcps: tuple[GroundControlPoint, ...] = ()
    gcp_crs: CRS | None = None
    rpcs: RPC | None = None
    bands: tuple[int, ...] = field(default=())  # 1-based band indexes selected for processing
    quality: tuple[QualitySource, ...] = ()  # cloud and fill flags that mask pixels too

    @property
    def has_transform(self) -> bool:
        return self.crs is not None and not self.transform.is_identity

    @property
    def georeferenced(self) -> bool:
        return self.has_transform or bool(self.gcps) or self.rpcs is not None

    @property
    def selected(self) -> tuple[int, ...]:
        return self.bands or tuple(range(1, self.count + 1))

    @property
    def network_bands(self) -> tuple[int, ...]:
        """The selected bands a network super-resolves: all but the alpha band."""
        return tuple(b for b in self.selected if b != self.alpha)

    @property
    def local_files(self) -> tuple[Path, ...]:
        return tuple(Path(name) for name in self.files if is_local(name))

    def band_names(self) -> list[str]:
        return [self.descriptions[b - 1] or f"band {b}" for b in self.selected]


def open_raster(path: str | os.PathLike[str], mode: str = "r", **kwargs: Any) -> Any:
    """``rasterio.open`` without rasterio's own not-georeferenced warning (geosr warns once, in
    its own words, when the input is opened)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        return rasterio.open(path, mode, **kwargs)


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


def _gdal_reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # a stack is opened as VRT XML, which GDAL quotes whole: name it, don't print it
    return _VRT_XML.sub("<stack VRT>", text).rstrip(".")


_VRT_XML = re.compile(r"<VRTDataset.*?</VRTDataset>", re.DOTALL)


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


# --- output -------------------------------------------------------------------------------------


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
