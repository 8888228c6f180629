"""The plugin object: registers the geosr Processing provider and nothing else."""

from qgis.core import QgsApplication

from .provider import GeosrProvider


class GeosrPlugin:
    """Adds the ``geosr`` provider to the Processing registry (desktop and qgis_process)."""

    def __init__(self, iface):
        self.iface = iface
        self.provider = None

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
        """Called by QGIS desktop; the plugin adds no menus or toolbars, only the provider."""
        self.initProcessing()

    def unload(self):
        """Remove the provider when the plugin is unloaded or disabled."""
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
