"""The file path: a raster, a stack or a product upscaled into a GeoTIFF or Zarr store on
its footprint (:func:`upscale`), or opened as a lazy DataArray (:func:`open_dataarray`)."""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import torch
import xarray as xr
from torch import nn

from geosr.checkpoint import ModelMeta, model_meta
from geosr.contract import describe_raster, enforce
from geosr.engine.arrays import _masked_source
from geosr.engine.chunks import upscaled_mask
from geosr.engine.guided import open_aligned
from geosr.engine.lazy import upscale_dataarray
from geosr.engine.models import (
    check_bands,
    check_scale,
    default_halo,
    model_label,
    resolve_model,
)
from geosr.engine.output import _check_zarr_options, _uncertainty_output, _write_uncertainty
from geosr.engine.plan import chunk_side
from geosr.engine.stats import model_statistics
from geosr.errors import BandMismatchError, ConfigError
from geosr.options import check_options
from geosr.products import (
    Product,
    input_files,
    is_stac_item,
    product_output_path,
    remote_names,
)
from geosr.products.stac import stac_item_path, write_stac_item
from geosr.raster import (
    RasterInfo,
    Sources,
    check_output_path,
    copy_georeference,
    copy_metadata,
    default_output_path,
    lazy_mask,
    output_block_size,
    output_profile,
    read_sample,
    sample_mask,
)
from geosr.sources import remote_env
from geosr.version import __version__
from geosr.writer import ProgressCallback, active_client, write_raster
from geosr.zarr_store import check_zarr_output, is_zarr_output, raster_attrs, write_zarr

log = logging.getLogger(__name__)


def open_dataarray(
    source: Sources | Any,
    *,
    bands: Sequence[int | str] | None = None,
    band_names: Sequence[str] | None = None,
    mask: str | None = "auto",
    chunk_size: int | None = None,
    guided: Any = "auto",
    device: str | torch.device = "auto",
) -> xr.DataArray:
    """A raster or a product (see :func:`upscale`) as a lazy, georeferenced DataArray
    (``band, y, x``) on its finest band's grid, ready for ``.geosr.upscale()`` or any xarray
    work: the ``band`` coordinate holds the band names, masked pixels (``mask``, as in
    :func:`upscale`) hold nodata (0 for integers without a nodata value, which is then
    declared), and the attributes carry the tags and band metadata a GeoTIFF output would
    (``long_name``, ``scale_factor``/``add_offset``, ``band_central_wavelength_um`` ...).

    Example:
        >>> sr = geosr.open_dataarray("S2A_MSIL2A_...SAFE", bands=["B04", "B03", "B02"])  # doctest: +SKIP
        >>> sr.geosr.upscale().geosr.to_raster("rgb_x4.tif")  # doctest: +SKIP
    """
    if not isinstance(source, str | os.PathLike) and not is_stac_item(source):
        source = list(source)
    with remote_env(remote_names(source)):
        info, _, data, size = open_aligned(
            source, bands, band_names, mask, guided, chunk_side(chunk_size), device
        )
    valid = lazy_mask(info, size)
    nodata = info.nodata
    if valid is not None and nodata is None:
        nodata = float("nan") if data.dtype.kind == "f" else 0.0
        data = data.rio.write_nodata(nodata, encoded=False)
    data = _masked_source(data, valid, nodata)
    names = info.band_names()
    attrs = {k: v for k, v in raster_attrs(info, "").items() if k != "geosr_model"}
    return data.assign_coords(band=names).assign_attrs(attrs)


@dataclass(frozen=True)
class _Request:
    """The arguments of one :func:`upscale` call, as given (see its docstring)."""

    input: Any
    output: str | os.PathLike[str] | None
    model: str | os.PathLike[str] | nn.Module
    scale: int | None
    bands: Sequence[int | str] | None
    band_names: Sequence[str] | None
    mask: str | None
    resolution: float | None
    guided: Any
    chunk_size: int | None
    overlap: int | None
    device: str | torch.device
    tile_size: int | None
    batch_size: int | None
    precision: str
    consistency: bool
    stac: bool
    cog: bool
    overwrite: bool
    strict: bool | None
    progress: bool | ProgressCallback
    scheduler: Any
    num_workers: int | None
    format: str | None
    strength: float | None
    tta: bool
    preserve_spectra: bool
    uncertainty: bool

    @property
    def streaming(self) -> dict[str, Any]:
        """How the outputs are computed and written: progress, scheduler, workers."""
        return {
            "progress": self.progress,
            "scheduler": self.scheduler,
            "num_workers": self.num_workers,
        }


