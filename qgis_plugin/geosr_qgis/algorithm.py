"""What every geosr algorithm shares: group, icon, help, and turning layers into file paths."""

from __future__ import annotations

import os

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingParameterDefinition,
    QgsProviderRegistry,
    QgsRasterLayer,
)
from qgis.PyQt.QtCore import QCoreApplication, QVariant
from qgis.PyQt.QtGui import QIcon

PLUGIN_DIR = os.path.dirname(__file__)
ICON_PATH = os.path.join(PLUGIN_DIR, "icon.svg")
GROUP = "Super-resolution"
GROUP_ID = "superresolution"
HELP_URL = "https://github.com/geosr/geosr/tree/main/qgis_plugin#readme"


def tr(text: str) -> str:
    """Translate ``text`` in the plugin's translation context."""
    return QCoreApplication.translate("geosr", text)


def is_unset(value) -> bool:
    """True for a parameter value that was left empty (None, NULL or an empty string)."""
    if value is None or value == "":
        return True
    return isinstance(value, QVariant) and value.isNull()


def same_file(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` name the same file (also through links and case)."""
    if os.path.exists(a) and os.path.exists(b):
        try:
            return os.path.samefile(a, b)
        except OSError:
            pass
    return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def raster_path(layer: QgsRasterLayer, what: str) -> str:
    """Return the file a raster layer reads; refuse layers that are not GDAL files."""
    if layer.providerType() != "gdal":
        raise QgsProcessingException(
            tr(
                "{what} '{name}' is served by the '{provider}' provider, not read from a file; "
                "geosr reads raster files. Save it as a GeoTIFF first (Export \u203a Save As\u2026)."
            ).format(what=what, name=layer.name(), provider=layer.providerType())
        )
    parts = QgsProviderRegistry.instance().decodeUri("gdal", layer.source())
    path = parts.get("path") or layer.source().split("|")[0]
    if not os.path.isfile(path):
        raise QgsProcessingException(
            tr("{what} '{name}' is not a raster file on disk ({path}).").format(
                what=what, name=layer.name(), path=path
            )
        )
    return os.path.abspath(path)


class GeosrAlgorithm(QgsProcessingAlgorithm):
    """Base class: subclasses set ``NAME``, ``DISPLAY_NAME`` and ``HELP`` and add parameters."""

    NAME = ""
    DISPLAY_NAME = ""
    HELP = ""

    def name(self):
        return self.NAME

    def displayName(self):  # noqa: N802 - QGIS API
        return tr(self.DISPLAY_NAME)

    def group(self):
        return tr(GROUP)

    def groupId(self):  # noqa: N802 - QGIS API
        return GROUP_ID

    def shortHelpString(self):  # noqa: N802 - QGIS API
        """The algorithm's help, then each parameter's help as given at its declaration."""
        paragraphs = "".join(f"<p>{part}</p>" for part in tr(self.HELP).split("\n\n"))
        items = "".join(
            f"<dt><b>{p.description()}</b> ({p.name()})</dt><dd>{p.help()}</dd>"
            for p in self.parameterDefinitions()
            if p.help()
        )
        return paragraphs + (f"<h3>{tr('Parameters')}</h3><dl>{items}</dl>" if items else "")

    def shortDescription(self):  # noqa: N802 - QGIS API
        return tr(self.HELP.split("\n\n", 1)[0])

    def helpUrl(self):  # noqa: N802 - QGIS API
        return HELP_URL

    def icon(self):
        return QIcon(ICON_PATH)

    def svgIconPath(self):  # noqa: N802 - QGIS API
        return ICON_PATH

    def createInstance(self):  # noqa: N802 - QGIS API
        return type(self)()

    def add(
        self, parameter: QgsProcessingParameterDefinition, help_text: str, *, advanced=False
    ) -> None:
        """Add ``parameter`` with its help text (shown as a tooltip and in the help panel)."""
        parameter.setHelp(tr(help_text))
        if advanced:
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(parameter)
