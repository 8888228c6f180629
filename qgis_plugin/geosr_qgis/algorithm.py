"""What every geosr algorithm shares: group, icon, help, the parameters geosr declares (built from
geosr's option declarations, :mod:`geosr_qgis.declarations`), turning layers and outputs into
file paths, and running geosr's interpreter."""

from __future__ import annotations

import os
from collections.abc import Sequence

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterBand,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
    QgsProviderRegistry,
    QgsRasterLayer,
)
from qgis.PyQt.QtCore import QCoreApplication, QVariant
from qgis.PyQt.QtGui import QIcon

from .declarations import parameters_of
from .environment import resolve_python
from .runner import run_geosr

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


def declared_parameter(entry: dict) -> QgsProcessingParameterDefinition | None:
    """The QGIS parameter of a declared option's QGIS entry (its help is added by
    :meth:`GeosrAlgorithm.add`); None for a widget this plugin does not know."""
    name, label, widget = entry["parameter"], tr(entry["label"]), entry["widget"]
    default, optional = entry.get("default"), bool(entry.get("optional"))
    if widget == "boolean":
        return QgsProcessingParameterBoolean(name, label, defaultValue=bool(default))
    if widget == "number":
        kind = QgsProcessingParameterNumber.Double if entry.get("decimal") else None
        parameter = QgsProcessingParameterNumber(
            name,
            label,
            type=kind or QgsProcessingParameterNumber.Integer,
            defaultValue=default,
            optional=optional,
        )
        if entry.get("minimum") is not None:
            parameter.setMinimum(entry["minimum"])
        if entry.get("maximum") is not None:
            parameter.setMaximum(entry["maximum"])
        return parameter
    if widget == "enum":
        return QgsProcessingParameterEnum(
            name,
            label,
            options=[str(choice) for choice in entry.get("choices") or ()],
            defaultValue=default,
            optional=optional,
            usesStaticStrings=True,
        )
    if widget == "band":
        return QgsProcessingParameterBand(
            name,
            label,
            parentLayerParameterName=entry.get("parent") or "INPUT",
            optional=True,
            allowMultiple=True,
        )
    if widget == "text":
        return QgsProcessingParameterString(name, label, defaultValue=default, optional=optional)
    if widget == "file":
        return QgsProcessingParameterFile(
            name,
            label,
            behavior=QgsProcessingParameterFile.File,
            extension=entry.get("extension") or "",
            optional=optional,
        )
    return None


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

    # ------------------------------------------------------------ geosr's declared options

    def add_declared(self) -> None:
        """Add the parameters geosr declares for this algorithm (``geosr options --json``,
        :mod:`geosr_qgis.declarations`), in geosr's order; :meth:`declared_args` passes
        their values to geosr."""
        self.declared: list[dict] = []
        for entry in parameters_of(self.NAME):
            if self.parameterDefinition(entry["parameter"]) is not None:
                continue  # one of the algorithm's own
            parameter = declared_parameter(entry)
            if parameter is None:
                continue  # a widget of a newer geosr
            self.add(parameter, entry["help"], advanced=bool(entry.get("advanced")))
            self.declared.append(entry)

    def declared_args(self, parameters: dict, context: QgsProcessingContext) -> list[str]:
        """geosr's command-line arguments for the declared parameters that were given; one left
        empty or at geosr's default is left out (so older geosr releases still run)."""
        args: list[str] = []
        given: dict[str, str] = {}
        for entry in getattr(self, "declared", []):
            flag = entry.get("flag")
            value = self.declared_value(entry, parameters, context)
            if value is None or not flag:
                continue
            if flag in given:
                raise QgsProcessingException(
                    tr("Give '{a}' or '{b}', not both: empty one of them.").format(
                        a=given[flag], b=tr(entry["label"])
                    )
                )
            given[flag] = tr(entry["label"])
            args += [flag] if value is True else [flag, value]
        return args

    def declared_value(self, entry: dict, parameters: dict, context: QgsProcessingContext):
        """The value of a declared parameter as geosr's command line takes it: True for a
        ticked flag, a text, or None when it is not passed."""
        name, widget = entry["parameter"], entry["widget"]
        if widget == "boolean":
            return True if self.parameterAsBoolean(parameters, name, context) else None
        if widget == "band":
            numbers = self.parameterAsInts(parameters, name, context)
            return ",".join(str(number) for number in numbers) or None
        if widget == "enum":
            text = self.parameterAsEnumString(parameters, name, context)
            return text if text and text != entry.get("skip") else None
        if is_unset(parameters.get(name)):
            return None
        if widget == "number":
            return self.declared_number(entry, parameters, context)
        if widget == "file":
            return self.parameterAsFile(parameters, name, context) or None
        text = self.parameterAsString(parameters, name, context)
        if entry.get("list"):
            text = ",".join(part.strip() for part in text.split(",") if part.strip())
        return text.strip() or None

    def declared_number(self, entry: dict, parameters: dict, context: QgsProcessingContext):
        """A declared number as text; refuse the minimum where geosr refuses it (QGIS's
        minimum is inclusive)."""
        name = entry["parameter"]
        if entry.get("decimal"):
            value = self.parameterAsDouble(parameters, name, context)
        else:
            value = self.parameterAsInt(parameters, name, context)
        minimum = entry.get("minimum")
        if entry.get("exclusive_minimum") and minimum is not None and not value > minimum:
            raise QgsProcessingException(
                tr(
                    "'{label}' must be greater than {minimum:g}, not {value:g}: give a larger "
                    "value, or leave it empty for geosr's default."
                ).format(label=tr(entry["label"]), minimum=minimum, value=value)
            )
        return repr(float(value)) if entry.get("decimal") else str(int(value))

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
