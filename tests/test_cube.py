"""Cubes: (time, band, y, x) DataArrays upscaled slice by slice, lazily, in one graph."""

from __future__ import annotations

import threading
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import rasterio
import rioxarray
import xarray as xr
from affine import Affine
from rasterio.windows import Window

import geosr
from geosr.pipeline import _chunk_sample
from tests.conftest import NAIP_DIR

#: four NAIP dates on exactly one grid (the others are shifted by a metre or two)
DATES = ["20100629", "20120731", "20140720", "20150926"]


def naip(date: str) -> Path:
    return NAIP_DIR / f"m_4709963_se_14_1_{date}.tif"


class CountingReader:
    """A raster as an array-like for ``da.from_array`` that counts its window reads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with rasterio.open(path) as src:
            self.shape = (src.count, src.height, src.width)
            self.dtype = np.dtype(src.dtypes[0])
        self.ndim = 3
        self.reads: list[tuple[slice, slice]] = []
        self.lock = threading.Lock()

    def __getitem__(self, key: tuple[slice, slice, slice]) -> np.ndarray:
        _, rows, cols = key
        if rows.stop == rows.start:  # dask probing for the array type, not a read
            return np.empty((self.shape[0], 0, 0), self.dtype)[key[0]]
        with self.lock:
            self.reads.append((rows, cols))
        window = Window.from_slices(rows, cols, height=self.shape[1], width=self.shape[2])
        with rasterio.open(self.path) as src:
            return src.read(window=window)[key[0]]


def counted_cube(chunk: int) -> tuple[xr.DataArray, list[CountingReader]]:
    readers, slices = [], []
    for date in DATES:
        reference = rioxarray.open_rasterio(naip(date))
        reader = CountingReader(naip(date))
        data = da.from_array(reader, chunks=(4, chunk, chunk), asarray=False, lock=False)
        slices.append(reference.copy(data=data))
        readers.append(reader)
    cube = xr.concat(slices, dim="time", join="exact").assign_coords(time=DATES)
    return cube, readers


@pytest.fixture
def cube() -> xr.DataArray:
    data = [rioxarray.open_rasterio(naip(d), chunks={"x": 96, "y": 96}) for d in DATES]
    cube = xr.concat(data, dim="time", join="exact").assign_coords(time=DATES)
    return cube.assign_attrs(title="NAIP, four summers")


def test_cube_keeps_dims_coords_attrs_and_georeference(cube, model_factory) -> None:
    model = geosr.load_model(model_factory(bands=4, scale=2))
    sr = cube.geosr.upscale(model=model)
    assert isinstance(sr.data, da.Array)  # lazy
    assert sr.dims == ("time", "band", "y", "x") and sr.shape == (4, 4, 512, 512)
    assert list(sr.time.values) == DATES and list(sr.band.values) == [1, 2, 3, 4]
    assert "spatial_ref" in sr.coords and sr.rio.crs == cube.rio.crs
    assert sr.rio.transform() == cube.rio.transform() @ Affine.scale(0.5)
    assert sr.attrs["title"] == "NAIP, four summers" and sr.attrs["geosr_scale"] == 2
    assert sr.rio.nodata == cube.rio.nodata
    # each date is upscaled as the scene it is, with its own statistics
    for index, date in enumerate(DATES):
        alone = rioxarray.open_rasterio(naip(date), chunks={"x": 96, "y": 96})
        np.testing.assert_array_equal(
            sr.isel(time=index).values, alone.geosr.upscale(model=model).values
        )


def test_band_dimension_anywhere(cube, model_factory) -> None:
    model = geosr.load_model(model_factory(bands=4, scale=2))
    reference = cube.isel(time=slice(0, 2)).geosr.upscale(model=model)
    moved = cube.isel(time=slice(0, 2)).transpose("band", "time", "y", "x")
    sr = moved.geosr.upscale(model=model)
    assert sr.dims == ("band", "time", "y", "x")
    np.testing.assert_array_equal(sr.transpose(*reference.dims).values, reference.values)


def test_dataset_of_band_variables_over_time(cube, model_factory) -> None:
    """odc-stac's layout: one (time, y, x) variable per band."""
    names = ["red", "green", "blue", "nir"]
    ds = xr.Dataset({n: cube.isel(band=i, drop=True) for i, n in enumerate(names)})
    ds = ds.rio.write_crs(cube.rio.crs)
    assert ds.geosr.band_variables() == names
    model = geosr.load_model(model_factory(bands=4, scale=2))
    out = ds.geosr.upscale(model=model)
    assert out["nir"].dims == ("time", "y", "x") and out["nir"].shape == (4, 512, 512)
    reference = cube.geosr.upscale(model=model)
    np.testing.assert_array_equal(out["nir"].values, reference.isel(band=3).values)


