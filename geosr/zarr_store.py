"""Zarr output: a lazy georeferenced DataArray written chunk by chunk into a Zarr store.

The store's layout and metadata come from ``xarray.Dataset.to_zarr`` (written eagerly, data
left out); then every chunk is computed and written by whichever thread or dask.distributed
worker computed it. Zarr chunks are the computation's chunks made regular, one dask chunk
per Zarr chunk, so no two writers ever touch the same chunk file and no lock is taken.

The georeference is the CF grid mapping rioxarray writes (a ``spatial_ref`` variable with
``crs_wkt`` and ``GeoTransform``), so ``xr.open_zarr(store).rio.crs`` and ``.rio.transform()``
give the GeoTIFF output's CRS and transform exactly. The store is built in a hidden sibling
folder and renamed into place when complete: an error or Ctrl-C leaves no store behind, and
an existing store is replaced only with ``overwrite``, after the new one is complete.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dask
import dask.array as da
import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine
from rioxarray.exceptions import RioXarrayError

from geosr.errors import ConfigError, InputError, OutputError, OutputExistsError
from geosr.fileutil import default_file_mode
from geosr.sources import redact
from geosr.version import __version__
from geosr.writer import Progress, ProgressCallback, active_client, compute_on_cluster

if TYPE_CHECKING:
    from geosr.raster import RasterInfo

log = logging.getLogger(__name__)

#: Name of the bands' variable: rioxarray's for a raster opened as a Dataset.
VARIABLE = "band_data"
#: Zarr format written by default: GDAL (3.10) reads format 2 stores, not format 3 ones.
DEFAULT_ZARR_FORMAT = 2
#: Chunk side for a DataArray that is not dask-backed (it has no computation chunks).
NUMPY_CHUNK = 512
#: Present in a store while its chunks are being written; a writer that finds it gone after
#: writing knows the run was abandoned and removes what its write may have recreated.
WRITING_MARKER = ".geosr-writing"
_STORE_FILES = (".zgroup", ".zarray", "zarr.json")


def is_zarr_output(path: str | os.PathLike[str], format: str | None = None) -> bool:
    """Whether an output goes to Zarr: ``format="zarr"``, or no format and a ``.zarr`` name."""
    if format is not None:
        if format.lower() not in ("zarr", "gtiff", "geotiff", "tif", "tiff"):
            raise ConfigError(f"output format {format!r} is not supported; use 'gtiff' or 'zarr'")
        return format.lower() == "zarr"
    return os.fspath(path).rstrip("/\\").lower().endswith(".zarr")


def is_zarr_store(path: Path) -> bool:
    """Whether ``path`` is a folder holding a Zarr group or array (format 2 or 3)."""
    return path.is_dir() and any((path / name).is_file() for name in _STORE_FILES)


def check_zarr_output(
    path: str | os.PathLike[str], overwrite: bool, inputs: Sequence[Path] = ()
) -> Path:
    """Refuse stores that are not local, would clobber something, hold an input or land nowhere."""
    text = os.fspath(path)
    if text.startswith("/vsi") or "://" in text:
        raise OutputError(
            f"output {redact(text)} is not a local path; geosr writes Zarr stores to a local or "
            "shared folder (renamed into place when complete): pass a path and copy the store "
            "afterwards (e.g. aws s3 sync)"
        )
    target = Path(text).expanduser()
    for source in inputs:
        if target.exists() and source.exists():
            resolved, inside = target.resolve(), source.resolve()
            if resolved == inside or resolved in inside.parents:
                raise OutputError(
                    f"output {target} is or holds the input {source}; geosr never overwrites its "
                    "input, choose another output path"
                )
    if target.exists() or target.is_symlink():
        if not overwrite:
            raise OutputExistsError(
                f"output {target} already exists; pass overwrite=True (--overwrite) to replace it"
            )
        check_replaceable(target)
    parent = target.parent
    if not parent.is_dir():
        raise OutputError(f"output folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"output folder {parent} is not writable; choose another output path")
    return target


def check_replaceable(target: Path) -> None:
    """Refuse to replace anything but a Zarr store: a plain folder or file at the output path
    is someone's data. A link to a file, or to nothing, is replaced, not what it points to."""
    if is_zarr_store(target) or (target.is_symlink() and not target.is_dir()):
        return
    kind = "folder" if target.is_dir() else "file"
    raise OutputError(
        f"output {target} is a {kind} but not a Zarr store, so geosr will not replace it; "
        f"choose another path or remove the {kind} first"
    )


