"""geosr:train and geosr:evaluate through qgis_process: listed, bad input, end to end.

The end-to-end runs need ``python -m geosr.train`` and ``geosr evaluate`` (issue 3) in geosr's
interpreter; with an older geosr that lacks them they are skipped with that reason.
"""

from __future__ import annotations

import json

import pytest
from helpers import assert_clean_failure, leftovers, needs, run_json, upscale


def evaluate(env: dict[str, str], scene, model, html, report) -> tuple[int, dict, str]:
    """geosr:evaluate at scale 2 through qgis_process: (exit code, JSON result, stderr)."""
    return run_json(
        env,
        "geosr:evaluate",
        INPUT=scene,
        MODEL=model,
        SCALE=2,
        OUTPUT_HTML=html,
        OUTPUT_JSON=report,
    )


@pytest.mark.parametrize("algorithm_id", ["geosr:upscale", "geosr:train", "geosr:evaluate"])
def test_missing_interpreter_fails_with_how_to_set_one_up(qgis_env, scenes, work, algorithm_id):
    env = dict(qgis_env)
    env.pop("GEOSR_PYTHON")
    outputs = {
        "geosr:upscale": {"OUTPUT": work / "never.tif"},
        "geosr:train": {"OUTPUT": work / "never.safetensors"},
        "geosr:evaluate": {"OUTPUT_HTML": work / "never.html", "OUTPUT_JSON": work / "never.json"},
    }[algorithm_id]
    code, _, stderr = run_json(env, algorithm_id, INPUT=scenes["landsat8"], **outputs)
    assert_clean_failure(
        code,
        stderr,
        "Plugins \u203a geosr \u203a Set up geosr\u2026",
        "GEOSR_PYTHON",
        "Settings \u203a Options \u203a Processing \u203a Providers \u203a geosr",
    )
    for path in outputs.values():
        assert not path.exists()


def test_evaluate_refuses_html_equal_to_json(qgis_env, scenes, models, work):
    report = work / "same.html"
    code, _, stderr = evaluate(qgis_env, scenes["landsat8"], models["bands4"], report, report)
    assert_clean_failure(code, stderr, "must differ")
    assert not report.exists()


def test_train_rejects_a_non_raster_input(qgis_env, models, work):
    code, _, stderr = run_json(
        qgis_env, "geosr:train", INPUT=models["bands4"], OUTPUT=work / "x.safetensors"
    )
    assert_clean_failure(code, stderr)


@needs("train")
def test_train_writes_a_model_that_upscale_accepts(qgis_env, scenes, gdal, work):
    model = work / "trained.safetensors"
    code, result, stderr = run_json(
        qgis_env,
        "geosr:train",
        INPUT=scenes["landsat8_large"],
        SCALE=2,
        STAGE="pretrain",
        STEPS=2,
        BATCH_SIZE=2,
        PATCH_SIZE=32,
        DEVICE="cpu",
        OUTPUT=model,
    )
    assert code == 0, stderr
    assert result["results"]["OUTPUT"] == str(model)
    assert model.is_file() and model.stat().st_size > 0
    assert not list(work.glob(".geosr-train-*")), "the training folder was left behind"
    log = "\n".join(result["log"]["info"])
    assert "geosr finished" in log
    upscale(
        qgis_env, gdal, scenes["landsat8"], work / "with_trained.tif", 2, MODEL=model, CHUNK_SIZE=64
    )


@needs("evaluate")
def test_evaluate_writes_html_json_and_figure(qgis_env, scenes, models, work):
    html, report = work / "report.html", work / "report.json"
    code, result, stderr = evaluate(qgis_env, scenes["landsat8"], models["bands4"], html, report)
    assert code == 0, stderr
    figure = work / "report.png"
    assert result["results"]["FIGURE"] == str(figure)
    assert html.stat().st_size > 0 and figure.stat().st_size > 0
    assert json.loads(report.read_text())


@needs("evaluate")
def test_evaluate_band_mismatch_fails_cleanly(qgis_env, scenes, models, work):
    html, report = work / "bad.html", work / "bad.json"
    code, _, stderr = evaluate(qgis_env, scenes["rgb"], models["bands4"], html, report)
    assert_clean_failure(code, stderr, "geosr evaluate failed:")
    assert leftovers(html) == [] and leftovers(report) == []
