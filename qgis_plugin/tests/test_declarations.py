"""The algorithms' parameters come from geosr's option declarations (``geosr options --json``),
or from the copy shipped in the plugin when geosr cannot give them."""

from __future__ import annotations

import json
import os

import pytest
from geosr_qgis import declarations
from geosr_qgis.alg_upscale import UpscaleAlgorithm
from helpers import PLUGIN_PARENT
from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingParameterDefinition,
    QgsSettings,
)
from qgis.core import QgsProcessingParameterBoolean as Boolean


@pytest.fixture()
def interpreter(qgis_processing, setting, monkeypatch):
    """Set GEOSR_PYTHON (no provider setting) and forget the declarations read so far."""
    QgsSettings().remove("Processing/Configuration/GEOSR_PYTHON")
    declarations._cache.clear()

    def use(python: str) -> None:
        monkeypatch.setenv("GEOSR_PYTHON", python)

    yield use
    declarations._cache.clear()


def upscale_algorithm() -> UpscaleAlgorithm:
    algorithm = UpscaleAlgorithm()
    algorithm.initAlgorithm()
    return algorithm


def test_geosr_prints_what_the_plugin_ships(geosr_python, interpreter):
    assert declarations.from_python(geosr_python) == declarations.shipped()
    interpreter(geosr_python)
    assert declarations.declarations() == declarations.shipped()


@pytest.mark.parametrize("python", ["", "/usr/bin/python3", "/no/such/python"])
def test_without_geosr_the_shipped_copy_is_used(interpreter, monkeypatch, python):
    if python:
        interpreter(python)
    else:
        monkeypatch.delenv("GEOSR_PYTHON", raising=False)
    assert declarations.declarations() == declarations.shipped()
    algorithm = upscale_algorithm()  # kept: its parameters die with it
    names = {p.name() for p in algorithm.parameterDefinitions()}
    assert {"STRENGTH", "TTA", "UNCERTAINTY", "STRICT", "GUIDED", "OUTPUT"} <= names


def fake_geosr(tmp_path, change) -> str:
    """An executable that answers like ``python -m geosr options --json``, with the shipped
    declarations changed by ``change``."""
    data = json.loads((PLUGIN_PARENT / "geosr_qgis" / "options.json").read_text())
    change(data)
    answer = tmp_path / "options.json"
    answer.write_text(json.dumps(data))
    python = tmp_path / "python"
    python.write_text(f"#!/bin/sh\ncat '{answer}'\n")
    os.chmod(python, 0o755)
    return str(python)


def test_a_new_option_of_geosr_becomes_a_parameter(interpreter, tmp_path):
    """One declaration in geosr: a new parameter in QGIS, passed to geosr when ticked."""

    def add_option(data):
        data["options"].append(
            {
                "name": "sharpen",
                "kind": "flag",
                "qgis": [
                    {
                        "algorithm": "upscale",
                        "parameter": "SHARPEN",
                        "label": "Sharpen",
                        "help": "Sharpen the output.",
                        "advanced": True,
                        "widget": "boolean",
                        "default": False,
                        "flag": "--sharpen",
                    },
                    {
                        "algorithm": "upscale",
                        "parameter": "ODD",
                        "label": "Odd",
                        "help": "?",
                        "widget": "hologram",  # a widget of a newer geosr
                        "flag": "--odd",
                    },
                ],
            }
        )

    interpreter(fake_geosr(tmp_path, add_option))
    algorithm = upscale_algorithm()
    sharpen = algorithm.parameterDefinition("SHARPEN")
    assert isinstance(sharpen, Boolean) and sharpen.help() == "Sharpen the output."
    assert sharpen.flags() & QgsProcessingParameterDefinition.FlagAdvanced
    assert algorithm.parameterDefinition("ODD") is None  # a widget this plugin does not know
    context = QgsProcessingContext()
    assert algorithm.declared_args({"SHARPEN": True}, context) == ["--sharpen"]
    assert algorithm.declared_args({"SHARPEN": False}, context) == []


def test_options_a_geosr_lacks_are_not_shown(interpreter, tmp_path):
    def drop_uncertainty(data):
        data["options"] = [o for o in data["options"] if o["name"] != "uncertainty"]

    interpreter(fake_geosr(tmp_path, drop_uncertainty))
    assert upscale_algorithm().parameterDefinition("UNCERTAINTY") is None


def test_another_schema_version_falls_back_to_the_shipped_copy(interpreter, tmp_path):
    def bump(data):
        data["version"] = 99
        data["options"] = []

    interpreter(fake_geosr(tmp_path, bump))
    assert declarations.declarations() == declarations.shipped()


def test_declared_values_become_arguments(interpreter, monkeypatch):
    monkeypatch.delenv("GEOSR_PYTHON", raising=False)
    algorithm = upscale_algorithm()
    context = QgsProcessingContext()
    parameters = {
        "STRENGTH": 0.5,
        "TTA": True,
        "DEVICE": "cpu",
        "MASK": "auto",  # the default: not passed
        "GUIDED": "none",
        "CHUNK_SIZE": 64,
        "BAND_NAMES": " B04, B03,,B02 ",
        "RESOLUTION": 10,
    }
    args = algorithm.declared_args(parameters, context)
    pairs = {
        flag: value
        for flag, value in zip(args, [*args[1:], "--"], strict=True)
        if flag.startswith("--") and not value.startswith("--")
    }
    assert "--tta" in args and "--mask" not in args and "--tta" not in pairs
    assert pairs["--strength"] == "0.5" and pairs["--device"] == "cpu"
    assert pairs["--guided"] == "none" and pairs["--chunk-size"] == "64"
    assert pairs["--bands"] == "B04,B03,B02" and pairs["--resolution"] == "10.0"
    with pytest.raises(QgsProcessingException, match="greater than 0"):
        algorithm.declared_args({"RESOLUTION": 0}, context)
