"""Zarr output (geosr.zarr_store.write_zarr): the GeoTIFF's pixels, georeference, nodata, band
names and tags; the computation's chunks; atomic, and never clobbering without overwrite."""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import rasterio
import rioxarray
import xarray as xr
import zarr
from affine import Affine
from rasterio.windows import Window

import geosr
from geosr.zarr_store import WRITING_MARKER, is_zarr_output, write_zarr
from tests.conftest import LANDSAT8, LANDSAT8_150M, write_crop

#: 100 x 70 input pixels in chunks of 32: the computation's last chunks are merged
#: (output chunks 64+76 rows, 64+64+72 columns), so the store needs them made regular.
WINDOW = Window(0, 0, 100, 70)
CHUNK = 32


def _upscaled(src: Path, model: Path, **open_options) -> xr.DataArray:
    data = rioxarray.open_rasterio(src, chunks={"x": CHUNK, "y": CHUNK}, **open_options)
    return geosr.upscale_dataarray(data, model)


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize(
    ("scene", "bands"), [(LANDSAT8, 4), (LANDSAT8_150M, 3)], ids=["landsat8", "nodata0"]
)
def test_store_equals_the_geotiff_output(scene: Path, bands: int, model_factory, tmp_path) -> None:
    src = write_crop(scene, tmp_path / "in.tif", WINDOW)
    model = model_factory(bands=bands, scale=2)
    tif = geosr.upscale(src, tmp_path / "out.tif", model=model, chunk_size=CHUNK)
    sr = _upscaled(src, model)
    assert sr.data.chunks[1:] == ((64, 76), (64, 64, 72))
    seen = []
    store = write_zarr(sr, tmp_path / "out.zarr", progress=lambda d, t: seen.append((d, t)))
    assert store == tmp_path / "out.zarr"
    assert seen[0] == (0, 12) and seen[-1] == (12, 12)  # 64+64+12 rows, 64x3+8 columns
    assert _listing(tmp_path) == ["in.tif", "out.tif", "out.zarr"]

    raw = xr.open_zarr(store, mask_and_scale=False)["band_data"]
    decoded = xr.open_zarr(store)
    with rasterio.open(tif) as ref:
        pixels = ref.read()
        assert raw.dtype == pixels.dtype
        assert np.array_equal(raw.values, pixels)
        # the georeference rioxarray reads is the GeoTIFF's, bit for bit
        assert decoded.rio.crs == ref.crs
        assert decoded.rio.transform() == ref.transform
        assert decoded["band_data"].rio.transform() == ref.transform
        assert decoded["band_data"].rio.crs == ref.crs
        assert raw.rio.nodata == ref.nodata  # nodata is the _FillValue (none for Landsat 8)
        assert raw.attrs["long_name"] == list(ref.descriptions)
        assert list(raw["band"].values) == list(range(1, bands + 1))
        tags = ref.tags()
        for key in ("GEOSR_MODEL", "GEOSR_SCALE", "GEOSR_VERSION"):
            assert raw.attrs[key] == tags[key] == decoded.attrs[key]
        if ref.nodata is not None:  # decoded, nodata pixels read as NaN
            values = decoded["band_data"].values
            assert (pixels == ref.nodata).any()
            assert np.array_equal(np.isnan(values), pixels == ref.nodata)
    # Zarr chunks are the computation's chunk size, all bands in one chunk
    array = zarr.open_array(store=str(store), path="band_data", mode="r")
    assert array.chunks == (bands, 2 * CHUNK, 2 * CHUNK)
    assert raw.encoding["chunks"] == (bands, 2 * CHUNK, 2 * CHUNK)


def test_rotated_raster_keeps_its_transform(model_factory, tmp_path: Path) -> None:
    """No x/y coordinates for a rotated grid: the transform lives in GeoTransform alone."""
    with rasterio.open(LANDSAT8) as scene:
        rotated = scene.transform @ Affine.rotation(20)
    src = write_crop(LANDSAT8, tmp_path / "in.tif", Window(0, 0, 64, 48), transform=rotated)
    model = model_factory(bands=4, scale=2)
    tif = geosr.upscale(src, tmp_path / "out.tif", model=model, chunk_size=CHUNK)
    store = write_zarr(_upscaled(src, model), tmp_path / "out.zarr")
    opened = xr.open_zarr(store, mask_and_scale=False)
    with rasterio.open(tif) as ref:
        assert opened.rio.transform() == ref.transform and opened.rio.crs == ref.crs
        assert np.array_equal(opened["band_data"].values, ref.read())