@dataclass(frozen=True, eq=False)
class _Opened:
    """An input opened for :func:`upscale`, before any pixel is computed."""

    info: RasterInfo  #: its selected bands, on the grid they are upscaled from
    product: Product | None  #: the product, if it is one
    source: xr.DataArray  #: the bands, lazy (a product's aligned on its finest grid)
    size: int  #: input pixels per chunk side
    scale: int  #: the output's: the model's, or 1 (the aligner only)
    pixels: Any  #: the decimated read (cached) the contract and the statistics share


@dataclass(frozen=True)
class _Target:
    """Where :func:`upscale` writes, checked before any work."""

    path: Path  #: the output
    to_zarr: bool  #: a Zarr store, not a GeoTIFF
    error_path: Path | None  #: the uncertainty's output, when asked for


@dataclass(frozen=True, eq=False)
class _Result:
    """The output of :func:`upscale` as a lazy graph, ready to be written."""

    data: xr.DataArray  #: the bands
    error: xr.DataArray | None  #: their uncertainty, when asked for
    valid: da.Array | None  #: the input's (y, x) mask (0 = masked), None without one
    label: str  #: the model as the GEOSR_MODEL tag names it


# The docstring of upscale, set on it below: in its body it would make the function's lines
# (signature and docstring together) run past what one function may hold.
_UPSCALE_DOC = """Super-resolve a raster into a local GeoTIFF (or Zarr store) on exactly the same footprint.

    The output has the input's CRS and bounds, its pixel size divided by the model's scale
    (transform ``src.transform @ Affine.scale(1/scale)``, right for rotated rasters too), or
    its GCPs or RPCs rescaled to the finer grid; the same bands, dtype, nodata, band
    descriptions, colour interpretation and tags, plus ``GEOSR_MODEL``/``GEOSR_SCALE`` tags.
    An alpha band is carried by nearest neighbour, a per-dataset mask becomes the output's
    internal mask; masked pixels, like nodata, never reach the network. It is streamed chunk
    by chunk to a tiled, compressed GeoTIFF (BigTIFF when needed) through a temporary file
    renamed at the end, so memory stays bounded and an interruption leaves neither a partial
    output nor a changed input. Remote inputs are read window by window (range requests).

    Products: a Sentinel-2 SAFE folder, ``.zip`` or ``MTD_MSIL*.xml``, a Landsat folder or
    MTL file, a STAC Item (JSON file, URL or ``pystac.Item``) or single-band files on several
    grids (:mod:`geosr.products`). Their bands are first brought to the finest selected
    band's grid (the aligner: cubic resampling, named in the ``GEOSR_ALIGNER`` tag), then
    upscaled; band names, wavelengths, scale/offset to reflectance and product metadata are
    carried as band descriptions and tags.

    Args:
        input: the source raster: a local path (any GDAL raster: GeoTIFF, JPEG 2000, VRT...),
            a URL (``https://``, ``s3://``, ``gs://``, ``az://``) or a GDAL name
            (``/vsicurl/...``, ``/vsis3/...``); a list of single-band rasters, stacked in
            order (each band described by its file name, or by its band name when the files
            lie on several grids); or a product (see above).
        output: a local destination; by default ``<stem>_x<scale>.tif`` beside a local input,
            in the current folder for a remote one, ``<first stem>_stack_x<scale>.tif``
            for a stack (see :func:`geosr.raster.default_output_path`), and
            ``<product id>_x<scale>.tif`` beside a product.
        model: bundled name (``"default"``), ``.safetensors`` path, or a loaded generator.
        scale: if given, must equal the model's scale (a guard against the wrong model).
        bands: bands to process, by 1-based number (GDAL's numbering) or by name
            (``["B04", "B03", "B02", "B08"]``: a product's band names, a raster's band
            descriptions); default all (a product's default bands: its reflective ones).
        band_names: one name per band of a raster or per file of a list, for files whose
            names do not tell (``..._B8A.jp2`` does).
        mask: ``"auto"`` (default: ``"clouds"`` for a product with a quality band, else
            ``"nodata"``), ``"clouds"`` (no-data, saturated, cloud, thin cirrus and cloud
            shadow pixels from ``SCL``, ``QA_PIXEL`` or ``BQA``), ``"nodata"`` (only the fill),
            or ``None`` (nothing). Masked pixels never reach the network or the statistics
            and are the output's mask.
        resolution: the output pixel size in CRS units: the finest band's pixel divided by
            the model's scale (the default), or the finest band's pixel itself, which runs
            the aligner only (no super-resolution network).
        guided: how a product's coarser bands reach its finest grid: ``"auto"`` (default: the
            bundled guided model of its sensor, ``s2-guided`` or ``landsat-pan``, when the
            product has its guide bands), a guided model's name or ``.safetensors`` file, or
            None (cubic resampling). The guided model's grid is the output's base grid (for
            Landsat: the 30 m grid cut in two, which the pan band guides).
        stac: also write a STAC Item (``<output stem>.json``) describing the output, with the
            projection, eo and raster extensions.
        chunk_size: input pixels per chunk side (default 512).
        overlap: halo in input pixels (default: the receptive radius, exact and seam-free).
        device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
        tile_size, batch_size, precision, consistency, strength, tta, preserve_spectra: see
            :func:`upscale_dataarray`.
        uncertainty: also write each output pixel's expected absolute error, in the band's
            units (float32, NaN nodata, same grid and georeference, bands described as
            ``<band> uncertainty``), beside the output: ``<output stem>_uncertainty.tif``
            (``.zarr`` for a Zarr output; :func:`uncertainty_path`), named by the output's
            ``GEOSR_UNCERTAINTY`` tag. See :mod:`geosr.uncertainty`; it costs no network pass.
        cog: write a Cloud-Optimised GeoTIFF with overviews.
        overwrite: replace an existing output.
        strict: the input contract: False (default) warns once when the scene lies outside
            the model's training domain (``geosr info``), True refuses it before anything is
            written (see :func:`upscale_dataarray`).
        progress: ``True`` for a progress bar, or a callable ``(done, total)``.
        scheduler: ``"threads"`` (default without a cluster), ``"synchronous"``, or a
            ``dask.distributed.Client``; an active default Client is used automatically.
        num_workers: threads computing chunks in parallel (default: dask's choice).
        format: ``"gtiff"`` or ``"zarr"``; by default Zarr for an output named ``*.zarr``,
            else GeoTIFF. A Zarr store holds the same pixels, georeference (CF grid
            mapping), nodata (``_FillValue``), band descriptions and tags
            (:func:`geosr.zarr_store.write_zarr`).

    Returns:
        The path of the written GeoTIFF or Zarr store.
    """


