"""Per-pixel uncertainty (geosr.uncertainty): written beside the output on its grid, exact
under tiling, NaN where masked, and it predicts the real error of a scene never trained on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rioxarray
import xarray as xr

import geosr
from geosr.errors import ConfigError, OutputExistsError
from geosr.evaluate import _degrade
from tests.datasets import L2A, TEST_DATA

NAIP_2009 = TEST_DATA / "naip_nd_m4709963" / "m_4709963_se_14_1_20090818.tif"  # never trained on
LANDSAT8_HELD_OUT = (
    TEST_DATA / "landsat8_lc80200392015216" / "LC08_020039_20150804_B2B3B4B5_30m.tif"
)
LANDSAT_FILL = (
    TEST_DATA / "landsat8_lc81070352015122_150m" / "LC81070352015122LGN00_B2B3B4_150m.tif"
)


def ranks(values: np.ndarray) -> np.ndarray:
    """Ranks with ties averaged, as Spearman's correlation needs."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], values.size]
    averaged = np.repeat((starts + ends - 1) / 2.0, ends - starts)
    out = np.empty(values.size)
    out[order] = averaged
    return out


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def degraded(source: Path, tmp_path: Path) -> tuple[Path, np.ndarray]:
    """Wald's protocol: the scene x4 coarser, band interpretation kept (no alpha band)."""
    with rasterio.open(source) as src:
        hr = src.read()
        profile = src.profile.copy()
        transform, colorinterp = src.transform, src.colorinterp
    lr = _degrade(hr, profile["nodata"], 4, "box", profile["dtype"])
    profile.update(
        width=lr.shape[2], height=lr.shape[1], transform=transform * rasterio.Affine.scale(4)
    )
    path = tmp_path / f"{source.stem}_lr.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(lr)
        dst.colorinterp = colorinterp
    return path, hr.astype(np.float64)


def test_uncertainty_predicts_the_real_error(tmp_path: Path) -> None:
    """A real Landsat 8 crop, degraded x4: the error ranks as the uncertainty does, the 10 %
    most uncertain pixels hold far more than their share of the squared error, and the values
    are the error's size in DN. Measured here: Spearman 0.46, top 10 % 0.22; the validation
    over 16 scenes (docs/uncertainty.md) has the per-scene figures against the 0.5 target."""
    lr_path, hr = degraded(LANDSAT8_HELD_OUT, tmp_path)
    out = geosr.upscale(lr_path, tmp_path / "sr.tif", model="srgan", uncertainty=True)
    with rasterio.open(out) as src:
        sr = src.read().astype(np.float64)
    with rasterio.open(geosr.uncertainty_path(out)) as src:
        predicted = src.read().astype(np.float64)
    assert np.isfinite(predicted).all()
    error = np.abs(sr - hr).ravel()
    predicted = predicted.ravel()
    assert spearman(predicted, error) >= 0.42
    top = predicted >= np.quantile(predicted, 0.9)
    assert (error[top] ** 2).sum() / (error**2).sum() >= 0.2  # twice what chance gives
    # in the band's units: the mean prediction is the mean error's size, not a mere score
    assert 0.5 < predicted.mean() / error.mean() < 2.0


def test_the_sidecar_lies_on_the_output_grid_and_changes_nothing_else(tmp_path: Path) -> None:
    plain = geosr.upscale(NAIP_2009, tmp_path / "plain.tif", model="srgan")
    out = geosr.upscale(NAIP_2009, tmp_path / "scene_x4.tif", model="srgan", uncertainty=True)
    sidecar = tmp_path / "scene_x4_uncertainty.tif"
    assert geosr.uncertainty_path(out) == sidecar
    with rasterio.open(plain) as a, rasterio.open(out) as b, rasterio.open(sidecar) as u:
        np.testing.assert_array_equal(a.read(), b.read())
        assert b.tags()["GEOSR_UNCERTAINTY"] == sidecar.name
        assert (u.width, u.height, u.count) == (b.width, b.height, b.count)
        assert u.transform == b.transform and u.crs == b.crs
        assert u.dtypes == ("float32",) * 4 and np.isnan(u.nodata)
        assert u.descriptions[0].endswith(" uncertainty")
        assert "absolute error" in u.tags()["GEOSR_UNCERTAINTY"]
        values = u.read()
    assert np.isfinite(values).all() and (values > 0).all()


