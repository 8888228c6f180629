"""What every geosr algorithm shares: group, icon, help, the parameters several of them declare,
turning layers and outputs into file paths, and running geosr's interpreter."""

from __future__ import annotations

import os
from collections.abc import Sequence

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProviderRegistry,
    QgsRasterLayer,
)
from qgis.PyQt.QtCore import QCoreApplication, QVariant
from qgis.PyQt.QtGui import QIcon

from .environment import resolve_python
from .runner import run_geosr

PLUGIN_DIR = os.path.dirname(__file__)
ICON_PATH = os.path.join(PLUGIN_DIR, "icon.svg")
GROUP = "Super-resolution"
GROUP_ID = "superresolution"
HELP_URL = "https://github.com/geosr/geosr/tree/main/qgis_plugin#readme"
SCALES = ("2", "4", "8")
DEVICES = ("auto", "cpu", "cuda")


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


def refuse_inputs_as_outputs(
    sources: Sequence[str], outputs: Sequence[str], *, which: str | None = None
) -> None:
    """Raise when an output would overwrite one of the inputs; ``which`` names the input in
    the message (default: the input raster, or one of the input rasters)."""
    if which is None:
        which = tr("the input raster") if len(sources) == 1 else tr("one of the input rasters")
    for path in outputs:
        if any(same_file(source, path) for source in sources):
            raise QgsProcessingException(
                tr(
                    "The output {path} is {which}; choose another output file (geosr never "
                    "overwrites its input)."
                ).format(path=path, which=which)
            )