def grid_transform(data: xr.DataArray) -> Affine:
    """The transform that puts ``data``'s pixels where its x/y coordinates say they are.

    rioxarray's ``transform()`` keeps the stored ``GeoTransform``'s resolution, which a
    selection such as ``isel(y=slice(None, None, -1))`` leaves stale: for an array whose y
    increases it gives the wrong sign, placing the raster upside down and one footprint
    off. The stored transform is kept when it agrees with the coordinates (bit for bit as
    written), else the one derived from them is used; a rotated grid has no x/y coordinates
    to derive from and keeps its own.
    """
    stored = data.rio.transform(recalc=False)
    if stored.b != 0 or stored.d != 0:
        return stored
    try:
        derived = data.rio.transform(recalc=True)
    except RioXarrayError:  # one row or column, no stored transform
        return stored
    inverse = ~stored
    for corner in ((0, 0), (data.rio.width, data.rio.height)):
        col, row = inverse * (derived * corner)
        if abs(col - corner[0]) > 1e-3 or abs(row - corner[1]) > 1e-3:  # pixels
            return derived
    return stored


def regular_chunks(array: da.Array) -> da.Array:
    """``array`` (..., bands, y, x) with one slice of each leading dimension (a cube's dates)
    and all bands per chunk, and rows and columns in chunks of its first chunk's size (the
    computation's), the last one shorter: Zarr needs regular chunks, and a dask chunk that
    maps onto exactly one Zarr chunk needs no write lock. The computation merges a short last
    chunk into its neighbour; that chunk is split here."""
    *lead, count, _, _ = array.shape
    rows, cols = array.chunks[-2][0], array.chunks[-1][0]
    target = da.core.normalize_chunks((*(1 for _ in lead), count, rows, cols), array.shape)
    return array if target == array.chunks else array.rechunk(target)


def zarr_dataset(data: xr.DataArray, array: da.Array, name: str = VARIABLE) -> xr.Dataset:
    """``data`` with ``array`` as its values, as the Dataset the store holds: the CF grid
    mapping for its CRS and transform, nodata as ``_FillValue``, geosr's tags as attributes."""
    out = data.copy(data=array)
    transform = grid_transform(data)
    if data.rio.crs is not None:
        out = out.rio.write_crs(data.rio.crs)
    out = out.rio.write_transform(transform)
    nodata = data.rio.nodata if data.rio.nodata is not None else data.rio.encoded_nodata
    if nodata is not None and array.dtype.kind != "f" and math.isnan(nodata):
        nodata = None  # an integer raster read with masked=True: no value to mark
    attrs = {
        key: value
        for key, value in data.attrs.items()
        if key != "_FillValue" and not key.startswith("geosr_") and not _identity(key, value)
    }
    tags = {"GEOSR_VERSION": __version__}
    if "geosr_model" in data.attrs:
        tags["GEOSR_MODEL"] = str(data.attrs["geosr_model"])
    if "geosr_scale" in data.attrs:
        tags["GEOSR_SCALE"] = str(data.attrs["geosr_scale"])
    out.attrs = {**attrs, **tags}
    grid_mapping = out.rio.grid_mapping
    out.encoding = {
        "dtype": array.dtype,
        "chunks": tuple(c[0] for c in array.chunks),
        # None: no _FillValue at all, so xarray does not mask a valid 0 (or NaN) on reading
        "_FillValue": None if nodata is None else array.dtype.type(nodata),
        "grid_mapping": grid_mapping,
        # listed as a coordinate too, so that xr.open_zarr gives it back as one (rioxarray
        # finds the CRS and transform only there) without decode_coords="all"
        "coordinates": grid_mapping,
    }
    dataset = out.to_dataset(name=name)
    dataset.attrs = dict(tags)
    return dataset


def raster_attrs(info: RasterInfo, label: str) -> dict[str, Any]:
    """What geosr.upscale's GeoTIFF carries as tags and band metadata, as the attributes
    ``write_zarr`` writes, in rioxarray's names: dataset tags, ``long_name`` (band
    descriptions), ``units``, ``scale_factor``/``add_offset`` (``scales``/``offsets`` when
    the bands differ), band tags every band has (a product's ``CENTRAL_WAVELENGTH_UM``,
    ``COMMON_NAME`` ...) as ``band_<tag>`` tuples, and the model's label."""
    bands = [b - 1 for b in info.selected]
    attrs: dict[str, Any] = dict(info.tags)
    shared = set.intersection(*(set(info.band_tags[b]) for b in bands)) if bands else set()
    for key in sorted(shared):
        attrs[f"band_{key.lower()}"] = tuple(info.band_tags[b][key] for b in bands)
    for key, values in (("long_name", info.descriptions), ("units", info.units)):
        chosen = tuple(values[b] or "" for b in bands)
        if any(chosen):
            attrs[key] = chosen
    for one, many, values in (
        ("scale_factor", "scales", info.scales),
        ("add_offset", "offsets", info.offsets),
    ):
        chosen = tuple(float(values[b]) for b in bands)
        attrs.update({one: chosen[0]} if len(set(chosen)) == 1 else {many: chosen})
    attrs["geosr_model"] = label
    return attrs


