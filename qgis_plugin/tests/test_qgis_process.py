"""The plugin in real QGIS through ``qgis_process.bin``: enable, list, run, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from helpers import (
    ALGORITHM_IDS,
    DATA,
    HERE,
    QGIS_PROCESS,
    assert_clean_failure,
    assert_same_georeference,
    child_env,
    leftovers,
    qgis_process,
    run_json,
    run_upscale,
    upscale,
)

BANDS = ("B2", "B3", "B4", "B5")
CPU_CHUNKS = {"CHUNK_SIZE": 64, "DEVICE": "cpu"}


@pytest.fixture(scope="module")
def listing(qgis_env):
    return qgis_process(qgis_env, "list")


def test_list_contains_all_algorithms(listing):
    # A plugin that fails to import still lets `list` exit 0: check the ids themselves.
    assert listing.returncode == 0, listing.stderr
    assert "error loading plugin" not in listing.stderr, listing.stderr
    for algorithm_id in ALGORITHM_IDS:
        assert algorithm_id in listing.stdout, listing.stdout[-2000:] + listing.stderr


def test_qgis_process_runs_with_a_virtualenv_active(qgis_env, tmp_path):
    """`make test` from an activated venv: QGIS's embedded Python would take that venv's
    python3 (first on PATH) for its prefix and fail ("Couldn't load SIP module")."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    [site] = venv.glob("lib/python3*/site-packages")
    active = dict(
        qgis_env,
        VIRTUAL_ENV=str(venv),
        PATH=os.pathsep.join([str(venv / "bin"), qgis_env["PATH"]]),
        PYTHONPATH=str(site),
    )
    # the tests' way (each environment for qgis_process comes from child_env), and
    # run_tests.sh's: its shell leaves the venv before it starts anything
    leave_venv = 'eval "$(/usr/bin/python3 -I "$0")" && exec "$1" list'
    runs = {
        "child_env": qgis_process(child_env(active), "list"),
        "run_tests.sh": subprocess.run(
            ["bash", "-c", leave_venv, str(HERE / "no_virtualenv.py"), QGIS_PROCESS],
            env=active,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            stdin=subprocess.DEVNULL,
        ),
    }
    for way, listing in runs.items():
        assert listing.returncode == 0, (way, listing.stderr[-2000:])
        assert "Couldn't load SIP module" not in listing.stderr, way
        assert "geosr:upscale" in listing.stdout, (way, listing.stderr[-2000:])


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


STACK_BANDS = [DATA / "landsat8_lc80200392015216" / "original" / f"l8_{b}.tif" for b in BANDS]


def test_upscale_stacks_single_band_rasters(qgis_env, models, gdal, work):
    """Four single-band Landsat files on one grid -> one 4-band output named after them."""
    output = work / "stack_x2.tif"
    run_upscale(qgis_env, output, STACK=STACK_BANDS, MODEL=models["bands4"], **CPU_CHUNKS)
    src, out = gdal.Open(str(STACK_BANDS[0])), gdal.Open(str(output))
    assert out.RasterCount == 4
    assert (out.RasterXSize, out.RasterYSize) == (src.RasterXSize * 2, src.RasterYSize * 2)
    assert [out.GetRasterBand(i).GetDescription() for i in range(1, 5)] == [
        f"l8_{b}" for b in BANDS
    ]
    assert out.GetGeoTransform()[1] == src.GetGeoTransform()[1] / 2


