"""Which Python runs geosr, and the environment it runs in.

geosr (PyTorch, rasterio with its own GDAL, numpy 2) never runs inside QGIS's interpreter: two
GDALs in one process and numpy 2 against the system's numpy 1.x break QGIS. The plugin starts
geosr's own interpreter as a child process instead. That interpreter is taken from, in order:

1. the provider setting "geosr Python interpreter"
   (Settings > Options > Processing > Providers > geosr), stored as :data:`SETTING_KEY`;
   "Plugins > geosr > Set up geosr…" (:mod:`geosr_qgis.setup_env`) writes it with
   :func:`use_python`;
2. the environment variable :data:`ENV_VAR` (``GEOSR_PYTHON``).

Nothing here imports geosr, torch or rasterio; :func:`resolve_python` only checks, once per
interpreter, that ``python -c "import geosr"`` succeeds in a child.
"""

from __future__ import annotations

import os
import subprocess
import tempfile

from qgis.core import QgsProcessingException, QgsSettings

#: Name of the provider setting (ProcessingConfig stores it under ``Processing/Configuration/``).
SETTING_KEY = "GEOSR_PYTHON"
SETTING_QNAME = "Processing/Configuration/" + SETTING_KEY
#: Environment variable read when the provider setting is empty.
ENV_VAR = "GEOSR_PYTHON"
#: Variables QGIS sets for its own Python, GDAL and PROJ; inherited, they would make geosr's
#: interpreter import QGIS's packages or load QGIS's GDAL/PROJ data into its own rasterio.
SCRUBBED_ENV_VARS = (
    "PYTHONPATH",
    "PYTHONHOME",
    "GDAL_DATA",
    "GDAL_DRIVER_PATH",
    "PROJ_LIB",
    "PROJ_DATA",
    "LD_LIBRARY_PATH",
)
SETTING_LOCATION = "Settings \u203a Options \u203a Processing \u203a Providers \u203a geosr"
#: Where users find the set-up: the plugin's menu entry, and the same algorithm in the toolbox
#: and in qgis_process.
SETUP_MENU = "Plugins \u203a geosr \u203a Set up geosr\u2026"
SETUP_ALGORITHM = "geosr:setup"
#: Seconds allowed for ``python -c "import geosr"`` (a cold import of torch can take a while).
IMPORT_CHECK_TIMEOUT = 120

_SET_UP = (
    f"run {SETUP_MENU} (or {SETUP_ALGORITHM} in the Processing toolbox or qgis_process), which"
    " installs geosr in an environment of its own and selects it"
)
_HOW_TO_FIX = (
    f"To fix it, {_SET_UP}; or install geosr yourself in a Python \u2265 3.10 environment and set"
    f" 'geosr Python interpreter' in {SETTING_LOCATION}, or the environment variable {ENV_VAR},"
    " to its python executable (e.g. /home/me/geosr-env/bin/python)."
)

# Interpreters that already imported geosr in this session, keyed by (path, mtime).
_checked: set[tuple[str, float]] = set()


def child_env() -> dict[str, str]:
    """Return this process's environment without QGIS's Python/GDAL/PROJ variables."""
    env = {key: value for key, value in os.environ.items() if key not in SCRUBBED_ENV_VARS}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def neutral_cwd() -> str:
    """A working directory for children: ``python -m``/``-c`` put it first on ``sys.path``,
    so QGIS's current folder (a source checkout, say) must not shadow the installed geosr."""
    return tempfile.gettempdir()


def child_process_options(new_group: bool = False) -> dict:
    """The ``subprocess`` options every child of the plugin gets: UTF-8 text pipes, the scrubbed
    environment, a neutral folder, and no console window flashing up on Windows.

    Args:
        new_group: start the child in a process group of its own, so that a cancel kills it
            and the workers it starts together (:func:`geosr_qgis.runner.kill_process_tree`).
    """
    options: dict = {
        "text": True,
        "encoding": "utf-8",
        "errors": "replace",
        "env": child_env(),
        "cwd": neutral_cwd(),
    }
    if os.name == "nt":
        group = subprocess.CREATE_NEW_PROCESS_GROUP if new_group else 0
        options["creationflags"] = group | subprocess.CREATE_NO_WINDOW
    elif new_group:
        options["start_new_session"] = True
    return options


