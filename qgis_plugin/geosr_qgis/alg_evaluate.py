"""geosr:evaluate - "Evaluate model against bicubic": a report of how much the model helps."""

from __future__ import annotations

import os

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
)

from .algorithm import GeosrAlgorithm, raster_path, same_file, tr
from .environment import resolve_python
from .runner import run_geosr

SCALES = ("2", "4", "8")
DEVICES = ("auto", "cpu", "cuda")


class EvaluateAlgorithm(GeosrAlgorithm):
    """Run ``geosr evaluate`` and return its HTML report, JSON metrics and figure."""

    INPUT = "INPUT"
    MODEL = "MODEL"
    SCALE = "SCALE"
    DEVICE = "DEVICE"
    OUTPUT_HTML = "OUTPUT_HTML"
    OUTPUT_JSON = "OUTPUT_JSON"
    FIGURE = "FIGURE"

    NAME = "evaluate"
    DISPLAY_NAME = "Evaluate model against bicubic"
    HELP = (
        "Measures how much a model adds over plain interpolation: each raster is downsampled "
        "by the scale factor as in training, restored by the model (through the same pipeline "
        "as 'Super-resolve raster') and by bicubic and Lanczos interpolation, and each result "
        "is compared with the original: PSNR, SSIM, SAM (spectral angle), ERGAS, UIQI, and LR "
        "consistency (the output downsampled again against the input, which checks that "
        "radiometry is kept).\n\n"
        "Writes an HTML report (the table and a figure), the same numbers as JSON, and the "
        "figure (side-by-side crops: LR, bicubic, model, HR) as a PNG beside the HTML file, "
        "with the same name.\n\n"
        "The work runs in geosr's own Python environment: Plugins \u203a geosr \u203a Set up "
        "geosr\u2026 makes one; or set yours in Settings \u203a Options \u203a Processing \u203a "
        "Providers \u203a geosr, or by the environment variable GEOSR_PYTHON."
    )

    def initAlgorithm(self, config=None):  # noqa: N802 - QGIS API
        self.add(
            QgsProcessingParameterMultipleLayers(
                self.INPUT, tr("Test rasters"), layerType=QgsProcessing.TypeRaster
            ),
            "High-resolution rasters the model was not trained on (files GDAL reads), with "
            "the bands the model expects.",
        )
        self.add(
            QgsProcessingParameterFile(
                self.MODEL,
                tr("Model (.safetensors)"),
                behavior=QgsProcessingParameterFile.File,
                extension="safetensors",
                optional=True,
            ),
            "The geosr model to evaluate (.safetensors). Empty: the model bundled with geosr.",
        )
        self.add(
            QgsProcessingParameterEnum(
                self.SCALE,
                tr("Scale factor"),
                options=list(SCALES),
                optional=True,
                usesStaticStrings=True,
            ),
            "The scale factor (2, 4 or 8) the rasters are downsampled by before they are "
            "restored. Empty: the model's own; a different value is refused.",
        )
        self.add(
            QgsProcessingParameterEnum(
                self.DEVICE,
                tr("Device"),
                options=list(DEVICES),
                defaultValue="auto",
                usesStaticStrings=True,
            ),
            "Where the model runs: 'auto' uses a CUDA GPU when geosr's PyTorch sees one and "
            "the CPU otherwise; 'cpu' and 'cuda' force one.",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterFileDestination(
                self.OUTPUT_HTML, tr("HTML report"), fileFilter=tr("HTML files (*.html)")
            ),
            "The report: a table of metrics (model and bicubic) and a figure. Its figure is "
            "written beside it as a PNG with the same name.",
        )
        self.add(
            QgsProcessingParameterFileDestination(
                self.OUTPUT_JSON, tr("JSON metrics"), fileFilter=tr("JSON files (*.json)")
            ),
            "The report's numbers in machine-readable form.",
        )
        self.addOutput(QgsProcessingOutputFile(self.FIGURE, tr("Figure (PNG)")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API
        layers = self.parameterAsLayerList(parameters, self.INPUT, context)
        if not layers:
            raise QgsProcessingException(tr("Choose at least one test raster."))
        sources = [raster_path(layer, tr("Test raster")) for layer in layers]
        html = self.parameterAsFileOutput(parameters, self.OUTPUT_HTML, context)
        report = self.parameterAsFileOutput(parameters, self.OUTPUT_JSON, context)
        if not html or not report:
            raise QgsProcessingException(tr("Give both the HTML report and the JSON file."))
        html, report = os.path.abspath(html), os.path.abspath(report)
        figure = os.path.splitext(html)[0] + ".png"
        for path in (html, report, figure):
            if any(same_file(source, path) for source in sources):
                raise QgsProcessingException(
                    tr(
                        "The output {path} is one of the input rasters; choose another name."
                    ).format(path=path)
                )
        if same_file(html, report):
            raise QgsProcessingException(tr("The HTML report and the JSON file must differ."))

        model = self.parameterAsFile(parameters, self.MODEL, context) or "default"
        args = ["-m", "geosr", "evaluate", "--model", model]
        scale = self.parameterAsEnumString(parameters, self.SCALE, context)
        if scale:
            args += ["--scale", scale]
        args += ["--device", self.parameterAsEnumString(parameters, self.DEVICE, context)]
        args += sources
        args += ["--json", report, "--figure", figure, "--html", html]
        args += ["--progress", "jsonl", "--exit-on-stdin-eof"]

        python = resolve_python()
        for path in (html, report):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        run_geosr(python, args, feedback, outputs=[html, report, figure], what="geosr evaluate")
        return {self.OUTPUT_HTML: html, self.OUTPUT_JSON: report, self.FIGURE: figure}