def _with_more_coords(cube: xr.DataArray) -> xr.DataArray:
    """``cube`` with a coordinate along time, one along band and a scalar one."""
    cloud = xr.Variable("time", [0.1, 0.0, 0.35, 0.05], attrs={"units": "1"})
    wavelength = xr.Variable("band", [0.48, 0.56, 0.66, 0.83], attrs={"units": "um"})
    return cube.assign_coords(cloud=cloud, wavelength=wavelength, sensor="NAIP")


def _assert_coords_kept(sr: xr.DataArray, source: xr.DataArray, names: list[str]) -> None:
    for name in names:
        xr.testing.assert_identical(sr.coords[name].variable, source.coords[name].variable)


def test_every_non_spatial_coordinate_is_kept(cube, model_factory) -> None:
    """Coordinates along time or band and scalar ones come out as they went in, for a cube,
    a cube with band first and a single date."""
    model = geosr.load_model(model_factory(bands=4, scale=2))
    cube = _with_more_coords(cube)
    names = ["time", "band", "cloud", "wavelength", "sensor"]
    _assert_coords_kept(cube.geosr.upscale(model=model), cube, names)
    moved = cube.transpose("band", "time", "y", "x")
    _assert_coords_kept(geosr.upscale_dataarray(moved, model), moved, names)
    one_date = cube.isel(time=2)  # scalar time and cloud
    sr = one_date.geosr.upscale(model=model)
    assert sr.dims == ("band", "y", "x")
    _assert_coords_kept(sr, one_date, names)


def test_dataset_keeps_a_single_date(cube, model_factory) -> None:
    """A Dataset of (time, y, x) bands with one date keeps its time dimension and coordinates."""
    names = ["red", "green", "blue", "nir"]
    one_date = _with_more_coords(cube).isel(time=slice(1, 2)).drop_vars("wavelength")
    ds = xr.Dataset({n: one_date.isel(band=i, drop=True) for i, n in enumerate(names)})
    model = geosr.load_model(model_factory(bands=4, scale=2))
    out = ds.geosr.upscale(model=model)
    assert out["nir"].dims == ("time", "y", "x") and out["nir"].shape == (1, 512, 512)
    _assert_coords_kept(out["nir"], one_date, ["time", "cloud", "sensor"])
    reference = one_date.geosr.upscale(model=model)
    np.testing.assert_array_equal(out["nir"].values, reference.isel(band=3).values)


def test_statistics_come_from_the_same_graph_no_chunk_read_twice(model_factory) -> None:
    cube, readers = counted_cube(chunk=64)
    sr = cube.geosr.upscale(model=geosr.load_model(model_factory(bands=4, scale=2)))
    assert all(not r.reads for r in readers), "building the graph read pixels"
    sr.data.compute(scheduler="threads")
    for reader in readers:
        # 16 chunks of 64 x 64, each read once: statistics and upscale share the reads
        assert len(reader.reads) == 16
        assert len(set(map(repr, reader.reads))) == 16


def test_large_arrays_sample_a_subset_of_whole_chunks() -> None:
    """Over the pixel budget, the statistics read only some chunks, spread over the scene."""
    reader = CountingReader(naip(DATES[0]))
    array = da.from_array(reader, chunks=(4, 32, 32), asarray=False, lock=False)  # 64 chunks
    values = np.concatenate(
        [part.compute(scheduler="threads").reshape(4, -1) for part in _chunk_sample(array, 4096)],
        axis=1,
    )
    assert values.shape[0] == 4 and values[0].size <= 4096
    assert len(reader.reads) == 4  # a 2 x 2 sub-grid of the 8 x 8 chunks
    rows = sorted({r.start for r, _ in reader.reads})
    cols = sorted({c.start for _, c in reader.reads})
    assert rows == cols == [64, 192]
    # the chosen chunks, thinned by a whole step
    with rasterio.open(naip(DATES[0])) as src:
        full = src.read()
    expected = np.concatenate(
        [full[:, r : r + 32, c : c + 32].reshape(4, -1) for r in rows for c in cols], axis=1
    )
    np.testing.assert_array_equal(values, expected)


def test_cube_written_to_zarr(cube, model_factory, tmp_path: Path) -> None:
    """One Zarr chunk per date and computation chunk; georeference and values kept."""
    sr = cube.geosr.upscale(model=geosr.load_model(model_factory(bands=4, scale=2)))
    store = sr.geosr.to_raster(tmp_path / "cube.zarr")
    with xr.open_zarr(store, mask_and_scale=False) as back:
        values = back["band_data"]
        assert values.dims == sr.dims and values.encoding["chunks"] == (1, 4, 192, 192)
        assert list(back.time.values) == DATES
        assert back.rio.crs == sr.rio.crs and back.rio.transform() == sr.rio.transform()
        assert values.attrs["_FillValue"] == 0 and values.dtype == np.uint8
        np.testing.assert_array_equal(values.values, sr.values)
