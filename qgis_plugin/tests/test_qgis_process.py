"""The plugin in real QGIS through ``qgis_process.bin``: enable, list, run, and bad input."""

from __future__ import annotations

import pytest
from helpers import ALGORITHM_IDS, assert_clean_failure, leftovers, qgis_process, run_json, upscale


@pytest.fixture(scope="module")
def listing(qgis_env):
    return qgis_process(qgis_env, "list")


def test_list_contains_all_algorithms(listing):
    # A plugin that fails to import still lets `list` exit 0: check the ids themselves.
    assert listing.returncode == 0, listing.stderr
    assert "error loading plugin" not in listing.stderr, listing.stderr
    for algorithm_id in ALGORITHM_IDS:
        assert algorithm_id in listing.stdout, listing.stdout[-2000:] + listing.stderr


def test_upscale_keeps_georeference_of_a_landsat8_scene(qgis_env, scenes, models, gdal, work):
    """4 bands, uint16, no nodata, EPSG:32616 at 30 m -> 15 m."""
    output = work / "landsat8_x2.tif"
    result, _src, out = upscale(
        qgis_env,
        gdal,
        scenes["landsat8"],
        output,
        2,
        MODEL=models["bands4"],
        CHUNK_SIZE=64,
        DEVICE="cpu",
    )
    assert out.GetRasterBand(1).DataType == gdal.GDT_UInt16
    assert out.GetRasterBand(1).GetNoDataValue() is None
    assert out.GetRasterBand(1).ComputeRasterMinMax(False)[1] > 0
    log = "\n".join(result["log"]["info"])
    assert "geosr finished" in log
    assert leftovers(output) == [output]


def test_upscale_keeps_nodata_of_a_byte_scene(qgis_env, scenes, models, gdal, work):
    """3 bands, uint8, nodata 0 (a quarter of the crop is fill), band-shared model."""
    output = work / "rgb_x2.tif"
    _result, src, out = upscale(
        qgis_env, gdal, scenes["rgb"], output, 2, MODEL=models["shared"], CHUNK_SIZE=64
    )
    assert out.GetRasterBand(1).DataType == gdal.GDT_Byte
    assert out.GetRasterBand(1).GetNoDataValue() == 0
    # fill stays fill: the crop's nodata corner (top left) is nodata in the output too
    assert src.GetRasterBand(1).ReadAsArray(0, 0, 4, 4).max() == 0
    assert out.GetRasterBand(1).ReadAsArray(0, 0, 8, 8).max() == 0


def test_interpreter_without_geosr_fails_with_what_to_set(qgis_env, scenes, models, work):
    env = dict(qgis_env, GEOSR_PYTHON="/usr/bin/python3")
    output = work / "never.tif"
    code, _, stderr = run_json(
        env, "geosr:upscale", INPUT=scenes["rgb"], MODEL=models["rgb3"], OUTPUT=output
    )
    assert_clean_failure(code, stderr, "cannot import geosr", "GEOSR_PYTHON")
    assert not output.exists()


def test_band_mismatch_fails_with_the_childs_one_line_error(qgis_env, scenes, models, work):
    """A 4-band model on a 3-band raster: geosr's own message, no traceback, no output."""
    output = work / "mismatch.tif"
    code, _, stderr = run_json(
        qgis_env, "geosr:upscale", INPUT=scenes["rgb"], MODEL=models["bands4"], OUTPUT=output
    )
    assert_clean_failure(code, stderr, "geosr upscale failed:", "4 band")
    assert leftovers(output) == []


def test_output_equal_to_input_is_refused(qgis_env, scenes, models):
    source = scenes["rgb"]
    before = source.read_bytes()
    code, _, stderr = run_json(
        qgis_env, "geosr:upscale", INPUT=source, MODEL=models["rgb3"], OUTPUT=source
    )
    assert_clean_failure(code, stderr, "is the input raster")
    assert source.read_bytes() == before


def test_missing_model_file_fails_cleanly(qgis_env, scenes, work):
    output = work / "nomodel.tif"
    code, _, stderr = run_json(
        qgis_env,
        "geosr:upscale",
        INPUT=scenes["rgb"],
        MODEL=work / "no-such-model.safetensors",
        OUTPUT=output,
    )
    assert_clean_failure(code, stderr, "no-such-model")
    assert leftovers(output) == []
