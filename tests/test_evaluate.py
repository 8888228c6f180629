"""geosr evaluate on real scenes: numbers, reports and bad input."""

from __future__ import annotations

import json
import os
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
from geosr.evaluate import EvaluationReport, evaluate
from tests.backends import foreign_backend
from tests.conftest import LANDSAT7_OLINDA, LANDSAT8, LANDSAT8_150M, NAIP_DIR, write_crop
from tests.http_server import HTTP_ENV, SECRET, Server

NAIP = NAIP_DIR / "m_4709963_se_14_1_20150926.tif"  # 4 x uint8, fields and a lake shore
needs_srgan = pytest.mark.skipif(
    "srgan" not in geosr.bundled_models(), reason="the bundled srgan is not in this checkout"
)


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
    for result in report.results:  # each block within 1 DN of its input pixel, whatever the LR
        assert result.metrics["model"]["lr_error"] <= 1.0, result.scene
        assert result.metrics["bicubic"]["lr_error"] > 1.0, result.scene
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["scale"] == 2 and len(data["scenes"]) == 4
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (tmp_path / "r.html").read_text()
    assert "<table>" in page and "data:image/png;base64," in page
    assert "lanczos" in report.table()


def _box_pair(folder: Path) -> tuple[Path, Path]:
    """``lr.tif`` and ``hr.tif`` in ``folder``: a 128x96 Landsat 8 crop and its x2 box
    degradation, on grids x2 apart."""
    with rasterio.open(LANDSAT8) as src:
        window = Window(0, 0, 128, 96)
        hr = src.read(window=window)
        profile = src.profile | {
            "width": 128,
            "height": 96,
            "transform": src.window_transform(window),
        }
    hr_path = folder / "hr.tif"
    with rasterio.open(hr_path, "w", **profile) as dst:
        dst.write(hr)
    lr = DegradationConfig(kind="box").apply_numpy(hr.astype(np.float32), 2, "box")
    lr = np.clip(np.rint(lr), 0, 65535).astype("uint16")
    lr_path = folder / "lr.tif"
    with rasterio.open(
        lr_path,
        "w",
        **(
            profile
            | {"width": 64, "height": 48, "transform": profile["transform"] @ Affine.scale(2)}
        ),
    ) as dst:
        dst.write(lr)
    return lr_path, hr_path


def test_pairs_match_degrading_the_scene_ourselves(model_factory, tmp_path: Path) -> None:
    """An LR/HR pair made with the box degradation scores exactly like evaluating the HR scene
    with degradation='box' (the same crop)."""
    model = model_factory(bands=4, scale=2)
    lr_path, hr_path = _box_pair(tmp_path)
    by_scene = evaluate([hr_path], model, degradations=["box"], max_size=1024)
    by_pair = evaluate(pairs=[(lr_path, hr_path)], model=model)
    for method in ("model", "bicubic", "lanczos"):
        a, b = by_scene.results[0].metrics[method], by_pair.results[0].metrics[method]
        assert a["psnr"] == pytest.approx(b["psnr"], rel=1e-9)
        assert a["ssim"] == pytest.approx(b["ssim"], rel=1e-9)


def test_remote_scenes_and_pairs_keep_their_urls_and_hide_their_tokens(
    http_server: Server, model_factory, tmp_path: Path
) -> None:
    """A scene and a --pair given as URLs with a token, served over real HTTP, reach GDAL
    whole (not cut to http:/) and score as the same files do locally; the token appears in
    no event, log line, message or report."""
    lr_path, hr_path = _box_pair(http_server.folder)
    model = model_factory(bands=4, scale=2)

    def url(path: Path) -> str:
        return f"{http_server.url}/{path.name}?token={SECRET}"

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "geosr", "evaluate", "--model", str(model), *args],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env={**os.environ, **HTTP_ENV},
        )

    report, page = tmp_path / "r.json", tmp_path / "r.html"
    done = run(
        *(url(hr_path), "--pair", url(lr_path), url(hr_path), "--degradation", "box"),
        *("--json", str(report), "--html", str(page), "--progress", "jsonl", "--verbose"),
    )
    assert done.returncode == 0, done.stderr
    assert http_server.bytes_served > 0
    for text in (done.stdout, done.stderr, report.read_text(), page.read_text()):
        assert SECRET not in text and "http:/127" not in text
    start = json.loads(done.stdout.splitlines()[0])
    assert start["event"] == "start" and start["scenes"][0].startswith(f"{http_server.url}/hr.tif")
    data = json.loads(report.read_text())
    assert [s["degradation"] for s in data["scenes"]] == ["box", "pair"]
    local = evaluate([hr_path], model, degradations=["box"], pairs=[(lr_path, hr_path)])
    for remote, result in zip(data["scenes"], local.results, strict=True):
        assert remote["scene"].startswith(f"{http_server.url}/hr.tif")
        for method, scores in result.metrics.items():  # another process: threads may differ
            assert remote["metrics"][method]["psnr"] == pytest.approx(scores["psnr"], rel=1e-4)
    missing = run(url(Path("nope.tif")), "--progress", "none")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert missing.stderr.count("\n") == 1 and f"{http_server.url}/nope.tif" in missing.stderr
    assert SECRET not in missing.stderr + missing.stdout


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
        scores = {k: v for k, v in original[method].items() if k != "seconds"}  # seconds: time
        for key, value in scores.items():
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


