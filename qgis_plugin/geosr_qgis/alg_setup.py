"""geosr:setup - "Set up geosr environment": install geosr for the plugin, without a terminal.

The menu entry Plugins > geosr > Set up geosr... opens this algorithm's dialog, so the Processing
dialog gives the parameters, the log (pip's output), the progress bar, Cancel, and a background
thread. The same algorithm runs from the toolbox and from ``qgis_process``. The work itself is
:func:`geosr_qgis.setup_env.install_geosr`.
"""

from __future__ import annotations

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputString,
    QgsProcessingParameterFile,
    QgsProcessingParameterString,
)

from .algorithm import GeosrAlgorithm, tr
from .environment import SETTING_LOCATION, SETUP_MENU, use_python
from .setup_env import Installed, SetupCanceledError, SetupError, install_geosr, venv_path


class SetupAlgorithm(GeosrAlgorithm):
    """Make geosr's environment in the QGIS profile and point the provider at it."""

    PYTHON = "PYTHON"
    WHEEL = "WHEEL"
    PIP_OPTIONS = "PIP_OPTIONS"
    ENV_DIR = "ENV_DIR"
    GEOSR_PYTHON = "GEOSR_PYTHON"
    GEOSR_VERSION = "GEOSR_VERSION"

    NAME = "setup"
    DISPLAY_NAME = "Set up geosr environment"
    HELP = (
        "Installs geosr, with PyTorch and its other dependencies, in a Python environment of "
        "its own, and makes the geosr algorithms use it. QGIS's own Python is not touched.\n\n"
        "The steps: find a Python 3.10 or newer (or use the one you choose), make a virtual "
        "environment in the QGIS profile folder, install geosr there with pip, check that "
        "'python -m geosr --version' runs, and set the provider's 'geosr Python interpreter' "
        "(" + SETTING_LOCATION + ") to it. The log shows pip's output. PyTorch is large: the "
        "first install takes several minutes.\n\n"
        "Offline: choose a geosr wheel file (geosr-<version>-py3-none-any.whl); pip takes "
        "geosr's dependencies from its configured package index (pip config). Without a wheel, "
        "pip installs geosr from the package index (PyPI). Running the set-up again updates "
        "geosr in the same environment."
    )

    def __init__(self):
        super().__init__()
        self._installed: Installed | None = None

    def group(self):
        return tr("Set-up")

    def groupId(self):  # noqa: N802 - QGIS API
        return "setup"

    def flags(self):
        # No batch: it changes the plugin's own settings. Not FlagHideFromModeler either:
        # FlagDeprecated is HideFromToolbox|HideFromModeler, and qgis_process's list treats
        # any overlap with it as deprecated and leaves the algorithm out.
        return QgsProcessingAlgorithm.FlagCanCancel

    def initAlgorithm(self, config=None):  # noqa: N802 - QGIS API
        self.add(
            QgsProcessingParameterFile(
                self.PYTHON,
                tr("Python interpreter (empty: find one)"),
                behavior=QgsProcessingParameterFile.File,
                optional=True,
                # The default filter, "*.*", refuses names without a dot: /usr/bin/python3.
                fileFilter=tr("All files (*)"),
            ),
            "The Python (3.10 or newer) to make geosr's environment with, e.g. /usr/bin/python3 "
            "or C:\\Python312\\python.exe. Empty: the newest one found on PATH (python3.13 "
            "down to python3.10, then python3), or the one of the environment already there.",
        )
        self.add(
            QgsProcessingParameterFile(
                self.WHEEL,
                tr("geosr wheel (empty: from the package index)"),
                behavior=QgsProcessingParameterFile.File,
                extension="whl",
                optional=True,
            ),
            "A geosr wheel file (geosr-<version>-py3-none-any.whl) to install without "
            "downloading geosr; its dependencies come from pip's configured index. Empty: pip "
            "installs 'geosr' from the package index.",
        )
        self.add(
            QgsProcessingParameterString(self.PIP_OPTIONS, tr("Extra pip options"), optional=True),
            "Options added to 'pip install', e.g. '--index-url URL' (another package index) or "
            "'--find-links FOLDER' (a folder of wheels).",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterFile(
                self.ENV_DIR,
                tr("Environment folder"),
                behavior=QgsProcessingParameterFile.Folder,
                defaultValue=str(venv_path()),
                optional=True,
            ),
            "Where the environment is made: a new or empty folder, or an environment made "
            "here before (it is reused). Default: geosr/venv in the QGIS profile folder.",
            advanced=True,
        )
        self.addOutput(QgsProcessingOutputString(self.GEOSR_PYTHON, tr("geosr Python interpreter")))
        self.addOutput(QgsProcessingOutputString(self.GEOSR_VERSION, tr("geosr version")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API
        env_dir = self.parameterAsFile(parameters, self.ENV_DIR, context) or str(venv_path())

        def step(message: str, fraction: float) -> None:
            if message:
                feedback.pushInfo(message)
            feedback.setProgress(100.0 * fraction)

        try:
            self._installed = install_geosr(
                env_dir,
                self.parameterAsFile(parameters, self.WHEEL, context) or None,
                python=self.parameterAsFile(parameters, self.PYTHON, context) or None,
                pip_options=self.parameterAsString(parameters, self.PIP_OPTIONS, context),
                log=feedback.pushConsoleInfo,
                step=step,
                cancel=feedback.isCanceled,
            )
        except SetupCanceledError:
            raise QgsProcessingException(
                f"The set-up was canceled and the provider setting is unchanged; {env_dir} may "
                f"be incomplete: run {SETUP_MENU} again to finish it."
            ) from None
        except SetupError as error:
            raise QgsProcessingException(str(error)) from None
        return {
            self.GEOSR_PYTHON: self._installed.python,
            self.GEOSR_VERSION: self._installed.version,
        }

    def postProcessAlgorithm(self, context, feedback):  # noqa: N802 - QGIS API
        """Point the provider at the new environment (here: on the main thread, after the
        background run succeeded)."""
        if self._installed is not None:
            use_python(self._installed.python)
            feedback.pushInfo(
                f"The geosr algorithms now use {self._installed.python} "
                f"(geosr {self._installed.version}; {SETTING_LOCATION})."
            )
        return {}