def upscale(
    input: Sources,
    output: str | os.PathLike[str] | None = None,
    *,
    model: str | os.PathLike[str] | nn.Module = "default",
    scale: int | None = None,
    bands: Sequence[int | str] | None = None,
    band_names: Sequence[str] | None = None,
    mask: str | None = "auto",
    resolution: float | None = None,
    guided: Any = "auto",
    chunk_size: int | None = None,
    overlap: int | None = None,
    device: str | torch.device = "auto",
    tile_size: int | None = None,
    batch_size: int | None = None,
    precision: str = "auto",
    consistency: bool = True,
    stac: bool = False,
    cog: bool = False,
    overwrite: bool = False,
    strict: bool | None = False,
    progress: bool | ProgressCallback = False,
    scheduler: Any = None,
    num_workers: int | None = None,
    format: str | None = None,
    strength: float | None = None,
    tta: bool = False,
    preserve_spectra: bool = False,
    uncertainty: bool = False,
) -> Path:
    check_options("upscale", locals())  # the declared options' own checks
    request = _Request(**locals())  # every argument, as given
    net = resolve_model(model, strength)
    check_scale(model_meta(net), scale)
    if not isinstance(input, str | os.PathLike) and not is_stac_item(input):
        # read more than once: an iterator would be spent
        request = dataclasses.replace(request, input=list(input))
    with remote_env(remote_names(request.input)):
        opened = _open_input(request, net)
        target = _target(request, opened)
        active_client(scheduler)  # refuses an unknown scheduler before any work
        log.info("upscaling %s to %s", opened.info.label, target.path)
        result = _upscale_input(request, opened, net)
        started = time.perf_counter()
        _write_result(request, opened, target, result)
        if stac:
            info, product = opened.info, opened.product
            write_stac_item(
                target.path, info, product, opened.scale, result.label, cog=cog, overwrite=overwrite
            )
    log.info("wrote %s in %.1f s", target.path, time.perf_counter() - started)
    return target.path


