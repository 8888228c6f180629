"""``geosr-train``: two-stage SRGAN training (PSNR pretraining, then adversarial) on GeoTIFFs.

Stage ``pretrain`` trains the SRResNet with the pixel loss alone; stage ``gan`` starts from
it (``--init``, whose band count and scale it takes) and adds the discriminator, a content
loss and the adversarial loss (Ledig et al. 2017). An ``--init`` model with a strength dial
(``srgan``, ``default``) starts the run from its network at ``--init-strength`` (default: its
default strength), and the run trains and saves that one network, without the dial's
endpoints. Everything runs offline on CPU or GPU, is seeded and reproducible, and resumes
after a crash to the same result as an uninterrupted run. Under ``torchrun`` it trains data
parallel (gloo on CPU, NCCL on GPU).

Outputs in ``--out``: ``config.toml`` (the resolved configuration), ``best.safetensors`` and
``last.safetensors`` (EMA generator weights, loadable by :func:`geosr.load_model`),
``state.safetensors`` (everything needed to resume), ``metrics.csv`` and ``metrics.png``.

This module is the command line, a face over :mod:`geosr.training`.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

from geosr.console import Console, EventStream, Parser, add_console_options
from geosr.errors import ConfigError
from geosr.training import (
    HELP,
    LR_SCHEDULES,
    STAGES,
    TrainConfig,
    Trainer,
    TrainingError,
    read_toml,
)
from geosr.training.distributed import shutdown_distributed

__all__ = [
    "TrainConfig",
    "Trainer",
    "TrainingError",
    "build_parser",
    "main",
    "read_toml",
]

#: Options with a fixed set of values (the others are checked by :class:`TrainConfig`).
CHOICES: dict[str, Sequence[str]] = {
    "stage": STAGES,
    "lr_schedule": LR_SCHEDULES,
    "sensor": ("sentinel-2", "landsat"),
}
PATH_OPTIONS = ("data", "val_data")


def build_parser() -> Parser:
    parser = Parser(
        prog="geosr-train",
        description=(
            "Train a multispectral SRGAN on your GeoTIFFs, in two stages: "
            "geosr-train --data scenes/ --stage pretrain --out runs/psnr, then "
            "geosr-train --data scenes/ --stage gan --init runs/psnr/best.safetensors --out runs/gan. "
            "Resume an interrupted run with: geosr-train --config runs/gan/config.toml --resume"
        ),
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument(
        "--config", type=Path, help="TOML config file; flags given here override it"
    )
    parser.add_argument("--resume", action="store_true", help="continue from OUT/state.safetensors")
    add_console_options(parser)
    defaults = TrainConfig()
    hints = get_type_hints(TrainConfig)
    for f in fields(TrainConfig):
        text = f"{HELP[f.name]} (default: {getattr(defaults, f.name)})"
        flag = "--" + f.name.replace("_", "-")
        parser.add_argument(flag, help=text, **_option_settings(f.name, hints[f.name]))
    parser.set_defaults(func=_train)
    return parser


def _option_settings(name: str, hint: Any) -> dict[str, Any]:
    """argparse settings of one :class:`TrainConfig` option, from its type."""
    if name in CHOICES:
        return {"choices": CHOICES[name]}
    kind = hint
    if get_origin(hint) in (Union, UnionType):  # X | None -> X
        kind = next(t for t in get_args(hint) if t is not type(None))
    if get_origin(kind) is list:
        item = get_args(kind)[0]
        return {"nargs": "+", "type": item, **({"metavar": "PATH"} if name in PATH_OPTIONS else {})}
    if kind is bool:
        return {"action": argparse.BooleanOptionalAction}
    if kind in (int, float):
        return {"type": kind}
    return {}


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """Defaults, then the TOML file, then the flags given on the command line."""
    values: dict[str, Any] = {}
    given = vars(args)
    if "config" in given:
        values.update(read_toml(given["config"]))
    names = {f.name for f in fields(TrainConfig)}
    values.update({k: v for k, v in given.items() if k in names})
    if not values.get("data"):
        raise ConfigError(
            "no training scenes: pass --data FILES_OR_FOLDERS (or a --config that has data)"
        )
    return TrainConfig.from_dict(values)


def _train(args: argparse.Namespace, events: EventStream) -> int:
    try:
        config = resolve_config(args)
        if config.stage == "guided":
            from geosr.training.guided import GuidedTrainer

            trainer = GuidedTrainer(
                config, resume=getattr(args, "resume", False), progress=args.progress
            )
        else:
            trainer = Trainer(config, resume=getattr(args, "resume", False), progress=args.progress)
        best = trainer.run()
    finally:
        shutdown_distributed()
    if getattr(trainer, "dist", None) is None or trainer.dist.main:
        events.emit("done", output=str(best.resolve()), steps=trainer.step)
        if not events.enabled:
            print(best)
    return 0


CONSOLE = Console(
    prog="geosr-train",
    build_parser=build_parser,
    interrupted="interrupted; resume with --resume",
    out_of_memory="out of memory; use a smaller --batch-size or --patch",
    log_level=logging.INFO,
)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``geosr-train`` console script; returns the exit code."""
    return CONSOLE.main(argv)


run = CONSOLE.exit


if __name__ == "__main__":
    run()
