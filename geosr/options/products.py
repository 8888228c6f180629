"""The options of ``geosr upscale`` that choose what is read and on which grid it is written:
bands, masks, the output pixel size and a product's guided model."""

from __future__ import annotations

from geosr.options.declare import Cli, Option, Qgis
from geosr.options.upscale import GUIDED_MODELS, MASKS

BANDS = Option(
    "bands",
    "bands",
    "bands to process by 1-based number or name, e.g. 4,3,2 or B04,B03,B02,B08 (default all; "
    "a product's reflective bands)",
    api=("upscale", "evaluate"),
    cli=(
        Cli("upscale", ("--bands",)),
        Cli(
            "evaluate",
            ("--bands",),
            help="1-based bands to evaluate (default all)",
            kind="band_numbers",
        ),
    ),
    qgis=(
        Qgis(
            "upscale",
            "BAND_NAMES",
            "Band names (e.g. B04,B03,B02,B08)",
            "Bands to super-resolve by name, in this order, separated by commas: B04,B03,B02,B08 "
            "for Sentinel-2, B4,B3,B2,B5 for Landsat; common names (red,nir) and band numbers "
            "work too. Empty: a product's reflective bands, or all bands of a raster. Not "
            "together with Bands.",
            widget="text",
        ),
        Qgis(
            "upscale",
            "BANDS",
            "Bands",
            "Bands of the input raster to super-resolve, in this order. Empty: all bands. Not "
            "used with stacked rasters (stack only the bands you want) or a product (give Band "
            "names).",
            advanced=True,
            widget="band",
            parent="INPUT",
        ),
    ),
)

RESOLUTION = Option(
    "resolution",
    "float",
    "output pixel size in CRS units: the finest band's divided by the scale (default), or the "
    "finest band's itself to only bring a product's bands onto one grid",
    minimum=0.0,
    exclusive_minimum=True,
    api=("upscale",),
    cli=(Cli("upscale", ("--resolution",)),),
    qgis=(
        Qgis(
            "upscale",
            "RESOLUTION",
            "Output pixel size (CRS units)",
            "The output's pixel size in the units of the input's CRS (metres for UTM): the finest "
            "band's pixel divided by the model's scale (what empty gives), or the finest band's "
            "pixel itself (10 for Sentinel-2), which only brings a product's bands onto one "
            "grid, with no super-resolution network. Other values are refused.",
        ),
    ),
)

MASK = Option(
    "mask",
    "choice",
    "pixels kept from the network and masked in the output: clouds (fill, saturated, cloud, "
    "thin cirrus and shadow from SCL, QA_PIXEL or BQA), nodata (fill only) or none (default "
    "auto: clouds for products with a quality band, else nodata)",
    default="auto",
    choices=MASKS,
    none_value="none",
    invalid="mask={value!r} is not a mask mode; use one of {allowed}",
    api=("upscale",),
    cli=(Cli("upscale", ("--mask",)),),
    qgis=(
        Qgis(
            "upscale",
            "MASK",
            "Masked pixels",
            "Pixels kept away from the network and masked in the output: 'clouds' masks fill, "
            "saturated, cloud, thin cirrus and cloud-shadow pixels of a product's quality band "
            "(SCL, QA_PIXEL or BQA); 'nodata' only fill (the nodata value or mask); 'none' "
            "nothing. 'auto' is 'clouds' for a product with a quality band, else 'nodata'.",
            advanced=True,
        ),
    ),
)

GUIDED = Option(
    "guided",
    "model",
    "how a product's coarser bands reach its finest grid: auto (default: the bundled guided "
    "model of its sensor, s2-guided or landsat-pan, when the product has its guide bands), a "
    "guided model's name or .safetensors file, or none (cubic resampling)",
    default="auto",
    suggestions=("auto", "none", *GUIDED_MODELS),
    none_value="none",
    api=("upscale",),
    cli=(Cli("upscale", ("--guided",), metavar="MODEL"),),
    qgis=(
        Qgis(
            "upscale",
            "GUIDED",
            "Guided model for a product's coarser bands",
            "How a product's 20 m and 60 m (Sentinel-2) or 30 m (Landsat, with its 15 m pan band) "
            "bands reach its finest grid before super-resolution: 'auto' uses the bundled guided "
            "model of the sensor (s2-guided, landsat-pan), which sharpens them with the "
            "product's sharper bands and keeps their radiometry; 'none' resamples them (cubic).",
            advanced=True,
            widget="enum",
        ),
    ),
)
