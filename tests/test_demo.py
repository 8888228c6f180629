"""The main job: the bundled sample scene, upscaled with the bundled default model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

import geosr
from geosr.demo import SAMPLE, run_demo
from tests.backends import foreign_backend


def test_sample_scene_ships_with_attribution() -> None:
    assert SAMPLE.is_file() and SAMPLE.stat().st_size < 1_000_000
    assert "public domain" in (SAMPLE.parent / "README.md").read_text()
    with rasterio.open(SAMPLE) as src:
        assert src.count == 4 and src.crs is not None and src.dtypes[0] == "uint8"


def test_demo_runs_with_any_model(model_factory, tmp_path: Path) -> None:
    with foreign_backend():  # the figure leaves the caller's matplotlib backend alone
        result = run_demo(
            tmp_path / "demo", model=str(model_factory(bands=None, scale=4)), progress=False
        )
    assert result["radiometry"] <= 1.0
    assert result["figure"].read_bytes()[:4] == b"\x89PNG"
    with rasterio.open(result["output"]) as out, rasterio.open(SAMPLE) as src:
        assert out.transform == src.transform @ Affine.scale(0.25) and out.crs == src.crs
    assert np.isfinite(result["model_psnr"]) and np.isfinite(result["bicubic_psnr"])


@pytest.mark.skipif(not geosr.bundled_models(), reason="no bundled default model yet")
def test_make_demo_command_end_to_end(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "geosr", "demo", "--out", str(tmp_path), "--progress", "none"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "quality:" in result.stdout and "dB" in result.stdout
    assert (tmp_path / "naip_sample_x4.tif").is_file() and (
        tmp_path / "naip_sample_x4.png"
    ).is_file()
