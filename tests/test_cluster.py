"""A real dask cluster: a ``dask scheduler`` and two ``dask worker`` processes, as a queue or
Kubernetes would start them. GeoTIFF and Zarr outputs written through it equal a local run,
and the Zarr store is written without any distributed lock."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rioxarray
import xarray as xr
from dask.utils import key_split
from distributed import Client, get_task_stream
from rasterio.windows import Window

import geosr
from geosr.zarr_store import write_zarr
from tests.conftest import LANDSAT8_150M, write_crop
from tests.test_dask import _threaded_reference

pytestmark = pytest.mark.slow

DASK = Path(sys.executable).with_name("dask")
CHUNK = 64


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """A Client of a scheduler and two single-threaded workers started by the dask command
    (their logs in the fixture's folder)."""
    logs = tmp_path_factory.mktemp("cluster")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    commands = [
        [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port)],
        *[
            [DASK, "worker", address, "--nthreads", "1", "--name", f"w{i}", "--host", "127.0.0.1"]
            for i in range(2)
        ],
    ]
    processes: list[subprocess.Popen] = []
    try:
        for index, command in enumerate(commands):
            with (logs / f"process{index}.log").open("w") as log:  # the child keeps its copy
                processes.append(
                    subprocess.Popen(
                        [*map(str, command), "--no-dashboard"],
                        env=env,
                        cwd=logs,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
            yield client
    finally:
        for process in reversed(processes):
            _stop(process)


def _lock_names(client: Client) -> list[str]:
    """Names of the distributed.Lock / Semaphore objects the scheduler has seen."""
    return client.run_on_scheduler(
        lambda dask_scheduler: sorted(dask_scheduler.extensions["semaphores"].max_leases)
    )


def test_cluster_outputs_equal_a_local_run(cluster, model_factory, tmp_path: Path) -> None:
    src = write_crop(LANDSAT8_150M, tmp_path / "scene.tif", Window(4, 10, 200, 150))
    model = model_factory(bands=3, scale=2, width=8, blocks=2)
    local = tmp_path / "local.tif"
    _threaded_reference(src, model, local)  # chunks of 64, one torch thread, as the workers
    workers = cluster.run(os.getpid)
    assert len(workers) == 2 and os.getpid() not in workers.values()

    # Zarr first, while the scheduler has seen no lock at all
    assert _lock_names(cluster) == []
    data = rioxarray.open_rasterio(src, chunks={"x": CHUNK, "y": CHUNK})
    sr = geosr.upscale_dataarray(data, model)
    seen = []
    with get_task_stream(cluster) as stream:
        store = write_zarr(sr, tmp_path / "cluster.zarr", progress=lambda d, t: seen.append(d))
    assert seen[-1] == 12  # 300 x 400 output pixels in chunks of 128: 3 x 4
    writers = [t["worker"] for t in stream.data if key_split(t["key"]) == "write_chunk"]
    assert len(writers) == 12 and len(set(writers)) == 2  # both workers wrote chunks
    assert _lock_names(cluster) == []  # ... and took no lock
    tif = geosr.upscale(src, tmp_path / "cluster.tif", model=model, chunk_size=CHUNK)
    assert any(name.startswith("geosr-write-") for name in _lock_names(cluster))  # the control

    with rasterio.open(local) as a, rasterio.open(tif) as b:
        reference = a.read()
        assert np.array_equal(b.read(), reference)
        assert b.crs == a.crs and b.transform == a.transform and b.nodata == a.nodata
        crs, transform, nodata, names = a.crs, a.transform, a.nodata, list(a.descriptions)
    raw = xr.open_zarr(store, mask_and_scale=False)
    assert np.array_equal(raw["band_data"].values, reference)
    assert raw.rio.crs == crs and raw.rio.transform() == transform
    assert raw["band_data"].rio.nodata == nodata
    assert raw["band_data"].attrs["long_name"] == names
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "cluster.tif",
        "cluster.zarr",
        "local.tif",
        "scene.tif",
    ]


def test_interrupted_cluster_write_leaves_nothing(cluster, model_factory, tmp_path) -> None:
    """Chunks still running on the workers when the client gives up clean up after
    themselves: the folder ends as it was."""
    src = write_crop(LANDSAT8_150M, tmp_path / "scene.tif", Window(0, 0, 192, 192))
    sr = geosr.upscale_dataarray(
        rioxarray.open_rasterio(src, chunks={"x": 32, "y": 32}),
        model_factory(bands=3, scale=2, width=8, blocks=2),
    )

    def stop(done: int, total: int) -> None:
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_zarr(sr, tmp_path / "out.zarr", progress=stop)
    deadline = time.monotonic() + 60
    while sorted(p.name for p in tmp_path.iterdir()) != ["scene.tif"]:
        assert time.monotonic() < deadline, sorted(p.name for p in tmp_path.iterdir())
        time.sleep(0.2)
    time.sleep(2)  # and nothing comes back
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif"]
