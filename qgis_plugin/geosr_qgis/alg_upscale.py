"""geosr:upscale - "Super-resolve raster": one raster or satellite product in, one finer raster
out, same place."""

from __future__ import annotations

import os

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputRasterLayer,
    QgsProcessingParameterBand,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFile,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from .algorithm import GeosrAlgorithm, is_unset, raster_path, refuse_inputs_as_outputs, tr

GTIFF_EXTENSIONS = (".tif", ".tiff")
ZARR_EXTENSION = ".zarr"
ZARR_VARIABLE = "band_data"  # the array geosr writes in a Zarr store
MASKS = ("auto", "clouds", "nodata", "none")
GUIDED = ("auto", "none", "s2-guided", "landsat-pan")
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
        self.add_model_file(
            self.MODEL,
            "Model (.safetensors)",
            "A geosr model file (.safetensors), e.g. one made by 'Train super-resolution "
            "model'. Leave empty to use the model bundled with geosr. The model fixes the "
            "scale factor and, unless it is band-shared, the number of bands it accepts.",
        )
        self.add(
            QgsProcessingParameterString(
                self.BAND_NAMES, tr("Band names (e.g. B04,B03,B02,B08)"), optional=True
            ),
            "Bands to super-resolve by name, in this order, separated by commas: B04,B03,B02,B08 "
            "for Sentinel-2, B4,B3,B2,B5 for Landsat; common names (red,nir) and band numbers "
            "work too. Empty: a product's reflective bands, or all bands of a raster. Not "
            "together with Bands.",
        )
        self.add_number(
            self.RESOLUTION,
            "Output pixel size (CRS units)",
            "The output's pixel size in the units of the input's CRS (metres for UTM): the "
            "finest band's pixel divided by the model's scale (what empty gives), or the finest "
            "band's pixel itself (10 for Sentinel-2), which only brings a product's bands onto "
            "one grid, with no super-resolution network. Other values are refused.",
            minimum=0.0,  # inclusive: 0 itself is refused in resolution()
            decimal=True,
        )
        self.add_number(
            self.STRENGTH,
            "Texture strength (0 to 1)",
            "For a model with a strength dial, such as the bundled default (srgan): 0 gives "
            "its fidelity model (smooth, closest to the measured pixels), 1 its GAN endpoint "
            "(sharp, invented texture that still averages back to each input pixel). Empty: "
            "the model's own default. Other models refuse a strength.",
            minimum=0.0,
            maximum=1.0,
            decimal=True,
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
        self.add(
            QgsProcessingParameterBoolean(
                self.STRICT,
                tr("Refuse inputs outside the model's training domain"),
                defaultValue=False,
            ),
            "The model's card records what it was trained on (pixel sizes, data types, "
            "values: DN or reflectance). An input outside that gets a warning in the log "
            "(for example 'scene pixel 0.3 m; this model saw 5\u2013300 m inputs'); ticked, "
            "the run stops with that message instead and writes nothing.",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterBoolean(
                self.UNCERTAINTY, tr("Also write the uncertainty"), defaultValue=False
            ),
            "Also write, beside the output (scene_x4.tif: scene_x4_uncertainty.tif), each "
            "output pixel's expected absolute error in the band's units, and load it as a "
            "layer: bright where the input holds detail the network had to estimate. It "
            "needs no extra network pass.",
        )
        self.add_device(self.DEVICE, "the network", advanced=False)
        self.add_number(
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
            "Not used with stacked rasters (stack only the bands you want) or a product "
            "(give Band names).",
            advanced=True,
        )
        self.add_choice(
            self.MASK,
            "Masked pixels",
            MASKS,
            "Pixels kept away from the network and masked in the output: 'clouds' masks fill, "
            "saturated, cloud, thin cirrus and cloud-shadow pixels of a product's quality band "
            "(SCL, QA_PIXEL or BQA); 'nodata' only fill (the nodata value or mask); 'none' "
            "nothing. 'auto' is 'clouds' for a product with a quality band, else 'nodata'.",
            default="auto",
            advanced=True,
        )
        self.add_choice(
            self.GUIDED,
            "Guided model for a product's coarser bands",
            GUIDED,
            "How a product's 20 m and 60 m (Sentinel-2) or 30 m (Landsat, with its 15 m pan "
            "band) bands reach its finest grid before super-resolution: 'auto' uses the bundled "
            "guided model of the sensor (s2-guided, landsat-pan), which sharpens them with the "
            "product's sharper bands and keeps their radiometry; 'none' resamples them (cubic).",
            default="auto",
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
            QgsProcessingParameterBoolean(
                self.STAC, tr("Write a STAC Item beside the output"), defaultValue=False
            ),
            "Also write a STAC Item (JSON) describing the output beside it, named after it "
            "(scene_x4.tif: scene_x4.json): footprint, date, projection and the bands' names, "
            "wavelengths and scale/offset.",
            advanced=True,
        )
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

        # SOURCE OUTPUT (what every geosr release takes), or --stack F1 F2 ... -o OUTPUT; the
        # options of products are passed only when set, so rasters still run on older releases
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
        if self.parameterAsBoolean(parameters, self.STRICT, context):
            args.append("--strict")
        if uncertainty:
            args.append("--uncertainty")
        args += self.integer_args(parameters, context, {self.CHUNK_SIZE: "--chunk-size"})
        args += ["--device", self.parameterAsEnumString(parameters, self.DEVICE, context)]
        args += self.band_args(parameters, context)
        mask = self.parameterAsEnumString(parameters, self.MASK, context)
        if mask and mask != "auto":
            args += ["--mask", mask]
        guided = self.parameterAsEnumString(parameters, self.GUIDED, context)
        if guided and guided != "auto":
            args += ["--guided", guided]
        resolution = self.resolution(parameters, context)
        if resolution is not None:
            args += ["--resolution", repr(resolution)]
        if cog:
            args.append("--cog")
        if stac:
            args.append("--stac")
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

    def band_args(self, parameters, context) -> list[str]:
        """``["--bands", ...]`` from Bands (numbers) or Band names; refuse both."""
        numbers = self.parameterAsInts(parameters, self.BANDS, context)
        names = self.parameterAsString(parameters, self.BAND_NAMES, context)
        names = ",".join(part.strip() for part in names.split(",") if part.strip())
        if numbers and names:
            raise QgsProcessingException(
                tr(
                    "Give bands either by number (Bands) or by name (Band names), not both: "
                    "empty one of them."
                )
            )
        if numbers:
            return ["--bands", ",".join(str(band) for band in numbers)]
        return ["--bands", names] if names else []

    def resolution(self, parameters, context) -> float | None:
        """The output pixel size, or None when empty; refuse 0 (QGIS's minimum is inclusive)."""
        if is_unset(parameters.get(self.RESOLUTION)):
            return None
        value = self.parameterAsDouble(parameters, self.RESOLUTION, context)
        if not value > 0:
            raise QgsProcessingException(
                tr(
                    "The output pixel size must be greater than 0, not {value:g}: give one in "
                    "CRS units (e.g. 10), or leave it empty for the model's scale."
                ).format(value=value)
            )
        return value


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
