"""geosr:upscale - "Super-resolve raster": one raster or satellite product in, one finer raster
out, same place."""

from __future__ import annotations

import os

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputRasterLayer,
    QgsProcessingParameterFile,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from .algorithm import GeosrAlgorithm, is_unset, raster_path, refuse_inputs_as_outputs, tr

GTIFF_EXTENSIONS = (".tif", ".tiff")
ZARR_EXTENSION = ".zarr"
ZARR_VARIABLE = "band_data"  # the array geosr writes in a Zarr store
# "All files (*)" too: a STAC Item URL of an API (.../items/ID) has no extension, and QGIS
# refuses a value its filter does not match
PRODUCT_FILTER = "Satellite products (*.zip *.xml *.txt *.json);;All files (*)"


def uncertainty_path(output: str) -> str:
    """Where geosr writes the uncertainty beside ``output`` (geosr.uncertainty_path)."""
    stem, extension = os.path.splitext(output)
    return f"{stem}_uncertainty{extension}"


def zarr_layer_uri(store: str) -> str:
    """The GDAL name of the raster in a Zarr store geosr wrote."""
    return f'ZARR:"{store}":/{ZARR_VARIABLE}'


class UpscaleAlgorithm(GeosrAlgorithm):
    """Run ``geosr upscale SOURCE OUTPUT`` in geosr's own Python and load the result."""

    INPUT = "INPUT"
    STACK = "STACK"
    PRODUCT = "PRODUCT"
    PRODUCT_FOLDER = "PRODUCT_FOLDER"
    MODEL = "MODEL"
    STRENGTH = "STRENGTH"
    TTA = "TTA"
    PRESERVE_SPECTRA = "PRESERVE_SPECTRA"
    STRICT = "STRICT"
    UNCERTAINTY = "UNCERTAINTY"
    CHUNK_SIZE = "CHUNK_SIZE"
    DEVICE = "DEVICE"
    BANDS = "BANDS"
    BAND_NAMES = "BAND_NAMES"
    MASK = "MASK"
    GUIDED = "GUIDED"
    RESOLUTION = "RESOLUTION"
    COG = "COG"
    STAC = "STAC"
    OUTPUT = "OUTPUT"
    STAC_ITEM = "STAC_ITEM"
    UNCERTAINTY_OUTPUT = "UNCERTAINTY_OUTPUT"
    #: The parameters that give the input, exactly one at a time, and what each one gives.
    SOURCES = (
        (INPUT, "an input raster"),
        (STACK, "rasters to stack"),
        (PRODUCT, "a product file"),
        (PRODUCT_FOLDER, "a product folder"),
    )

    NAME = "upscale"
    DISPLAY_NAME = "Super-resolve raster"
    HELP = (
        "Makes a raster's pixels smaller by the model's scale factor (for example 30 m to 15 m "
        "with a x2 model) with a super-resolution network (SRGAN).\n\n"
        "The input is one of: a raster (a file, or a GDAL virtual file such as a COG added "
        "from a URL: /vsicurl/https://...); several single-band rasters on one grid stacked in "
        "order (Single-band rasters to stack); a satellite product file (a Sentinel-2 SAFE "
        ".zip, the MTD_MSIL1C.xml or MTD_MSIL2A.xml of a SAFE folder, a Landsat *_MTL.txt, or "
        "a STAC Item .json file or URL); or a product folder (a Sentinel-2 .SAFE folder or a "
        "Landsat folder with its MTL file).\n\n"
        "A product's bands, chosen by name (Band names, e.g. B04,B03,B02,B08), are first "
        "brought onto the grid of the finest one (by the bundled guided model of the sensor, "
        "which sharpens them with the product's sharper bands, else cubic), clouds and fill "
        "are masked from its "
        "quality band (SCL, QA_PIXEL or BQA), and band names, wavelengths and reflectance "
        "scale/offset are kept. An output pixel size (Output pixel size) equal to the finest "
        "band's only brings the bands onto that grid, with no super-resolution network.\n\n"
        "The output is a GeoTIFF, or a Zarr store for an output ending in .zarr, with the "
        "input's CRS, extent, band count, data type and "
        "nodata; only the pixel size changes (divided by the scale). Large rasters are "
        "processed in overlapping chunks, so memory use stays bounded and no seams appear. "
        "A STAC Item describing it can be written beside it.\n\n"
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
            "data type the model accepts. Leave empty when stacking single-band rasters or "
            "reading a product.",
        )
        self.add_rasters(
            self.STACK,
            "Single-band rasters to stack instead of the input",
            "Single-band rasters on one grid (same CRS, extent and pixel size), stacked in this "
            "order into one multi-band input; each band is named after its file (e.g. "
            "B02.jp2 ... B04.jp2). Leave empty to use the input raster.",
            optional=True,
        )
        self.add(
            QgsProcessingParameterFile(
                self.PRODUCT,
                tr("Satellite product file instead of the input"),
                behavior=QgsProcessingParameterFile.File,
                fileFilter=tr(PRODUCT_FILTER),
                optional=True,
            ),
            "A satellite product to super-resolve: a Sentinel-2 SAFE .zip, the MTD_MSIL1C.xml "
            "or MTD_MSIL2A.xml inside a SAFE folder, a Landsat *_MTL.txt, or a STAC Item (a "
            ".json file or its URL). Leave empty to use the input raster.",
        )
        self.add(
            QgsProcessingParameterFile(
                self.PRODUCT_FOLDER,
                tr("Satellite product folder instead of the input"),
                behavior=QgsProcessingParameterFile.Folder,
                optional=True,
            ),
            "A satellite product as a folder: a Sentinel-2 .SAFE folder, or a Landsat folder "
            "holding its *_MTL.txt and band files. Leave empty to use the input raster.",
        )
        # MODEL, BAND_NAMES, RESOLUTION, STRENGTH, TTA, ...: as geosr declares them
        self.add_declared()
        self.add(
            QgsProcessingParameterRasterDestination(self.OUTPUT, tr("Super-resolved raster")),
            "The GeoTIFF to write (.tif), or a Zarr store (a folder, .zarr). It must not be "
            "the input. An existing output is replaced only when the run succeeds.",
        )
        self.addOutput(QgsProcessingOutputFile(self.STAC_ITEM, tr("STAC Item")))
        self.addOutput(QgsProcessingOutputRasterLayer(self.UNCERTAINTY_OUTPUT, tr("Uncertainty")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API
        sources, input_args = self.input_sources(parameters, context)
        output = self.output_path(parameters, self.OUTPUT, context)
        stac = self.parameterAsBoolean(parameters, self.STAC, context)
        stac_item = os.path.splitext(output)[0] + ".json" if stac else None
        uncertainty = (
            uncertainty_path(output)
            if self.parameterAsBoolean(parameters, self.UNCERTAINTY, context)
            else None
        )
        # the STAC Item too: beside an input Item named like the output, it would replace it
        outputs = [output] + [path for path in (stac_item, uncertainty) if path]
        product = any(
            not is_unset(parameters.get(name)) for name in (self.PRODUCT, self.PRODUCT_FOLDER)
        )
        refuse_inputs_as_outputs(
            sources, outputs, which=tr("the input product") if product else None
        )
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

        self.check_bands(parameters, context)
        # SOURCE OUTPUT (what every geosr release takes), or --stack F1 F2 ... -o OUTPUT; the
        # declared options are passed only when set, so rasters still run on older releases
        output_args = ["-o", output] if input_args[0] == "--stack" else [output]
        args = ["-m", "geosr", "upscale", *input_args, *output_args]
        args += self.declared_args(parameters, context)
        args += ["--overwrite", "--progress", "jsonl", "--exit-on-stdin-eof"]
        self.run_command(args, feedback, outputs=outputs)
        if zarr:
            skip_loading_zarr(context, output, feedback)
        if uncertainty and not zarr:
            details = QgsProcessingContext.LayerDetails(
                os.path.basename(os.path.splitext(uncertainty)[0]),
                context.project(),
                self.UNCERTAINTY_OUTPUT,
            )
            context.addLayerToLoadOnCompletion(uncertainty, details)
        return {
            self.OUTPUT: output,
            self.STAC_ITEM: stac_item,
            self.UNCERTAINTY_OUTPUT: uncertainty,
        }

    def input_sources(self, parameters, context) -> tuple[list[str], list[str]]:
        """The files read and their command-line arguments: ``[SOURCE]`` (a raster, product
        file or product folder) or ``["--stack", f1, f2, ...]``; refuse none or several, and
        bands by number with anything but the input raster."""
        stacked = bool(self.parameterAsLayerList(parameters, self.STACK, context))
        given = [
            (name, tr(label))
            for name, label in self.SOURCES
            if (stacked if name == self.STACK else not is_unset(parameters.get(name)))
        ]
        labels = [label for _name, label in given]
        if not given:
            raise QgsProcessingException(
                tr(
                    "Give an input: an input raster, single-band rasters to stack, a product "
                    "file or a product folder (none was given)."
                )
            )
        if len(given) == 2:
            raise QgsProcessingException(
                tr("Give one input, not both {a} and {b}: empty one of them.").format(
                    a=labels[0], b=labels[1]
                )
            )
        if len(given) > 2:
            raise QgsProcessingException(
                tr("Give one input, not {some} and {last}: empty all but one.").format(
                    some=", ".join(labels[:-1]), last=labels[-1]
                )
            )
        [(name, label)] = given
        if name != self.INPUT and self.parameterAsInts(parameters, self.BANDS, context):
            raise QgsProcessingException(
                tr(
                    "Bands apply to the input raster, not to {what}: leave Bands empty and {fix}."
                ).format(
                    what=label,
                    fix=tr("stack only the single-band rasters you want, in order")
                    if name == self.STACK
                    else tr("choose the product's bands by name in Band names (e.g. B04,B03,B02)"),
                )
            )
        if name == self.STACK:
            sources = self.raster_sources(parameters, self.STACK, context, "raster to stack")
            return sources, ["--stack", *sources]
        if name == self.INPUT:
            layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
            if layer is None:
                raise QgsProcessingException(self.invalidRasterError(parameters, self.INPUT))
            source = raster_path(layer, tr("Input raster"))
            return [source], [source]
        source = self.parameterAsFile(parameters, name, context)
        if "://" not in source:  # a STAC Item URL stays as it is
            source = os.path.abspath(source)
        return [source], [source]

    def check_bands(self, parameters, context) -> None:
        """Refuse bands given both by number (Bands) and by name (Band names)."""
        names = self.parameterAsString(parameters, self.BAND_NAMES, context).strip(" ,")
        if names and self.parameterAsInts(parameters, self.BANDS, context):
            raise QgsProcessingException(
                tr(
                    "Give bands either by number (Bands) or by name (Band names), not both: "
                    "empty one of them."
                )
            )


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