upscale.__doc__ = _UPSCALE_DOC


def _open_input(request: _Request, net: nn.Module) -> _Opened:
    """The input opened (a product aligned), its output scale, and the input contract
    checked on one decimated read, kept for the statistics."""
    meta = model_meta(net)
    size = chunk_side(request.chunk_size)
    info, product, source, size = open_aligned(
        request.input,
        request.bands,
        request.band_names,
        request.mask,
        request.guided,
        size,
        request.device,
        request.consistency,
    )
    out_scale = output_scale(info, meta.scale, request.resolution)
    # one decimated read, for the input contract and the statistics alike
    pixels = functools.cache(functools.partial(read_sample, info))
    if out_scale != 1:
        _check_file_bands(meta, info)
        enforce(meta, lambda: describe_raster(info, pixels()), request.strict)  # the contract
    return _Opened(info, product, source, size, out_scale, pixels)


def _target(request: _Request, opened: _Opened) -> _Target:
    """The output's path (by default beside the input, or the product), checked with those
    of its uncertainty and STAC Item before any work."""
    info, output, overwrite = opened.info, request.output, request.overwrite
    if output is None:
        output = (
            default_output_path(request.input, opened.scale)
            if opened.product is None
            else product_output_path(opened.product, opened.scale)
        )
        if is_zarr_output(output, request.format):
            output = output.with_suffix(".zarr")
    to_zarr = is_zarr_output(output, request.format)
    if to_zarr:
        _check_zarr_options(request.cog)
        if not info.has_transform and info.georeferenced:
            raise ConfigError(
                f"{info.label} is georeferenced by GCPs or RPCs, which a Zarr store cannot "
                "carry; write a GeoTIFF (.tif) output instead"
            )
        out_path = check_zarr_output(output, overwrite, info.local_files)
    else:
        out_path = check_output_path(info.local_files, output, overwrite)
    if request.stac:  # refuse before any work
        stac_item_path(out_path, overwrite, [*info.local_files, *input_files(request.input)])
    error_path = _uncertainty_output(
        out_path, request.uncertainty, opened.scale, to_zarr, info, overwrite
    )
    return _Target(out_path, to_zarr, error_path)


def _upscale_input(request: _Request, opened: _Opened, net: nn.Module) -> _Result:
    """The output as a lazy graph: the bands upscaled (or, for the aligner only, masked)."""
    info = opened.info
    # an alpha band among the outputs masks the others itself; else read the mask
    alpha = info.selected.index(info.alpha) + 1 if info.alpha in info.selected else None
    valid = lazy_mask(info, opened.size) if alpha is None else None
    if opened.scale == 1:  # the aligner only: the bands on the finest grid, masked
        masked = _masked_source(opened.source, valid, info.nodata)
        return _Result(masked, None, valid, "none (aligner only)")
    runner_options = {
        "device": request.device,
        "tile_size": request.tile_size,
        "batch_size": request.batch_size,
        "precision": request.precision,
        "consistency": request.consistency,
    }
    result = _upscale_source(
        opened.source,
        info,
        net,
        alpha,
        valid,
        request.overlap,
        request.tta,
        request.preserve_spectra,
        runner_options,
        read=opened.pixels,
        uncertainty=request.uncertainty,
    )
    opened.pixels.cache_clear()  # the statistics are known: free the sample
    label = model_label(request.model, net, request.tta, request.preserve_spectra)
    if isinstance(result, xr.Dataset):
        return _Result(result["upscaled"], result["uncertainty"], valid, label)
    return _Result(result, None, valid, label)


def _write_result(request: _Request, opened: _Opened, target: _Target, result: _Result) -> None:
    """The output written, then its uncertainty beside it."""
    if target.to_zarr:
        # masked pixels are already nodata (or 0 without a nodata value) in the bands;
        # a Zarr store has no separate mask band
        write_zarr(
            result.data.assign_attrs(raster_attrs(opened.info, result.label)),
            target.path,
            overwrite=request.overwrite,
            **request.streaming,
        )
    else:
        _write_geotiff(request, opened, target, result)
    if result.error is not None and target.error_path is not None:
        _write_uncertainty(
            result.error,
            target.error_path,
            opened.info,
            opened.scale,
            result.label,
            target.to_zarr,
            request.overwrite,
            request.streaming,
        )