def test_masked_pixels_have_no_uncertainty(tmp_path: Path) -> None:
    out = geosr.upscale(LANDSAT_FILL, tmp_path / "fill.tif", model="srgan", uncertainty=True)
    with rasterio.open(out) as src:
        nodata = src.read(1) == src.nodata
    with rasterio.open(geosr.uncertainty_path(out)) as src:
        values = src.read(1)
    assert nodata.any() and not nodata.all()
    np.testing.assert_array_equal(np.isnan(values), nodata)


def test_chunks_do_not_change_the_uncertainty() -> None:
    scene = rioxarray.open_rasterio(NAIP_2009)
    small = geosr.upscale_dataarray(scene, "srgan", chunk_size=40, uncertainty=True)
    whole = geosr.upscale_dataarray(scene, "srgan", chunk_size=256, uncertainty=True)
    assert isinstance(small, xr.Dataset) and set(small) == {"upscaled", "uncertainty"}
    assert small.uncertainty.dtype == np.float32
    assert small.uncertainty.rio.transform() == small.upscaled.rio.transform()
    np.testing.assert_allclose(small.uncertainty.values, whole.uncertainty.values, rtol=1e-5)


def test_the_accessor_and_cubes_carry_it() -> None:
    scene = rioxarray.open_rasterio(NAIP_2009, chunks={"x": 128, "y": 128})
    lazy = scene.geosr.upscale("srgan", uncertainty=True)
    assert lazy.uncertainty.shape == lazy.upscaled.shape
    cube = xr.concat([scene, scene], dim="time")
    stacked = cube.geosr.upscale("srgan", uncertainty=True)
    assert stacked.uncertainty.dims == ("time", "band", "y", "x")
    first = stacked.uncertainty.isel(time=0).values
    np.testing.assert_allclose(first, lazy.uncertainty.values, rtol=1e-5)
    # stronger texture, larger expected error
    texture = scene.geosr.upscale("srgan", strength=1.0, uncertainty=True).uncertainty
    assert float(texture.mean()) > float(lazy.uncertainty.mean())


def test_zarr_outputs_get_a_zarr_sidecar(tmp_path: Path) -> None:
    out = geosr.upscale(NAIP_2009, tmp_path / "scene.zarr", model="srgan", uncertainty=True)
    store = xr.open_zarr(tmp_path / "scene_uncertainty.zarr")
    assert out == tmp_path / "scene.zarr"
    assert store.uncertainty.shape == (4, 1024, 1024)
    assert store.uncertainty.dtype == np.float32


def test_an_existing_sidecar_is_kept_without_overwrite(tmp_path: Path) -> None:
    sidecar = tmp_path / "scene_uncertainty.tif"
    sidecar.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError, match="overwrite"):
        geosr.upscale(NAIP_2009, tmp_path / "scene.tif", model="srgan", uncertainty=True)
    assert sidecar.read_bytes() == b"keep me"
    assert not (tmp_path / "scene.tif").exists()  # refused before any work


def test_the_aligner_alone_has_no_uncertainty(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="aligner only"):
        geosr.upscale(L2A, tmp_path / "aligned.tif", resolution=10, guided=None, uncertainty=True)
    assert not list(tmp_path.iterdir())


def test_the_cli_writes_the_uncertainty(tmp_path: Path) -> None:
    output = tmp_path / "cli.tif"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "geosr",
            "upscale",
            str(NAIP_2009),
            str(output),
            "--model",
            "srgan",
            "--uncertainty",
            "--progress",
            "none",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    with rasterio.open(tmp_path / "cli_uncertainty.tif") as src:
        assert src.count == 4 and src.dtypes[0] == "float32"