def test_upscale_reads_a_gdal_virtual_file(qgis_env, scenes, models, gdal, work):
    """A raster inside a ZIP, as /vsizip/: passed to geosr as is, output as from the file."""
    archive = work / "rgb_crop.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(scenes["rgb"], "crop.tif")
    name = f"/vsizip/{archive}/crop.tif"
    output = work / "vsizip_x2.tif"
    # a project holding the layer, as in QGIS desktop (qgis_process loads no /vsi name itself)
    from qgis.core import QgsProject, QgsRasterLayer

    project = QgsProject()
    layer = QgsRasterLayer(name, "zipped_crop", "gdal")
    assert layer.isValid()
    project.addMapLayer(layer)
    assert project.write(str(work / "vsizip.qgs"))
    code, result, stderr = run_json(
        qgis_env,
        "geosr:upscale",
        PROJECT_PATH=work / "vsizip.qgs",
        INPUT=layer.id(),
        MODEL=models["shared"],
        CHUNK_SIZE=64,
        DEVICE="cpu",
        OUTPUT=output,
    )
    assert code == 0, stderr
    _src, out = assert_same_georeference(gdal, name, output, 2)
    assert name in "\n".join(result["log"]["info"])  # the command line geosr ran
    direct = work / "direct_x2.tif"
    upscale(qgis_env, gdal, scenes["rgb"], direct, 2, MODEL=models["shared"], CHUNK_SIZE=64)
    reference = gdal.Open(str(direct))
    for index in (1, 2, 3):
        a = out.GetRasterBand(index).ReadAsArray()
        b = reference.GetRasterBand(index).ReadAsArray()
        assert (a == b).all()


def test_upscale_writes_a_zarr_store(qgis_env, scenes, models, gdal, work):
    output = work / "landsat8_x2.zarr"
    run_upscale(qgis_env, output, INPUT=scenes["landsat8"], MODEL=models["bands4"], **CPU_CHUNKS)
    assert output.is_dir()
    assert (output / ".zgroup").is_file()
    assert (output / "band_data").is_dir()
    assert not [p for p in work.iterdir() if p.name.startswith(".landsat8_x2.")]
    array = (
        gdal.OpenEx(str(output), gdal.OF_MULTIDIM_RASTER).GetRootGroup().OpenMDArray("band_data")
    )
    src = gdal.Open(str(scenes["landsat8"]))
    shape = [dimension.GetSize() for dimension in array.GetDimensions()]
    assert shape == [4, src.RasterYSize * 2, src.RasterXSize * 2]


L2A = DATA / "s2_l2a_t32tmt" / "S2A_MSIL2A_20190530T103031_N0400_R108_T32TMT_20190530T103031.SAFE"
L2A_10M = (  # the 10 m band files, B{}: 02, 03, 04, 08
    L2A
    / "GRANULE"
    / "L2A_T32TMT_A020476_20190530T103031"
    / "IMG_DATA"
    / "R10m"
    / "T32TMT_20190530T103031_B{}_10m.jp2"
)


@pytest.mark.parametrize(
    "case, needles",
    [
        ("both", ["not both an input raster and rasters to stack", "empty one of them"]),
        ("neither", ["Give an input", "none was given"]),
        ("cog_zarr", ["Cloud Optimized GeoTIFF cannot be a Zarr store", ".tif"]),
        ("bands_stack", ["not to rasters to stack", "leave Bands empty"]),
        ("product_input", ["not both an input raster and a product file", "empty one of them"]),
        ("folder_stack", ["not both rasters to stack and a product folder", "empty one of"]),
        ("names_bands", ["by number (Bands) or by name (Band names), not both", "empty one"]),
        ("bands_product", ["not to a product folder", "leave Bands empty", "Band names"]),
    ],
)
def test_upscale_refuses_contradictory_inputs(qgis_env, scenes, models, work, case, needles):
    """Refused before geosr runs, with one line naming the problem and the fix; nothing is
    written (neither the output nor its STAC Item)."""
    output = work / f"refused_{case}.tif"
    parameters = {
        "both": {"INPUT": scenes["landsat8"], "STACK": STACK_BANDS[0]},
        "neither": {},
        "cog_zarr": {"INPUT": scenes["landsat8"], "COG": "true"},
        "bands_stack": {"STACK": STACK_BANDS, "BANDS": "1"},
        "product_input": {"INPUT": scenes["landsat8"], "PRODUCT": L2A / "MTD_MSIL2A.xml"},
        "folder_stack": {"STACK": STACK_BANDS, "PRODUCT_FOLDER": L2A},
        "names_bands": {"INPUT": scenes["landsat8"], "BANDS": "1", "BAND_NAMES": "B4,B3"},
        "bands_product": {"PRODUCT_FOLDER": L2A, "BANDS": "1"},
    }[case]
    if case == "cog_zarr":
        output = output.with_suffix(".zarr")
    code, _, stderr = run_json(
        qgis_env,
        "geosr:upscale",
        MODEL=models["bands4"],
        STAC="true",
        OUTPUT=output,
        **parameters,
    )
    assert_clean_failure(code, stderr, *needles)
    # one message (qgis_process 3.22 prints an algorithm's error twice), all on one line
    lines = {line for line in stderr.splitlines() if needles[0] in line}
    assert len(lines) == 1, stderr
    [line] = lines
    assert all(needle in line for needle in needles), stderr
    assert leftovers(output) == []
    assert not output.with_suffix(".json").exists()
    assert "geosr upscale" not in stderr  # no child ran


