"""geosr:upscale - "Super-resolve raster": one raster in, one finer raster out, same place."""

from __future__ import annotations

import os

from qgis.core import (
    QgsProcessingException,
    QgsProcessingParameterBand,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from .algorithm import GeosrAlgorithm, raster_path, refuse_inputs_as_outputs, tr

OUTPUT_EXTENSIONS = (".tif", ".tiff")


class UpscaleAlgorithm(GeosrAlgorithm):
    """Run ``geosr upscale INPUT OUTPUT`` in geosr's own Python and load the result."""

    INPUT = "INPUT"
    MODEL = "MODEL"
    CHUNK_SIZE = "CHUNK_SIZE"
    DEVICE = "DEVICE"
    BANDS = "BANDS"
    COG = "COG"
    OUTPUT = "OUTPUT"

    NAME = "upscale"
    DISPLAY_NAME = "Super-resolve raster"
    HELP = (
        "Makes a raster's pixels smaller by the model's scale factor (for example 30 m to 15 m "
        "with a x2 model) with a super-resolution network (SRGAN).\n\n"
        "The output is a GeoTIFF with the input's CRS, extent, band count, data type and "
        "nodata; only the pixel size changes (divided by the scale). Large rasters are "
        "processed in overlapping chunks, so memory use stays bounded and no seams appear.\n\n"
        "The work runs in geosr's own Python environment: Plugins \u203a geosr \u203a Set up "
        "geosr\u2026 makes one; or set yours in Settings \u203a Options \u203a Processing \u203a "
        "Providers \u203a geosr, or by the environment variable GEOSR_PYTHON. "
        "Cancelling stops it and leaves no partial output."
    )

    def initAlgorithm(self, config=None):  # noqa: N802 - QGIS API
        self.add(
            QgsProcessingParameterRasterLayer(self.INPUT, tr("Input raster")),
            "The raster to super-resolve: a file GDAL reads (GeoTIFF, JP2, ...), any band "
            "count and data type the model accepts.",
        )
        self.add_model_file(
            self.MODEL,
            "Model (.safetensors)",
            "A geosr model file (.safetensors), e.g. one made by 'Train super-resolution "
            "model'. Leave empty to use the model bundled with geosr. The model fixes the "
            "scale factor and, unless it is band-shared, the number of bands it accepts.",
        )
        self.add_device(self.DEVICE, "the network", advanced=False)
        self.add_integer(
            self.CHUNK_SIZE,
            "Chunk size (input pixels)",
            "Side of the square input windows processed one at a time, in input pixels. "
            "Smaller uses less memory, larger is faster. Empty: geosr's default.",
            minimum=16,
            advanced=True,
        )
        self.add(
            QgsProcessingParameterBand(
                self.BANDS,
                tr("Bands"),
                parentLayerParameterName=self.INPUT,
                optional=True,
                allowMultiple=True,
            ),
            "Bands of the input to super-resolve, in this order. Empty: all bands.",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterBoolean(
                self.COG, tr("Write a Cloud Optimized GeoTIFF"), defaultValue=False
            ),
            "Write the output as a Cloud Optimized GeoTIFF (tiled, with overviews).",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterRasterDestination(self.OUTPUT, tr("Super-resolved raster")),
            "The GeoTIFF to write (.tif). It must not be the input. An existing file is "
            "replaced only when the run succeeds.",
        )

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None:
            raise QgsProcessingException(self.invalidRasterError(parameters, self.INPUT))
        source = raster_path(layer, tr("Input raster"))
        output = self.output_path(parameters, self.OUTPUT, context)
        refuse_inputs_as_outputs([source], [output])
        if not output.lower().endswith(OUTPUT_EXTENSIONS):
            raise QgsProcessingException(
                tr(
                    "geosr writes GeoTIFF; choose an output file ending in .tif, not {name}."
                ).format(name=os.path.basename(output))
            )

        args = ["-m", "geosr", "upscale", source, output]
        model = self.parameterAsFile(parameters, self.MODEL, context)
        if model:
            args += ["--model", model]
        args += self.integer_args(parameters, context, {self.CHUNK_SIZE: "--chunk-size"})
        args += ["--device", self.parameterAsEnumString(parameters, self.DEVICE, context)]
        bands = self.parameterAsInts(parameters, self.BANDS, context)
        if bands:
            args += ["--bands", ",".join(str(band) for band in bands)]
        if self.parameterAsBoolean(parameters, self.COG, context):
            args.append("--cog")
        args += ["--overwrite", "--progress", "jsonl", "--exit-on-stdin-eof"]
        self.run_command(args, feedback, outputs=[output])
        return {self.OUTPUT: output}
