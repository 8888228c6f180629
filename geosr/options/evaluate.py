"""The options of ``geosr evaluate`` alone (:func:`geosr.evaluate`, its ``--guided`` and
``--temporal`` protocols); the ones it shares with ``geosr upscale`` are declared there."""

from __future__ import annotations

from geosr.options.declare import Cli, Option

#: Degradations scored when none are given.
DEGRADATIONS = ("box", "bicubic")
#: Largest HR crop side per scene.
MAX_SIZE = 1024
#: The training patch side (geosr-train's default), for --holdout.
PATCH = 96
ALL = ("evaluate", "evaluate_guided", "evaluate_temporal")

SCENES = Option(
    "scenes",
    "paths",
    # rasters are kept as strings: Path() would turn https://host into https:/host
    "HR reference scenes: files, URLs (https://, s3://, gs://, az://) or GDAL names",
    cli=(Cli("evaluate", nargs="*"),),
)

STRENGTHS = Option(
    "strengths",
    "float",
    "strengths of a model with a strength dial (srgan) to score, each from 0 (its PSNR "
    "model) to 1 (its GAN endpoint)",
    minimum=0.0,
    maximum=1.0,
    many=True,
    invalid="strength must be a number from 0 (fidelity) to 1 (texture), got {value!r}",
    error="ModelError",
    api=("evaluate", "evaluate_temporal"),
    cli=(
        Cli(
            "evaluate",
            ("--strength",),
            help="score a model with a strength dial (srgan) at each strength from 0 (its PSNR "
            "model) to 1 (its GAN endpoint), e.g. --strength 0 0.5 1 (default: once, at the "
            "model's own strength; end the list with another option or give the scenes first)",
            metavar="S",
            nargs="+",
        ),
    ),
)

SCORING = (
    Option(
        "pairs",
        "pairs",
        "an LR raster and its HR reference, files or URLs (repeatable)",
        default=(),
        api=("evaluate",),
        cli=(Cli("evaluate", ("--pair",), metavar=("LR", "HR"), nargs=2, append=True),),
    ),
    Option(
        "degradations",
        "text",
        "degradations to evaluate (default: box bicubic)",
        default=DEGRADATIONS,
        many=True,
        api=("evaluate",),
        cli=(Cli("evaluate", ("--degradation",), metavar="DEGRADATION", nargs="+"),),
    ),
    Option(
        "max_size",
        "int",
        "largest HR crop side per scene (default 1024)",
        default=MAX_SIZE,
        minimum=1,
        unit="pixels",
        api=("evaluate",),
        cli=(Cli("evaluate", ("--max-size",)),),
    ),
    Option(
        "holdout",
        "float",
        "score only the bottom strip geosr-train --val-fraction HOLDOUT held out",
        api=("evaluate", "evaluate_guided"),
        cli=(Cli("evaluate", ("--holdout",)),),
    ),
    Option(
        "patch",
        "int",
        "the training --patch, for --holdout (default 96)",
        default=PATCH,
        minimum=1,
        unit="pixels",
        api=("evaluate",),
        cli=(Cli("evaluate", ("--patch",)),),
    ),
    Option(
        "guided_protocol",
        "flag",
        "score a guided model (--model: default the bundled one that fits each product) on "
        "products (Sentinel-2 SAFE, Landsat folders, folders of band files) by Wald's protocol "
        "on their held-out rows, against bicubic and classical fusion baselines",
        default=False,
        cli=(Cli("evaluate", ("--guided",)),),
    ),
)

TEMPORAL = (
    Option(
        "temporal",
        "paths",
        "stability across dates: upscale two rasters of one place (same CRS, grids offset by "
        "whole pixels) and compare the model's date-to-date change with bicubic's on the pixels "
        "that barely changed (--model default srgan at --strength 0 0.25 0.5 1)",
        cli=(Cli("evaluate", ("--temporal",), metavar=("A", "B"), nargs=2),),
    ),
    Option(
        "stable_threshold",
        "float",
        "with --temporal: a pixel is stable when no band changed by more than DN, in it and its "
        "--stable-radius neighbours (default: the --stable-fraction least changed)",
        api=("evaluate_temporal",),
        cli=(Cli("evaluate", ("--stable-threshold",), metavar="DN"),),
    ),
    Option(
        "stable_fraction",
        "float",
        "with --temporal and no --stable-threshold: the share of pixels that changed least "
        "taken as stable (default 0.05)",
        default=0.05,
        api=("evaluate_temporal",),
        cli=(Cli("evaluate", ("--stable-fraction",), metavar="F"),),
    ),
    Option(
        "stable_radius",
        "int",
        "with --temporal: neighbours that must be stable too (default 1: 3 x 3)",
        default=1,
        minimum=0,
        unit="pixels",
        api=("evaluate_temporal",),
        cli=(Cli("evaluate", ("--stable-radius",), metavar="PX"),),
    ),
)

REPORTS = (
    Option(
        "json_path",
        "path",
        "write the full report as JSON",
        api=ALL,
        cli=(Cli("evaluate", ("--json",)),),
    ),
    Option(
        "figure",
        "path",
        "write a PNG of LR, bicubic, model and HR centre crops",
        api=("evaluate", "evaluate_temporal"),
        cli=(Cli("evaluate", ("--figure",)),),
    ),
    Option(
        "html_path",
        "path",
        "write an HTML report: the table, PSNR against texture across strength, zoomed crops of "
        "the most textured areas and the figure",
        api=ALL,
        cli=(Cli("evaluate", ("--html",)),),
    ),
)
