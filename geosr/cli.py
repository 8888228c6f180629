"""The ``geosr`` command line: a thin face over the library.

Errors print one line, ``geosr: error: ...``, on stderr and exit 1 (2 for usage errors);
``--debug`` shows the traceback instead. ``--progress jsonl`` turns stdout into a stream of
JSON events for programs driving geosr (the QGIS plugin does).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from geosr.choices import PRECISIONS

log = logging.getLogger("geosr")

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad command-line usage (exit code 2)."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors in geosr's format."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


class EventStream:
    """Writes machine-readable events (JSON lines on stdout) or nothing."""

    def __init__(self, enabled: bool, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stdout
        self.lock = threading.Lock()

    def emit(self, event: str, **fields: Any) -> None:
        if not self.enabled:
            return
        line = json.dumps({"event": event, **fields}, default=str)
        with self.lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    def progress(self, done: int, total: int) -> None:
        """A ``(done, total)`` progress callback as a ``progress`` event."""
        self.emit(
            "progress", fraction=round(done / total, 4) if total else 1.0, done=done, total=total
        )


class _EventLogHandler(logging.Handler):
    def __init__(self, events: EventStream) -> None:
        super().__init__()
        self.events = events

    def emit(self, record: logging.LogRecord) -> None:
        self.events.emit("log", level=record.levelname.lower(), message=record.getMessage())


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


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


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    parser.add_argument(
        "--progress",
        choices=("bar", "jsonl", "none"),
        default="bar",
        help="progress display: a bar on stderr (default), JSON lines on stdout, or none",
    )
    parser.add_argument(
        "--exit-on-stdin-eof",
        action="store_true",
        help="stop (cleaning up) when standard input closes, so a child dies with its parent",
    )


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
    parser.add_argument("--version", action="version", version=f"geosr {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    up = sub.add_parser(
        "upscale",
        help="super-resolve a raster into a GeoTIFF",
        description=(
            "Super-resolve INPUT into OUTPUT (default: INPUT_x<scale>.tif beside it). The output "
            "keeps CRS, bounds, bands, dtype, nodata and tags; its pixel size is divided by the "
            "scale. Example: geosr upscale scene.tif big.tif --model my.safetensors --chunk-size 256"
        ),
    )
    up.add_argument("input", type=Path, help="source raster (GeoTIFF or any GDAL raster)")
    up.add_argument(
        "output", type=Path, nargs="?", help="output GeoTIFF (default INPUT_x<scale>.tif)"
    )
    _add_model_option(up)
    up.add_argument("--scale", type=int, help="expected scale; refused if the model does another")
    up.add_argument(
        "--bands", type=_band_list, help="1-based bands to process, e.g. 4,3,2 (default all)"
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
    _add_common(up)
    up.set_defaults(func=_cmd_upscale)

    ev = sub.add_parser(
        "evaluate",
        help="score a model against bicubic and Lanczos on held-out scenes",
        description=(
            "Degrade HR scenes as training does (or take LR/HR pairs), super-resolve them through "
            "the same pipeline as 'geosr upscale', and report PSNR, SSIM, SAM, ERGAS, UIQI, "
            "high-frequency energy and LR consistency for the model, bicubic and Lanczos. "
            "Example: geosr evaluate --model runs/gan/best.safetensors --scale 4 holdout/*.tif "
            "--json report.json --figure report.png"
        ),
    )
    ev.add_argument("scenes", type=Path, nargs="*", help="HR reference scenes")
    _add_model_option(ev)
    ev.add_argument("--scale", type=int, help="expected scale; refused if the model does another")
    ev.add_argument(
        "--pair",
        nargs=2,
        action="append",
        type=Path,
        metavar=("LR", "HR"),
        default=[],
        help="an LR raster and its HR reference (repeatable)",
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
    ev.add_argument("--bands", type=_band_list, help="1-based bands to evaluate (default all)")
    ev.add_argument("--chunk-size", type=_positive_int, help="input pixels per chunk side")
    ev.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    ev.add_argument(
        "--no-consistency", action="store_true", help="evaluate without the radiometric projection"
    )
    ev.add_argument("--json", type=Path, dest="json_path", help="write the full report as JSON")
    ev.add_argument("--figure", type=Path, help="write a PNG of LR, bicubic, model and HR crops")
    ev.add_argument(
        "--html", type=Path, dest="html_path", help="write an HTML report (table and figure)"
    )
    _add_common(ev)
    ev.set_defaults(func=_cmd_evaluate)

    demo = sub.add_parser(
        "demo",
        help="upscale the bundled sample scene with the bundled default model",
        description="Upscale the bundled NAIP sample with the default model; write a GeoTIFF and a side-by-side PNG.",
    )
    demo.add_argument(
        "--out", type=Path, default=Path("out/demo"), help="output folder (default out/demo)"
    )
    _add_model_option(demo)
    _add_common(demo)
    demo.set_defaults(func=_cmd_demo)

    blend = sub.add_parser(
        "blend",
        help="interpolate a PSNR model and its GAN fine-tune (ESRGAN network interpolation)",
        description=(
            "Write ALPHA * FIDELITY + (1 - ALPHA) * TEXTURE weights as a new model: more ALPHA, more "
            "fidelity; less, more texture. Example: geosr blend runs/psnr/best.safetensors "
            "runs/gan/best.safetensors --alpha 0.5 --out blended.safetensors"
        ),
    )
    blend.add_argument("fidelity", help="the PSNR-oriented model (.safetensors or bundled name)")
    blend.add_argument("texture", help="the GAN model fine-tuned from it")
    blend.add_argument("--alpha", type=float, required=True, help="weight of FIDELITY, 0 to 1")
    blend.add_argument("--out", type=Path, required=True, help="output .safetensors file")
    blend.add_argument("--name", help="model name stored in the output")
    blend.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    _add_common(blend)
    blend.set_defaults(func=_cmd_blend)

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
    _add_common(info)
    info.set_defaults(func=_cmd_info)
    return parser


def _cmd_upscale(args: argparse.Namespace, events: EventStream) -> int:
    import geosr

    started = time.perf_counter()
    callback: Callable[[int, int], None] | bool = (
        events.progress if args.progress == "jsonl" else args.progress == "bar"
    )
    events.emit("start", input=str(args.input), output=str(args.output) if args.output else None)
    out = geosr.upscale(
        args.input,
        args.output,
        model=args.model,
        scale=args.scale,
        bands=args.bands,
        chunk_size=args.chunk_size,
        overlap=args.overlap,
        device=args.device,
        tile_size=args.tile_size,
        batch_size=args.batch_size,
        precision=args.precision,
        consistency=not args.no_consistency,
        cog=args.cog,
        overwrite=args.overwrite,
        progress=callback,
        num_workers=args.workers,
    )
    seconds = round(time.perf_counter() - started, 2)
    events.emit("done", output=str(out.resolve()), seconds=seconds)
    if not events.enabled:
        print(out)
    return 0


def _cmd_evaluate(args: argparse.Namespace, events: EventStream) -> int:
    from geosr.evaluate import evaluate

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

    events.emit("start", scenes=[str(s) for s in args.scenes])
    try:
        report = evaluate(
            args.scenes,
            args.model,
            scale=args.scale,
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
    from geosr.checkpoint import interpolate_models

    if args.out.exists() and not args.overwrite:
        raise geosr.OutputExistsError(f"{args.out} already exists; pass --overwrite to replace it")
    model = interpolate_models(
        geosr.load_model(args.fidelity), geosr.load_model(args.texture), args.alpha
    )
    updates = {"name": args.name} if args.name else {}
    print(geosr.save_model(model, args.out, **updates))
    return 0


def _cmd_info(args: argparse.Namespace, events: EventStream) -> int:
    import geosr

    if args.list:
        for name in geosr.bundled_models():
            print(name)
        return 0
    meta = geosr.read_meta(args.model)
    if args.json:
        print(json.dumps(meta.to_dict(), indent=2, default=str))
    else:
        print(meta.summary())
    return 0


def watch_stdin() -> None:
    """Interrupt the main thread when stdin reaches EOF (the parent went away)."""

    def watch() -> None:
        try:
            # the raw descriptor, not sys.stdin.buffer: a daemon thread blocked in a buffered
            # read holds its lock and makes interpreter shutdown abort
            while os.read(sys.stdin.fileno(), 4096):
                pass
        except (OSError, ValueError):
            pass
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, name="geosr-stdin-watch", daemon=True).start()


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _configure_logging(args: argparse.Namespace, events: EventStream) -> None:
    root = logging.getLogger("geosr")
    root.handlers.clear()
    root.setLevel(logging.DEBUG if getattr(args, "verbose", False) else logging.INFO)
    if events.enabled:
        handler: logging.Handler = _EventLogHandler(events)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("geosr: %(message)s"))
        handler.setLevel(logging.DEBUG if getattr(args, "verbose", False) else logging.WARNING)
    root.addHandler(handler)
    root.propagate = False

    def show(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
        text = str(message)
        if events.enabled:
            events.emit("log", level="warning", message=text)
        else:
            print(f"geosr: warning: {text}", file=sys.stderr)

    warnings.showwarning = show  # type: ignore[assignment]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``geosr`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    events = EventStream(_wants_jsonl(argv))  # usage errors are reported before parsing ends
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        print(f"geosr: error: {exc}", file=sys.stderr)
        events.emit("error", message=str(exc))
        return EXIT_USAGE
    events = EventStream(getattr(args, "progress", "bar") == "jsonl")
    _configure_logging(args, events)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    if getattr(args, "exit_on_stdin_eof", False):
        watch_stdin()
    from geosr.errors import GeosrError

    try:
        return args.func(args, events)
    except KeyboardInterrupt:
        message = "interrupted; no output was written"
        print(f"geosr: error: {message}", file=sys.stderr)
        events.emit("error", message=message)
        sys.stderr.flush()
        sys.stdout.flush()
        # chunk threads may still be busy; their output is discarded, so exit now
        os._exit(EXIT_INTERRUPTED)
    except GeosrError as exc:
        if debug:
            raise
        message = str(exc)
    except MemoryError:
        if debug:
            raise
        message = "out of memory; use a smaller --chunk-size or --tile-size"
    except Exception as exc:
        if debug:
            raise
        message = f"{type(exc).__name__}: {exc} (unexpected; rerun with --debug and report it)"
    message = " ".join(message.split())  # one line, always
    print(f"geosr: error: {message}", file=sys.stderr)
    events.emit("error", message=message)
    return EXIT_ERROR


def _wants_jsonl(argv: Sequence[str]) -> bool:
    pairs = itertools.pairwise(argv)
    return "--progress=jsonl" in argv or any(a == "--progress" and b == "jsonl" for a, b in pairs)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("geosr")
    except PackageNotFoundError:
        return "unknown"


def run() -> NoReturn:
    sys.exit(main())


if __name__ == "__main__":
    run()
