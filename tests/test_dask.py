"""Lazy xarray/dask faces: accessors, geosr.write, dask.distributed, awkward chunkings."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import dask
import dask.array as da
import dask.threaded
import numpy as np
import pytest
import rasterio
import rioxarray
import xarray as xr
from affine import Affine
from dask.core import get_dependencies
from rasterio.windows import Window

import geosr
from tests.conftest import LANDSAT8, LANDSAT8_150M, RGB_BYTE, write_crop


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def test_accessor_matches_geosr_upscale(model_factory, tmp_path: Path) -> None:
    src = write_crop(RGB_BYTE, tmp_path / "rgb.tif", Window(200, 90, 150, 130))
    model = geosr.load_model(model_factory(bands=3, scale=2))
    reference = geosr.upscale(src, tmp_path / "ref.tif", model=model, chunk_size=64)
    data = rioxarray.open_rasterio(src, chunks={"x": 64, "y": 64})
    sr = data.geosr.upscale(model=model)
    assert isinstance(sr.data, da.Array)  # lazy until written
    out = sr.geosr.to_raster(tmp_path / "acc.tif")
    with rasterio.open(reference) as a, rasterio.open(out) as b:
        assert b.crs == a.crs and b.transform.almost_equals(a.transform, precision=1e-9)
        assert b.nodata == a.nodata and (b.width, b.height, b.count) == (a.width, a.height, a.count)
        assert b.tags()["GEOSR_SCALE"] == "2"
        assert np.array_equal(a.read(), b.read())
    # rioxarray's own writer gets the same georeference from the lazy result
    sr.rio.to_raster(tmp_path / "rio.tif", tiled=True, lock=threading.Lock())
    with rasterio.open(tmp_path / "rio.tif") as c, rasterio.open(reference) as a:
        assert c.crs == a.crs and np.allclose(tuple(c.bounds), tuple(a.bounds), atol=1e-6)
        assert np.array_equal(c.read(), a.read())


def test_dataset_accessor_keeps_variables(model_factory, tmp_path: Path) -> None:
    src = write_crop(LANDSAT8, tmp_path / "l8.tif", Window(0, 0, 96, 80))
    ds = rioxarray.open_rasterio(src, chunks={"x": 48, "y": 48}, band_as_variable=True)
    assert len(ds.geosr.band_variables()) == 4
    out = ds.geosr.upscale(model=model_factory(bands=4, scale=2))
    assert set(out.data_vars) == set(ds.data_vars)
    first = next(iter(out.data_vars))
    assert out[first].shape == (160, 192)
    assert out.rio.crs == ds.rio.crs
    reference = _read(
        geosr.upscale(
            src, tmp_path / "ref.tif", model=model_factory(bands=4, scale=2), chunk_size=48
        )
    )
    assert np.array_equal(np.stack([out[v].values for v in ds.data_vars]), reference)


def test_numpy_backed_dataarray_and_write_checks(model_factory, tmp_path: Path) -> None:
    with rasterio.open(LANDSAT8) as s:
        window = Window(0, 0, 40, 30)
        values = s.read(window=window)
        transform, crs = s.window_transform(window), s.crs
    data = (
        xr.DataArray(values, dims=("band", "y", "x"))
        .rio.write_crs(crs)
        .rio.write_transform(transform)
    )
    sr = geosr.upscale_dataarray(data, model_factory(bands=4, scale=2), chunk_size=16)
    assert isinstance(sr.data, da.Array) and sr.shape == (4, 60, 80)
    assert sr.rio.transform() == transform @ Affine.scale(0.5)
    out = geosr.write(sr, tmp_path / "np.tif")
    with pytest.raises(geosr.OutputExistsError):
        geosr.write(sr, out)
    with pytest.raises(geosr.OutputError, match="does not exist"):
        geosr.write(sr, tmp_path / "missing" / "x.tif")


@pytest.mark.parametrize("chunk", [8, 50, 97])
def test_odd_chunkings_equal_one_chunk(chunk: int, model_factory, tmp_path: Path) -> None:
    """Chunks smaller than the halo (dask's map_overlap would refuse them) and chunk sizes that
    do not divide the scene give the same pixels as a single chunk."""
    src = write_crop(LANDSAT8_150M, tmp_path / "edge.tif", Window(4, 10, 130, 110))
    model = model_factory(bands=3, scale=2, width=8, blocks=2)
    whole = _read(geosr.upscale(src, tmp_path / "whole.tif", model=model, chunk_size=1000))
    data = rioxarray.open_rasterio(src, chunks={"x": chunk, "y": chunk})
    sr = data.geosr.upscale(model=model)
    assert np.abs(sr.values.astype(np.int64) - whole.astype(np.int64)).max() <= 1


def test_model_is_one_graph_key(model_factory, tmp_path: Path) -> None:
    """The model travels in one task that every chunk depends on, so a cluster ships it to
    each worker once, not with every chunk."""
    src = write_crop(LANDSAT8, tmp_path / "l8.tif", Window(0, 0, 128, 128))
    data = rioxarray.open_rasterio(src, chunks={"x": 32, "y": 32})
    sr = data.geosr.upscale(model=model_factory(bands=4, scale=2))
    graph = dict(sr.data.__dask_graph__())
    # the plan (model, statistics, halo) is one key, built once from the statistics task
    plans = [k for k in graph if str(k).startswith("_BlockPlan-")]
    assert len(plans) == 1
    plan = dask.threaded.get(graph, plans[0])
    assert type(plan).__name__ == "_BlockPlan" and type(plan.runner).__name__ == "TileRunner"
    chunks = [k for k in graph if isinstance(k, tuple) and k[0] == sr.data.name]
    assert len(chunks) == 16
    for key in chunks:
        assert plans[0] in get_dependencies(graph, key), key


def _threaded_reference(src: Path, model: Path, out: Path) -> None:
    """The threaded run in a fresh process with one torch thread, as dask workers have
    (oneDNN picks kernels by thread count; same settings give the same bits)."""
    code = (
        "import geosr, sys; geosr.upscale(sys.argv[1], sys.argv[2], model=sys.argv[3], "
        "chunk_size=64, scheduler='threads')"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-c", code, str(src), str(out), str(model)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_distributed_cluster_is_bit_identical_to_threads(model_factory, tmp_path: Path) -> None:
    from dask.distributed import Client, LocalCluster

    src = write_crop(LANDSAT8_150M, tmp_path / "scene.tif", Window(4, 10, 200, 150))
    model = model_factory(bands=3, scale=2, width=8, blocks=2)
    _threaded_reference(src, model, tmp_path / "threads.tif")
    seen = []
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        out = geosr.upscale(
            src,
            tmp_path / "dist.tif",
            model=model,
            chunk_size=64,
            progress=lambda d, t: seen.append(d),
        )
        workers = client.run(lambda: os.getpid())
        assert len(workers) == 2
    assert seen[-1] == 9  # 3 x 3 chunks: the 8-pixel last column merges into its neighbour
    a, b = _read(tmp_path / "threads.tif"), _read(out)
    assert np.array_equal(a, b)
    with rasterio.open(out) as o, rasterio.open(src) as s:
        assert (
            o.crs == s.crs
            and o.transform == s.transform @ Affine.scale(0.5)
            and o.nodata == s.nodata
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dist.tif", "scene.tif", "threads.tif"]


@pytest.mark.parametrize("scheduler", ["processes", object(), 4], ids=["name", "object", "int"])
def test_unknown_schedulers_are_refused(scheduler, model_factory, tmp_path: Path) -> None:
    """A scheduler that is neither a local name nor a distributed Client is an error, not a
    silent fallback to threads."""
    src = write_crop(RGB_BYTE, tmp_path / "in.tif", Window(0, 0, 32, 32))
    out = tmp_path / "out.tif"
    with pytest.raises(geosr.ConfigError, match="scheduler .*; use 'threads', 'synchronous'") as e:
        geosr.upscale(src, out, model=model_factory(bands=3, scale=2), scheduler=scheduler)
    assert "\n" not in str(e.value)
    assert not out.exists()
