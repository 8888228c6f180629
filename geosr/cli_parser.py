"""The ``geosr`` command line's parser, built from the option declarations (:mod:`geosr.options`).

Each declared option becomes the arguments its :class:`~geosr.options.Cli` entries describe,
parsed into the API's keyword (``--workers`` into ``num_workers``, ``--no-consistency`` into
``consistency``); :func:`api_values` hands the parsed values to an API function as they are
declared for it. Only the commands' own words (descriptions) and the arguments of ``blend``,
``info`` and ``demo`` that no other face has are written here.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from geosr import options as declared
from geosr.console import Parser
from geosr.options import Cli, Option
from geosr.version import __version__

DESCRIPTIONS = {
    "upscale": (
        "super-resolve a raster or a satellite product into a GeoTIFF",
        "Super-resolve INPUT into OUTPUT (default: INPUT_x<scale>.tif beside it). The output "
        "keeps CRS, bounds, bands, dtype, nodata and tags; its pixel size is divided by the "
        "scale. INPUT may be a product: a Sentinel-2 SAFE folder or .zip, a Landsat folder with "
        "its MTL file, or a STAC Item (.json file or URL); its bands are brought to the finest "
        "band's grid first, clouds are masked and band names, wavelengths and reflectance "
        "scale/offset are kept. Examples: geosr upscale scene.tif big.tif --chunk-size 256; "
        "geosr upscale S2B_MSIL2A_...SAFE --bands B04,B03,B02,B08 --stac",
    ),
    "evaluate": (
        "score a model against bicubic and Lanczos on held-out scenes",
        "Degrade HR scenes as training does (or take LR/HR pairs), super-resolve them through "
        "the same pipeline as 'geosr upscale', and report PSNR, SSIM, SAM, ERGAS, UIQI, texture "
        "(gradient and high-frequency power ratios), LR consistency and time for the model, "
        "bicubic and Lanczos. Examples: geosr evaluate --model runs/gan/best.safetensors "
        "--scale 4 holdout/*.tif --json report.json --figure report.png; geosr evaluate "
        "--model srgan --strength 0 0.5 1 --html report.html scenes/*.tif",
    ),
    "demo": (
        "upscale the bundled sample scene with the bundled default model",
        "Upscale the bundled NAIP sample with the default model; write a GeoTIFF and a "
        "side-by-side PNG.",
    ),
    "blend": (
        "interpolate a PSNR model and its GAN fine-tune (ESRGAN network interpolation)",
        "Write ALPHA * FIDELITY + (1 - ALPHA) * TEXTURE weights as a new model: more ALPHA, more "
        "fidelity; less, more texture. Or, with --default-strength, keep both networks in one "
        "model with a strength dial (0: FIDELITY, 1: TEXTURE, interpolated at load). Example: "
        "geosr blend runs/psnr/best.safetensors runs/gan/best.safetensors --default-strength "
        "0.8 --out dial.safetensors",
    ),
    "info": (
        "print a model's metadata",
        "Print a model's metadata (architecture, scale, bands, normalisation, provenance).",
    ),
    "options": (
        "print every option of geosr's API, command line and QGIS plugin",
        "Print the declaration of every user option: name, kind, default, allowed values and "
        "help, and how the API, each command and the QGIS plugin take it. --json prints the "
        "declarations as JSON (schema 'geosr-options'), which the QGIS plugin reads.",
    ),
}


# ------------------------------------------------------------------ values of each kind


def _integer(option: Option) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        low, high = option.minimum, option.maximum
        if low is not None and value < low:
            wanted = "a positive number" if low == 1 else f"a number of at least {low:g}"
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {value}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"expected a number up to {high:g}, got {value}")
        return value

    return parse


def _number(option: Option) -> Callable[[str], float]:
    low, high = option.minimum, option.maximum
    if low is not None and high is not None:
        wanted = f"a number from {low:g} to {high:g}"
    elif low == 0 and option.exclusive_minimum:
        wanted = "a positive number"
    elif low is not None:
        wanted = f"a number {'above' if option.exclusive_minimum else 'of at least'} {low:g}"
    else:
        wanted = "a number"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        inside = value == value  # not NaN
        if low is not None:
            inside = inside and (value > low if option.exclusive_minimum else value >= low)
        if high is not None:
            inside = inside and value <= high
        if not inside:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value

    return parse


def _band_numbers(text: str) -> list[int]:
    try:
        bands = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected band numbers like 1,2,3, got {text!r}"
        ) from None
    if not bands or min(bands) < 1:
        raise argparse.ArgumentTypeError(f"band numbers start at 1, got {text!r}")
    return bands


def _bands(text: str) -> list[int | str]:
    """Bands by 1-based number or by name: ``4,3,2`` or ``B04,B03,B02,B08`` or ``red,nir``."""
    items = [part.strip() for part in text.split(",") if part.strip()]
    bands: list[int | str] = [int(i) if i.isdigit() else i for i in items]
    if not bands or any(isinstance(b, int) and b < 1 for b in bands):
        raise argparse.ArgumentTypeError(
            f"expected band numbers from 1 or band names, like 4,3,2 or B04,B03,B02, got {text!r}"
        )
    return bands


def _names(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected names like B02,B03,B8A, got {text!r}")
    return names


def value_type(option: Option, kind: str) -> Callable[[str], Any] | None:
    """How the command line turns the text of one value into the API's (None: as text)."""
    if kind == "int":
        return _integer(option)
    if kind == "float":
        return _number(option)
    return {"bands": _bands, "band_numbers": _band_numbers, "names": _names, "path": Path}.get(kind)


