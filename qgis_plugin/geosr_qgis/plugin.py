"""The plugin object: registers the geosr Processing provider and the menu entry that sets up
geosr's environment (Plugins > geosr > Set up geosr...)."""

from __future__ import annotations

from qgis.core import Qgis, QgsApplication
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

from .algorithm import ICON_PATH, tr
from .environment import SETUP_ALGORITHM
from .provider import GeosrProvider

#: The submenu of Plugins that holds the plugin's entries.
MENU = "&geosr"


class GeosrPlugin:
    """Adds the ``geosr`` provider to the Processing registry (desktop and qgis_process), and in
    QGIS desktop the menu entry Plugins > geosr > Set up geosr...."""

    def __init__(self, iface):
        self.iface = iface
        self.provider = None
        self.setup_action: QAction | None = None

    def initProcessing(self):  # noqa: N802 - QGIS plugin API
        """Called by qgis_process (``hasProcessingProvider=yes``) and by :meth:`initGui`."""
        if self.provider is not None:
            return
        provider = GeosrProvider()
        # addProvider() returns False on a duplicate id and deletes the C++ object: keep the
        # Python wrapper only when the registry really owns a live provider.
        if QgsApplication.processingRegistry().addProvider(provider):
            self.provider = provider

    def initGui(self):  # noqa: N802 - QGIS plugin API
        """Called by QGIS desktop: the provider, and the set-up entry in the Plugins menu."""
        self.initProcessing()
        if self.iface is None:
            return
        action = QAction(QIcon(ICON_PATH), tr("Set up geosr\u2026"), self.iface.mainWindow())
        action.setObjectName("geosrSetupAction")
        action.setStatusTip(
            tr("Install geosr in a Python environment of its own and make the plugin use it")
        )
        action.triggered.connect(self.open_setup_dialog)
        self.iface.addPluginToMenu(MENU, action)
        self.setup_action = action

    def open_setup_dialog(self) -> dict:
        """Show the dialog of ``geosr:setup`` (runs in the background, with log and Cancel);
        return its results ({} when closed without a successful run)."""
        import processing  # the Processing plugin, loaded by QGIS desktop before plugins

        results = processing.execAlgorithmDialog(SETUP_ALGORITHM, {}) or {}
        python = results.get("GEOSR_PYTHON")
        if python:
            self.iface.messageBar().pushMessage(
                "geosr",
                tr("geosr {version} is set up; the geosr algorithms now use {python}").format(
                    version=results.get("GEOSR_VERSION", ""), python=python
                ),
                level=Qgis.Success,
                duration=10,
            )
        return results

    def unload(self):
        """Remove the provider and the menu entry when the plugin is unloaded or disabled."""
        if self.setup_action is not None:
            self.iface.removePluginMenu(MENU, self.setup_action)
            self.setup_action.deleteLater()
            self.setup_action = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