def test_gdal_reads_the_store(model_factory, tmp_path: Path) -> None:
    """GDAL's Zarr driver reads the variable (not the group) of a format 2 store: the same
    pixels, CRS and nodata; its transform comes from the x/y centres, within 1e-9."""
    src = write_crop(LANDSAT8_150M, tmp_path / "in.tif", WINDOW)
    model = model_factory(bands=3, scale=2)
    tif = geosr.upscale(src, tmp_path / "out.tif", model=model, chunk_size=CHUNK)
    store = write_zarr(_upscaled(src, model), tmp_path / "out.zarr")
    with rasterio.open(tif) as ref, rasterio.open(f'ZARR:"{store}":/band_data') as gdal:
        assert gdal.driver == "Zarr" and gdal.crs == ref.crs and gdal.nodata == ref.nodata
        assert gdal.transform.almost_equals(ref.transform, precision=1e-9)
        assert np.array_equal(gdal.read(), ref.read())
        assert gdal.tags()["GEOSR_SCALE"] == "2"
    opened = rioxarray.open_rasterio(f'ZARR:"{store}":/band_data')
    assert opened.rio.crs == rioxarray.open_rasterio(tif).rio.crs


def test_float_raster_keeps_dtype_and_nan_fill(model_factory, tmp_path: Path) -> None:
    """A raster read with masked=True is float32 with NaN for nodata: so is the store, as
    geosr.write's GeoTIFF of the same array."""
    src = write_crop(LANDSAT8_150M, tmp_path / "in.tif", WINDOW)
    sr = _upscaled(src, model_factory(bands=3, scale=2), masked=True)
    tif = geosr.write(sr, tmp_path / "out.tif")
    raw = xr.open_zarr(write_zarr(sr, tmp_path / "out.zarr"), mask_and_scale=False)
    with rasterio.open(tif) as ref:
        pixels = ref.read()
    assert raw["band_data"].dtype == np.float32 == pixels.dtype
    assert math.isnan(raw["band_data"].attrs["_FillValue"])
    assert np.isnan(pixels).any()
    assert np.array_equal(raw["band_data"].values, pixels, equal_nan=True)


@pytest.mark.skipif(int(zarr.__version__.split(".")[0]) < 3, reason="needs zarr-python 3")
def test_format_3_store(model_factory, tmp_path: Path) -> None:
    src = write_crop(LANDSAT8, tmp_path / "in.tif", Window(0, 0, 64, 64))
    sr = _upscaled(src, model_factory(bands=4, scale=2))
    store = write_zarr(sr, tmp_path / "v3.zarr", zarr_format=3)
    assert (store / "zarr.json").is_file()
    opened = xr.open_zarr(store, mask_and_scale=False)
    assert np.array_equal(opened["band_data"].values, sr.values)
    assert opened.rio.transform() == sr.rio.transform()