# --- strengths, self-ensemble and texture ---------------------------------------------------------


@pytest.fixture(scope="module")
def strengths_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[EvaluationReport, Path]:
    """srgan at three strengths (given out of order), each also with the self-ensemble, on a
    128x128 NAIP crop (32x32 LR at x4)."""
    folder = tmp_path_factory.mktemp("strengths")
    report = evaluate(
        [NAIP],
        "srgan",
        strengths=[1, 0, 0.5, 0.5],
        tta=True,
        max_size=128,
        degradations=["box"],
        json_path=folder / "r.json",
        figure=folder / "r.png",
        html_path=folder / "r.html",
    )
    return report, folder


PLAIN = ["strength 0", "strength 0.5", "strength 1"]


@needs_srgan
def test_strengths_are_methods_and_strength_0_is_srresnet(strengths_report) -> None:
    report, folder = strengths_report
    assert report.methods == [
        "strength 0",
        "strength 0 +tta",
        "strength 0.5",
        "strength 0.5 +tta",
        "strength 1",
        "strength 1 +tta",
        "bicubic",
        "lanczos",
    ]
    assert report.strengths == (0.0, 0.5, 1.0) and report.tta
    summary = report.summary()["box"]
    assert list(summary) == report.methods
    psnr = evaluate([NAIP], "srresnet", max_size=128, degradations=["box"]).summary()["box"]
    assert set(psnr) == {"model", "bicubic", "lanczos"}
    assert summary["strength 0"]["psnr"] == pytest.approx(psnr["model"]["psnr"], abs=0.01)
    assert summary["bicubic"]["psnr"] == pytest.approx(psnr["bicubic"]["psnr"], abs=1e-9)
    data = json.loads((folder / "r.json").read_text())
    assert data["methods"] == report.methods and data["strengths"] == [0.0, 0.5, 1.0]
    assert all(v["seconds"] > 0 for v in data["summary"]["box"].values())


@needs_srgan
def test_texture_grows_with_strength_towards_the_reference(strengths_report) -> None:
    summary = strengths_report[0].summary()["box"]
    for column in ("gradient_ratio", "hf_power_ratio"):
        values = [summary[m][column] for m in PLAIN]
        assert values == sorted(values), (column, values)
        assert summary["bicubic"][column] < values[0] < values[-1] < 1.0, column
    # bicubic has next to no power above half Nyquist; the GAN endpoint restores some
    assert (
        summary["bicubic"]["hf_power_ratio"] < 0.01 < 0.1 < summary["strength 1"]["hf_power_ratio"]
    )
    # fidelity goes the other way
    assert summary["strength 0"]["psnr"] > summary["strength 1"]["psnr"]


@needs_srgan
def test_self_ensemble_methods(strengths_report) -> None:
    summary = strengths_report[0].summary()["box"]
    for method in PLAIN:
        plain, tta = summary[method], summary[method + " +tta"]
        assert tta["psnr"] > plain["psnr"]  # the x8 average is closer on this crop
        # each run is timed; which took longer is not asserted (CI shares its cores)
        assert tta["psnr"] != plain["psnr"] and tta["seconds"] > 0 and plain["seconds"] > 0


