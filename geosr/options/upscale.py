"""The options of ``geosr upscale`` (:func:`geosr.upscale`, :func:`geosr.upscale_dataarray`,
``da.geosr.upscale``, QGIS's "Super-resolve raster"), several shared with ``geosr evaluate``,
``geosr demo`` and the QGIS "Evaluate" and "Train" algorithms. Declaration order is the order
of the command line's options and of QGIS's parameters."""

from __future__ import annotations

from geosr.options.declare import Cli, Option, Qgis

#: Forward-pass precisions: auto (fp16 on CUDA for 8-bit outputs, else fp32), or forced.
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
#: Pixels kept from the network and masked in the output (``none``: the API's None).
MASKS = ("auto", "clouds", "nodata", "none")
#: The bundled guided models, for a product's coarser bands.
GUIDED_MODELS = ("s2-guided", "landsat-pan")
#: The scales geosr's models are trained at.
SCALES = (2, 4, 8)
#: The API functions of the engine, and the evaluation functions.
ENGINE = ("upscale", "upscale_dataarray")
EVALUATION = ("evaluate", "evaluate_temporal")

MODEL_FILE_HELP = (
    "A geosr model file (.safetensors), e.g. one made by 'Train super-resolution model'. Leave "
    "empty to use the model bundled with geosr. The model fixes the scale factor and, unless it "
    "is band-shared, the number of bands it accepts."
)
DEVICE_HELP = (
    "Where {subject} runs: 'auto' uses a CUDA GPU when geosr's PyTorch sees one and the CPU "
    "otherwise; 'cpu' and 'cuda' force one (cuda fails if there is no GPU)."
)

SOURCES = (
    Option(
        "input",
        "source",
        "source raster (a file GDAL reads, an http(s)://, s3://, gs://, az:// URL or a "
        "/vsi... name) or product (SAFE folder or .zip, Landsat folder or MTL, STAC Item)",
        cli=(Cli("upscale", nargs="?"),),
    ),
    Option(
        "output",
        "path",
        "output GeoTIFF, or Zarr store for a name ending in .zarr (default INPUT_x<scale>.tif)",
        cli=(Cli("upscale", nargs="?"),),
    ),
    Option(
        "output_option",
        "path",
        "= OUTPUT",
        cli=(Cli("upscale", ("-o", "--output"), metavar="OUTPUT"),),
    ),
    Option(
        "stack",
        "paths",
        "single-band rasters stacked in this order, instead of INPUT; on several grids (e.g. "
        "Sentinel-2 10 and 20 m bands) they are brought to the finest first; band names from "
        "the file names (e.g. --stack B02.jp2 B03.jp2 B8A.jp2 -o out_x4.tif)",
        cli=(Cli("upscale", ("--stack",), nargs="+", metavar="BAND_FILE"),),
    ),
    Option(
        "band_names",
        "names",
        "one name per band of INPUT or per --stack file, e.g. B02,B03,B8A, for files whose "
        "names do not tell",
        api=("upscale",),
        cli=(Cli("upscale", ("--band-names",)),),
    ),
)

MODEL = Option(
    "model",
    "model",
    "bundled model name or .safetensors file (default: default)",
    default="default",
    api=ENGINE,
    cli=(Cli("upscale", ("--model",)), Cli("evaluate", ("--model",)), Cli("demo", ("--model",))),
    qgis=(
        Qgis("upscale", "MODEL", "Model (.safetensors)", MODEL_FILE_HELP, extension="safetensors"),
        Qgis(
            "evaluate",
            "MODEL",
            "Model (.safetensors)",
            "The geosr model to evaluate (.safetensors). Empty: the model bundled with geosr.",
            extension="safetensors",
        ),
    ),
)

