"""geosr evaluate on real scenes: numbers, reports and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.windows import Window

import geosr
from geosr.data.degradations import DegradationConfig
from geosr.evaluate import evaluate
from tests.backends import foreign_backend
from tests.conftest import LANDSAT7_OLINDA, LANDSAT8, LANDSAT8_150M


def test_report_on_real_scenes(model_factory, tmp_path: Path) -> None:
    model = model_factory(bands=None, scale=2)
    report = evaluate(
        [LANDSAT8, LANDSAT7_OLINDA],
        model,
        scale=2,
        max_size=128,
        json_path=tmp_path / "r.json",
        figure=tmp_path / "r.png",
        html_path=tmp_path / "r.html",
    )
    assert len(report.results) == 4  # two scenes x two degradations
    summary = report.summary()
    assert set(summary) == {"box", "bicubic"}
    for methods in summary.values():
        assert set(methods) == {"model", "bicubic", "lanczos"}
        for values in methods.values():
            assert 15 < values["psnr"] < 60 and 0 < values["ssim"] <= 1 and values["sam"] >= 0
    # consistency projection: the model's output box-averages back to the LR input
    assert summary["box"]["model"]["lr_psnr"] > summary["box"]["bicubic"]["lr_psnr"] + 10
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["scale"] == 2 and len(data["scenes"]) == 4
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (tmp_path / "r.html").read_text()
    assert "<table>" in page and "data:image/png;base64," in page
    assert "lanczos" in report.table()


def test_pairs_match_degrading_the_scene_ourselves(model_factory, tmp_path: Path) -> None:
    """An LR/HR pair made with the box degradation scores exactly like evaluating the HR scene
    with degradation='box' (the same crop)."""
    model = model_factory(bands=4, scale=2)
    with rasterio.open(LANDSAT8) as src:
        window = Window(0, 0, 128, 96)
        hr = src.read(window=window)
        profile = src.profile | {
            "width": 128,
            "height": 96,
            "transform": src.window_transform(window),
        }
    hr_path = tmp_path / "hr.tif"
    with rasterio.open(hr_path, "w", **profile) as dst:
        dst.write(hr)
    lr = DegradationConfig(kind="box").apply_numpy(hr.astype(np.float32), 2, "box")
    lr = np.clip(np.rint(lr), 0, 65535).astype("uint16")
    lr_path = tmp_path / "lr.tif"
    with rasterio.open(
        lr_path,
        "w",
        **(
            profile
            | {"width": 64, "height": 48, "transform": profile["transform"] @ Affine.scale(2)}
        ),
    ) as dst:
        dst.write(lr)
    by_scene = evaluate([hr_path], model, degradations=["box"], max_size=1024)
    by_pair = evaluate(pairs=[(lr_path, hr_path)], model=model)
    for method in ("model", "bicubic", "lanczos"):
        a, b = by_scene.results[0].metrics[method], by_pair.results[0].metrics[method]
        assert a["psnr"] == pytest.approx(b["psnr"], rel=1e-9)
        assert a["ssim"] == pytest.approx(b["ssim"], rel=1e-9)


def test_nodata_pixels_are_left_out(model_factory, tmp_path: Path) -> None:
    """Only valid pixels are scored: the scene with its nodata fill recoded to another value
    (declared as its nodata) scores exactly the same."""
    with rasterio.open(LANDSAT8_150M) as src:
        data, profile = src.read(), src.profile
        fill = (data == src.nodata).any(axis=0)
    assert fill.mean() > 0.05 and not (data == 65535).any()  # nodata to leave out; a free code
    data[:, fill] = 65535
    recoded = tmp_path / "recoded.tif"
    with rasterio.open(recoded, "w", **(profile | {"nodata": 65535})) as dst:
        dst.write(data)
    model = model_factory(bands=3, scale=2)
    reports = [
        evaluate([scene], model, max_size=512, degradations=["box"])
        for scene in (LANDSAT8_150M, recoded)
    ]
    original, other = (r.results[0].metrics for r in reports)
    for method in ("model", "bicubic", "lanczos"):
        assert np.isfinite(original[method]["psnr"])
        for key, value in original[method].items():
            assert other[method][key] == pytest.approx(value, rel=1e-9), (method, key)


def test_figure_keeps_the_callers_matplotlib_backend(model_factory, tmp_path: Path) -> None:
    with foreign_backend():
        evaluate(
            [LANDSAT7_OLINDA],
            model_factory(bands=None, scale=2),
            max_size=64,
            degradations=["box"],
            figure=tmp_path / "f.png",
        )
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"scenes": []}, geosr.InputError, "nothing to evaluate"),
        ({"scale": 4}, geosr.ConfigError, "upscales x2, not x4"),
        ({"degradations": ["blur9"]}, geosr.ConfigError, "unknown degradation"),
        ({"figure": "/no/such/dir/f.png"}, geosr.ConfigError, "does not exist"),
        ({"scenes": ["/no/such.tif"]}, geosr.InputNotFoundError, "does not exist"),
    ],
)
def test_bad_input(kwargs: dict, error: type, message: str, model_factory) -> None:
    args = {"scenes": [LANDSAT8], "model": model_factory(bands=None, scale=2), **kwargs}
    with pytest.raises(error, match=message):
        evaluate(**args)


def test_pair_grid_mismatch(model_factory, tmp_path: Path) -> None:
    with pytest.raises(geosr.InputError, match="HR grid must be exactly the LR grid x2"):
        evaluate(
            pairs=[(LANDSAT7_OLINDA, LANDSAT7_OLINDA)], model=model_factory(bands=None, scale=2)
        )


def test_cli_prints_the_table_and_writes_json(model_factory, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "geosr",
            "evaluate",
            "--model",
            str(model_factory(bands=None, scale=2)),
            "--scale",
            "2",
            str(LANDSAT7_OLINDA),
            "--max-size",
            "96",
            "--json",
            str(tmp_path / "r.json"),
            "--progress",
            "none",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "bicubic" in result.stdout and "lanczos" in result.stdout
    assert json.loads((tmp_path / "r.json").read_text())["summary"]["box"]["model"]["psnr"] > 0
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "geosr",
            "evaluate",
            "--model",
            str(model_factory(bands=None, scale=2)),
            "--scale",
            "4",
            str(LANDSAT7_OLINDA),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert bad.returncode == 1 and bad.stderr.strip().startswith(
        "geosr: error: the model upscales x2"
    )


def test_holdout_scores_only_rows_training_never_saw(model_factory) -> None:
    from geosr.data.dataset import validation_cut

    report = evaluate(
        [LANDSAT8], model_factory(bands=4, scale=2), holdout=0.15, patch=64, degradations=["box"]
    )
    cut = validation_cut(603, 0.15, 64)
    assert report.results[0].size[0] <= 603 - cut
    with pytest.raises(geosr.InputError, match="no held-out strip"):
        evaluate([LANDSAT8], model_factory(bands=4, scale=2), holdout=0.15, patch=400)
