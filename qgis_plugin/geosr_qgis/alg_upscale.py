"""geosr:upscale - "Super-resolve raster": one raster in, one finer raster out, same place."""

from __future__ import annotations

import os

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingParameterBand,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from .algorithm import GeosrAlgorithm, is_unset, raster_path, refuse_inputs_as_outputs, tr

GTIFF_EXTENSIONS = (".tif", ".tiff")
ZARR_EXTENSION = ".zarr"
ZARR_VARIABLE = "band_data"  # the array geosr writes in a Zarr store


def zarr_layer_uri(store: str) -> str:
    """The GDAL name of the raster in a Zarr store geosr wrote."""
    return f'ZARR:"{store}":/{ZARR_VARIABLE}'


class UpscaleAlgorithm(GeosrAlgorithm):
    """Run ``geosr upscale INPUT OUTPUT`` in geosr's own Python and load the result."""

    INPUT = "INPUT"
    STACK = "STACK"
    MODEL = "MODEL"
    STRENGTH = "STRENGTH"
    TTA = "TTA"
    PRESERVE_SPECTRA = "PRESERVE_SPECTRA"
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
        "The input is one raster (a file, or a GDAL virtual file such as a COG added from a "
        "URL: /vsicurl/https://...), or several single-band rasters on one grid stacked in "
        "order (Single-band rasters to stack).\n\n"
        "The output is a GeoTIFF, or a Zarr store for an output ending in .zarr, with the "
        "input's CRS, extent, band count, data type and "
        "nodata; only the pixel size changes (divided by the scale). Large rasters are "
        "processed in overlapping chunks, so memory use stays bounded and no seams appear.\n\n"
        "The work runs in geosr's own Python environment: Plugins \u203a geosr \u203a Set up "
        "geosr\u2026 makes one; or set yours in Settings \u203a Options \u203a Processing \u203a "
        "Providers \u203a geosr, or by the environment variable GEOSR_PYTHON. "
        "Cancelling stops it and leaves no partial output."
    )

    def initAlgorithm(self, config=None):  # noqa: N802 - QGIS API
        self.add(
            QgsProcessingParameterRasterLayer(self.INPUT, tr("Input raster"), optional=True),
            "The raster to super-resolve: a file GDAL reads (GeoTIFF, JP2, ...) or a GDAL "
            "virtual file (/vsicurl/https://..., /vsis3/..., /vsizip/...), any band count and "
            "data type the model accepts. Leave empty when stacking single-band rasters.",
        )
        self.add_rasters(
            self.STACK,
            "Single-band rasters to stack instead of the input",
            "Single-band rasters on one grid (same CRS, extent and pixel size), stacked in this "
            "order into one multi-band input; each band is named after its file (e.g. "
            "B02.jp2 ... B04.jp2). Leave empty to use the input raster.",
            optional=True,
        )
        self.add_model_file(
            self.MODEL,
            "Model (.safetensors)",
            "A geosr model file (.safetensors), e.g. one made by 'Train super-resolution "
            "model'. Leave empty to use the model bundled with geosr. The model fixes the "
            "scale factor and, unless it is band-shared, the number of bands it accepts.",
        )
        self.add(
            QgsProcessingParameterNumber(
                self.STRENGTH,
                tr("Texture strength (0 to 1)"),
                type=QgsProcessingParameterNumber.Double,
                optional=True,
                minValue=0.0,
                maxValue=1.0,
            ),
            "For a model with a strength dial, such as the bundled default (srgan): 0 gives "
            "its fidelity model (smooth, closest to the measured pixels), 1 its GAN endpoint "
            "(sharp, invented texture that still averages back to each input pixel). Empty: "
            "the model's own default. Other models refuse a strength.",
        )
        self.add(
            QgsProcessingParameterBoolean(
                self.TTA,
                tr("Self-ensemble (8x slower, a little more accurate)"),
                defaultValue=False,
            ),
            "Run the network on the eight flips and rotations of each tile and average them "
            "(x8 self-ensemble): a little higher fidelity for eight times the network time.",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterBoolean(
                self.PRESERVE_SPECTRA,
                tr("Keep the fidelity model's band ratios (2x slower)"),
                defaultValue=False,
            ),
            "For a model with a strength dial, on a raster of several bands: each output "
            "pixel keeps the band ratios (spectral angle) of strength 0 and the brightness, "
            "hence the texture, of the chosen strength. Use it when spectra matter (indices, "
            "classification); it runs the network twice. Other models refuse it.",
            advanced=True,
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
            "Bands of the input raster to super-resolve, in this order. Empty: all bands. "
            "Not used with stacked rasters: stack only the bands you want.",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterBoolean(
                self.COG, tr("Write a Cloud Optimized GeoTIFF"), defaultValue=False
            ),
            "Write the output as a Cloud Optimized GeoTIFF (tiled, with overviews). Not "
            "with a Zarr output.",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterRasterDestination(self.OUTPUT, tr("Super-resolved raster")),
            "The GeoTIFF to write (.tif), or a Zarr store (a folder, .zarr). It must not be "
            "the input. An existing output is replaced only when the run succeeds.",
        )

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API
        sources, input_args = self.input_sources(parameters, context)
        output = self.output_path(parameters, self.OUTPUT, context)
        refuse_inputs_as_outputs(sources, [output])
        zarr = output.lower().endswith(ZARR_EXTENSION)
        if not zarr and not output.lower().endswith(GTIFF_EXTENSIONS):
            raise QgsProcessingException(
                tr(
                    "geosr writes GeoTIFF or Zarr; choose an output ending in .tif or .zarr, "
                    "not {name}."
                ).format(name=os.path.basename(output))
            )
        cog = self.parameterAsBoolean(parameters, self.COG, context)
        if cog and zarr:
            raise QgsProcessingException(
                tr(
                    "A Cloud Optimized GeoTIFF cannot be a Zarr store ({name}): untick 'Write a "
                    "Cloud Optimized GeoTIFF' or choose an output ending in .tif."
                ).format(name=os.path.basename(output))
            )

        # INPUT OUTPUT (what every geosr release takes), or --stack F1 F2 ... -o OUTPUT
        output_args = ["-o", output] if input_args[0] == "--stack" else [output]
        args = ["-m", "geosr", "upscale", *input_args, *output_args]
        model = self.parameterAsFile(parameters, self.MODEL, context)
        if model:
            args += ["--model", model]
        if not is_unset(parameters.get(self.STRENGTH)):
            strength = self.parameterAsDouble(parameters, self.STRENGTH, context)
            args += ["--strength", f"{strength:g}"]
        if self.parameterAsBoolean(parameters, self.TTA, context):
            args.append("--tta")
        if self.parameterAsBoolean(parameters, self.PRESERVE_SPECTRA, context):
            args.append("--preserve-spectra")
        args += self.integer_args(parameters, context, {self.CHUNK_SIZE: "--chunk-size"})
        args += ["--device", self.parameterAsEnumString(parameters, self.DEVICE, context)]
        bands = self.parameterAsInts(parameters, self.BANDS, context)
        if bands:
            args += ["--bands", ",".join(str(band) for band in bands)]
        if cog:
            args.append("--cog")
        args += ["--overwrite", "--progress", "jsonl", "--exit-on-stdin-eof"]
        self.run_command(args, feedback, outputs=[output])
        if zarr:
            skip_loading_zarr(context, output, feedback)
        return {self.OUTPUT: output}

    def input_sources(self, parameters, context) -> tuple[list[str], list[str]]:
        """The rasters read and their command-line arguments: ``[INPUT]`` or ``["--stack",
        f1, f2, ...]``; refuse both or neither, and bands with a stack."""
        stacked = bool(self.parameterAsLayerList(parameters, self.STACK, context))
        single = not is_unset(parameters.get(self.INPUT))
        if stacked == single:
            raise QgsProcessingException(
                tr(
                    "Give either an input raster or single-band rasters to stack, not {what}: "
                    "{fix}."
                ).format(
                    what=tr("both") if stacked else tr("neither"),
                    fix=tr("empty one of them") if stacked else tr("choose one of them"),
                )
            )
        if stacked:
            if self.parameterAsInts(parameters, self.BANDS, context):
                raise QgsProcessingException(
                    tr(
                        "Bands apply to the input raster, not to stacked rasters: leave Bands "
                        "empty and stack only the single-band rasters you want, in order."
                    )
                )
            sources = self.raster_sources(parameters, self.STACK, context, "raster to stack")
            return sources, ["--stack", *sources]
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None:
            raise QgsProcessingException(self.invalidRasterError(parameters, self.INPUT))
        source = raster_path(layer, tr("Input raster"))
        return [source], [source]


def skip_loading_zarr(context: QgsProcessingContext, store: str, feedback) -> None:
    """A Zarr store is a folder that QGIS cannot add as one multi-band layer: leave it out of
    the layers loaded on completion and say how to open it."""
    if not context.willLoadLayerOnCompletion(store):
        return
    layers = context.layersToLoadOnCompletion()
    layers.pop(store, None)
    context.setLayersToLoadOnCompletion(layers)
    feedback.pushInfo(
        tr(
            "The Zarr store {store} is not added to the map: QGIS opens a Zarr band as "
            "Layer \u203a Add Raster Layer with the source {uri}:0 (band 1), or write a .tif "
            "output to get one layer."
        ).format(store=store, uri=zarr_layer_uri(store))
    )
