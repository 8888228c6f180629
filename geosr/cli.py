"""The ``geosr`` command line: a thin face over the library.

Errors print one line, ``geosr: error: ...``, on stderr and exit 1 (2 for usage errors);
``--debug`` shows the traceback instead. ``--progress jsonl`` turns stdout into a stream of
JSON events for programs driving geosr (the QGIS plugin does). The plumbing around the
commands is :mod:`geosr.console`.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from geosr.choices import PRECISIONS
from geosr.console import Console, EventStream, Parser, UsageError, add_console_options
from geosr.errors import ModelError
from geosr.version import __version__

log = logging.getLogger("geosr")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def _strength(text: str) -> float:
    from geosr.checkpoint import check_strength  # the one rule, also used by load_model

    try:
        return check_strength(text)
    except ModelError:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}") from None


def _band_list(text: str) -> list[int]:
    try:
        bands = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected band numbers like 1,2,3, got {text!r}"
        ) from None
    if not bands or min(bands) < 1:
        raise argparse.ArgumentTypeError(f"band numbers start at 1, got {text!r}")
    return bands


def _band_selection(text: str) -> list[int | str]:
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


def _resolution(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a pixel size such as 2.5, got {text!r}"
        ) from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive pixel size, got {text!r}")
    return value


def _add_model_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default="default",
        help="bundled model name or .safetensors file (default: default)",
    )


def build_parser() -> Parser:
    parser = Parser(
        prog="geosr",
        description="Super-resolution for multispectral GeoTIFFs, on the input's exact footprint.",
    )
    parser.add_argument("--version", action="version", version=f"geosr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for add, command in (
        (_upscale_arguments, _cmd_upscale),
        (_evaluate_arguments, _cmd_evaluate),
        (_demo_arguments, _cmd_demo),
        (_blend_arguments, _cmd_blend),
        (_info_arguments, _cmd_info),
    ):
        subparser = add(sub)
        add_console_options(subparser)
        subparser.set_defaults(func=command)
    return parser


def _upscale_arguments(sub: Any) -> argparse.ArgumentParser:
    up = sub.add_parser(
        "upscale",
        help="super-resolve a raster or a satellite product into a GeoTIFF",
        description=(
            "Super-resolve INPUT into OUTPUT (default: INPUT_x<scale>.tif beside it). The output "
            "keeps CRS, bounds, bands, dtype, nodata and tags; its pixel size is divided by the "
            "scale. INPUT may be a product: a Sentinel-2 SAFE folder or .zip, a Landsat folder "
            "with its MTL file, or a STAC Item (.json file or URL); its bands are brought to the "
            "finest band's grid first, clouds are masked and band names, wavelengths and "
            "reflectance scale/offset are kept. Examples: geosr upscale scene.tif big.tif "
            "--chunk-size 256; geosr upscale S2B_MSIL2A_...SAFE --bands B04,B03,B02,B08 --stac"
        ),
    )
    up.add_argument(
        "input",
        nargs="?",
        help="source raster (a file GDAL reads, an http(s)://, s3://, gs://, az:// URL or a "
        "/vsi... name) or product (SAFE folder or .zip, Landsat folder or MTL, STAC Item)",
    )
    up.add_argument(
        "output",
        type=Path,
        nargs="?",
        help="output GeoTIFF, or Zarr store for a name ending in .zarr (default INPUT_x<scale>.tif)",
    )
    up.add_argument(
        "-o", "--output", dest="output_option", type=Path, metavar="OUTPUT", help="= OUTPUT"
    )
    up.add_argument(
        "--stack",
        nargs="+",
        metavar="BAND_FILE",
        help="single-band rasters stacked in this order, instead of INPUT; on several grids "
        "(e.g. Sentinel-2 10 and 20 m bands) they are brought to the finest first; band names "
        "from the file names (e.g. --stack B02.jp2 B03.jp2 B8A.jp2 -o out_x4.tif)",
    )
    up.add_argument(
        "--band-names",
        type=_names,
        help="one name per band of INPUT or per --stack file, e.g. B02,B03,B8A, for files whose "
        "names do not tell",
    )
    _add_model_option(up)
    up.add_argument(
        "--strength",
        type=_strength,
        help="texture of a model with a strength dial (srgan): 0 its PSNR model (fidelity) to "
        "1 its GAN endpoint (default: the model's, see geosr info srgan)",
    )
    up.add_argument(
        "--tta",
        action="store_true",
        help="x8 self-ensemble: average the flipped and rotated outputs (8x slower, higher PSNR)",
    )
    up.add_argument(
        "--preserve-spectra",
        action="store_true",
        help="with a strength dial (srgan), on several bands: keep strength 0's band ratios "
        "(spectral angle) under the texture of --strength (a second network pass)",
    )
    up.add_argument(
        "--uncertainty",
        action="store_true",
        help="also write each output pixel's expected absolute error (band units, float32) "
        "beside the output: OUTPUT_uncertainty.tif (.zarr); no extra network pass",
    )
    up.add_argument(
        "--strict",
        action="store_true",
        help="refuse an input outside the model's training domain (pixel size, dtype, values: "
        "see geosr info MODEL) instead of warning once",
    )
    up.add_argument("--scale", type=int, help="expected scale; refused if the model does another")
    up.add_argument(
        "--bands",
        type=_band_selection,
        help="bands to process by 1-based number or name, e.g. 4,3,2 or B04,B03,B02,B08 "
        "(default all; a product's reflective bands)",
    )
    up.add_argument(
        "--mask",
        choices=("auto", "clouds", "nodata", "none"),
        default="auto",
        help="pixels kept from the network and masked in the output: clouds (fill, saturated, "
        "cloud, thin cirrus and shadow from SCL, QA_PIXEL or BQA), nodata (fill only) or none "
        "(default auto: clouds for products with a quality band, else nodata)",
    )
    up.add_argument(
        "--resolution",
        type=_resolution,
        help="output pixel size in CRS units: the finest band's divided by the scale (default), "
        "or the finest band's itself to only bring a product's bands onto one grid",
    )
    up.add_argument(
        "--guided",
        default="auto",
        metavar="MODEL",
        help="how a product's coarser bands reach its finest grid: auto (default: the bundled "
        "guided model of its sensor, s2-guided or landsat-pan, when the product has its guide "
        "bands), a guided model's name or .safetensors file, or none (cubic resampling)",
    )
    up.add_argument(
        "--stac",
        action="store_true",
        help="also write a STAC Item (OUTPUT stem + .json) describing the output",
    )
    up.add_argument(
        "--chunk-size", type=_positive_int, help="input pixels per chunk side (default 512)"
    )
    up.add_argument(
        "--overlap", type=int, help="halo in input pixels (default: the model's receptive radius)"
    )
    up.add_argument(
        "--device", default="auto", help="auto (CUDA if present), cpu or cuda (default auto)"
    )
    up.add_argument(
        "--tile-size",
        type=_positive_int,
        help="network tile side inside a chunk (default: the chunk)",
    )
    up.add_argument(
        "--batch-size",
        type=_positive_int,
        help="tiles per forward pass (default 8 on CUDA, 1 on CPU)",
    )
    up.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="forward pass on CUDA: auto takes fp16 for 8-bit outputs (within 1 DN of fp32), "
        "fp32 otherwise (default auto; CPUs always run fp32)",
    )
    up.add_argument(
        "--workers", type=_positive_int, help="chunks computed in parallel (default: CPU count)"
    )
    up.add_argument(
        "--no-consistency",
        action="store_true",
        help="skip the projection that makes outputs average back to the input",
    )
    up.add_argument(
        "--cog", action="store_true", help="write a Cloud-Optimised GeoTIFF with overviews"
    )
    up.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    up.add_argument(
        "--format",
        choices=("gtiff", "zarr"),
        help="output format (default: zarr for an OUTPUT ending in .zarr, else gtiff)",
    )
    return up


def _evaluate_arguments(sub: Any) -> argparse.ArgumentParser:
    ev = sub.add_parser(
        "evaluate",
        help="score a model against bicubic and Lanczos on held-out scenes",
        description=(
            "Degrade HR scenes as training does (or take LR/HR pairs), super-resolve them through "
            "the same pipeline as 'geosr upscale', and report PSNR, SSIM, SAM, ERGAS, UIQI, "
            "texture (gradient and high-frequency power ratios), LR consistency and time for "
            "the model, bicubic and Lanczos. Examples: geosr evaluate --model "
            "runs/gan/best.safetensors --scale 4 holdout/*.tif --json report.json --figure "
            "report.png; geosr evaluate --model srgan --strength 0 0.5 1 --html report.html "
            "scenes/*.tif"
        ),
    )
    # rasters are kept as strings: Path() would turn https://host into https:/host
    ev.add_argument(
        "scenes",
        nargs="*",
        help="HR reference scenes: files, URLs (https://, s3://, gs://, az://) or GDAL names",
    )
    _add_model_option(ev)
    ev.add_argument("--scale", type=int, help="expected scale; refused if the model does another")
    ev.add_argument(
        "--strength",
        nargs="+",
        type=_strength,
        dest="strengths",
        metavar="S",
        help="score a model with a strength dial (srgan) at each strength from 0 (its PSNR "
        "model) to 1 (its GAN endpoint), e.g. --strength 0 0.5 1 (default: once, at the "
        "model's own strength; end the list with another option or give the scenes first)",
    )
    ev.add_argument(
        "--tta",
        action="store_true",
        help="also score the model with the x8 self-ensemble (methods '... +tta'; 8x slower)",
    )
    ev.add_argument(
        "--preserve-spectra",
        action="store_true",
        help="also score each strength above 0 keeping strength 0's band ratios (methods "
        "'... +spectra'; see geosr upscale --preserve-spectra)",
    )
    ev.add_argument(
        "--pair",
        nargs=2,
        action="append",
        metavar=("LR", "HR"),
        default=[],
        help="an LR raster and its HR reference, files or URLs (repeatable)",
    )
    ev.add_argument(
        "--degradation",
        nargs="+",
        default=["box", "bicubic"],
        help="degradations to evaluate (default: box bicubic)",
    )
    ev.add_argument(
        "--max-size",
        type=_positive_int,
        default=1024,
        help="largest HR crop side per scene (default 1024)",
    )
    ev.add_argument(
        "--holdout",
        type=float,
        help="score only the bottom strip geosr-train --val-fraction HOLDOUT held out",
    )
    ev.add_argument(
        "--patch",
        type=_positive_int,
        default=96,
        help="the training --patch, for --holdout (default 96)",
    )
    ev.add_argument(
        "--guided",
        action="store_true",
        help="score a guided model (--model: default the bundled one that fits each product) "
        "on products (Sentinel-2 SAFE, Landsat folders, folders of band files) by Wald's "
        "protocol on their held-out rows, against bicubic and classical fusion baselines",
    )
    ev.add_argument(
        "--temporal",
        nargs=2,
        metavar=("A", "B"),
        help="stability across dates: upscale two rasters of one place (same CRS, grids "
        "offset by whole pixels) and compare the model's date-to-date change with bicubic's "
        "on the pixels that barely changed (--model default srgan at --strength 0 0.25 0.5 1)",
    )
    ev.add_argument(
        "--stable-threshold",
        type=float,
        metavar="DN",
        help="with --temporal: a pixel is stable when no band changed by more than DN, in it "
        "and its --stable-radius neighbours (default: the --stable-fraction least changed)",
    )
    ev.add_argument(
        "--stable-fraction",
        type=float,
        default=0.05,
        metavar="F",
        help="with --temporal and no --stable-threshold: the share of pixels that changed "
        "least taken as stable (default 0.05)",
    )
    ev.add_argument(
        "--stable-radius",
        type=int,
        default=1,
        metavar="PX",
        help="with --temporal: neighbours that must be stable too (default 1: 3 x 3)",
    )
    ev.add_argument("--bands", type=_band_list, help="1-based bands to evaluate (default all)")
    ev.add_argument("--chunk-size", type=_positive_int, help="input pixels per chunk side")
    ev.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    ev.add_argument(
        "--no-consistency", action="store_true", help="evaluate without the radiometric projection"
    )
    _add_report_options(ev)
    return ev


def _add_report_options(ev: argparse.ArgumentParser) -> None:
    ev.add_argument("--json", type=Path, dest="json_path", help="write the full report as JSON")
    ev.add_argument(
        "--figure", type=Path, help="write a PNG of LR, bicubic, model and HR centre crops"
    )
    ev.add_argument(
        "--html",
        type=Path,
        dest="html_path",
        help="write an HTML report: the table, PSNR against texture across strength, zoomed "
        "crops of the most textured areas and the figure",
    )


def _demo_arguments(sub: Any) -> argparse.ArgumentParser:
    demo = sub.add_parser(
        "demo",
        help="upscale the bundled sample scene with the bundled default model",
        description="Upscale the bundled NAIP sample with the default model; write a GeoTIFF and a side-by-side PNG.",
    )
    demo.add_argument(
        "--out", type=Path, default=Path("out/demo"), help="output folder (default out/demo)"
    )
    _add_model_option(demo)
    return demo


def _blend_arguments(sub: Any) -> argparse.ArgumentParser:
    blend = sub.add_parser(
        "blend",
        help="interpolate a PSNR model and its GAN fine-tune (ESRGAN network interpolation)",
        description=(
            "Write ALPHA * FIDELITY + (1 - ALPHA) * TEXTURE weights as a new model: more ALPHA, more "
            "fidelity; less, more texture. Or, with --default-strength, keep both networks in one "
            "model with a strength dial (0: FIDELITY, 1: TEXTURE, interpolated at load). "
            "Example: geosr blend runs/psnr/best.safetensors runs/gan/best.safetensors "
            "--default-strength 0.8 --out dial.safetensors"
        ),
    )
    blend.add_argument("fidelity", help="the PSNR-oriented model (.safetensors or bundled name)")
    blend.add_argument("texture", help="the GAN model fine-tuned from it")
    how = blend.add_mutually_exclusive_group(required=True)
    how.add_argument("--alpha", type=float, help="weight of FIDELITY, 0 to 1: one fixed blend")
    how.add_argument(
        "--default-strength",
        type=_strength,
        help="write a model with a strength dial, running at this strength unless told otherwise",
    )
    blend.add_argument("--out", type=Path, required=True, help="output .safetensors file")
    blend.add_argument("--name", help="model name stored in the output")
    blend.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    return blend


def _info_arguments(sub: Any) -> argparse.ArgumentParser:
    info = sub.add_parser(
        "info",
        help="print a model's metadata",
        description="Print a model's metadata (architecture, scale, bands, normalisation, provenance).",
    )
    info.add_argument(
        "model", nargs="?", default="default", help="bundled model name or .safetensors file"
    )
    info.add_argument("--json", action="store_true", help="print the metadata as JSON")
    info.add_argument("--list", action="store_true", help="list the bundled models")
    return info


def _cmd_upscale(args: argparse.Namespace, events: EventStream) -> int:
    import geosr

    started = time.perf_counter()
    callback: Callable[[int, int], None] | bool = (
        events.progress if args.progress == "jsonl" else args.progress == "bar"
    )
    from geosr.sources import redact

    source, output = _upscale_source(args)
    shown = redact(" ".join(source) if isinstance(source, list) else source)
    events.emit("start", input=shown, output=str(output) if output else None)
    out = geosr.upscale(
        source,
        output,
        model=args.model,
        scale=args.scale,
        bands=args.bands,
        band_names=args.band_names,
        mask=None if args.mask == "none" else args.mask,
        resolution=args.resolution,
        guided=None if args.guided == "none" else args.guided,
        chunk_size=args.chunk_size,
        overlap=args.overlap,
        device=args.device,
        tile_size=args.tile_size,
        batch_size=args.batch_size,
        precision=args.precision,
        consistency=not args.no_consistency,
        strength=args.strength,
        tta=args.tta,
        preserve_spectra=args.preserve_spectra,
        strict=args.strict,
        uncertainty=args.uncertainty,
        stac=args.stac,
        cog=args.cog,
        overwrite=args.overwrite,
        progress=callback,
        num_workers=args.workers,
        format=args.format,
    )
    seconds = round(time.perf_counter() - started, 2)
    events.emit("done", output=str(out.resolve()), seconds=seconds)
    if not events.enabled:
        print(out)
    return 0


def _upscale_source(args: argparse.Namespace) -> tuple[str | list[str], Path | None]:
    """INPUT [OUTPUT], or --stack BAND_FILE ... [-o OUTPUT]."""
    if args.output is not None and args.output_option is not None:
        raise UsageError("give the output once: as OUTPUT or as -o/--output")
    output = args.output or args.output_option
    if args.stack:
        if args.input is not None:
            raise UsageError("--stack replaces INPUT; give the output with -o/--output")
        return args.stack, output
    if args.input is None:
        raise UsageError("give the INPUT raster to upscale (or --stack BAND_FILE ...)")
    return args.input, output


def _cmd_evaluate(args: argparse.Namespace, events: EventStream) -> int:
    from geosr.evaluate import evaluate
    from geosr.sources import redact

    callback: Callable[[int, int], None] | None = None
    bars: list[Any] = []  # created on the first report, so errors before it print cleanly
    if args.progress == "jsonl":
        callback = events.progress
    elif args.progress == "bar":
        from tqdm.auto import tqdm

        def callback(done: int, total: int) -> None:
            if not bars:
                bars.append(
                    tqdm(total=total, unit="scene", desc="geosr evaluate", dynamic_ncols=True)
                )
            bars[0].update(done - bars[0].n)

    events.emit("start", scenes=[redact(s) for s in (args.temporal or args.scenes)])
    if args.guided:
        return _cmd_evaluate_guided(args, events, callback, bars)
    if args.temporal:
        return _cmd_evaluate_temporal(args, events, callback, bars)
    try:
        report = evaluate(
            args.scenes,
            args.model,
            scale=args.scale,
            strengths=args.strengths,
            tta=args.tta,
            preserve_spectra=args.preserve_spectra,
            pairs=[tuple(p) for p in args.pair],
            degradations=args.degradation,
            max_size=args.max_size,
            holdout=args.holdout,
            patch=args.patch,
            bands=args.bands,
            chunk_size=args.chunk_size,
            device=args.device,
            consistency=not args.no_consistency,
            json_path=args.json_path,
            figure=args.figure,
            html_path=args.html_path,
            progress=callback,
        )
    finally:
        for bar in bars:
            bar.close()
    if events.enabled:
        events.emit(
            "done",
            summary=report.to_dict()["summary"],
            json=str(args.json_path or ""),
            figure=str(args.figure or ""),
            html=str(args.html_path or ""),
        )
    else:
        print(report.table())
    return 0


def _cmd_evaluate_guided(
    args: argparse.Namespace,
    events: EventStream,
    callback: Callable[[int, int], None] | None,
    bars: list[Any],
) -> int:
    from geosr.evaluate_guided import evaluate_guided

    try:
        report = evaluate_guided(
            args.scenes,
            "auto" if args.model == "default" else args.model,
            holdout=args.holdout,
            json_path=args.json_path,
            html_path=args.html_path,
            progress=callback,
        )
    finally:
        for bar in bars:
            bar.close()
    if events.enabled:
        events.emit("done", json=str(args.json_path or ""), html=str(args.html_path or ""))
    else:
        print(report.table())
    return 0


def _cmd_evaluate_temporal(
    args: argparse.Namespace,
    events: EventStream,
    callback: Callable[[int, int], None] | None,
    bars: list[Any],
) -> int:
    from geosr.evaluate_temporal import evaluate_temporal

    if args.scenes or args.pair:
        raise UsageError("--temporal takes its two rasters A B; give no scenes or --pair")
    if args.bands:
        raise UsageError("--temporal compares every band; drop --bands")
    try:
        report = evaluate_temporal(
            *args.temporal,
            "srgan" if args.model == "default" else args.model,
            strengths=args.strengths,
            tta=args.tta,
            preserve_spectra=args.preserve_spectra,
            stable_threshold=args.stable_threshold,
            stable_fraction=args.stable_fraction,
            stable_radius=args.stable_radius,
            chunk_size=args.chunk_size,
            device=args.device,
            consistency=not args.no_consistency,
            json_path=args.json_path,
            figure=args.figure,
            html_path=args.html_path,
            progress=callback,
        )
    finally:
        for bar in bars:
            bar.close()
    if events.enabled:
        events.emit(
            "done",
            passed=report.passed,
            ratios={m.name: m.ratio for m in report.methods},
            json=str(args.json_path or ""),
            figure=str(args.figure or ""),
            html=str(args.html_path or ""),
        )
    else:
        print(report.table())
    return 0


def _cmd_demo(args: argparse.Namespace, events: EventStream) -> int:
    from geosr.demo import run_demo

    result = run_demo(args.out, args.model, progress=args.progress == "bar")
    gain = result["model_psnr"] - result["bicubic_psnr"]
    print(f"wrote {result['output']} and {result['figure']}")
    print(
        f"quality: on the sample degraded x4 (box), geosr {result['model_psnr']:.2f} dB PSNR vs bicubic "
        f"{result['bicubic_psnr']:.2f} dB ({gain:+.2f} dB), SAM {result['model_sam']:.4f} vs "
        f"{result['bicubic_sam']:.4f} rad; the output averages back to the input within "
        f"{result['radiometry']:.2f} DN"
    )
    events.emit("done", output=str(result["output"]), figure=str(result["figure"]))
    return 0


def _cmd_blend(args: argparse.Namespace, events: EventStream) -> int:
    import geosr
    from geosr.checkpoint import interpolate_models, with_endpoints

    if args.out.exists() and not args.overwrite:
        raise geosr.OutputExistsError(f"{args.out} already exists; pass --overwrite to replace it")
    fidelity, texture = geosr.load_model(args.fidelity), geosr.load_model(args.texture)
    if args.default_strength is not None:
        model = with_endpoints(fidelity, texture, args.default_strength)
    else:
        model = interpolate_models(fidelity, texture, args.alpha)
    updates = {"name": args.name} if args.name else {}
    print(geosr.save_model(model, args.out, **updates))
    return 0


def _cmd_info(args: argparse.Namespace, events: EventStream) -> int:
    import geosr

    if args.list:
        for name in geosr.bundled_models():
            print(name)
        return 0
    from geosr.checkpoint import is_guided, read_guided_meta

    meta = read_guided_meta(args.model) if is_guided(args.model) else geosr.read_meta(args.model)
    if args.json:
        print(json.dumps(meta.to_dict(), indent=2, default=str))
    else:
        print(meta.summary())
    return 0


CONSOLE = Console(
    prog="geosr",
    build_parser=build_parser,
    interrupted="interrupted; no output was written",
    out_of_memory="out of memory; use a smaller --chunk-size or --tile-size",
)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``geosr`` console script; returns the exit code."""
    return CONSOLE.main(argv)


run = CONSOLE.exit


if __name__ == "__main__":
    run()