def test_product_folder_onto_its_10m_grid(qgis_env, gdal, work):
    """An L2A SAFE folder, bands by name, RESOLUTION = the finest band's 10 m: the aligner
    only (no super-resolution network). The output lies exactly on the 10 m bands' grid with
    their names; the 10 m bands keep their pixels where SCL says clear, and the 20 m B8A is
    brought onto it by the bundled guided model, which GEOSR_ALIGNER names."""
    output = work / "l2a_10m.tif"
    result = run_upscale(
        qgis_env, output, PRODUCT_FOLDER=L2A, BAND_NAMES="B04,B03,B02,B8A", RESOLUTION=10
    )
    assert result["results"]["STAC_ITEM"] is None
    assert not output.with_suffix(".json").exists()
    out = gdal.Open(str(output))
    for index, name in enumerate(("04", "03", "02"), start=1):
        ten = gdal.Open(str(L2A_10M).format(name))
        assert out.GetGeoTransform() == ten.GetGeoTransform()
        assert (out.RasterXSize, out.RasterYSize) == (ten.RasterXSize, ten.RasterYSize)
        band = out.GetRasterBand(index)
        clear = band.GetMaskBand().ReadAsArray() > 0
        assert 0.05 < clear.mean() < 0.95  # SCL's clouds are masked, the rest kept
        assert (band.ReadAsArray()[clear] == ten.GetRasterBand(1).ReadAsArray()[clear]).all()
    assert out.GetSpatialRef().IsSame(ten.GetSpatialRef())
    names = [out.GetRasterBand(i).GetDescription() for i in range(1, out.RasterCount + 1)]
    assert names == ["B04", "B03", "B02", "B8A"]
    aligner = out.GetMetadataItem("GEOSR_ALIGNER")
    assert aligner == "guided s2-guided (B8A x2 guided by B02 B03 B04 B08)"
    assert out.GetMetadataItem("GEOSR_MODEL") == "none (aligner only)"
    assert out.GetMetadataItem("GEOSR_MASK") == "clouds"


def test_product_metadata_file_with_a_model_and_a_stac_item(qgis_env, models, gdal, work):
    """The L2A's MTD_MSIL2A.xml through a x4 model: 2.5 m on the 10 m grid's footprint, the
    20 m band B8A brought onto it by cubic resampling (GUIDED none), and a STAC Item beside
    the output describing it."""
    output = work / "l2a_x4.tif"
    result = run_upscale(
        qgis_env,
        output,
        PRODUCT=L2A / "MTD_MSIL2A.xml",
        MODEL=models["shared_x4"],
        BAND_NAMES="B04, B03,B02,B8A",  # spaces after commas are dropped
        MASK="nodata",
        GUIDED="none",
        STAC="true",
        **CPU_CHUNKS,
    )
    item_path = output.with_suffix(".json")
    assert result["results"]["STAC_ITEM"] == str(item_path)
    ten = gdal.Open(str(L2A_10M).format("04"))
    out = gdal.Open(str(output))
    x0, dx, _, y0, _, dy = ten.GetGeoTransform()
    assert (dx, dy) == (10, -10)
    assert out.GetGeoTransform() == (x0, dx / 4, 0.0, y0, 0.0, dy / 4)
    assert (out.RasterXSize, out.RasterYSize) == (192 * 4, 192 * 4)
    names = [out.GetRasterBand(i).GetDescription() for i in range(1, 5)]
    assert names == ["B04", "B03", "B02", "B8A"]
    assert out.GetMetadataItem("GEOSR_MODEL") == "shared_x4.safetensors"
    assert out.GetMetadataItem("GEOSR_ALIGNER") == "cubic"
    assert out.GetMetadataItem("GEOSR_MASK") == "nodata"
    item = json.loads(item_path.read_text())
    assert item["type"] == "Feature"
    assert item["id"] == "l2a_x4"
    assets = list(item["assets"].values())
    assert [os.path.basename(asset["href"]) for asset in assets] == ["l2a_x4.tif"]
    assert [band["name"] for band in assets[0]["eo:bands"]] == names
    assert item["properties"]["proj:shape"] == [768, 768]
    assert leftovers(output) == [output]


