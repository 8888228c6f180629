"""Fixtures for the plugin tests: real QGIS, real geosr CLI, real scenes, tiny models.

Run with the system Python (QGIS's own interpreter) from a venv made with
``--system-site-packages`` that holds only pytest and pytest-qgis; ``qgis_plugin/run_tests.sh``
sets everything up. geosr itself is never imported here: it runs in ``GEOSR_PYTHON``.

Where QGIS or geosr's interpreter is missing the tests skip with the reason, except under
``CI=true``, where they fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import (
    DATA,
    LANDSAT8,
    PLUGIN_PARENT,
    QGIS_PROCESS,
    RGB_BYTE,
    child_env,
    geosr_python_path,
    require,
)

if str(PLUGIN_PARENT) not in sys.path:
    sys.path.insert(0, str(PLUGIN_PARENT))


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def geosr_python() -> str:
    """geosr's interpreter (GEOSR_PYTHON, default the repo's .venv), checked to import geosr."""
    python = geosr_python_path()
    require(os.access(python, os.X_OK), f"geosr's interpreter {python} is missing (GEOSR_PYTHON)")
    check = subprocess.run(
        [python, "-c", "import geosr"], capture_output=True, text=True, check=False
    )
    require(check.returncode == 0, f"{python} cannot import geosr: {check.stderr.strip()[-300:]}")
    return python


@pytest.fixture(scope="session")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("geosr_qgis")


@pytest.fixture(scope="session")
def models(geosr_python, work) -> dict[str, Path]:
    """Tiny untrained models made by geosr itself: x2 3-band, 4-band and band-shared, and
    x4 band-shared (``shared_x4``)."""
    specs = {"rgb3": (3, 2), "bands4": (4, 2), "shared": (None, 2), "shared_x4": (None, 4)}
    paths = {name: work / f"{name}.safetensors" for name in specs}
    script = (
        "import json, sys, geosr\n"
        "for path, (bands, scale) in json.loads(sys.argv[1]).items():\n"
        "    geosr.save_model(geosr.build_model(bands=bands, scale=scale, width=8, blocks=1), path)\n"
    )
    wanted = json.dumps({str(paths[name]): spec for name, spec in specs.items()})
    subprocess.run([geosr_python, "-c", script, wanted], check=True, capture_output=True, cwd=work)
    return paths


@pytest.fixture(scope="session")
def gdal():
    from osgeo import gdal as module

    module.UseExceptions()
    return module


@pytest.fixture(scope="session")
def scenes(gdal, work) -> dict[str, Path]:
    """Small crops of real scenes (written with QGIS's GDAL):

    - ``landsat8``: 96x80, 4 bands (B2 B3 B4 B5), uint16, 30 m, EPSG:32616, no nodata;
    - ``rgb``: 128x96, 3 bands, uint8, 300 m, EPSG:32618, nodata 0 (about a quarter is fill);
    - ``landsat8_large``: 384x384 of the same Landsat scene, for runs that must last a while.
    """
    require(LANDSAT8.is_file() and RGB_BYTE.is_file(), f"the scenes in {DATA} are missing")
    crops = {
        "landsat8": (LANDSAT8, [100, 100, 96, 80]),
        "rgb": (RGB_BYTE, [40, 140, 128, 96]),
        "landsat8_large": (LANDSAT8, [0, 0, 384, 384]),
    }
    paths = {}
    for name, (source, window) in crops.items():
        path = work / f"{name}.tif"
        gdal.Translate(str(path), str(source), srcWin=window, creationOptions=["TILED=YES"])
        paths[name] = path
    return paths


@pytest.fixture()
def setting():
    """The provider setting's value before the test; restored afterwards."""
    from geosr_qgis import environment
    from qgis.core import QgsSettings

    settings = QgsSettings()
    saved = settings.value(environment.SETTING_QNAME, None)
    yield saved
    if saved is None:
        settings.remove(environment.SETTING_QNAME)
    else:
        settings.setValue(environment.SETTING_QNAME, saved)


@pytest.fixture(scope="session")
def qgis_env(work) -> dict[str, str]:
    """Environment for qgis_process.bin: headless, a throwaway profile, the plugin enabled."""
    require(os.access(QGIS_PROCESS, os.X_OK), f"{QGIS_PROCESS} is missing (install 'qgis')")
    home = work / "qgis-home"
    runtime = home / "run"
    runtime.mkdir(parents=True, exist_ok=True)
    runtime.chmod(0o700)
    env = child_env(
        QT_QPA_PLATFORM="offscreen",
        XDG_RUNTIME_DIR=str(runtime),
        XDG_DATA_HOME=str(home / "data"),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_CACHE_HOME=str(home / "cache"),
        QGIS_PLUGINPATH=str(PLUGIN_PARENT),
        GEOSR_PYTHON=geosr_python_path(),
        # pytest-qgis points these at its own settings folder for the in-process QgsApplication;
        # qgis_process must use the throwaway profile under XDG_DATA_HOME instead.
        QGIS_CUSTOM_CONFIG_PATH=None,
        QGIS_OPTIONS_PATH=None,
    )
    enable = subprocess.run(
        [QGIS_PROCESS, "plugins", "enable", "geosr_qgis"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert enable.returncode == 0, enable.stdout + enable.stderr
    return env