def configured_python() -> tuple[str, str]:
    """Return ``(value, where it came from)``; value is ``""`` when nothing is configured.

    Reads QgsSettings directly (where ProcessingConfig saves the provider setting), so the
    lookup also works where the Processing plugin's config dialog was never loaded.
    """
    value = QgsSettings().value(SETTING_QNAME, "")
    value = "" if value is None else str(value).strip()
    if value:
        return value, f"the provider setting 'geosr Python interpreter' ({SETTING_LOCATION})"
    value = os.environ.get(ENV_VAR, "").strip()
    if value:
        return value, f"the environment variable {ENV_VAR}"
    return "", ""


def _executable(path: str) -> str:
    """Accept an environment's folder as well as its interpreter."""
    if os.path.isdir(path):
        for candidate in ("bin/python", "bin/python3", "Scripts/python.exe", "python.exe"):
            full = os.path.join(path, candidate)
            if os.path.isfile(full):
                return full
    return path


def configured_executable() -> str:
    """The absolute path of the configured interpreter, unchecked; ``""`` when none is set."""
    value, _source = configured_python()
    return os.path.abspath(os.path.expanduser(_executable(value))) if value else ""


def resolve_python() -> str:
    """Return the absolute path of a Python interpreter that can ``import geosr``.

    Raises:
        QgsProcessingException: nothing is configured, the path is not an executable, or that
            interpreter cannot import geosr; the message says exactly what to set.
    """
    value, source = configured_python()
    if not value:
        raise QgsProcessingException(
            "geosr needs its own Python environment and none is configured. " + _HOW_TO_FIX
        )
    python = os.path.abspath(os.path.expanduser(_executable(value)))
    if not os.path.isfile(python) or not os.access(python, os.X_OK):
        raise QgsProcessingException(
            f"The geosr Python interpreter '{value}' (from {source}) is not an executable "
            "file. " + _HOW_TO_FIX
        )
    key = (python, os.stat(python).st_mtime)
    if key in _checked:
        return python
    try:
        check = subprocess.run(
            [python, "-c", "import geosr"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=IMPORT_CHECK_TIMEOUT,
            check=False,
            **child_process_options(),
        )
    except subprocess.TimeoutExpired:
        raise QgsProcessingException(
            f"'{python}' (from {source}) did not finish 'import geosr' within "
            f"{IMPORT_CHECK_TIMEOUT} s. " + _HOW_TO_FIX
        ) from None
    except OSError as error:
        raise QgsProcessingException(
            f"The geosr Python interpreter '{python}' (from {source}) cannot be started: "
            f"{error.strerror or error}. " + _HOW_TO_FIX
        ) from None
    if check.returncode != 0:
        lines = [line.strip() for line in check.stderr.splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit status {check.returncode}"
        raise QgsProcessingException(
            f"The Python interpreter '{python}' (from {source}) cannot import geosr "
            f"({reason}). To fix it, {_SET_UP}; or install geosr there yourself "
            f"('{python} -m pip install geosr')."
        )
    _checked.add(key)
    return python


def processing_config():
    """Return (ProcessingConfig, Setting), or (None, None) without the Processing plugin."""
    try:
        from processing.core.ProcessingConfig import ProcessingConfig, Setting
    except ImportError:
        return None, None
    return ProcessingConfig, Setting


def use_python(python: str) -> None:
    """Make ``python`` the provider setting, as if typed in the Processing options.

    Written to QgsSettings (what :func:`configured_python` reads, also in qgis_process) and to
    ProcessingConfig, whose copy the options dialog shows and would otherwise save back.
    """
    settings = QgsSettings()
    settings.setValue(SETTING_QNAME, python)
    settings.sync()
    config, _ = processing_config()
    if config is not None and SETTING_KEY in config.settings:
        config.setSettingValue(SETTING_KEY, python)