def _identity(key: str, value: Any) -> bool:
    """rioxarray's ``scale_factor=1`` / ``add_offset=0``: written, they would make readers
    decode the bands to floats for nothing."""
    return (key, value) in (("scale_factor", 1.0), ("add_offset", 0.0))


def write_zarr(
    data: xr.DataArray,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    progress: bool | ProgressCallback = False,
    scheduler: Any = None,
    num_workers: int | None = None,
    name: str = VARIABLE,
    zarr_format: int = DEFAULT_ZARR_FORMAT,
) -> Path:
    """Write a (lazy) georeferenced DataArray, such as :func:`geosr.upscale_dataarray`'s
    result, into a Zarr store, atomically, on threads or a dask.distributed cluster.

    The store holds one variable ``name`` (band, y, x) with the DataArray's dtype, band
    coordinate and attributes (``long_name`` holds band descriptions), nodata as
    ``_FillValue``, ``GEOSR_MODEL``/``GEOSR_SCALE``/``GEOSR_VERSION`` attributes, x/y pixel
    centres and a CF ``spatial_ref`` grid mapping (``crs_wkt``, ``GeoTransform``) that
    rioxarray reads. Zarr chunks are the DataArray's chunks, made regular (all bands in one).

    Args:
        data: a (band, y, x) or (y, x) DataArray with a CRS and transform (``rio``).
        path: a local folder to create, e.g. ``scene_x4.zarr``; on a cluster, on storage that
            every worker sees under the same path.
        overwrite: replace an existing Zarr store (only once the new one is complete).
        progress: ``True`` for a progress bar, or a callable ``(done, total)`` of chunks.
        scheduler: ``"threads"`` (default without a cluster), ``"synchronous"``, or a
            ``dask.distributed.Client``; an active default Client is used automatically.
        num_workers: threads writing chunks in parallel (default: one per CPU).
        name: the variable's name in the store.
        zarr_format: 2 (default: read by GDAL too) or 3.

    Returns:
        The path of the written store.
    """
    if data.ndim == 2:
        data = data.expand_dims("band")
    if data.ndim < 3 or data.dims[-2:] != ("y", "x"):
        raise InputError(
            f"expected a DataArray with dims (band, y, x) or (..., band, y, x), got {data.dims}"
        )
    _check_format(zarr_format)
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(
            f"variable name {name!r} is not usable in a Zarr store; pass e.g. 'band_data'"
        )
    final = check_zarr_output(path, overwrite)
    client = active_client(scheduler)
    array = data.data
    if not isinstance(array, da.Array):
        lead = (1,) * (array.ndim - 3)
        array = da.from_array(np.asarray(array), chunks=(*lead, -1, NUMPY_CHUNK, NUMPY_CHUNK))
    array = regular_chunks(array)
    dataset = zarr_dataset(data, array, name)
    total = math.prod(len(chunks) for chunks in array.chunks)
    report = Progress(progress, total, label="geosr zarr")
    try:
        with _temporary_store(final, overwrite) as tmp:
            with warnings.catch_warnings():
                # zarr 3 warns that format 3 has no consolidated metadata in its spec yet
                warnings.filterwarnings("ignore", message="Consolidated metadata")
                dataset.to_zarr(
                    tmp, mode="w", compute=False, consolidated=True, **_format_option(zarr_format)
                )
            (tmp / WRITING_MARKER).touch()
            on_done = report.advance if client is None else None
            writes = _chunk_writes(array, tmp, name, on_done)
            if client is None:
                _compute_local(writes, scheduler, num_workers)
            else:
                compute_on_cluster(writes, client, report)  # write_chunk cleans up stragglers
            (tmp / WRITING_MARKER).unlink()
    finally:
        report.close()
    log.info("wrote %s: %d chunks of %s", final, total, dataset[name].encoding["chunks"])
    return final


