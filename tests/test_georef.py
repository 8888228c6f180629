"""Georeferencing beyond a north-up geotransform: GCPs and RPCs, rescaled to the output grid,
and xarray arrays whose y increases."""

from __future__ import annotations

import warnings
from pathlib import Path

import attr
import numpy as np
import pytest
import rasterio
import rioxarray
import xarray as xr
from affine import Affine
from rasterio.control import GroundControlPoint
from rasterio.rpc import RPC
from rasterio.transform import GCPTransformer, RPCTransformer
from rasterio.warp import transform as warp
from rasterio.windows import Window

import geosr
from geosr.zarr_store import write_zarr
from tests.conftest import LANDSAT8, write_crop

WINDOW = Window(100, 60, 96, 80)
#: Input positions (row, col), pixel-corner convention, checked against the output's.
POINTS = [(0.0, 0.0), (10.5, 3.25), (40.0, 48.0), (79.0, 95.0), (80.0, 96.0)]


@pytest.fixture
def affine_crop(tmp_path: Path) -> Path:
    return write_crop(LANDSAT8, tmp_path / "affine.tif", WINDOW)


def _rewrite(source: Path, destination: Path, **georef) -> Path:
    """``source``'s pixels with GCPs or RPCs in place of its CRS and transform."""
    with rasterio.open(source) as src:
        data = src.read()
        profile = {k: v for k, v in src.profile.items() if k not in ("crs", "transform")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(destination, "w", **profile) as dst:
            dst.write(data)
            for key, value in georef.items():
                setattr(dst, key, value)
    return destination


def _no_geosr_warning(path: Path, model: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("error", geosr.NotGeoreferencedWarning)
        return geosr.upscale(path, model=model)


def test_gcps_are_kept_at_the_new_scale(affine_crop: Path, model_factory, tmp_path: Path) -> None:
    with rasterio.open(affine_crop) as src:
        transform, crs = src.transform, src.crs
    gcps = [
        GroundControlPoint(row=r, col=c, x=x, y=y, id=str(i))
        for i, (r, c) in enumerate([(0, 0), (0, 96), (80, 0), (80, 96), (40, 48), (13, 71)])
        for x, y in [transform * (c, r)]
    ]
    src = _rewrite(affine_crop, tmp_path / "gcps.tif", gcps=(gcps, crs))
    model = model_factory(bands=4, scale=2)
    out = _no_geosr_warning(src, model)
    with rasterio.open(src) as lr, rasterio.open(out) as sr:
        assert lr.transform.is_identity and sr.transform.is_identity
        out_gcps, out_crs = sr.gcps
        assert out_crs == crs and len(out_gcps) == len(gcps)
        for before, after in zip(lr.gcps[0], out_gcps, strict=True):
            assert (after.row, after.col) == (before.row * 2, before.col * 2)
            assert (after.x, after.y, after.id) == (before.x, before.y, before.id)
        with GCPTransformer(lr.gcps[0]) as lr_t, GCPTransformer(out_gcps) as sr_t:
            for row, col in POINTS:
                assert np.allclose(
                    lr_t.xy(row, col, offset="ul"),
                    sr_t.xy(2 * row, 2 * col, offset="ul"),
                    atol=1e-6,
                )
        pixels = sr.read()
    # the georeference changes nothing else: the same pixels as the affine raster's output
    with rasterio.open(geosr.upscale(affine_crop, model=model)) as ref:
        assert np.array_equal(pixels, ref.read())


def _affine_rpcs(path: Path) -> RPC:
    """RPCs equivalent to ``path``'s affine georeference over its footprint in lon/lat: a
    first-order polynomial fitted to its pixel corners, lines and samples counted from the
    centre of the first pixel (the RPC convention)."""
    with rasterio.open(path) as src:
        transform, crs, height, width = src.transform, src.crs, src.height, src.width
    rows, cols = np.meshgrid(np.linspace(0, height, 6), np.linspace(0, width, 6), indexing="ij")
    lon, lat = map(np.asarray, warp(crs, "EPSG:4326", *(transform * (cols.ravel(), rows.ravel()))))
    lon_off, lat_off, lon_scale, lat_scale = (
        lon.mean(),
        lat.mean(),
        np.ptp(lon) / 2,
        np.ptp(lat) / 2,
    )
    terms = np.column_stack(
        [np.ones_like(lon), (lon - lon_off) / lon_scale, (lat - lat_off) / lat_scale]
    )
    line, *_ = np.linalg.lstsq(terms, rows.ravel() - 0.5, rcond=None)
    samp, *_ = np.linalg.lstsq(terms, cols.ravel() - 0.5, rcond=None)

    def numerator(fit: np.ndarray, scale: float) -> list[float]:
        return [0.0, fit[1] / scale, fit[2] / scale] + [0.0] * 17  # 1, L, P, H, ...

    return RPC(
        height_off=0.0,
        height_scale=500.0,
        lat_off=lat_off,
        lat_scale=lat_scale,
        long_off=lon_off,
        long_scale=lon_scale,
        line_off=line[0],
        line_scale=height / 2,
        samp_off=samp[0],
        samp_scale=width / 2,
        line_num_coeff=numerator(line, height / 2),
        line_den_coeff=[1.0] + [0.0] * 19,
        samp_num_coeff=numerator(samp, width / 2),
        samp_den_coeff=[1.0] + [0.0] * 19,
        err_bias=2.5,
        err_rand=0.5,
    )


def test_rpcs_are_kept_at_the_new_scale(affine_crop: Path, model_factory, tmp_path: Path) -> None:
    src = _rewrite(affine_crop, tmp_path / "rpcs.tif", rpcs=_affine_rpcs(affine_crop))
    scale = 2
    out = _no_geosr_warning(src, model_factory(bands=4, scale=scale))
    with rasterio.open(src) as lr, rasterio.open(out) as sr:
        lr_rpcs, sr_rpcs = lr.rpcs, sr.rpcs
        assert sr.crs is None and sr.transform.is_identity and not sr.gcps[0]
    assert sr_rpcs is not None
    assert (sr_rpcs.err_bias, sr_rpcs.lat_off, sr_rpcs.line_num_coeff) == (
        lr_rpcs.err_bias,
        lr_rpcs.lat_off,
        lr_rpcs.line_num_coeff,
    )
    naive = attr.evolve(sr_rpcs, line_off=lr_rpcs.line_off * 2, samp_off=lr_rpcs.samp_off * 2)
    with (
        RPCTransformer(lr_rpcs) as lr_t,
        RPCTransformer(sr_rpcs) as sr_t,
        RPCTransformer(naive) as naive_t,
    ):
        for row, col in POINTS:
            ground = np.array(lr_t.xy(row, col, offset="ul"))
            assert (
                np.abs(np.array(sr_t.xy(scale * row, scale * col, offset="ul")) - ground).max()
                < 1e-7
            )
            # without the half-pixel shift the same ground point lands half an output pixel off
            off = np.array(naive_t.xy(scale * row, scale * col, offset="ul")) - ground
            assert np.abs(off).max() > 1e-5


def _pixels_and_transform(path: Path) -> tuple[np.ndarray, Affine]:
    """A GeoTIFF's or Zarr store's pixels and the transform its readers give."""
    if path.suffix == ".zarr":
        with xr.open_zarr(path, mask_and_scale=False) as store:
            variable = store["band_data"]
            # the stored GeoTransform is the one the x/y coordinates give
            assert variable.rio.transform().almost_equals(
                variable.rio.transform(recalc=True), precision=1e-6
            )
            return variable.values, variable.rio.transform()
    with rasterio.open(path) as src:
        return src.read(), src.transform


def _flipped(transform: Affine, height: int) -> Affine:
    """The transform of the same grid with its rows in the opposite order."""
    return transform * Affine.translation(0, height) * Affine.scale(1, -1)


@pytest.mark.parametrize("suffix", [".tif", ".zarr"])
def test_ascending_y_lands_where_its_coordinates_say(
    affine_crop: Path, suffix: str, model_factory, tmp_path: Path
) -> None:
    """A DataArray whose y increases (a raster flipped with isel, rows as NetCDF stores
    them) comes out on the same footprint as the north-up one, its pixels in its own row
    order, and the same pixels: the network sees it north-up."""
    model = geosr.load_model(model_factory(bands=4, scale=2))
    north_up = rioxarray.open_rasterio(affine_crop, chunks={"x": 48, "y": 40})
    south_up = north_up.isel(y=slice(None, None, -1))
    outputs = []
    for name, data in (("north", north_up), ("south", south_up)):
        sr = geosr.upscale_dataarray(data, model)
        outputs.append(_pixels_and_transform(geosr.write(sr, tmp_path / f"{name}{suffix}")))
    (north, north_transform), (south, south_transform) = outputs
    assert north_transform.e < 0 < south_transform.e
    assert south_transform.almost_equals(_flipped(north_transform, north.shape[1]), 1e-6)
    assert np.array_equal(south[:, ::-1], north)
    # the flipped input itself, written as it is, keeps its georeference too
    if suffix == ".zarr":
        pixels, transform = _pixels_and_transform(write_zarr(south_up, tmp_path / "in.zarr"))
        with rasterio.open(affine_crop) as src:
            assert transform.almost_equals(_flipped(src.transform, src.height), 1e-6)
            assert np.array_equal(pixels, src.read()[:, ::-1])
