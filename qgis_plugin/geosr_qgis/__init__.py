"""QGIS plugin entry point: ``classFactory`` is what QGIS calls to load the plugin."""


def classFactory(iface):  # noqa: N802 - name fixed by QGIS
    """Return the plugin object QGIS keeps for the session (``iface`` is None in qgis_process)."""
    from .plugin import GeosrPlugin

    return GeosrPlugin(iface)
