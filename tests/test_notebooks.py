"""The notebooks run top to bottom against the real package (outputs stay stripped in git)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
import rasterio
from affine import Affine
from nbclient import NotebookClient

import geosr
from tests.datasets import REPO, TEST_DATA

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_notebooks_are_committed_without_outputs() -> None:
    assert len(NOTEBOOKS) >= 2
    for path in NOTEBOOKS:
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                assert not cell["outputs"] and cell["execution_count"] is None, path.name


#: What each notebook writes into its notebook-output folder.
OUTPUTS = {
    "01_upscale_scene.ipynb": ["naip_sample_x4_cog.tif"],
    "02_distributed.ipynb": ["cluster_x4.tif", "local_x4.tif"],
    "03_cube.ipynb": ["naip_cube_x4.zarr"],
}


def test_every_notebook_has_its_outputs_listed() -> None:
    assert sorted(OUTPUTS) == [p.name for p in NOTEBOOKS]


@pytest.mark.slow
@pytest.mark.skipif(
    not geosr.bundled_models(), reason="the notebooks use the bundled default model"
)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path: Path, tmp_path: Path, monkeypatch) -> None:
    """Runs every cell (a cell that raises fails the test) and checks what it wrote."""
    # the cube notebook reads its scenes from GEOSR_SHARED_DATA: the committed crops keep it quick
    monkeypatch.setenv("GEOSR_SHARED_DATA", str(TEST_DATA))
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    written = tmp_path / "notebook-output"
    assert sorted(p.name for p in written.iterdir()) == sorted(OUTPUTS[path.name])
    for name in OUTPUTS[path.name]:
        if name.endswith(".zarr"):
            check_cube_store(written / name)
        else:
            check_sample_output(written / name)


def check_sample_output(path: Path) -> None:
    from geosr.demo import SAMPLE

    with rasterio.open(SAMPLE) as src, rasterio.open(path) as out:
        assert (out.width, out.height) == (src.width * 4, src.height * 4)
        assert out.crs == src.crs and out.bounds == src.bounds
        assert (out.count, out.dtypes, out.nodata) == (src.count, src.dtypes, src.nodata)


def check_cube_store(path: Path) -> None:
    import rioxarray  # noqa: F401  (the .rio accessor)
    import xarray as xr

    first = TEST_DATA / "naip_nd_m4709963" / "m_4709963_se_14_1_20100629.tif"
    with rasterio.open(first) as src, xr.open_zarr(path) as store:
        values = next(iter(store.data_vars.values()))
        assert values.dims == ("time", "band", "y", "x")
        assert values.shape == (4, src.count, src.height * 4, src.width * 4)
        assert store.rio.crs == src.crs
        assert store.rio.transform() == src.transform @ Affine.scale(0.25)
