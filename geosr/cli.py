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

from geosr import cli_parser
from geosr.cli_parser import api_values
from geosr.console import Console, EventStream, Parser, UsageError

log = logging.getLogger("geosr")


def build_parser() -> Parser:
    """The ``geosr`` parser: its options are declared in :mod:`geosr.options`."""
    return cli_parser.build_parser(COMMANDS)


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
    out = geosr.upscale(source, output, **api_values(args, "upscale"), progress=callback)
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
    if args.guided_protocol:
        return _cmd_evaluate_guided(args, events, callback, bars)
    if args.temporal:
        return _cmd_evaluate_temporal(args, events, callback, bars)
    try:
        report = evaluate(
            args.scenes, args.model, **api_values(args, "evaluate"), progress=callback
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
            **api_values(args, "evaluate_guided"),
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

    if args.scenes or args.pairs:
        raise UsageError("--temporal takes its two rasters A B; give no scenes or --pair")
    if args.bands:
        raise UsageError("--temporal compares every band; drop --bands")
    try:
        report = evaluate_temporal(
            *args.temporal,
            "srgan" if args.model == "default" else args.model,
            **api_values(args, "evaluate_temporal"),
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


def _cmd_options(args: argparse.Namespace, events: EventStream) -> int:
    from geosr import options

    if args.json:
        data = options.to_json()
        if args.command_filter:
            data["options"] = [
                o
                for o in data["options"]
                if any(c["command"] == args.command_filter for c in o["cli"])
            ]
        print(json.dumps(data, indent=2))
        return 0
    for option in options.OPTIONS:
        ways = [c for c in option.cli if args.command_filter in (None, c.command)]
        if args.command_filter and not ways:
            continue
        default = "" if option.default is None else f" = {option.text_value(option.default)!r}"
        allowed = f" ({', '.join(option.choices)})" if option.choices else ""
        print(f"{option.name}: {option.kind}{allowed}{default}")
        for cli in ways:
            print(f"    geosr {cli.command} {' / '.join(cli.flags) or option.name.upper()}")
        for qgis in option.qgis:
            print(f"    QGIS geosr:{qgis.algorithm} {qgis.parameter}")
        if option.api:
            print(f"    API {', '.join(option.api)}")
    return 0


#: The commands of ``geosr``, in the order of its help.
COMMANDS: dict[str, Callable[[argparse.Namespace, EventStream], int]] = {
    "upscale": _cmd_upscale,
    "evaluate": _cmd_evaluate,
    "demo": _cmd_demo,
    "blend": _cmd_blend,
    "info": _cmd_info,
    "options": _cmd_options,
}


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
