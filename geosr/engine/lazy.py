"""The lazy path: a georeferenced DataArray, or a cube of them, super-resolved as a dask
graph; nothing is computed until asked."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import torch
import xarray as xr
from torch import nn

from geosr.checkpoint import ModelMeta, model_meta, with_strength
from geosr.contract import describe_dataarray, enforce
from geosr.engine.arrays import (
    _alpha_position,
    _flip_rows,
    _mask_array,
    _rows_back,
    _south_up,
    _unchanged_coords,
    _wrap_result,
)
from geosr.engine.chunks import upscale_array
from geosr.engine.devices import TileRunner, resolve_device
from geosr.engine.models import (
    _hint_preserve_spectra,
    _strength_of,
    check_bands,
    check_dtype,
    check_scale,
    default_halo,
    keeps_spectra,
    model_label,
    resolve_model,
)
from geosr.engine.plan import chunk_side
from geosr.engine.stats import BandStats, _graph_statistics, model_statistics
from geosr.engine.uncertainty import uncertainty_array, with_uncertainty
from geosr.errors import InputError
from geosr.options import check_options
from geosr.raster import sample_array
from geosr.writer import active_client

#: The arguments of :func:`upscale_dataarray` a cube's slices and a flipped scene are
#: upscaled with again (the model goes as the loaded network, at its strength).
_OPTIONS = (
    "scale",
    "chunk_size",
    "overlap",
    "device",
    "tile_size",
    "batch_size",
    "precision",
    "consistency",
    "stats",
    "mask",
    "alpha",
    "strict",
    "tta",
    "preserve_spectra",
    "uncertainty",
)


def upscale_dataarray(
    data: xr.DataArray,
    model: str | os.PathLike[str] | nn.Module = "default",
    *,
    scale: int | None = None,
    chunk_size: int | None = None,
    overlap: int | None = None,
    device: str | torch.device = "auto",
    tile_size: int | None = None,
    batch_size: int | None = None,
    precision: str = "auto",
    consistency: bool = True,
    stats: BandStats | None = None,
    mask: xr.DataArray | da.Array | np.ndarray | None = None,
    alpha: int | None = None,
    strict: bool | None = False,
    strength: float | None = None,
    tta: bool = False,
    preserve_spectra: bool = False,
    uncertainty: bool = False,
) -> xr.DataArray | xr.Dataset:
    """Lazily super-resolve a georeferenced DataArray (``band, y, x`` or ``y, x``), or a cube
    with leading dimensions such as ``time`` (``time, band, y, x``): each slice is upscaled
    as a scene of its own, with its own statistics.

    Nothing is computed: for models that normalise per scene, the statistics of a dask-backed
    array come from a decimated sample of at most a million pixels per band (whole chunks on a
    regular sub-grid) computed inside the same graph, so no chunk is read twice; an in-memory
    array is sampled at once (pass ``stats=`` to skip either). The result is dask-backed, with
    x/y coordinates of the new pixel centres, the same CRS, transform ``transform @
    Affine.scale(1/scale)``, the same nodata, dims, coordinates and attributes.

    Args:
        data: the raster, e.g. from ``rioxarray.open_rasterio(path, chunks=...)``.
        model: a generator from :func:`geosr.load_model`, a ``.safetensors`` path or a name.
        scale: checked against the model's scale when given.
        chunk_size: input pixels per chunk side; by default the DataArray's own chunks, or 512.
        overlap: halo in input pixels; default the receptive radius (plus nodata fill reach).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        tile_size: network tile side inside a chunk (memory bound on small GPUs); default the chunk.
        batch_size: tiles (and bands of a band-shared model) per forward pass; default 8 on
            CUDA, 1 on CPU.
        precision: forward pass on CUDA: ``"auto"`` (fp16 autocast for 8-bit outputs, where
            it stays within 1 DN of fp32; fp32 otherwise), or ``"fp32"``, ``"fp16"``, ``"bf16"``.
            CPUs always run fp32.
        consistency: project the output so each block averages back to its input pixel.
        stats: the normalisation to use instead of the scene's (or the model's fixed one).
        mask: (y, x) validity, 0 where a pixel is masked (e.g. ``src.dataset_mask()``):
            masked pixels never reach the network and come out as nodata (NaN for floats,
            0 for integers without a nodata value).
        alpha: 1-based position of an alpha band along ``band``: carried by nearest
            neighbour, never super-resolved, and a mask for the other bands (0 = masked).
        strict: the input contract (:mod:`geosr.contract`): before any work the scene (pixel
            size, dtype, a sample of its values) is compared with the training domain the
            model's card records; False (default) warns once (a ``DomainWarning``) naming
            what lies outside it, True refuses with a ``DomainError``, None skips the check.
        strength: for a model with a strength dial (``srgan``): 0 is its PSNR model (fidelity),
            1 its GAN endpoint (texture), values between interpolate the two networks; default
            the model's own (``geosr info srgan``). Other models refuse it.
        tta: the x8 self-ensemble: each tile also runs flipped and rotated, and the eight
            outputs are averaged before the projection (8x the network time: docs, Performance).
        preserve_spectra: for a model with a strength dial, on more than one band: each
            output pixel keeps the band ratios (the spectral angle) of strength 0 and the
            brightness, hence the texture, of ``strength`` (:func:`keep_band_ratios`), before
            the projection. SAM stays at the PSNR model's; it costs a second network pass.
        uncertainty: also estimate each output pixel's error: the result is then an
            ``xr.Dataset`` of ``upscaled`` (the DataArray returned otherwise) and
            ``uncertainty`` (float32, same grid and bands, NaN where masked): the expected
            absolute error in the band's units, from the input's local detail with an error
            model fitted on real errors (:mod:`geosr.uncertainty`); no network pass.
    """
    check_options("upscale_dataarray", locals())  # the declared options' own checks
    options = {name: value for name, value in locals().items() if name in _OPTIONS}
    net = resolve_model(model, strength)
    label = _checked_label(data, model, net, scale, alpha, strict, tta, preserve_spectra)
    options["strict"] = None  # checked once, above
    return _upscale_any(data, net, options, label)


def _checked_label(
    data: xr.DataArray,
    model: Any,
    net: nn.Module,
    scale: int | None,
    alpha: int | None,
    strict: bool | None,
    tta: bool,
    preserve_spectra: bool,
) -> str:
    """What :func:`upscale_dataarray` refuses before any work (a wrong scale, spectra kept
    without a strength dial, a scene outside the model's training domain under ``strict``),
    then the model's label for the output."""
    meta = model_meta(net)
    check_scale(meta, scale)
    keeps_spectra(net, preserve_spectra)  # refuses a model without a dial, before any work
    enforce(meta, lambda: describe_dataarray(data, alpha), strict)  # the input contract
    return model_label(model, net, tta, preserve_spectra)


def _upscale_any(
    data: xr.DataArray, net: nn.Module, options: dict[str, Any], label: str
) -> xr.DataArray | xr.Dataset:
    """A cube slice by slice, a south-up scene north-up, a (y, x) array as one band."""
    if data.ndim > 3:
        return _upscale_cube(data, net, options, label)
    if data.ndim == 2:
        data = data.expand_dims("band")
    if data.ndim != 3:
        raise InputError(f"expected a DataArray with dims (band, y, x), got {data.dims}")
    if _south_up(data):
        return _upscale_south_up(data, net, options, label)
    return _upscale_scene(data, net, options, label)


def _upscale_cube(
    data: xr.DataArray, net: nn.Module, options: dict[str, Any], label: str
) -> xr.DataArray:
    """Each slice along the leading dimensions upscaled lazily as a scene; dims (a ``band``
    dimension first moved next to y, x), coordinates, attributes and ``spatial_ref`` kept."""
    spatial = data.dims[-2:]
    if "band" in data.dims and data.dims.index("band") != data.ndim - 3:
        order = [d for d in data.dims if d not in ("band", *spatial)]
        moved = upscale_dataarray(data.transpose(*order, "band", *spatial), net, **options)
        return moved.transpose(*data.dims).assign_attrs(geosr_model=label)
    lead = data.dims[0]
    slices = [
        upscale_dataarray(data.isel({lead: i}, drop=True), net, **options)
        for i in range(data.sizes[lead])
    ]
    # the slices' other coordinates are the cube's, put back whole (e.g. cloud along time)
    cube = xr.concat(slices, dim=lead, coords="minimal", compat="override", join="override")
    return cube.assign_coords(_unchanged_coords(data)).assign_attrs(geosr_model=label)


def _upscale_south_up(
    data: xr.DataArray, net: nn.Module, options: dict[str, Any], label: str
) -> xr.DataArray | xr.Dataset:
    """Rows as NetCDF stores them: the network sees the scene north-up, as it would the same
    scene from a GeoTIFF (it is not flip-equivariant), and the rows go back after."""
    rows = {data.dims[-2]: slice(None, None, -1)}
    mask = options["mask"]
    flipped_mask = None if mask is None else _flip_rows(mask)
    north_up = upscale_dataarray(data.isel(rows), net, **{**options, "mask": flipped_mask})
    if isinstance(north_up, xr.Dataset):  # with its uncertainty: each flipped back
        return xr.Dataset(
            {
                name: _rows_back(variable, rows, label if name == "upscaled" else None)
                for name, variable in north_up.items()
            }
        )
    return _rows_back(north_up, rows, label)


@dataclass(frozen=True, eq=False)
class _Scene:
    """A scene's bands as the engine takes them."""

    array: da.Array  #: (bands, y, x), chunked
    nodata: float | None  #: NaN where it was masked on read
    valid: da.Array | None  #: (y, x), 0 where a pixel is masked (the mask, the alpha band)
    carry: tuple[int, ...]  #: the alpha band's position, carried by nearest neighbour

    @property
    def bands(self) -> int:
        """The bands the network sees."""
        return self.array.shape[0] - len(self.carry)

    @property
    def may_have_nodata(self) -> bool:
        """Whether some pixel may be invalid, so the halo needs the nodata fill's reach."""
        return self.nodata is not None or self.array.dtype.kind == "f" or self.valid is not None


def _upscale_scene(
    data: xr.DataArray, net: nn.Module, options: dict[str, Any], label: str
) -> xr.DataArray | xr.Dataset:
    """One (band, y, x) scene, north-up, as the lazy graph of its output."""
    meta = model_meta(net)
    scene = _scene(data, meta, options["alpha"], options["mask"], options["chunk_size"])
    overlap = options["overlap"]
    halo = default_halo(net, scene.may_have_nodata) if overlap is None else int(overlap)
    stats = options["stats"]
    if stats is None:
        stats = _scene_statistics(data, scene, net)
    runner, anchor = _runners(net, options, halo, scene)
    result = upscale_array(
        scene.array,
        runner,
        stats,
        scene.nodata,
        halo,
        options["consistency"],
        scene.valid,
        scene.carry,
        anchor,
    )
    out = _wrap_result(data, result, meta.scale, scene.nodata, label)
    if not options["uncertainty"]:
        return out
    strength = _strength_of(net)
    error = uncertainty_array(
        scene.array, stats, scene.nodata, meta.scale, strength, scene.valid, scene.carry
    )
    return with_uncertainty(out, error)


def _scene(
    data: xr.DataArray, meta: ModelMeta, alpha: int | None, mask: Any, chunk_size: int | None
) -> _Scene:
    """``data``'s bands, checked, as a dask array in chunks of ``chunk_size`` (by default its
    own, or DEFAULT_CHUNK_SIZE for an in-memory array), with its nodata, mask and alpha band."""
    check_dtype(np.dtype(data.dtype), "the DataArray")
    count = data.shape[0]
    carry = _alpha_position(alpha, count)
    check_bands(
        meta, count - len(carry), "the DataArray" + (" (less its alpha band)" if carry else "")
    )
    nodata = data.rio.nodata
    if nodata is None and data.rio.encoded_nodata is not None:
        nodata = float("nan")  # masked on read: nodata arrives as NaN
    array = data.data if isinstance(data.data, da.Array) else da.asarray(data.data)
    if chunk_size is not None or not isinstance(data.data, da.Array):
        size = chunk_side(chunk_size)
        array = array.rechunk((count, size, size))
    valid = _mask_array(mask, array)
    if carry:
        alpha_band = array[carry[0]]
        valid = alpha_band if valid is None else da.where(valid != 0, alpha_band, 0)
    return _Scene(array, nodata, valid, carry)


def _scene_statistics(data: xr.DataArray, scene: _Scene, net: nn.Module) -> Any:
    """The normalisation of the network's bands: the model's fixed one; else the scene's, in
    the graph for a dask-backed array, from a sample read now for one in memory."""
    meta = model_meta(net)
    array, valid, carry = scene.array, scene.valid, scene.carry
    network = array[np.delete(np.arange(array.shape[0]), carry)] if carry else array
    if isinstance(data.data, da.Array) and meta.normalization.mode != "fixed":
        return _graph_statistics(network, valid, scene.nodata, meta.normalization.percentiles)

    def sample() -> tuple[np.ndarray, np.ndarray | None]:
        pixels = sample_array(network)
        return pixels, None if valid is None else sample_array(valid[None])[0]

    return model_statistics(meta, scene.bands, sample, scene.nodata)


def _runners(
    net: nn.Module, options: dict[str, Any], halo: int, scene: _Scene
) -> tuple[TileRunner, TileRunner | None]:
    """The runner of ``net``, and of its strength-0 network when the output keeps that's
    band ratios (``preserve_spectra``; one band has no ratios: no second network pass)."""
    device = options["device"]
    if active_client() is None:
        resolve_device(device)  # fail now, not in the first chunk; a cluster resolves per worker
    runner_options = {
        "device": device,
        "halo": halo,
        "tile_size": options["tile_size"],
        "batch_size": options["batch_size"],
        "precision": options["precision"],
        "output_dtype": scene.array.dtype,
        "tta": options["tta"],
    }
    runner = TileRunner(net, **runner_options)
    preserve_spectra = options["preserve_spectra"]
    _hint_preserve_spectra(net, preserve_spectra, scene.bands)
    if keeps_spectra(net, preserve_spectra) and scene.bands > 1:
        return runner, TileRunner(with_strength(net, 0.0), **runner_options)
    return runner, None
