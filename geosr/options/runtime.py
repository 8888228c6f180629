"""The options of how geosr runs (chunks, device, tiles, precision, threads) and how it writes
(STAC Item, COG, overwriting, format)."""

from __future__ import annotations

from geosr.options.declare import Cli, Option, Qgis
from geosr.options.upscale import DEVICE_HELP, ENGINE, EVALUATION, PRECISIONS

CHUNK_SIZE = Option(
    "chunk_size",
    "int",
    "input pixels per chunk side (default 512)",
    minimum=1,
    unit="pixels",
    example="512",
    api=ENGINE + EVALUATION,
    cli=(
        Cli("upscale", ("--chunk-size",)),
        Cli("evaluate", ("--chunk-size",), help="input pixels per chunk side"),
    ),
    qgis=(
        Qgis(
            "upscale",
            "CHUNK_SIZE",
            "Chunk size (input pixels)",
            "Side of the square input windows processed one at a time, in input pixels. Smaller "
            "uses less memory, larger is faster. Empty: geosr's default.",
            advanced=True,
            minimum=16,
        ),
    ),
)

OVERLAP = Option(
    "overlap",
    "int",
    "halo in input pixels (default: the model's receptive radius)",
    minimum=0,
    unit="pixels",
    api=ENGINE,
    cli=(Cli("upscale", ("--overlap",)),),
)

DEVICE = Option(
    "device",
    "device",
    "auto (CUDA if present), cpu or cuda (default auto)",
    default="auto",
    suggestions=("auto", "cpu", "cuda"),
    invalid="unknown device {value!r}; use 'auto', 'cpu' or 'cuda'",
    api=ENGINE + EVALUATION,
    cli=(
        Cli("upscale", ("--device",)),
        Cli("evaluate", ("--device",), help="auto, cpu or cuda (default auto)"),
    ),
    qgis=(
        Qgis("upscale", "DEVICE", "Device", DEVICE_HELP.format(subject="the network")),
        Qgis(
            "evaluate",
            "DEVICE",
            "Device",
            DEVICE_HELP.format(subject="the model"),
            advanced=True,
        ),
        Qgis("train", "DEVICE", "Device", DEVICE_HELP.format(subject="training"), advanced=True),
    ),
)

RUNNER = (
    Option(
        "tile_size",
        "int",
        "network tile side inside a chunk (default: the chunk)",
        minimum=1,
        unit="pixels",
        api=ENGINE,
        cli=(Cli("upscale", ("--tile-size",)),),
    ),
    Option(
        "batch_size",
        "int",
        "tiles per forward pass (default 8 on CUDA, 1 on CPU)",
        minimum=1,
        api=ENGINE,
        cli=(Cli("upscale", ("--batch-size",)),),
    ),
    Option(
        "precision",
        "choice",
        "forward pass on CUDA: auto takes fp16 for 8-bit outputs (within 1 DN of fp32), fp32 "
        "otherwise (default auto; CPUs always run fp32)",
        default="auto",
        choices=PRECISIONS,
        api=ENGINE,
        cli=(Cli("upscale", ("--precision",)),),
    ),
    Option(
        "num_workers",
        "int",
        "chunks computed in parallel (default: CPU count)",
        minimum=1,
        api=("upscale",),
        cli=(Cli("upscale", ("--workers",), metavar="WORKERS"),),
    ),
    Option(
        "consistency",
        "flag",
        "project the output so each block of output pixels averages back to its input pixel",
        default=True,
        api=ENGINE + EVALUATION,
        cli=(
            Cli(
                "upscale",
                ("--no-consistency",),
                help="skip the projection that makes outputs average back to the input",
                negate=True,
            ),
            Cli(
                "evaluate",
                ("--no-consistency",),
                help="evaluate without the radiometric projection",
                negate=True,
            ),
        ),
    ),
)

WRITING = (
    Option(
        "stac",
        "flag",
        "also write a STAC Item (OUTPUT stem + .json) describing the output",
        default=False,
        api=("upscale",),
        cli=(Cli("upscale", ("--stac",)),),
        qgis=(
            Qgis(
                "upscale",
                "STAC",
                "Write a STAC Item beside the output",
                "Also write a STAC Item (JSON) describing the output beside it, named after it "
                "(scene_x4.tif: scene_x4.json): footprint, date, projection and the bands' names, "
                "wavelengths and scale/offset.",
                advanced=True,
            ),
        ),
    ),
    Option(
        "cog",
        "flag",
        "write a Cloud-Optimised GeoTIFF with overviews",
        default=False,
        api=("upscale",),
        cli=(Cli("upscale", ("--cog",)),),
        qgis=(
            Qgis(
                "upscale",
                "COG",
                "Write a Cloud Optimized GeoTIFF",
                "Write the output as a Cloud Optimized GeoTIFF (tiled, with overviews). Not with "
                "a Zarr output.",
                advanced=True,
            ),
        ),
    ),
    Option(
        "overwrite",
        "flag",
        "replace OUTPUT if it exists",
        default=False,
        api=("upscale",),
        cli=(
            Cli("upscale", ("--overwrite",)),
            Cli("blend", ("--overwrite",), help="replace --out if it exists"),
        ),
    ),
    Option(
        "format",
        "choice",
        "output format (default: zarr for an OUTPUT ending in .zarr, else gtiff)",
        choices=("gtiff", "zarr"),
        aliases=(("geotiff", "gtiff"), ("tif", "gtiff"), ("tiff", "gtiff")),
        invalid="output format {value!r} is not supported; use 'gtiff' or 'zarr'",
        api=("upscale",),
        cli=(Cli("upscale", ("--format",)),),
    ),
)