NETWORK = (
    Option(
        "strength",
        "float",
        "texture of a model with a strength dial (srgan): 0 its PSNR model (fidelity) to 1 its "
        "GAN endpoint (default: the model's, see geosr info srgan)",
        minimum=0.0,
        maximum=1.0,
        invalid="strength must be a number from 0 (fidelity) to 1 (texture), got {value!r}",
        error="ModelError",
        api=ENGINE,
        cli=(Cli("upscale", ("--strength",)),),
        qgis=(
            Qgis(
                "upscale",
                "STRENGTH",
                "Texture strength (0 to 1)",
                "For a model with a strength dial, such as the bundled default (srgan): 0 gives "
                "its fidelity model (smooth, closest to the measured pixels), 1 its GAN endpoint "
                "(sharp, invented texture that still averages back to each input pixel). Empty: "
                "the model's own default. Other models refuse a strength.",
            ),
        ),
    ),
    Option(
        "tta",
        "flag",
        "x8 self-ensemble: average the flipped and rotated outputs (8x slower, higher PSNR)",
        default=False,
        api=ENGINE + EVALUATION,
        cli=(
            Cli("upscale", ("--tta",)),
            Cli(
                "evaluate",
                ("--tta",),
                help="also score the model with the x8 self-ensemble (methods '... +tta'; 8x "
                "slower)",
            ),
        ),
        qgis=(
            Qgis(
                "upscale",
                "TTA",
                "Self-ensemble (8x slower, a little more accurate)",
                "Run the network on the eight flips and rotations of each tile and average them "
                "(x8 self-ensemble): a little higher fidelity for eight times the network time.",
                advanced=True,
            ),
        ),
    ),
    Option(
        "preserve_spectra",
        "flag",
        "with a strength dial (srgan), on several bands: keep strength 0's band ratios "
        "(spectral angle) under the texture of --strength (a second network pass)",
        default=False,
        api=ENGINE + EVALUATION,
        cli=(
            Cli("upscale", ("--preserve-spectra",)),
            Cli(
                "evaluate",
                ("--preserve-spectra",),
                help="also score each strength above 0 keeping strength 0's band ratios "
                "(methods '... +spectra'; see geosr upscale --preserve-spectra)",
            ),
        ),
        qgis=(
            Qgis(
                "upscale",
                "PRESERVE_SPECTRA",
                "Keep the fidelity model's band ratios (2x slower)",
                "For a model with a strength dial, on a raster of several bands: each output "
                "pixel keeps the band ratios (spectral angle) of strength 0 and the brightness, "
                "hence the texture, of the chosen strength. Use it when spectra matter (indices, "
                "classification); it runs the network twice. Other models refuse it.",
                advanced=True,
            ),
        ),
    ),
    Option(
        "uncertainty",
        "flag",
        "also write each output pixel's expected absolute error (band units, float32) beside "
        "the output: OUTPUT_uncertainty.tif (.zarr); no extra network pass",
        default=False,
        api=ENGINE,
        cli=(Cli("upscale", ("--uncertainty",)),),
        qgis=(
            Qgis(
                "upscale",
                "UNCERTAINTY",
                "Also write the uncertainty",
                "Also write, beside the output (scene_x4.tif: scene_x4_uncertainty.tif), each "
                "output pixel's expected absolute error in the band's units, and load it as a "
                "layer: bright where the input holds detail the network had to estimate. It "
                "needs no extra network pass.",
            ),
        ),
    ),
    Option(
        "strict",
        "flag",
        "refuse an input outside the model's training domain (pixel size, dtype, values: see "
        "geosr info MODEL) instead of warning once",
        default=False,
        nullable=True,  # None skips the check
        api=ENGINE,
        cli=(Cli("upscale", ("--strict",)),),
        qgis=(
            Qgis(
                "upscale",
                "STRICT",
                "Refuse inputs outside the model's training domain",
                "The model's card records what it was trained on (pixel sizes, data types, "
                "values: DN or reflectance). An input outside that gets a warning in the log (for "
                "example 'scene pixel 0.3 m; this model saw 5\u2013300 m inputs'); ticked, the run "
                "stops with that message instead and writes nothing.",
                advanced=True,
            ),
        ),
    ),
    Option(
        "scale",
        "int",
        "expected scale; refused if the model does another",
        suggestions=SCALES,
        minimum=1,
        example="4",
        api=(*ENGINE, "evaluate"),
        cli=(Cli("upscale", ("--scale",)), Cli("evaluate", ("--scale",))),
        qgis=(
            Qgis(
                "evaluate",
                "SCALE",
                "Scale factor",
                "The scale factor (2, 4 or 8) the rasters are downsampled by before they are "
                "restored. Empty: the model's own; a different value is refused.",
                widget="enum",
            ),
            Qgis(
                "train",
                "SCALE",
                "Scale factor",
                "How many times smaller the output pixels are: 2, 4 or 8 (x2: 30 m to 15 m; x4: "
                "30 m to 7.5 m).",
                widget="enum",
                default="4",
            ),
        ),
    ),
)