def _check_format(zarr_format: int) -> None:
    if zarr_format not in (2, 3):
        raise ConfigError(f"zarr_format must be 2 or 3, got {zarr_format!r}")
    import zarr

    if zarr_format == 3 and int(zarr.__version__.split(".")[0]) < 3:
        raise ConfigError(
            f"zarr_format=3 needs zarr-python 3 (installed: {zarr.__version__}); install "
            "'zarr>=3' (Python 3.11+) or write zarr_format=2"
        )


def _format_option(zarr_format: int) -> dict[str, int]:
    """xarray's keyword for the format: ``zarr_format`` since 2024.10, ``zarr_version`` before."""
    params = inspect.signature(xr.Dataset.to_zarr).parameters
    return {"zarr_format" if "zarr_format" in params else "zarr_version": zarr_format}


def _chunk_writes(
    array: da.Array, store: Path, name: str, on_done: Callable[[], None] | None
) -> list[Any]:
    """One delayed write per chunk, each writing the chunk it depends on."""
    blocks = array.to_delayed()
    starts = [np.cumsum((0, *chunks)) for chunks in array.chunks]
    return [
        dask.delayed(write_chunk, pure=False)(
            str(store),
            name,
            blocks[index],
            tuple(int(starts[axis][i]) for axis, i in enumerate(index)),
            on_done,
        )
        for index in np.ndindex(blocks.shape)
    ]


def write_chunk(
    store: str,
    name: str,
    block: np.ndarray,
    origin: tuple[int, ...],
    on_done: Callable[[], None] | None = None,
) -> int:
    """Write one chunk, whose first element sits at ``origin``, into the store's variable,
    on whichever worker computed it; it covers exactly one Zarr chunk, so no other writer
    touches its file and no lock is needed."""
    import zarr

    root = Path(store)
    if not (root / WRITING_MARKER).exists():
        return 0  # the run was abandoned: the store is being removed
    target = zarr.open_array(store=store, path=name, mode="r+")
    target[tuple(slice(o, o + n) for o, n in zip(origin, block.shape, strict=True))] = block
    if not (root / WRITING_MARKER).exists():
        # abandoned while this chunk was written, whose folders may outlive the cleanup
        shutil.rmtree(root, ignore_errors=True)
        return 0
    if on_done is not None:
        on_done()
    return block.shape[-2] * block.shape[-1]


def _compute_local(writes: list[Any], scheduler: Any, num_workers: int | None) -> None:
    if isinstance(scheduler, str) and scheduler != "threads":
        dask.compute(*writes, scheduler=scheduler)
        return
    pool = ThreadPoolExecutor(num_workers or os.cpu_count() or 1)
    try:
        dask.compute(*writes, scheduler="threads", pool=pool)
    finally:
        # after an error, wait for the chunks in flight: none then writes after the cleanup
        pool.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def _temporary_store(final: Path, overwrite: bool) -> Iterator[Path]:
    """A hidden folder beside ``final``, renamed over it on success and removed otherwise."""
    tmp = Path(
        tempfile.mkdtemp(prefix=f".{final.stem}.", suffix=".geosr-tmp.zarr", dir=final.parent)
    )
    mode = default_file_mode()
    tmp.chmod(mode | (mode & 0o444) >> 2)  # mkdtemp makes 0700; x wherever r is granted
    try:
        yield tmp
        _publish(tmp, final, overwrite)
    finally:
        if tmp.exists():
            (tmp / WRITING_MARKER).unlink(missing_ok=True)  # tells writers still running
            shutil.rmtree(tmp, ignore_errors=True)


def _publish(tmp: Path, final: Path, overwrite: bool) -> None:
    """Move the complete store ``tmp`` to ``final``; an existing ``final`` (checked again, by
    the same rule as before the write: it may have appeared meanwhile, and be no store) is
    moved aside first and removed only once ``tmp`` is in."""
    if not (final.exists() or final.is_symlink()):
        os.rename(tmp, final)
        return
    if not overwrite:
        raise OutputExistsError(
            f"output {final} appeared while the store was written; pass overwrite=True "
            "(--overwrite) to replace it, or choose another path"
        )
    check_replaceable(final)  # what appeared meanwhile may be no store at all
    old = final.with_name(f".{final.stem}.{uuid.uuid4().hex[:8]}.geosr-old{final.suffix}")
    os.rename(final, old)
    try:
        os.rename(tmp, final)
    except BaseException:
        os.rename(old, final)
        raise
    try:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        else:
            old.unlink()
    except OSError as error:
        log.warning("replaced %s but could not remove the old store at %s: %s", final, old, error)
