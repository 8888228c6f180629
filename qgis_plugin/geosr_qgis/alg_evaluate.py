"""geosr:evaluate - "Evaluate model against bicubic": a report of how much the model helps."""

from __future__ import annotations

import os

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingParameterFileDestination,
)

from .algorithm import GeosrAlgorithm, refuse_inputs_as_outputs, same_file, tr


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
        self.add_rasters(
            self.INPUT,
            "Test rasters",
            "High-resolution rasters the model was not trained on (files GDAL reads), with "
            "the bands the model expects.",
        )
        # MODEL, SCALE, DEVICE: as geosr declares them
        self.add_declared()
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
        sources = self.raster_sources(parameters, self.INPUT, context, "test raster")
        html = self.output_path(parameters, self.OUTPUT_HTML, context)
        report = self.output_path(parameters, self.OUTPUT_JSON, context)
        figure = os.path.splitext(html)[0] + ".png"
        refuse_inputs_as_outputs(sources, [html, report, figure])
        if same_file(html, report):
            raise QgsProcessingException(tr("The HTML report and the JSON file must differ."))

        args = ["-m", "geosr", "evaluate", *self.declared_args(parameters, context)]
        args += sources
        args += ["--json", report, "--figure", figure, "--html", html]
        args += ["--progress", "jsonl", "--exit-on-stdin-eof"]
        self.run_command(args, feedback, outputs=[html, report, figure], make_folders=True)
        return {self.OUTPUT_HTML: html, self.OUTPUT_JSON: report, self.FIGURE: figure}
