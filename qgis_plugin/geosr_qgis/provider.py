"""The ``geosr`` Processing provider: four algorithms and one setting (geosr's interpreter)."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .alg_evaluate import EvaluateAlgorithm
from .alg_setup import SetupAlgorithm
from .alg_train import TrainAlgorithm
from .alg_upscale import UpscaleAlgorithm
from .algorithm import ICON_PATH, tr
from .environment import SETTING_KEY, SETUP_MENU, processing_config

ALGORITHMS = (UpscaleAlgorithm, TrainAlgorithm, EvaluateAlgorithm, SetupAlgorithm)


class GeosrProvider(QgsProcessingProvider):
    """Provider ``geosr``; its setting shows in Settings > Options > Processing > Providers."""

    def id(self):
        return "geosr"

    def name(self):
        return "geosr"

    def longName(self):  # noqa: N802 - QGIS API
        return tr("geosr super-resolution")

    def icon(self):
        return QIcon(ICON_PATH)

    def svgIconPath(self):  # noqa: N802 - QGIS API
        return ICON_PATH

    def helpId(self):  # noqa: N802 - QGIS API
        return "geosr"

    def load(self):
        """Register the interpreter setting (read back from QgsSettings) and the algorithms."""
        config, setting = processing_config()
        if config is not None:
            config.settingIcons[self.name()] = self.icon()
            config.addSetting(
                setting(
                    self.name(),
                    SETTING_KEY,
                    tr(
                        "geosr Python interpreter (set by {menu}; empty: environment "
                        "variable GEOSR_PYTHON)"
                    ).format(menu=SETUP_MENU),
                    "",
                    valuetype=setting.FILE,
                )
            )
            config.readSettings()
        self.refreshAlgorithms()
        return True

    def unload(self):
        config, _ = processing_config()
        if config is not None and SETTING_KEY in config.settings:
            config.removeSetting(SETTING_KEY)

    def loadAlgorithms(self):  # noqa: N802 - QGIS API
        for algorithm in ALGORITHMS:
            self.addAlgorithm(algorithm())

    def supportedOutputRasterLayerExtensions(self):  # noqa: N802 - QGIS API
        return ["tif", "zarr"]  # geosr:upscale writes GeoTIFF, or a Zarr store (a folder)

    def defaultRasterFileExtension(self):  # noqa: N802 - QGIS API
        return "tif"
