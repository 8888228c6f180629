"""Unit tests of the provider, its algorithms and parameter definitions (pytest-qgis, in process)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile

import geosr_qgis
import pytest
from geosr_qgis import environment, runner
from geosr_qgis.alg_evaluate import EvaluateAlgorithm
from geosr_qgis.alg_train import TrainAlgorithm
from geosr_qgis.alg_upscale import UpscaleAlgorithm
from geosr_qgis.algorithm import raster_path
from geosr_qgis.provider import GeosrProvider
from helpers import ALGORITHM_IDS, PLUGIN_PARENT, RecordingFeedback
from qgis.core import (
    QgsApplication,
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterBand,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsRasterLayer,
    QgsSettings,
)

EXPECTED_PARAMETERS = {
    "geosr:upscale": {
        "INPUT": QgsProcessingParameterRasterLayer,
        "STACK": QgsProcessingParameterMultipleLayers,
        "PRODUCT": QgsProcessingParameterFile,
        "PRODUCT_FOLDER": QgsProcessingParameterFile,
        "MODEL": QgsProcessingParameterFile,
        "BAND_NAMES": QgsProcessingParameterString,
        "RESOLUTION": QgsProcessingParameterNumber,
        "STRENGTH": QgsProcessingParameterNumber,
        "TTA": QgsProcessingParameterBoolean,
        "PRESERVE_SPECTRA": QgsProcessingParameterBoolean,
        "STRICT": QgsProcessingParameterBoolean,
        "UNCERTAINTY": QgsProcessingParameterBoolean,
        "DEVICE": QgsProcessingParameterEnum,
        "CHUNK_SIZE": QgsProcessingParameterNumber,
        "BANDS": QgsProcessingParameterBand,
        "MASK": QgsProcessingParameterEnum,
        "GUIDED": QgsProcessingParameterEnum,
        "COG": QgsProcessingParameterBoolean,
        "STAC": QgsProcessingParameterBoolean,
        "OUTPUT": QgsProcessingParameterRasterDestination,
    },
    "geosr:train": {
        "INPUT": QgsProcessingParameterMultipleLayers,
        "BANDS": QgsProcessingParameterNumber,
        "SCALE": QgsProcessingParameterEnum,
        "STAGE": QgsProcessingParameterEnum,
        "STEPS": QgsProcessingParameterNumber,
        "INIT": QgsProcessingParameterFile,
        "DEVICE": QgsProcessingParameterEnum,
        "BATCH_SIZE": QgsProcessingParameterNumber,
        "PATCH_SIZE": QgsProcessingParameterNumber,
        "OUTPUT": QgsProcessingParameterFileDestination,
    },
    "geosr:evaluate": {
        "INPUT": QgsProcessingParameterMultipleLayers,
        "MODEL": QgsProcessingParameterFile,
        "SCALE": QgsProcessingParameterEnum,
        "DEVICE": QgsProcessingParameterEnum,
        "OUTPUT_HTML": QgsProcessingParameterFileDestination,
        "OUTPUT_JSON": QgsProcessingParameterFileDestination,
    },
    "geosr:setup": {
        "PYTHON": QgsProcessingParameterFile,
        "WHEEL": QgsProcessingParameterFile,
        "PIP_OPTIONS": QgsProcessingParameterString,
        "ENV_DIR": QgsProcessingParameterFile,
    },
}


@pytest.fixture()
def provider(qgis_processing):
    """The plugin loaded as QGIS desktop loads it: classFactory(iface).initGui()."""
    registry = QgsApplication.processingRegistry()
    plugin = geosr_qgis.classFactory(None)
    plugin.initGui()
    assert plugin.provider is not None
    yield registry.providerById("geosr")
    plugin.unload()
    assert registry.providerById("geosr") is None


@pytest.fixture()
def no_interpreter(setting, monkeypatch):
    """Neither the provider setting nor GEOSR_PYTHON is set (both restored afterwards)."""
    settings = QgsSettings()
    settings.remove(environment.SETTING_QNAME)
    monkeypatch.delenv("GEOSR_PYTHON", raising=False)
    return settings


def test_metadata_declares_a_processing_provider():
    text = (PLUGIN_PARENT / "geosr_qgis" / "metadata.txt").read_text()
    fields = dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and line[0] != " "
    )
    assert fields["hasProcessingProvider"] == "yes"
    assert fields["qgisMinimumVersion"] == "3.22"
    for key in ("name", "version", "about", "tracker", "repository", "homepage", "icon"):
        assert fields.get(key), key
    assert (PLUGIN_PARENT / "geosr_qgis" / fields["icon"]).is_file()


def test_provider_lists_its_algorithms(provider):
    assert provider.id() == "geosr"
    assert provider.name() == "geosr"
    assert not provider.icon().isNull()
    assert os.path.isfile(provider.svgIconPath())
    ids = sorted(algorithm.id() for algorithm in provider.algorithms())
    assert ids == sorted(ALGORITHM_IDS)
    for algorithm in provider.algorithms():
        if algorithm.id() == "geosr:setup":
            assert (algorithm.group(), algorithm.groupId()) == ("Set-up", "setup")
        else:
            assert algorithm.group() == "Super-resolution"
            assert algorithm.groupId() == "superresolution"
        assert not algorithm.icon().isNull()
        assert len(algorithm.shortHelpString()) > 200
        assert algorithm.displayName()


def test_setting_registered_under_providers_geosr(provider):
    from processing.core.ProcessingConfig import ProcessingConfig

    setting = ProcessingConfig.settings[environment.SETTING_KEY]
    assert setting.group == "geosr"  # the group shown under Options > Processing > Providers


@pytest.mark.parametrize("algorithm_id", ALGORITHM_IDS)
def test_parameters_declared_with_help(provider, algorithm_id):
    algorithm = QgsApplication.processingRegistry().createAlgorithmById(algorithm_id)
    definitions = {p.name(): p for p in algorithm.parameterDefinitions()}
    expected = EXPECTED_PARAMETERS[algorithm_id]
    assert set(definitions) == set(expected)
    for name, kind in expected.items():
        assert isinstance(definitions[name], kind), name
        assert definitions[name].help(), f"{algorithm_id} {name} has no help"
        assert definitions[name].help() in algorithm.shortHelpString()
        # the parameter name is a class constant, used everywhere instead of the string
        assert getattr(type(algorithm), name) == name


def test_upscale_parameter_details(provider):
    algorithm = QgsApplication.processingRegistry().createAlgorithmById("geosr:upscale")
    model = algorithm.parameterDefinition("MODEL")
    assert model.flags() & QgsProcessingParameterDefinition.FlagOptional
    assert model.extension() == "safetensors"
    device = algorithm.parameterDefinition("DEVICE")
    assert device.options() == ["auto", "cpu", "cuda"]
    assert device.defaultValue() == "auto"
    assert device.usesStaticStrings()
    strength = algorithm.parameterDefinition("STRENGTH")
    assert strength.flags() & QgsProcessingParameterDefinition.FlagOptional
    assert strength.dataType() == QgsProcessingParameterNumber.Double
    assert (strength.minimum(), strength.maximum()) == (0.0, 1.0)
    assert algorithm.parameterDefinition("TTA").defaultValue() is False
    assert algorithm.parameterDefinition("PRESERVE_SPECTRA").defaultValue() is False
    strict = algorithm.parameterDefinition("STRICT")
    assert strict.defaultValue() is False
    assert strict.flags() & QgsProcessingParameterDefinition.FlagAdvanced
    chunk = algorithm.parameterDefinition("CHUNK_SIZE")
    assert chunk.flags() & QgsProcessingParameterDefinition.FlagOptional
    assert chunk.dataType() == QgsProcessingParameterNumber.Integer
    assert algorithm.parameterDefinition("BANDS").parentLayerParameterName() == "INPUT"
    output = algorithm.parameterDefinition("OUTPUT")
    assert output.defaultFileExtension() == "tif"
    assert output.supportedOutputRasterLayerExtensions() == ["tif", "zarr"]
    assert "*.zarr" in output.createFileFilter()
    for name in ("INPUT", "STACK"):
        assert (
            algorithm.parameterDefinition(name).flags()
            & QgsProcessingParameterDefinition.FlagOptional
        )
    stack = algorithm.parameterDefinition("STACK")
    assert stack.layerType() == QgsProcessing.TypeRaster
    assert not stack.flags() & QgsProcessingParameterDefinition.FlagAdvanced


def test_upscale_product_parameter_details(provider):
    """The product parameters: types, defaults, which are optional and which advanced."""
    algorithm = QgsApplication.processingRegistry().createAlgorithmById("geosr:upscale")

    def flagged(name, flag):
        return bool(algorithm.parameterDefinition(name).flags() & flag)

    optional = QgsProcessingParameterDefinition.FlagOptional
    advanced = QgsProcessingParameterDefinition.FlagAdvanced
    for name in ("PRODUCT", "PRODUCT_FOLDER", "BAND_NAMES", "RESOLUTION"):
        assert flagged(name, optional), name
        assert not flagged(name, advanced), name
    for name in ("MASK", "GUIDED", "STAC"):
        assert flagged(name, advanced), name
    product = algorithm.parameterDefinition("PRODUCT")
    assert product.behavior() == QgsProcessingParameterFile.File
    for pattern in ("*.zip", "*.xml", "*.txt", "*.json"):
        assert pattern in product.fileFilter()
    # product files of every kind, and a STAC Item URL of an API, which has no extension
    for value in ("S2B_MSIL2A.SAFE.zip", "MTD_MSIL2A.xml", "LC08_MTL.txt", "item.json"):
        assert product.checkValueIsAcceptable(value), value
    assert product.checkValueIsAcceptable("https://stac.example.org/collections/s2/items/ID")
    folder = algorithm.parameterDefinition("PRODUCT_FOLDER")
    assert folder.behavior() == QgsProcessingParameterFile.Folder
    resolution = algorithm.parameterDefinition("RESOLUTION")
    assert resolution.dataType() == QgsProcessingParameterNumber.Double
    assert resolution.minimum() == 0.0
    assert resolution.defaultValue() is None
    mask = algorithm.parameterDefinition("MASK")
    assert mask.options() == ["auto", "clouds", "nodata", "none"]
    assert mask.defaultValue() == "auto"
    assert mask.usesStaticStrings()
    guided = algorithm.parameterDefinition("GUIDED")
    assert guided.options() == ["auto", "none", "s2-guided", "landsat-pan"]
    assert guided.defaultValue() == "auto" and guided.usesStaticStrings()
    assert algorithm.parameterDefinition("STAC").defaultValue() is False
    assert algorithm.parameterDefinition("BAND_NAMES").defaultValue() is None
    assert [o.name() for o in algorithm.outputDefinitions()] == [
        "OUTPUT",
        "STAC_ITEM",
        "UNCERTAINTY_OUTPUT",
    ]
    for kind in ("Sentinel-2 SAFE", "MTD_MSIL2A.xml", "_MTL.txt", "STAC Item"):
        assert kind in algorithm.shortHelpString().split("<h3>")[0], kind


def test_vsi_layers_pass_through_as_gdal_names(provider, scenes, tmp_path):
    """A layer read through a GDAL virtual file system is given to geosr under its /vsi name;
    a local file that does not exist is still refused."""
    archive = tmp_path / "crop.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(scenes["rgb"], "crop.tif")
    name = f"/vsizip/{archive}/crop.tif"
    layer = QgsRasterLayer(name, "zipped", "gdal")
    assert layer.isValid()
    assert raster_path(layer, "Input raster") == name
    remote = QgsRasterLayer("/vsicurl/https://example.invalid/scene.tif", "remote", "gdal")
    assert raster_path(remote, "Input raster") == "/vsicurl/https://example.invalid/scene.tif"
    local = QgsRasterLayer(str(scenes["rgb"]), "local", "gdal")
    assert raster_path(local, "Input raster") == str(scenes["rgb"])
    missing = QgsRasterLayer(str(tmp_path / "gone.tif"), "gone", "gdal")
    with pytest.raises(QgsProcessingException, match="not a raster file on disk"):
        raster_path(missing, "Input raster")


def test_train_and_evaluate_parameter_details(provider):
    registry = QgsApplication.processingRegistry()
    train = registry.createAlgorithmById("geosr:train")
    assert train.parameterDefinition("STAGE").options() == ["pretrain", "gan"]
    assert train.parameterDefinition("SCALE").options() == ["2", "4", "8"]
    assert train.parameterDefinition("SCALE").defaultValue() == "4"
    assert (
        train.parameterDefinition("BANDS").flags() & QgsProcessingParameterDefinition.FlagOptional
    )
    assert "safetensors" in train.parameterDefinition("OUTPUT").fileFilter()
    evaluate = registry.createAlgorithmById("geosr:evaluate")
    assert "html" in evaluate.parameterDefinition("OUTPUT_HTML").fileFilter()
    assert "json" in evaluate.parameterDefinition("OUTPUT_JSON").fileFilter()
    assert [o.name() for o in evaluate.outputDefinitions()] == [
        "OUTPUT_HTML",
        "OUTPUT_JSON",
        "FIGURE",
    ]


def test_duplicate_provider_is_not_kept(provider):
    """addProvider() deletes a duplicate; the second plugin instance must not keep it."""
    second = geosr_qgis.classFactory(None)
    second.initProcessing()
    assert second.provider is None
    second.unload()  # must not touch the deleted C++ object
    assert QgsApplication.processingRegistry().providerById("geosr") is not None


def test_missing_interpreter_names_the_set_up_and_the_manual_way(no_interpreter):
    with pytest.raises(QgsProcessingException) as raised:
        environment.resolve_python()
    message = str(raised.value)
    assert "\n" not in message
    assert "Plugins \u203a geosr \u203a Set up geosr\u2026" in message
    assert "geosr:setup" in message
    assert "GEOSR_PYTHON" in message
    assert "Settings \u203a Options \u203a Processing \u203a Providers \u203a geosr" in message


def test_setting_wins_over_environment(no_interpreter, monkeypatch, tmp_path):
    monkeypatch.setenv("GEOSR_PYTHON", "/usr/bin/python3")
    assert environment.configured_python()[0] == "/usr/bin/python3"
    missing = str(tmp_path / "no-such-python")
    no_interpreter.setValue(environment.SETTING_QNAME, missing)
    value, source = environment.configured_python()
    assert value == missing
    assert "provider setting" in source
    with pytest.raises(QgsProcessingException, match="is not an executable file"):
        environment.resolve_python()


def test_interpreter_without_geosr_is_refused(no_interpreter, monkeypatch, tmp_path):
    # QGIS's own Python has no geosr: the check runs in a neutral folder, so a source
    # checkout in the current folder cannot make the import succeed by accident.
    monkeypatch.setenv("GEOSR_PYTHON", "/usr/bin/python3")
    monkeypatch.chdir(PLUGIN_PARENT.parent)
    with pytest.raises(QgsProcessingException) as raised:
        environment.resolve_python()
    message = str(raised.value)
    assert "cannot import geosr" in message
    assert "Set up geosr" in message
    assert "/usr/bin/python3 -m pip install geosr" in message
    assert "Traceback" not in message


def test_child_environment_is_scrubbed(monkeypatch):
    for name in environment.SCRUBBED_ENV_VARS:
        monkeypatch.setenv(name, "/from/qgis")
    env = environment.child_env()
    assert not set(environment.SCRUBBED_ENV_VARS) & set(env)
    assert env["PYTHONUNBUFFERED"] == "1"


def test_children_run_scrubbed_in_a_neutral_folder(monkeypatch, tmp_path):
    """What every child gets; with new_group, a session of its own (so a cancel kills its
    workers too)."""
    monkeypatch.setenv("PYTHONPATH", "/from/qgis")
    monkeypatch.chdir(tmp_path)
    script = (
        "import os; print(os.getsid(0), os.path.realpath(os.getcwd()), 'PYTHONPATH' in os.environ)"
    )
    for new_group in (False, True):
        done = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            check=True,
            **environment.child_process_options(new_group=new_group),
        )
        sid, cwd, has_pythonpath = done.stdout.split()
        assert (int(sid) == os.getsid(0)) is not new_group
        assert cwd == os.path.realpath(tempfile.gettempdir())
        assert has_pythonpath == "False"


def test_logged_command_line_hides_url_secrets():
    """What the log shows of a child's command line: no userinfo (a password holding "@"),
    no query string of a URL (one with a space in it too) or of a /vsi name."""
    feedback = RecordingFeedback()
    args = [
        "-c",
        "pass",  # a real child that ignores the arguments below
        "/vsicurl/https://reader:hunter@2@example.org/my scenes/a.tif?sig=SECRET-1",
        "/vsis3/bucket/b.tif?X-Amz-Signature=SECRET-2",
        "--index-url=https://reader:hunter@2@example.org/simple",
    ]
    runner.run_geosr(sys.executable, args, feedback)
    [line] = feedback.commands
    for secret in ("reader", "hunter", "@2", "SECRET"):
        assert secret not in line
    assert line.endswith(
        " '/vsicurl/https://example.org/my scenes/a.tif?…' '/vsis3/bucket/b.tif?…'"
        " --index-url=https://example.org/simple"
    )


@pytest.mark.parametrize("algorithm_id", ["geosr:upscale", "geosr:evaluate"])
def test_output_equal_to_input_is_refused_before_any_child(
    provider, scenes, no_interpreter, tmp_path, algorithm_id
):
    """Refused before the interpreter is even looked up (none is configured here)."""
    algorithm = QgsApplication.processingRegistry().createAlgorithmById(algorithm_id)
    source = str(scenes["rgb"])
    parameters = {
        "geosr:upscale": {"INPUT": source, "OUTPUT": source},
        "geosr:evaluate": {
            "INPUT": [source],
            "OUTPUT_HTML": str(tmp_path / "new" / "report.html"),
            "OUTPUT_JSON": source,
        },
    }[algorithm_id]
    context = QgsProcessingContext()
    before = scenes["rgb"].read_bytes()
    with pytest.raises(QgsProcessingException, match="is the input raster"):
        algorithm.processAlgorithm(parameters, context, QgsProcessingFeedback())
    assert scenes["rgb"].read_bytes() == before
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(
    "parameters, needles",
    [
        ({"PRODUCT_FOLDER": "S2.SAFE", "RESOLUTION": 0}, ["greater than 0", "leave it empty"]),
        (
            {"INPUT": "rgb", "PRODUCT": "MTD_MSIL2A.xml", "PRODUCT_FOLDER": "S2.SAFE"},
            ["not an input raster, a product file and a product folder", "all but one"],
        ),
    ],
    ids=["resolution_zero", "three_inputs"],
)
def test_upscale_refusals_come_before_any_child(
    provider, scenes, no_interpreter, tmp_path, parameters, needles
):
    """One-line refusals raised before the interpreter is even looked up (none is set)."""
    algorithm = QgsApplication.processingRegistry().createAlgorithmById("geosr:upscale")
    values = {"rgb": str(scenes["rgb"]), "S2.SAFE": str(tmp_path / "S2.SAFE")}
    parameters = {key: values.get(value, value) for key, value in parameters.items()}
    output = tmp_path / "out" / "never.tif"
    with pytest.raises(QgsProcessingException) as raised:
        algorithm.processAlgorithm(
            {**parameters, "OUTPUT": str(output)}, QgsProcessingContext(), QgsProcessingFeedback()
        )
    message = str(raised.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message
    assert not output.parent.exists()


def test_stac_item_over_the_input_item_is_refused(provider, no_interpreter, tmp_path):
    """A STAC Item input beside an output of the same name: the output's Item (item.json for
    item.tif) would replace the input, so it is refused and the input stays as it was."""
    algorithm = QgsApplication.processingRegistry().createAlgorithmById("geosr:upscale")
    item = tmp_path / "item.json"
    item.write_text('{"type": "Feature", "id": "item"}')
    parameters = {"PRODUCT": str(item), "OUTPUT": str(tmp_path / "item.tif"), "STAC": True}
    with pytest.raises(QgsProcessingException, match=r"item\.json is the input product"):
        algorithm.processAlgorithm(parameters, QgsProcessingContext(), QgsProcessingFeedback())
    assert item.read_text() == '{"type": "Feature", "id": "item"}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["item.json"]


def test_algorithm_classes_have_constants():
    assert UpscaleAlgorithm.OUTPUT == "OUTPUT"
    assert TrainAlgorithm.STAGE == "STAGE"
    assert EvaluateAlgorithm.OUTPUT_JSON == "OUTPUT_JSON"
    assert isinstance(GeosrProvider().longName(), str)