# ------------------------------------------------------------------ declared arguments


def argument(option: Option, cli: Cli) -> tuple[list[str], dict[str, Any]]:
    """``parser.add_argument``'s arguments for ``option`` as ``cli`` takes it."""
    kind = cli.kind or option.kind
    settings: dict[str, Any] = {"help": cli.help or option.help}
    names = list(cli.flags) or [option.name]
    if cli.flags:
        settings["dest"] = option.name
    if kind == "flag":
        settings["action"] = "store_false" if cli.negate else "store_true"
        return names, settings
    default = option.text_value(option.default)
    settings["default"] = list(default) if isinstance(default, tuple) else default
    if cli.append:
        settings["action"] = "append"
    for key in ("nargs", "metavar"):
        if getattr(cli, key) is not None:
            settings[key] = getattr(cli, key)
    if kind == "choice":
        settings["choices"] = option.choices
    parse = value_type(option, kind)
    if parse is not None:
        settings["type"] = parse
    return names, settings


def add_declared(parser: argparse.ArgumentParser, command: str) -> None:
    """The declared options of ``geosr COMMAND``, in declaration order."""
    for option, cli in declared.for_command(command):
        names, settings = argument(option, cli)
        parser.add_argument(*names, **settings)


def api_values(args: argparse.Namespace, function: str) -> dict[str, Any]:
    """The parsed options that the API function ``function`` takes, as it takes them
    (``--mask none``: ``mask=None``; ``--pair A B``: ``pairs=[("A", "B")]``)."""
    values = {}
    for option in declared.for_api(function):
        if hasattr(args, option.name):
            value = option.api_value(getattr(args, option.name))
            if option.kind == "pairs" and value is not None:
                value = [tuple(pair) for pair in value]
            values[option.name] = value
    return values


# ------------------------------------------------------------------ the parser


def build_parser(commands: dict[str, Callable[..., int]]) -> Parser:
    """The ``geosr`` parser; ``commands`` maps each command's name to its function, which
    becomes the parsed arguments' ``func``."""
    from geosr.console import add_console_options

    parser = Parser(
        prog="geosr",
        description="Super-resolution for multispectral GeoTIFFs, on the input's exact footprint.",
    )
    parser.add_argument("--version", action="version", version=f"geosr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for name, func in commands.items():
        summary, description = DESCRIPTIONS[name]
        subparser = sub.add_parser(name, help=summary, description=description)
        _OWN_ARGUMENTS.get(name, lambda p: None)(subparser)
        add_declared(subparser, name)
        add_console_options(subparser)
        subparser.set_defaults(func=func)
    return parser


def _demo_arguments(demo: argparse.ArgumentParser) -> None:
    demo.add_argument(
        "--out", type=Path, default=Path("out/demo"), help="output folder (default out/demo)"
    )


def _blend_arguments(blend: argparse.ArgumentParser) -> None:
    blend.add_argument("fidelity", help="the PSNR-oriented model (.safetensors or bundled name)")
    blend.add_argument("texture", help="the GAN model fine-tuned from it")
    how = blend.add_mutually_exclusive_group(required=True)
    how.add_argument("--alpha", type=float, help="weight of FIDELITY, 0 to 1: one fixed blend")
    how.add_argument(
        "--default-strength",
        type=_number(declared.get("strength")),
        help="write a model with a strength dial, running at this strength unless told otherwise",
    )
    blend.add_argument("--out", type=Path, required=True, help="output .safetensors file")
    blend.add_argument("--name", help="model name stored in the output")


def _info_arguments(info: argparse.ArgumentParser) -> None:
    info.add_argument(
        "model", nargs="?", default="default", help="bundled model name or .safetensors file"
    )
    info.add_argument("--json", action="store_true", help="print the metadata as JSON")
    info.add_argument("--list", action="store_true", help="list the bundled models")


def _options_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the declarations as JSON (schema 'geosr-options'; the QGIS plugin reads it)",
    )
    parser.add_argument(
        "--command",
        dest="command_filter",
        choices=("upscale", "evaluate", "demo", "blend"),
        help="only the options of this command",
    )


_OWN_ARGUMENTS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "demo": _demo_arguments,
    "blend": _blend_arguments,
    "info": _info_arguments,
    "options": _options_arguments,
}