def _write_geotiff(request: _Request, opened: _Opened, target: _Target, result: _Result) -> None:
    """The output as a GeoTIFF with the input's metadata and georeference, rescaled, and
    the input's mask, upsampled, as its internal mask."""
    info, scale, data = opened.info, opened.scale, result.data.data
    block = output_block_size(data.chunks[1][0])
    tags = {"GEOSR_MODEL": result.label, "GEOSR_SCALE": str(scale), "GEOSR_VERSION": __version__}
    if target.error_path is not None:
        tags["GEOSR_UNCERTAINTY"] = target.error_path.name

    def decorate(dst: Any) -> None:
        copy_metadata(dst, info, tags)
        copy_georeference(dst, info, scale)

    write_raster(
        data,
        target.path,
        output_profile(info, scale, block),
        decorate,
        mask=None if result.valid is None else upscaled_mask(result.valid, scale, data.chunks[1:]),
        cog=request.cog,
        **request.streaming,
    )


def output_scale(info: RasterInfo, model_scale: int, resolution: float | None) -> int:
    """The output's scale from the input grid: the model's, or 1 (the aligner only) for a
    ``resolution`` equal to the input's pixel size.

    Raises:
        ConfigError: a ``resolution`` that is neither, or an input without a geotransform.
    """
    if resolution is None:
        return model_scale
    if not info.has_transform:
        raise ConfigError(
            f"{info.label} has no geotransform, so resolution= has no meaning; drop it"
        )
    pixel = math.hypot(info.transform.a, info.transform.d)
    for out_scale in (model_scale, 1):
        if math.isclose(float(resolution), pixel / out_scale, rel_tol=1e-6):
            return out_scale
    raise ConfigError(
        f"resolution {resolution:g} is not one geosr makes from {info.label}: use "
        f"{pixel / model_scale:g} (the model's x{model_scale} of its finest grid, {pixel:g}) "
        f"or {pixel:g} (the finest grid, aligner only)"
    )


def _upscale_source(
    source: xr.DataArray,
    info: RasterInfo,
    net: nn.Module,
    alpha: int | None,
    valid: da.Array | None,
    overlap: int | None,
    tta: bool,
    preserve_spectra: bool,
    runner_options: dict[str, Any],
    read: Callable[[], np.ndarray] | None = None,
    uncertainty: bool = False,
) -> xr.DataArray | xr.Dataset:
    """:func:`upscale_dataarray` of a file's bands, with statistics from a decimated read."""
    meta = model_meta(net)
    masked = alpha is not None or valid is not None
    may_have_nodata = info.nodata is not None or np.dtype(info.dtype).kind == "f" or masked
    network = [info.selected.index(b) for b in info.network_bands]

    def sample() -> tuple[np.ndarray, np.ndarray | None]:
        pixels = read_sample(info) if read is None else read()
        if alpha is None:
            return pixels, sample_mask(info)
        return pixels[network], pixels[alpha - 1]

    stats = model_statistics(meta, len(network), sample, info.nodata)
    return upscale_dataarray(
        source,
        net,
        overlap=default_halo(net, may_have_nodata) if overlap is None else overlap,
        stats=stats,
        mask=valid,
        alpha=alpha,
        tta=tta,
        preserve_spectra=preserve_spectra,
        strict=None,  # upscale checked the file
        uncertainty=uncertainty,
        **runner_options,
    )


def _check_file_bands(meta: ModelMeta, info: RasterInfo) -> None:
    """check_bands for a file, which says so when its alpha band makes the difference."""
    if info.alpha in info.selected and meta.bands == len(info.selected):
        raise BandMismatchError(
            f"the model expects {meta.bands} bands but band {info.alpha} of {info.label} is an "
            f"alpha band (a mask, carried as it is), which leaves {meta.bands - 1}; if it holds "
            f"data, set its colour interpretation to undefined (gdal_edit.py -colorinterp_"
            f"{info.alpha} undefined), or select other bands"
        )
    check_bands(meta, len(info.network_bands), info.label)