def raster_path(layer: QgsRasterLayer, what: str) -> str:
    """Return the dataset name a GDAL raster layer reads: an absolute file path, or a GDAL
    virtual file name (``/vsicurl/https://...``, ``/vsizip/...``) passed on as is, since geosr
    opens those itself. Refuse layers of other providers and local files that do not exist."""
    if layer.providerType() != "gdal":
        raise QgsProcessingException(
            tr(
                "{what} '{name}' is served by the '{provider}' provider, not read from a file; "
                "geosr reads raster files. Save it as a GeoTIFF first (Export \u203a Save As\u2026)."
            ).format(what=what, name=layer.name(), provider=layer.providerType())
        )
    parts = QgsProviderRegistry.instance().decodeUri("gdal", layer.source())
    path = parts.get("path") or layer.source().split("|")[0]
    if not is_unset(parts.get("vsiPrefix")):  # /vsizip/archive.zip/inner.tif, split by QGIS
        suffix = parts.get("vsiSuffix")
        return parts["vsiPrefix"] + path + ("" if is_unset(suffix) else suffix)
    if path.startswith("/vsi"):
        return path
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

    # ------------------------------------------------------------ declaring parameters
    # Descriptions and help texts are given untranslated: these methods translate them.

    def add(
        self, parameter: QgsProcessingParameterDefinition, help_text: str, *, advanced=False
    ) -> None:
        """Add ``parameter`` with its help text (shown as a tooltip and in the help panel)."""
        parameter.setHelp(tr(help_text))
        if advanced:
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(parameter)

    def add_rasters(
        self, name: str, description: str, help_text: str, *, optional: bool = False
    ) -> None:
        """A list of raster layers (read back with :meth:`raster_sources`)."""
        self.add(
            QgsProcessingParameterMultipleLayers(
                name, tr(description), layerType=QgsProcessing.TypeRaster, optional=optional
            ),
            help_text,
        )

    def add_model_file(self, name: str, description: str, help_text: str) -> None:
        """An optional geosr model file (.safetensors)."""
        self.add(
            QgsProcessingParameterFile(
                name,
                tr(description),
                behavior=QgsProcessingParameterFile.File,
                extension="safetensors",
                optional=True,
            ),
            help_text,
        )

    def add_choice(
        self,
        name: str,
        description: str,
        options: Sequence[str],
        help_text: str,
        *,
        default: str | None = None,
        advanced: bool = False,
    ) -> None:
        """A choice among ``options``, optional when it has no default. Its value is the option
        itself (static strings), passed as is to geosr's command line."""
        self.add(
            QgsProcessingParameterEnum(
                name,
                tr(description),
                options=list(options),
                defaultValue=default,
                optional=default is None,
                usesStaticStrings=True,
            ),
            help_text,
            advanced=advanced,
        )

    def add_device(self, name: str, subject: str, *, advanced: bool = True) -> None:
        """The device choice every algorithm that runs a network offers; ``subject`` is what
        runs there ("training")."""
        self.add_choice(
            name,
            "Device",
            DEVICES,
            f"Where {subject} runs: 'auto' uses a CUDA GPU when geosr's PyTorch sees one and the "
            "CPU otherwise; 'cpu' and 'cuda' force one (cuda fails if there is no GPU).",
            default="auto",
            advanced=advanced,
        )

    def add_number(
        self,
        name: str,
        description: str,
        help_text: str,
        *,
        minimum: float,
        maximum: float | None = None,
        default: float | None = None,
        decimal: bool = False,
        advanced: bool = False,
    ) -> None:
        """A number from ``minimum`` (to ``maximum``), whole unless ``decimal``; optional
        (empty: geosr's default) when it has no default. Whole numbers are read back with
        :meth:`integer_args`."""
        parameter = QgsProcessingParameterNumber(
            name,
            tr(description),
            type=QgsProcessingParameterNumber.Double
            if decimal
            else QgsProcessingParameterNumber.Integer,
            defaultValue=default,
            optional=default is None,
            minValue=minimum,
        )
        if maximum is not None:
            parameter.setMaximum(maximum)
        self.add(parameter, help_text, advanced=advanced)

    # ------------------------------------------------------------ reading parameters

    def raster_sources(
        self, parameters: dict, name: str, context: QgsProcessingContext, what: str
    ) -> list[str]:
        """The files of the raster layers in ``name``; ``what`` names one ("training raster")."""
        layers = self.parameterAsLayerList(parameters, name, context)
        if not layers:
            raise QgsProcessingException(tr("Choose at least one {what}.").format(what=tr(what)))
        label = tr(what)
        return [raster_path(layer, label[:1].upper() + label[1:]) for layer in layers]

    def output_path(self, parameters: dict, name: str, context: QgsProcessingContext) -> str:
        """The absolute path of the output ``name``; refuse an empty one."""
        definition = self.parameterDefinition(name)
        if definition.type() == QgsProcessingParameterRasterDestination.typeName():
            # as a layer: this also schedules loading it into the project when asked for
            path = self.parameterAsOutputLayer(parameters, name, context)
        else:
            path = self.parameterAsFileOutput(parameters, name, context)
        if not path:
            raise QgsProcessingException(
                tr("No file was given for '{output}': choose where to write it.").format(
                    output=definition.description()
                )
            )
        return os.path.abspath(path)

    def integer_args(
        self, parameters: dict, context: QgsProcessingContext, flags: dict[str, str]
    ) -> list[str]:
        """``[flag, value, ...]`` for each integer parameter of ``flags`` (name: flag) that was
        given; an empty one is left out, so geosr uses its own default."""
        args: list[str] = []
        for name, flag in flags.items():
            if not is_unset(parameters.get(name)):
                args += [flag, str(self.parameterAsInt(parameters, name, context))]
        return args

    # ------------------------------------------------------------ running geosr

    def run_command(
        self,
        args: Sequence[str],
        feedback: QgsProcessingFeedback,
        *,
        outputs: Sequence[str],
        make_folders: bool = False,
    ) -> dict:
        """Run ``args`` in geosr's interpreter (see :func:`geosr_qgis.runner.run_geosr`).

        The interpreter is looked up first, so a missing one fails before anything is made;
        ``make_folders`` then creates the outputs' folders.
        """
        python = resolve_python()
        if make_folders:
            for path in outputs:
                os.makedirs(os.path.dirname(path), exist_ok=True)
        return run_geosr(python, args, feedback, outputs=outputs, what=f"geosr {self.NAME}")