def model_tag(gdal, path) -> str:
    """The GEOSR_MODEL tag geosr writes: which model made the output, and how."""
    return gdal.Open(str(path)).GetMetadataItem("GEOSR_MODEL")


def test_strength_reaches_the_bundled_srgan(qgis_env, scenes, gdal, work):
    """MODEL left empty: the default model (srgan, which has a strength dial) at strength 0
    (its PSNR model) and 1 (its GAN endpoint) gives two different outputs, each tagged."""
    pixels = {}
    for strength in (0, 1):
        output = work / f"strength{strength}_x4.tif"
        _result, _src, out = upscale(
            qgis_env, gdal, scenes["landsat8"], output, 4, STRENGTH=strength, **CPU_CHUNKS
        )
        assert model_tag(gdal, output) == f"srgan, strength {strength}"
        pixels[strength] = [out.GetRasterBand(b).ReadAsArray() for b in range(1, 5)]
    assert any((a != b).any() for a, b in zip(pixels[0], pixels[1], strict=True))


def test_strength_on_a_model_without_a_dial_fails_cleanly(qgis_env, scenes, models, work):
    output = work / "no_dial.tif"
    code, _, stderr = run_json(
        qgis_env,
        "geosr:upscale",
        INPUT=scenes["landsat8"],
        MODEL=models["shared"],
        STRENGTH=0.5,
        OUTPUT=output,
        **CPU_CHUNKS,
    )
    assert_clean_failure(code, stderr, "geosr upscale failed:", "no strength to set")
    # one line, the child's own message (qgis_process 3.22 prints an algorithm's error twice)
    lines = {line for line in stderr.splitlines() if "strength" in line}
    assert len(lines) == 1, stderr
    assert lines.pop().startswith("geosr upscale failed: model shared.safetensors has no"), stderr
    assert leftovers(output) == []


def test_preserve_spectra_reaches_geosr(qgis_env, scenes, gdal, work):
    """PRESERVE_SPECTRA=true at strength 1 keeps strength 0's band ratios: the spectral angle
    between the two outputs is a small fraction of the one a plain strength-1 run makes
    (4.6 mrad on this scene), while the texture of strength 1 stays."""
    bands = {}
    for name, options in {
        "s0": {"STRENGTH": 0},
        "kept": {"STRENGTH": 1, "PRESERVE_SPECTRA": "true"},
    }.items():
        output = work / f"spectra_{name}_x4.tif"
        _result, _src, out = upscale(
            qgis_env, gdal, scenes["landsat8"], output, 4, **options, **CPU_CHUNKS
        )
        bands[name] = np.stack([out.GetRasterBand(b).ReadAsArray() for b in range(1, 5)]).astype(
            float
        )
    assert (
        model_tag(gdal, work / "spectra_kept_x4.tif") == "srgan, strength 1, spectra of strength 0"
    )
    a, b = bands["s0"], bands["kept"]
    cosine = (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))
    assert float(np.arccos(np.clip(cosine, -1, 1)).mean()) < 1e-3
    assert np.abs(np.diff(b, axis=-1)).mean() > 1.05 * np.abs(np.diff(a, axis=-1)).mean()