@needs_srgan
def test_html_shows_the_table_texture_plot_and_textured_crops(strengths_report) -> None:
    report, folder = strengths_report
    page = (folder / "r.html").read_text()
    assert page.count('<img alt="') == 3  # texture plot, crops of the one result, centre crops
    assert '<img alt="PSNR against texture across strength" src="data:image/png;base64,' in page
    shown = "LR, bicubic, " + ", ".join(report.model_methods) + ", HR"
    assert f'<img alt="crops of {NAIP.name} (box): {shown}" src="data:image/png;base64,' in page
    for method in report.methods:
        assert f"<td>{method}</td>" in page
    assert "<th>hf_power_ratio</th>" in page and "<th>seconds</th>" in page
    assert (folder / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # two or three crops, inside the scene, apart, each with every displayed method
    result = report.results[0]
    assert 2 <= len(result.crops) <= 3
    for i, crop in enumerate(result.crops):
        assert crop.row + crop.size <= 128 and crop.col + crop.size <= 128
        assert list(crop.images) == ["LR", "bicubic", *report.model_methods, "HR"]
        assert all(image.shape == (4, crop.size, crop.size) for image in crop.images.values())
        for other in result.crops[:i]:
            assert abs(crop.row - other.row) >= crop.size or abs(crop.col - other.col) >= crop.size
    table = report.table()
    assert "strength 0.5 +tta" in table and "hf_power_ratio" in table
    assert max(len(line) for line in table.splitlines()[:-1]) <= 140


@needs_srgan
def test_correctness_scores_in_table_json_and_html(strengths_report) -> None:
    """opensr-test's improvement, omission and hallucination for every method, in every report."""
    report, folder = strengths_report
    scores = ("improvement", "omission", "hallucination")
    summary = report.summary()["box"]
    for method, values in summary.items():
        assert sum(values[s] for s in scores) == pytest.approx(1.0, abs=1e-9), method
    # bicubic mostly stays at the LR; the model moves towards the HR
    bicubic = summary["bicubic"]
    assert bicubic["omission"] > max(bicubic["improvement"], bicubic["hallucination"])
    assert summary["strength 0"]["improvement"] > bicubic["improvement"] + 0.05
    assert summary["strength 0"]["omission"] < bicubic["omission"] - 0.05
    data = json.loads((folder / "r.json").read_text())
    for s in scores:
        assert data["summary"]["box"]["strength 1"][s] == pytest.approx(summary["strength 1"][s])
        assert s in data["scenes"][0]["metrics"]["lanczos"]
        assert f"<th>{s}</th>" in (folder / "r.html").read_text()
    table = report.table().splitlines()
    header = next(line for line in table if line.split()[2:] == list(scores))
    assert table.index(header) > len(report.methods) + 1  # its own block, after the metrics


def test_crops_are_taken_where_the_reference_has_texture(model_factory, tmp_path: Path) -> None:
    """The left half of a real crop flattened to its mean: the best crop lies in the right
    half, and none lies wholly in the flat half."""
    scene = write_crop(NAIP, tmp_path / "half_flat.tif", Window(100, 50, 128, 128))
    with rasterio.open(scene, "r+") as dst:
        data = dst.read()
        data[:, :, :64] = data[:, :, :64].mean(axis=(1, 2), keepdims=True).astype(data.dtype)
        dst.write(data)
    report = evaluate([scene], model_factory(bands=4, scale=2), degradations=["box"])
    crops = report.results[0].crops
    where = [(c.row, c.col, c.size) for c in crops]
    assert len(crops) == 3 and crops[0].col >= 64, where
    assert all(c.col + c.size > 64 and c.size % 2 == 0 for c in crops), where
    assert {c.size for c in crops} == {42}  # a third of the side, whole LR pixels


def test_strength_for_a_model_without_a_dial_fails_before_any_work(model_factory) -> None:
    for model in ("srresnet", model_factory(bands=None, scale=2)):
        with pytest.raises(geosr.ModelError, match="no GAN endpoint") as error:
            evaluate(["/no/such.tif"], model, strengths=[0.5])  # the scene is never opened
        assert "\n" not in str(error.value)
    with pytest.raises(geosr.ConfigError, match="no strength given"):
        evaluate([LANDSAT8], "srgan", strengths=[])


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "geosr", "evaluate", *args, "--progress", "none"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@needs_srgan
def test_cli_strengths() -> None:
    ok = _cli(
        str(NAIP),
        "--max-size",
        "96",
        "--degradation",
        "box",
        "--strength",
        "0",
        "1",
        "--model",
        "srgan",
    )
    assert ok.returncode == 0, ok.stderr
    lines = ok.stdout.splitlines()
    for method in ("strength 0", "strength 1", "bicubic", "lanczos"):
        assert any(line.startswith(f"box         {method} ") for line in lines), method
    bad = _cli(str(NAIP), "--strength", "2", "--model", "srgan")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == [
        "geosr: error: argument --strength: expected a number from 0 to 1, got '2' "
        "(see 'geosr evaluate --help')"
    ]
    no_dial = _cli(str(NAIP), "--strength", "0.5", "--model", "srresnet")
    assert no_dial.returncode == 1 and "Traceback" not in no_dial.stderr
    assert len(no_dial.stderr.strip().splitlines()) == 1
    assert no_dial.stderr.startswith("geosr: error: model srresnet has no GAN endpoint")


@needs_srgan
def test_cli_preserve_spectra_scores_a_twin_per_strength(tmp_path: Path) -> None:
    """--preserve-spectra adds 'strength S +spectra' for each strength above 0: strength 0's
    spectral angle error with strength S's texture."""
    out = tmp_path / "r.json"
    done = _cli(
        str(NAIP),
        *("--max-size", "128", "--degradation", "box", "--model", "srgan"),
        *("--strength", "0", "1", "--preserve-spectra", "--json", str(out)),
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(out.read_text())
    assert data["methods"] == [
        "strength 0",
        "strength 1",
        "strength 1 +spectra",
        "bicubic",
        "lanczos",
    ]
    assert data["preserve_spectra"] and data["strengths"] == [0.0, 1.0]
    box = data["summary"]["box"]
    zero, one, kept = (box[m] for m in ("strength 0", "strength 1", "strength 1 +spectra"))
    assert kept["sam"] < one["sam"] and kept["sam"] < 1.02 * zero["sam"], (zero, one, kept)
    assert kept["gradient_ratio"] > zero["gradient_ratio"] * 1.05
    assert kept["lr_error"] <= 1.0