def test_interrupted_write_leaves_nothing_and_keeps_old_store(model_factory, tmp_path) -> None:
    src = write_crop(LANDSAT8, tmp_path / "in.tif", Window(0, 0, 128, 128))
    sr = _upscaled(src, model_factory(bands=4, scale=2))
    old = xr.DataArray(np.full((4, 8, 8), 7, np.uint16), dims=("band", "y", "x"))
    target = write_zarr(old.rio.write_transform(sr.rio.transform()), tmp_path / "out.zarr")
    before = {p.relative_to(target): p.read_bytes() for p in target.rglob("*") if p.is_file()}

    def stop(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_zarr(sr, target, overwrite=True, progress=stop)
    after = {p.relative_to(target): p.read_bytes() for p in target.rglob("*") if p.is_file()}
    assert after == before
    assert _listing(tmp_path) == ["in.tif", "out.zarr"]


def test_failed_chunk_leaves_nothing(model_factory, tmp_path: Path) -> None:
    src = write_crop(LANDSAT8, tmp_path / "in.tif", Window(0, 0, 96, 96))
    sr = _upscaled(src, model_factory(bands=4, scale=2))

    def fail_one(block: np.ndarray, block_info=None) -> np.ndarray:
        if block_info[0]["chunk-location"] == (0, 1, 1):
            raise ValueError("chunk (1, 1) could not be read")
        return block

    broken = sr.copy(data=da.map_blocks(fail_one, sr.data, dtype=sr.dtype))
    with pytest.raises(ValueError, match="could not be read"):
        write_zarr(broken, tmp_path / "out.zarr")
    assert _listing(tmp_path) == ["in.tif"]


def test_existing_store_needs_overwrite(model_factory, tmp_path: Path) -> None:
    src = write_crop(LANDSAT8, tmp_path / "in.tif", Window(0, 0, 64, 64))
    sr = _upscaled(src, model_factory(bands=4, scale=2))
    store = write_zarr(sr, tmp_path / "out.zarr")
    first = xr.open_zarr(store, mask_and_scale=False)["band_data"].values
    with pytest.raises(geosr.OutputExistsError, match="pass overwrite=True") as error:
        write_zarr(sr * 0 + 1, store)
    assert "\n" not in str(error.value)
    assert np.array_equal(xr.open_zarr(store, mask_and_scale=False)["band_data"].values, first)
    ones = (sr * 0 + 1).astype(sr.dtype).rio.write_transform(sr.rio.transform())
    write_zarr(ones, store, overwrite=True)
    assert (xr.open_zarr(store, mask_and_scale=False)["band_data"].values == 1).all()
    assert _listing(tmp_path) == ["in.tif", "out.zarr"]
    assert not (store / WRITING_MARKER).exists()


def test_refused_outputs(model_factory, tmp_path: Path) -> None:
    src = write_crop(LANDSAT8, tmp_path / "in.tif", Window(0, 0, 32, 32))
    sr = _upscaled(src, model_factory(bands=4, scale=2))
    folder = tmp_path / "notes.zarr"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    with pytest.raises(geosr.OutputError, match="not a Zarr store"):
        write_zarr(sr, folder, overwrite=True)
    assert (folder / "keep.txt").read_text() == "mine"
    with pytest.raises(geosr.OutputError, match="not a local path"):
        write_zarr(sr, "s3://bucket/out.zarr")
    with pytest.raises(geosr.OutputError, match="does not exist"):
        write_zarr(sr, tmp_path / "missing" / "out.zarr")
    with pytest.raises(geosr.ConfigError, match="zarr_format"):
        write_zarr(sr, tmp_path / "x.zarr", zarr_format=4)
    assert _listing(tmp_path) == ["in.tif", "notes.zarr"]


@pytest.mark.parametrize("kind", ["folder", "file"])
def test_foreign_output_appearing_during_the_write_is_never_replaced(
    kind: str, model_factory, tmp_path: Path
) -> None:
    """overwrite=True replaces a Zarr store only: a folder or file that appears at the output
    path while the store is written (made here when the first chunk is done) is kept, the
    write fails with one line and its temporary store is removed; so is one there before."""
    src = write_crop(LANDSAT8, tmp_path / "in.tif", Window(0, 0, 64, 64))
    sr = _upscaled(src, model_factory(bands=4, scale=2))
    target = tmp_path / "out.zarr"

    def make_foreign() -> None:
        if kind == "folder":
            target.mkdir()
            (target / "keep.txt").write_text("mine")
        else:
            target.write_text("mine")

    def appear(done: int, total: int) -> None:
        if done == 1:
            make_foreign()

    with pytest.raises(geosr.OutputError, match=f"is a {kind} but not a Zarr store") as error:
        write_zarr(sr, target, overwrite=True, progress=appear)
    assert "\n" not in str(error.value)
    assert (target / "keep.txt" if kind == "folder" else target).read_text() == "mine"
    assert _listing(tmp_path) == ["in.tif", "out.zarr"]
    if kind == "folder":
        assert _listing(target) == ["keep.txt"]
    # the same rule before the write
    with pytest.raises(geosr.OutputError, match=f"is a {kind} but not a Zarr store"):
        write_zarr(sr, target, overwrite=True)
    assert _listing(tmp_path) == ["in.tif", "out.zarr"]


def test_zarr_output_routing() -> None:
    assert is_zarr_output("out/scene_x4.zarr") and is_zarr_output("scene.ZARR/")
    assert not is_zarr_output("scene_x4.tif")
    assert is_zarr_output("scene_x4", format="zarr")
    assert not is_zarr_output("scene.zarr", format="gtiff")
    with pytest.raises(geosr.ConfigError, match="not supported"):
        is_zarr_output("scene", format="netcdf")


ROUTED = "format" in inspect.signature(geosr.upscale).parameters


@pytest.mark.skipif(not ROUTED, reason="geosr.upscale does not route .zarr outputs to Zarr yet")
def test_upscale_and_write_route_zarr_outputs(model_factory, tmp_path: Path) -> None:
    src = write_crop(LANDSAT8_150M, tmp_path / "in.tif", WINDOW)
    model = model_factory(bands=3, scale=2)
    tif = geosr.upscale(src, tmp_path / "out.tif", model=model, chunk_size=CHUNK)
    stores = [
        geosr.upscale(src, tmp_path / "out.zarr", model=model, chunk_size=CHUNK),
        geosr.upscale(src, model=model, chunk_size=CHUNK, format="zarr"),
        _upscaled(src, model).geosr.to_raster(tmp_path / "accessor.zarr"),
    ]
    assert stores[1] == tmp_path / "in_x2.zarr"
    with rasterio.open(tif) as ref:
        for store in stores:
            raw = xr.open_zarr(store, mask_and_scale=False)
            assert np.array_equal(raw["band_data"].values, ref.read())
            assert raw.rio.crs == ref.crs and raw.rio.transform() == ref.transform
            assert raw["band_data"].rio.nodata == ref.nodata
            assert raw["band_data"].attrs["long_name"] == list(ref.descriptions)
            for key in ("GEOSR_MODEL", "GEOSR_SCALE", "GEOSR_VERSION"):
                assert raw.attrs[key] == ref.tags()[key], key
    with pytest.raises(geosr.ConfigError, match="cog"):
        geosr.upscale(src, tmp_path / "cog.zarr", model=model, cog=True)