def test_uncertainty_is_written_beside_the_output(qgis_env, scenes, gdal, work):
    """UNCERTAINTY=true writes scene_x4_uncertainty.tif on the output's grid: float32, one
    band per output band, positive, and returned as the UNCERTAINTY_OUTPUT layer."""
    output = work / "uncertain_x4.tif"
    result, _src, out = upscale(
        qgis_env, gdal, scenes["landsat8"], output, 4, UNCERTAINTY="true", **CPU_CHUNKS
    )
    sidecar = work / "uncertain_x4_uncertainty.tif"
    assert result["results"]["UNCERTAINTY_OUTPUT"] == str(sidecar)
    error = gdal.Open(str(sidecar))
    assert (error.RasterXSize, error.RasterYSize) == (out.RasterXSize, out.RasterYSize)
    assert error.GetGeoTransform() == out.GetGeoTransform()
    assert error.RasterCount == out.RasterCount
    values = error.GetRasterBand(1).ReadAsArray()
    assert values.dtype == np.float32 and float(values.min()) > 0


def test_tta_reaches_geosr(qgis_env, scenes, models, gdal, work):
    """TTA=true runs the x8 self-ensemble: the tag says so and the pixels differ from a plain
    run of the same (untrained, so not flip-invariant) model."""
    outputs = {}
    for tta in ("false", "true"):
        outputs[tta] = work / f"tta_{tta}_x2.tif"
        upscale(
            qgis_env,
            gdal,
            scenes["rgb"],
            outputs[tta],
            2,
            MODEL=models["shared"],
            TTA=tta,
            **CPU_CHUNKS,
        )
    assert model_tag(gdal, outputs["true"]) == "shared.safetensors, tta x8"
    assert "tta" not in model_tag(gdal, outputs["false"])
    plain, tta = (gdal.Open(str(path)) for path in outputs.values())  # keep datasets open
    assert (plain.GetRasterBand(1).ReadAsArray() != tta.GetRasterBand(1).ReadAsArray()).any()


def test_input_outside_the_training_domain_warns_in_the_log_or_is_refused(
    qgis_env, scenes, geosr_python, gdal, work
):
    """The input contract: a model whose card records a training domain (srgan's), given a
    real crop whose georeference claims 0.3 m pixels: one warning in the QGIS log; with
    STRICT, geosr's one-line refusal and no output."""
    model = work / "domain.safetensors"
    script = (
        "import sys, geosr\n"
        "model = geosr.build_model(bands=None, scale=2, width=8, blocks=1)\n"
        "geosr.save_model(model, sys.argv[1], domain=geosr.read_meta('srgan').domain)\n"
    )
    subprocess.run([geosr_python, "-c", script, str(model)], check=True, capture_output=True)
    fine = work / "rgb_fine.tif"
    gdal.Translate(str(fine), str(scenes["rgb"]))
    dataset = gdal.Open(str(fine), gdal.GA_Update)
    x, _, _, y, _, _ = dataset.GetGeoTransform()
    dataset.SetGeoTransform((x, 0.3, 0.0, y, 0.0, -0.3))
    dataset = None
    output = work / "rgb_fine_x2.tif"
    code, result, stderr = run_json(
        qgis_env, "geosr:upscale", INPUT=fine, MODEL=model, OUTPUT=output, **CPU_CHUNKS
    )
    assert code == 0, stderr
    logged = json.dumps(result.get("log", {})) + stderr
    assert logged.count("scene pixel 0.3 m; this model saw 5") == 1, logged
    output.unlink()
    code, _, stderr = run_json(
        qgis_env,
        "geosr:upscale",
        INPUT=fine,
        MODEL=model,
        OUTPUT=output,
        STRICT=True,
        **CPU_CHUNKS,
    )
    assert_clean_failure(code, stderr, "geosr upscale failed:", "scene pixel 0.3 m")
    assert leftovers(output) == []
