"""``geosr evaluate --temporal``: stability across dates, on real NAIP crops of two dates.

Issue #22 item 4: on pixels whose input barely changed between two dates, the output's change
stays within 1.2x bicubic's, at every strength of srgan.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from geosr.evaluate_temporal import _common_grid
from tests.conftest import NAIP_DIR

GEOSR = [sys.executable, "-m", "geosr"]
# 2010 and 2012 share a grid; 2009's is 2 m (0.4 pixel) off theirs
A = NAIP_DIR / "m_4709963_se_14_1_20100629.tif"
B = NAIP_DIR / "m_4709963_se_14_1_20120731.tif"
OFF_GRID = NAIP_DIR / "m_4709963_se_14_1_20090818.tif"
STRENGTHS = (0.0, 0.25, 0.5, 1.0)


def run(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([*GEOSR, *map(str, args)], capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    folder = tmp_path_factory.mktemp("temporal")
    result = run(
        "evaluate",
        "--temporal",
        A,
        B,
        "--strength",
        *STRENGTHS,
        "--json",
        folder / "t.json",
        "--html",
        folder / "t.html",
        "--progress",
        "none",
    )
    assert result.returncode == 0, result.stderr
    assert "passed" in result.stdout or "FAILED" in result.stdout
    return json.loads((folder / "t.json").read_text()), folder


def test_srgan_change_within_1_2x_bicubic_at_every_strength(report) -> None:
    data, _ = report
    ratios = {m["strength"]: m["ratio"] for m in data["methods"]}
    assert sorted(ratios) == list(STRENGTHS)
    # measured 1.033, 1.036, 1.046, 1.110 (strength 0, 0.25, 0.5, 1) on these crops
    for strength, ratio in ratios.items():
        assert ratio <= 1.2, f"strength {strength}: the output changed {ratio:.3f}x bicubic"
    assert data["passed"] is True
    # more texture, more change: the GAN endpoint moves most
    assert ratios[1.0] >= ratios[0.0]


def test_json_fields(report) -> None:
    data, folder = report
    for key in (
        "a",
        "b",
        "model",
        "scale",
        "limit",
        "offset",
        "window",
        "bounds",
        "band_names",
        "valid_pixels",
        "stable_threshold",
        "stable_radius",
        "stable_fraction",
        "stable_pixels",
        "stable_share",
        "input_change",
        "bicubic",
        "methods",
        "passed",
        "worst_ratio",
    ):
        assert key in data, key
    assert data["model"] == "srgan" and data["scale"] == 4 and data["limit"] == 1.2
    assert data["offset"] == [0, 0] and data["window"] == [0, 0, 256, 256]
    assert data["valid_pixels"] == 256 * 256
    # the default: the 5 % of pixels that changed least, with their 3 x 3 neighbours
    assert data["stable_fraction"] == 0.05 and data["stable_radius"] == 1
    assert 0.04 <= data["stable_share"] <= 0.10
    assert data["stable_threshold"] > 0
    assert len(data["band_names"]) == 4
    for method in [data["bicubic"], *data["methods"]]:
        assert set(method["change"]) == set(data["band_names"])
        assert method["overall"] == pytest.approx(np.mean(list(method["change"].values())))
    for method in data["methods"]:
        assert method["ratio"] == pytest.approx(method["overall"] / data["bicubic"]["overall"])
        assert method["tta"] is False
    assert "data:image/png;base64," in (folder / "t.html").read_text()


def test_off_grid_dates_are_refused_in_one_line(tmp_path: Path) -> None:
    result = run("evaluate", "--temporal", A, OFF_GRID, "--progress", "none")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "not whole pixels" in lines[0] and "gdalwarp" in lines[0]
    assert "-te 486400 5207465 487680 5208745" in lines[0]  # A's (2010's) grid, for B


def test_temporal_refuses_scenes_too() -> None:
    result = run("evaluate", "--temporal", A, B, A, "--progress", "none")
    assert result.returncode == 2 and "--temporal" in result.stderr
    result = run("evaluate", "--temporal", A, B, "--bands", "1", "--progress", "none")
    assert result.returncode == 2 and "--bands" in result.stderr


def test_whole_pixel_offsets_are_shifted_not_resampled(tmp_path: Path) -> None:
    shifted = tmp_path / "shifted.tif"
    with rasterio.open(B) as src:
        window = Window(5, 3, 200, 180)  # B starts 5 columns, 3 rows into A's grid
        profile = {
            **src.profile,
            "width": 200,
            "height": 180,
            "transform": src.window_transform(window),
        }
        with rasterio.open(shifted, "w", **profile) as dst:
            dst.write(src.read(window=window))
    grid = _common_grid(str(A), str(shifted))
    assert grid.offset == (3, 5)
    assert (grid.window_a.row_off, grid.window_a.col_off) == (3, 5)
    assert (grid.window_a.height, grid.window_a.width) == (180, 200)
    a, b, valid = grid.read()
    with rasterio.open(A) as sa, rasterio.open(B) as sb:
        assert np.array_equal(a, sa.read(window=window))
        assert np.array_equal(b, sb.read(window=window))
    assert valid.all()
