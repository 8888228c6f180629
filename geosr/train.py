"""``geosr-train``: two-stage SRGAN training (PSNR pretraining, then adversarial) on GeoTIFFs.

Stage ``pretrain`` trains the SRResNet with the pixel loss alone; stage ``gan`` starts from
it (``--init``) and adds the discriminator, a content loss and the adversarial loss (Ledig et
al. 2017). Everything runs offline on CPU or GPU, is seeded and reproducible, and resumes
after a crash to the same result as an uninterrupted run. Under ``torchrun`` it trains data
parallel (gloo on CPU, NCCL on GPU).

Outputs in ``--out``: ``config.toml`` (the resolved configuration), ``best.safetensors`` and
``last.safetensors`` (EMA generator weights, loadable by :func:`geosr.load_model`),
``state.safetensors`` (everything needed to resume), ``metrics.csv`` and ``metrics.png``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import json
import logging
import math
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from geosr.checkpoint import (
    ModelMeta,
    build_model,
    load_model,
    load_tensors,
    save_model,
    save_tensors,
)
from geosr.data import DataConfig, DegradationConfig, PatchSample, TrainingData, prepare_data
from geosr.errors import CheckpointError, ConfigError, GeosrError
from geosr.losses import GeneratorLoss, LossConfig
from geosr.metrics import all_metrics, mean_gradient_magnitude
from geosr.models import build_discriminator

log = logging.getLogger(__name__)

STAGES = ("pretrain", "gan")
STATE_FILE = "state.safetensors"
LR_SCHEDULES = ("step", "cosine")
CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.csv"


class TrainingError(GeosrError, RuntimeError):
    """Training cannot go on (diverged, or a resume does not match)."""


@dataclass
class TrainConfig:
    """Every option of a training run; saved as ``config.toml`` beside the checkpoints.

    Attributes are documented in ``geosr-train --help`` (generated from :data:`HELP`).
    """

    data: list[str] = field(default_factory=list)
    out: str = "runs/geosr"
    val_data: list[str] = field(default_factory=list)
    stage: str = "pretrain"
    bands: int | None = None
    scale: int = 4
    steps: int = 2000
    batch_size: int = 16
    patch: int = 96
    preset: str = "compact"
    width: int | None = None
    blocks: int | None = None
    batch_norm: bool | None = None
    init: str | None = None
    discriminator: str = "srgan"
    disc_width: int = 32
    lr: float = 2e-4
    lr_disc: float = 1e-4
    lr_schedule: str = "step"
    lr_milestones: list[int] = field(default_factory=list)
    lr_gamma: float = 0.5
    lr_min_ratio: float = 0.01
    time_limit: float | None = None
    pixel_loss: str = "l1"
    pixel_weight: float | None = None
    content: str = "features"
    content_weight: float = 1.0
    vgg_weights: str | None = None
    rgb_bands: list[int] = field(default_factory=lambda: [0, 1, 2])
    gan_type: str = "vanilla"
    adversarial_weight: float | None = None
    adversarial_ramp: int = 200
    sam_weight: float = 0.0
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    val_every: int = 200
    checkpoint_every: int | None = None
    degradation: str = "mixed"
    mix: list[str] = field(default_factory=lambda: ["bicubic", "box", "gaussian"])
    noise: float = 0.0
    max_nodata: float = 0.1
    val_fraction: float = 0.1
    max_val_samples: int = 64
    seed: int = 0
    workers: int = 0
    device: str = "auto"
    amp: bool = True
    name: str | None = None

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ConfigError(f"unknown stage {self.stage!r}; use 'pretrain' or 'gan'")
        for name in ("steps", "batch_size", "val_every", "disc_width"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.lr <= 0 or self.lr_disc <= 0:
            raise ConfigError("learning rates must be positive")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(
                f"unknown lr_schedule {self.lr_schedule!r}; use {' or '.join(map(repr, LR_SCHEDULES))}"
            )
        if not 0 <= self.lr_min_ratio <= 1:
            raise ConfigError(f"lr_min_ratio must be in [0, 1], got {self.lr_min_ratio}")
        if self.time_limit is not None and not self.time_limit > 0:
            raise ConfigError(
                f"time_limit must be a positive number of minutes, got {self.time_limit}"
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown training option(s): {', '.join(unknown)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def data_config(self) -> DataConfig:
        return DataConfig(
            scale=self.scale,
            patch=self.patch,
            bands=self.bands,
            max_nodata=self.max_nodata,
            val_fraction=self.val_fraction,
            max_val_samples=self.max_val_samples,
            degradation=DegradationConfig(
                kind=self.degradation, mix=tuple(self.mix), noise=self.noise
            ),
        )

    def loss_config(self) -> LossConfig:
        overrides: dict[str, Any] = {
            "pixel": self.pixel_loss,
            "content": self.content if self.stage == "gan" else "none",
            "content_weight": self.content_weight,
            "vgg_weights": self.vgg_weights,
            "rgb_bands": tuple(self.rgb_bands),
            "gan_type": self.gan_type,
            "adversarial_weight": self.adversarial_weight,
            "sam_weight": self.sam_weight,
        }
        if self.pixel_weight is not None:
            overrides["pixel_weight"] = self.pixel_weight
        return LossConfig.for_stage(self.stage, **overrides)

    def generator_options(self) -> dict[str, Any]:
        options = {"width": self.width, "blocks": self.blocks, "batch_norm": self.batch_norm}
        return {k: v for k, v in options.items() if v is not None}


#: Help text of every option (argparse shows each default next to it).
HELP: dict[str, str] = {
    "data": "training scenes: GeoTIFF files, folders or glob patterns",
    "out": "output folder for checkpoints, config and metrics",
    "val_data": "separate validation scenes (default: the bottom rows of each training scene)",
    "stage": "pretrain (pixel loss only) or gan (adds discriminator, content, adversarial)",
    "bands": "band count of a multiband model; omit for a band-shared model (any band count)",
    "scale": "upscaling factor: 2, 4 or 8",
    "steps": "optimisation steps of this stage (a resumed run continues up to it)",
    "batch_size": "patches per step (per process under torchrun)",
    "patch": "HR patch side in pixels",
    "preset": "generator preset: compact (32 ch, 8 blocks) or paper (64 ch, 16 blocks, BN)",
    "width": "generator channels (overrides the preset)",
    "blocks": "generator residual blocks (overrides the preset)",
    "batch_norm": "batch norm in the generator's blocks (overrides the preset)",
    "init": "initialise the generator from this .safetensors model (the pretrain result for gan)",
    "discriminator": "srgan (image-level) or unet (per-pixel, Real-ESRGAN)",
    "disc_width": "channels of the discriminator's first stage",
    "lr": "generator learning rate (Adam)",
    "lr_disc": "discriminator learning rate (Adam)",
    "lr_schedule": "step (multiply by lr_gamma at each milestone) or cosine (decay to lr * lr_min_ratio over the stage: its steps, or its time limit when that comes first)",
    "lr_milestones": "steps at which the learning rates are multiplied by lr_gamma (schedule step)",
    "lr_gamma": "learning-rate decay factor at each milestone",
    "lr_min_ratio": "final learning rate of the cosine schedule, as a fraction of lr",
    "time_limit": "stop the stage after this many minutes of training (validated, checkpointed, resumable)",
    "pixel_loss": "l1 or mse",
    "pixel_weight": "pixel loss weight (default 1 in pretrain, 0.01 in gan, as in ESRGAN)",
    "content": "content loss of the gan stage: features (discriminator feature matching), vgg or none",
    "content_weight": "content loss weight",
    "vgg_weights": "torchvision VGG19 state dict file for content=vgg (never downloaded)",
    "rgb_bands": "0-based bands used as R,G,B by the VGG loss",
    "gan_type": "vanilla (SRGAN, BCE on logits) or ragan (relativistic average, ESRGAN)",
    "adversarial_weight": "adversarial loss weight (default 1e-3 vanilla, 5e-3 ragan)",
    "adversarial_ramp": "steps over which the adversarial weight ramps up linearly from 0",
    "sam_weight": "spectral angle loss weight (multiband models)",
    "ema_decay": "decay of the exponential moving average of generator weights (what is saved)",
    "grad_clip": "clip gradient norms to this value (0: off)",
    "val_every": "validate (and write metrics) every this many steps",
    "checkpoint_every": "write last.safetensors and the resume state every this many steps (default: val_every)",
    "degradation": "how LR inputs are made: bicubic, box, gaussian or mixed",
    "mix": "degradations a mixed degradation draws from, uniformly",
    "noise": "maximum Gaussian noise std added to LR inputs (normalised units)",
    "max_nodata": "skip training windows with more than this fraction of nodata",
    "val_fraction": "fraction of each scene's rows held out for validation",
    "max_val_samples": "maximum number of validation patches",
    "seed": "random seed (model init and data order)",
    "workers": "DataLoader worker processes",
    "device": "auto, cpu or cuda (under torchrun: cuda:LOCAL_RANK)",
    "amp": "mixed precision on CUDA",
    "name": "model name stored in the checkpoint",
}


# --- TOML ---------------------------------------------------------------------------------------


def read_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; check the path") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not valid TOML ({exc}); fix or delete it"
        ) from None


def to_toml(values: Mapping[str, Any]) -> str:
    """Flat TOML for a config of scalars and lists (None values are left out)."""

    def literal(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return repr(value)
        if isinstance(value, str):
            return json.dumps(value)
        if isinstance(value, list | tuple):
            return "[" + ", ".join(literal(v) for v in value) + "]"
        raise ConfigError(f"cannot write {value!r} to TOML")

    lines = ["# geosr-train configuration (resolved); rerun with: geosr-train --config THIS_FILE"]
    lines += [f"{key} = {literal(value)}" for key, value in values.items() if value is not None]
    return "\n".join(lines) + "\n"


# --- EMA, state -----------------------------------------------------------------------------------


class EMA:
    """Exponential moving average of a model's weights; the averaged model is what is saved."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for ema_value, value in zip(
            self.model.state_dict().values(), model.state_dict().values(), strict=True
        ):
            if ema_value.dtype.is_floating_point:
                ema_value.mul_(self.decay).add_(value.detach(), alpha=1 - self.decay)
            else:
                ema_value.copy_(value)


def _flatten_optimizer(
    prefix: str, optimizer: torch.optim.Optimizer
) -> tuple[dict[str, torch.Tensor], Any]:
    state = optimizer.state_dict()
    tensors = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            tensors[f"{prefix}.{index}.{key}"] = torch.as_tensor(value).clone().contiguous()
    return tensors, state["param_groups"]


def _restore_optimizer(
    prefix: str, optimizer: torch.optim.Optimizer, tensors: Mapping[str, torch.Tensor], groups: Any
) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith(prefix + "."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups})


# --- the trainer ----------------------------------------------------------------------------------


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


class Trainer:
    """One stage of training, from a config. ``run()`` trains up to ``config.steps``."""

    def __init__(self, config: TrainConfig, resume: bool = False, progress: str = "bar") -> None:
        self.config = config
        self.progress = progress
        self.dist = _init_distributed()
        self.device = _device(config.device, self.dist)
        self.out = Path(config.out)
        if self.dist.main:
            _prepare_out(self.out)
        torch.manual_seed(config.seed)
        self.data: TrainingData = prepare_data(
            config.data,
            config.data_config(),
            generator=config.seed,
            val_sources=config.val_data or None,
        )
        self.generator = self._build_generator()
        self.bands = self.generator.config.bands
        self.loss = GeneratorLoss(config.loss_config(), adversarial=config.stage == "gan").to(
            self.device
        )
        self.base_adversarial_weight = self.loss.adversarial.loss_weight
        self.discriminator: nn.Module | None = None
        if config.stage == "gan":
            self.discriminator = build_discriminator(
                config.discriminator, bands=self.bands, width=config.disc_width
            ).to(self.device)
        self.ema = EMA(self.generator, config.ema_decay)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr, betas=(0.9, 0.99))
        self.opt_d = (
            torch.optim.Adam(self.discriminator.parameters(), lr=config.lr_disc, betas=(0.9, 0.99))
            if self.discriminator is not None
            else None
        )
        self.g_train: nn.Module = self.generator
        self.d_train: nn.Module | None = self.discriminator
        if self.dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.g_train = DistributedDataParallel(self.generator, device_ids=ids)
            if self.discriminator is not None:
                self.d_train = DistributedDataParallel(self.discriminator, device_ids=ids)
        self.amp = config.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        from geosr.data import BatchStream

        self.stream = BatchStream(
            self.data.train,
            config.batch_size,
            num_workers=config.workers,
            rank=self.dist.rank,
            world_size=self.dist.world,
            pin_memory=self.device.type == "cuda",
        )
        self.step = 0
        self.best_score = -math.inf
        self.best_step = 0
        self.elapsed_before = 0.0  # training seconds of earlier (resumed) runs of this stage
        self.run_started: float | None = None
        if resume:
            self._load_state()

    # --- construction ---

    def _build_generator(self) -> nn.Module:
        cfg = self.config
        if cfg.init:
            model = load_model(cfg.init)
            meta = model.meta
            if meta.scale != cfg.scale:
                raise ConfigError(
                    f"--init model is x{meta.scale} but --scale is {cfg.scale}; they must agree"
                )
            if meta.bands != cfg.bands:
                want = "band-shared" if cfg.bands is None else f"{cfg.bands}-band"
                got = "band-shared" if meta.bands is None else f"{meta.bands}-band"
                raise ConfigError(
                    f"--init model is {got} but this run trains a {want} model; pass --bands to match"
                )
        else:
            model = build_model(
                bands=cfg.bands, scale=cfg.scale, preset=cfg.preset, **cfg.generator_options()
            )
        return model.to(self.device).train()

    # --- checkpoints ---

    def model_meta(self) -> ModelMeta:
        cfg = self.config
        names = None
        if cfg.bands is not None:
            first = self.data.scenes[0].band_names
            names = tuple(n or f"band {i + 1}" for i, n in enumerate(first)) if any(first) else None
        trained_on = {
            **self.data.provenance(),
            "stage": cfg.stage,
            "steps": self.step,
            "batch_size": cfg.batch_size * self.dist.world,
            "hardware": _hardware(self.device),
        }
        previous = getattr(self.generator, "meta", None)
        if cfg.init and previous is not None and previous.trained_on:
            trained_on["init"] = {"model": Path(cfg.init).name, **previous.trained_on}
        return ModelMeta(
            generator=self.generator.config,
            band_shared=cfg.bands is None,
            band_names=names,
            normalization=self.data.normalization,
            value_range=None,
            trained_on=trained_on,
            name=cfg.name or f"geosr-{cfg.stage}-x{cfg.scale}",
        )

    def save_model(self, name: str) -> Path:
        self.ema.model.meta = self.model_meta()
        return save_model(self.ema.model, self.out / name)

    def save_state(self) -> None:
        tensors: dict[str, torch.Tensor] = {}
        for prefix, module in (
            ("g", self.generator),
            ("ema", self.ema.model),
            ("d", self.discriminator),
        ):
            if module is not None:
                tensors.update(
                    {
                        f"{prefix}.{k}": v.detach().cpu().contiguous()
                        for k, v in module.state_dict().items()
                    }
                )
        g_tensors, g_groups = _flatten_optimizer("opt_g", self.opt_g)
        tensors.update(g_tensors)
        d_groups = None
        if self.opt_d is not None:
            d_tensors, d_groups = _flatten_optimizer("opt_d", self.opt_d)
            tensors.update(d_tensors)
        tensors["rng.torch"] = torch.get_rng_state()
        if torch.cuda.is_available() and self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        tensors["scaler.scale"] = torch.tensor(self.scaler.get_scale() if self.amp else 1.0)
        meta = {
            "training_state": {
                "step": self.step,
                "stage": self.config.stage,
                "config": self.config.to_dict(),
                "data": self.stream.state_dict(),
                "opt_g_groups": g_groups,
                "opt_d_groups": d_groups,
                "best_score": self.best_score,
                "best_step": self.best_step,
                "elapsed_s": self.elapsed(),
            }
        }
        save_tensors(self.out / STATE_FILE, tensors, meta)

    def _load_state(self) -> None:
        path = self.out / STATE_FILE
        if not path.is_file():
            raise ConfigError(f"nothing to resume: {path} does not exist; start without --resume")
        tensors, meta = load_tensors(path)
        state = meta.get("training_state")
        if not state:
            raise CheckpointError(f"{path} is not a geosr training state; start without --resume")
        if state["stage"] != self.config.stage:
            raise ConfigError(f"{path} is from stage {state['stage']!r}, not {self.config.stage!r}")
        for prefix, module in (
            ("g", self.generator),
            ("ema", self.ema.model),
            ("d", self.discriminator),
        ):
            if module is None:
                continue
            part = {
                k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")
            }
            try:
                module.load_state_dict(part)
            except RuntimeError:
                raise ConfigError(
                    f"{path} was saved with another architecture; resume with the same config "
                    f"({self.out / CONFIG_FILE})"
                ) from None
        _restore_optimizer("opt_g", self.opt_g, tensors, state["opt_g_groups"])
        if self.opt_d is not None:
            _restore_optimizer("opt_d", self.opt_d, tensors, state["opt_d_groups"])
        torch.set_rng_state(tensors["rng.torch"])
        if "rng.cuda" in tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)
        if self.amp:
            self.scaler.update(float(tensors["scaler.scale"]))
        self.stream.load_state_dict(state["data"])
        self.step = int(state["step"])
        self.best_score = float(state["best_score"])
        self.best_step = int(state["best_step"])
        self.elapsed_before = float(state.get("elapsed_s", 0.0))
        self._apply_lr()
        log.info("resumed %s at step %d", path, self.step)

    # --- the loop ---

    def elapsed(self) -> float:
        """Training seconds of this stage so far, resumed runs included."""
        running = 0.0 if self.run_started is None else time.perf_counter() - self.run_started
        return self.elapsed_before + running

    def progress_fraction(self) -> float:
        """How far the stage is: by steps, or by its time limit when that comes first."""
        cfg = self.config
        fraction = self.step / cfg.steps
        if cfg.time_limit is not None:
            fraction = max(fraction, self.elapsed() / (cfg.time_limit * 60))
        return min(fraction, 1.0)

    def lr_factor(self) -> float:
        cfg = self.config
        if cfg.lr_schedule == "cosine":
            cosine = 0.5 * (1 + math.cos(math.pi * self.progress_fraction()))
            return cfg.lr_min_ratio + (1 - cfg.lr_min_ratio) * cosine
        decays = sum(1 for m in cfg.lr_milestones if self.step >= m)
        return cfg.lr_gamma**decays

    def out_of_time(self) -> bool:
        """True once the time limit is spent; under DDP every rank stops at the same step."""
        limit = self.config.time_limit
        if limit is None:
            return False
        spent = self.elapsed() >= limit * 60
        if self.dist.world > 1:
            flag = torch.tensor([1.0 if spent else 0.0], device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            spent = bool(flag.item())
        return spent

    def _apply_lr(self) -> None:
        factor = self.lr_factor()
        for group in self.opt_g.param_groups:
            group["lr"] = self.config.lr * factor
        if self.opt_d is not None:
            for group in self.opt_d.param_groups:
                group["lr"] = self.config.lr_disc * factor

    def _adversarial_ramp(self) -> float:
        ramp = self.config.adversarial_ramp
        return 1.0 if ramp <= 0 else min(1.0, (self.step + 1) / ramp)

    def train_step(self, batch: PatchSample) -> dict[str, float]:
        lr, hr = (
            batch.lr.to(self.device, non_blocking=True),
            batch.hr.to(self.device, non_blocking=True),
        )
        valid = batch.valid.to(self.device, non_blocking=True).float()
        offset, scale = batch.offset.to(self.device), batch.scale.to(self.device)
        logs: dict[str, float] = {}
        autocast = (
            torch.autocast("cuda", enabled=self.amp)
            if self.device.type == "cuda"
            else contextlib.nullcontext()
        )
        if self.d_train is not None:
            self.loss.adversarial.loss_weight = (
                self.base_adversarial_weight * self._adversarial_ramp()
            )
        with autocast:
            sr = self.g_train(lr)
            if self.d_train is not None:
                # the generator step needs no gradient sync in D: use the unwrapped module, in
                # eval mode so spectral norm's power iteration does not move between the SR and
                # HR passes (which would make feature matching nonzero for SR == HR)
                self.discriminator.eval()
                for p in self.discriminator.parameters():
                    p.requires_grad_(False)
                fake = self.discriminator(sr, return_features=True)
                real = self.discriminator(hr, return_features=True)
                total, terms = self.loss(
                    sr, hr, valid, fake=fake, real=real, offset=offset, scale=scale
                )
            else:
                total, terms = self.loss(sr, hr, valid, offset=offset, scale=scale)
        self._check_finite(total, terms)
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self._clip(self.generator, self.opt_g)
        self.scaler.step(self.opt_g)
        logs.update({f"g_{k}": float(v) for k, v in terms.items()})
        logs["g_total"] = float(total.detach())
        if self.d_train is not None:
            self.discriminator.train()
            for p in self.discriminator.parameters():
                p.requires_grad_(True)
            with autocast:
                real_logits = self.d_train(hr)
                fake_logits = self.d_train(sr.detach())
                d_loss = self.loss.adversarial.discriminator_loss(real_logits, fake_logits, valid)
            self._check_finite(d_loss, {"discriminator": d_loss})
            self.opt_d.zero_grad(set_to_none=True)
            self.scaler.scale(d_loss).backward()
            self._clip(self.discriminator, self.opt_d)
            self.scaler.step(self.opt_d)
            logs["d_loss"] = float(d_loss.detach())
        self.scaler.update()
        self.ema.update(self.generator)
        return logs

    def _clip(self, module: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        if self.config.grad_clip > 0:
            self.scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(module.parameters(), self.config.grad_clip)

    def _check_finite(self, total: torch.Tensor, terms: Mapping[str, torch.Tensor]) -> None:
        if torch.isfinite(total).all():
            return
        bad = ", ".join(k for k, v in terms.items() if not torch.isfinite(v).all()) or "total"
        saved = ""
        if self.dist.main and self.step > 0:
            saved = f"; the last good weights (step {self.step}) are in {self.save_model('last.safetensors')}"
        raise TrainingError(
            f"the {bad} loss became NaN/inf at step {self.step + 1}; lower --lr or --adversarial-weight, "
            f"or keep --grad-clip on{saved}"
        )

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Metrics of the EMA model and of bicubic on the fixed validation patches, in the
        rasters' own units (de-normalised)."""
        model = self.ema.model
        scale = self.config.scale
        rows: dict[str, list[float]] = {}
        for index in range(len(self.data.val)):
            sample = self.data.val[index]
            lr = sample.lr[None].to(self.device)
            sr = model(lr)[0].float().cpu().numpy()
            bicubic = torch.nn.functional.interpolate(
                lr, scale_factor=scale, mode="bicubic", align_corners=False
            )[0]
            offset = sample.offset.numpy()[:, None, None]
            spread = sample.scale.numpy()[:, None, None]
            hr = sample.hr.numpy() * spread + offset
            valid = sample.valid.numpy()[0]
            if valid.sum() < 16:
                continue
            data_range = spread[:, 0, 0]  # p_low..p_high span of each band
            for label, pred in (("model", sr), ("bicubic", bicubic.cpu().numpy())):
                pred = pred * spread + offset
                for key, value in all_metrics(pred, hr, data_range, scale, valid).items():
                    rows.setdefault(f"{label}_{key}", []).append(value)
                rows.setdefault(f"{label}_gradient", []).append(
                    float(mean_gradient_magnitude(pred, valid))
                )
            rows.setdefault("hr_gradient", []).append(float(mean_gradient_magnitude(hr, valid)))
        return {key: _finite_mean(values) for key, values in rows.items()}

    def score(self, metrics: Mapping[str, float]) -> float:
        """Higher is better. Pretrain: validation PSNR. GAN: the closest high-frequency energy
        to the reference among checkpoints that keep PSNR within 0.5 dB of bicubic."""
        if self.config.stage == "pretrain":
            return metrics.get("model_psnr", -math.inf)
        error = abs(metrics["model_gradient"] - metrics["hr_gradient"]) / max(
            metrics["hr_gradient"], 1e-12
        )
        keeps_fidelity = metrics["model_psnr"] >= metrics["bicubic_psnr"] - 0.5
        return (1000.0 if keeps_fidelity else 0.0) - error * 100 + metrics["model_psnr"] * 1e-3

    def run(self) -> Path:
        cfg = self.config
        if self.dist.main:
            (self.out / CONFIG_FILE).write_text(to_toml(cfg.to_dict()))
        checkpoint_every = cfg.checkpoint_every or cfg.val_every
        bar = _Progress(self.progress, cfg.steps, self.step, enabled=self.dist.main)
        started = self.run_started = time.perf_counter()
        first_step = self.step
        batches: Iterator[PatchSample] = iter(self.stream)
        try:
            while self.step < cfg.steps:
                self._apply_lr()
                logs = self.train_step(next(batches))
                self.step += 1
                bar.update(self.step, logs)
                last = self.step == cfg.steps or self.out_of_time()
                if self.step % cfg.val_every == 0 or last:
                    self._validate_and_record(logs, started, first_step, final=last)
                if self.step % checkpoint_every == 0 or last:
                    self._checkpoint()
                if last:
                    break
        finally:
            bar.close()
        elapsed = time.perf_counter() - started
        if self.dist.main:
            rate = (self.step - first_step) / elapsed if elapsed > 0 else math.nan
            log.info(
                "trained %d steps in %.1f s (%.2f steps/s); best step %d%s",
                self.step - first_step,
                elapsed,
                rate,
                self.best_step,
                " (time limit reached)" if self.step < cfg.steps else "",
            )
        _barrier(self.dist)
        return self.out / "best.safetensors"

    def _validate_and_record(
        self, logs: Mapping[str, float], started: float, first_step: int, final: bool
    ) -> None:
        if not self.dist.main:
            _barrier(self.dist)
            return
        metrics = self.validate() if len(self.data.val) else {}
        elapsed = time.perf_counter() - started
        row = {
            "step": self.step,
            "seconds": round(elapsed, 2),
            "steps_per_s": round((self.step - first_step) / elapsed, 3) if elapsed > 0 else 0,
            **{k: round(v, 6) for k, v in logs.items()},
            **{f"val_{k}": round(v, 6) for k, v in metrics.items()},
        }
        _append_csv(self.out / METRICS_FILE, row)
        if metrics:
            score = self.score(metrics)
            if score > self.best_score:
                self.best_score, self.best_step = score, self.step
                self.save_model("best.safetensors")
            log.info(
                "step %d: val PSNR %.2f dB (bicubic %.2f), SSIM %.4f",
                self.step,
                metrics.get("model_psnr", math.nan),
                metrics.get("bicubic_psnr", math.nan),
                metrics.get("model_ssim", math.nan),
            )
        elif not (self.out / "best.safetensors").exists() or final:
            self.best_step = self.step
            self.save_model("best.safetensors")
        _plot_metrics(self.out / METRICS_FILE, self.out / "metrics.png")
        _barrier(self.dist)

    def _checkpoint(self) -> None:
        if self.dist.main:
            self.save_model("last.safetensors")
            self.save_state()
        _barrier(self.dist)


# --- helpers ----------------------------------------------------------------------------------------


class _Progress:
    def __init__(self, mode: str, total: int, start: int, enabled: bool) -> None:
        self.mode = mode if enabled else "none"
        self.total = total
        self.bar = None
        if self.mode == "bar":
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=total, initial=start, unit="step", desc="geosr-train", dynamic_ncols=True
            )
        self.last_emit = 0.0

    def update(self, step: int, logs: Mapping[str, float]) -> None:
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix(
                {
                    k: f"{v:.4g}"
                    for k, v in logs.items()
                    if k.startswith(("g_total", "d_loss", "g_pixel"))
                },
                refresh=False,
            )
        elif self.mode == "jsonl":
            now = time.perf_counter()
            if now - self.last_emit > 0.5 or step == self.total:
                self.last_emit = now
                print(
                    json.dumps(
                        {
                            "event": "progress",
                            "fraction": round(step / self.total, 4),
                            "done": step,
                            "total": self.total,
                            **{k: round(v, 5) for k, v in logs.items()},
                        }
                    ),
                    flush=True,
                )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _finite_mean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def _append_csv(path: Path, row: Mapping[str, Any]) -> None:
    rows: list[dict[str, Any]] = []
    if path.exists():
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    rows = [
        r for r in rows if int(float(r["step"])) < int(row["step"])
    ]  # a resumed run rewrites what followed
    rows.append(dict(row))
    columns: list[str] = []
    for r in rows:
        columns.extend(k for k in r if k not in columns)
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def _plot_metrics(csv_path: Path, png_path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        return
    with csv_path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return

    def series(key: str) -> tuple[list[float], list[float]]:
        pairs = [
            (float(r["step"]), float(r[key])) for r in rows if r.get(key) not in (None, "", "nan")
        ]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    fig, (ax_loss, ax_psnr) = plt.subplots(1, 2, figsize=(10, 4))
    for key in ("g_total", "g_pixel", "g_content", "g_adversarial", "d_loss"):
        x, y = series(key)
        if x:
            ax_loss.plot(x, y, label=key)
    ax_loss.set_xlabel("step")
    ax_loss.set_yscale("log")
    ax_loss.set_title("training losses")
    ax_loss.legend(fontsize=8)
    for key, label in (("val_model_psnr", "model"), ("val_bicubic_psnr", "bicubic")):
        x, y = series(key)
        if x:
            ax_psnr.plot(x, y, marker="o", label=label)
    ax_psnr.set_xlabel("step")
    ax_psnr.set_ylabel("validation PSNR (dB)")
    ax_psnr.legend(fontsize=8)
    fig.tight_layout()
    tmp = png_path.with_name(png_path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, png_path)


def _prepare_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".geosr-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"cannot write to output folder {out} ({exc.strerror}); choose another --out"
        ) from None


def _init_distributed() -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    return Dist(
        rank=dist.get_rank(),
        world=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def _barrier(d: Dist) -> None:
    if d.world > 1:
        dist.barrier()


def _device(name: str, d: Dist) -> torch.device:
    from geosr.pipeline import resolve_device

    device = resolve_device(name)
    if device.type == "cuda" and d.world > 1:
        device = torch.device("cuda", d.local_rank)
        torch.cuda.set_device(device)
    return device


def _hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU, {torch.get_num_threads()} threads"


# --- command line ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from geosr.cli import Parser

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
    parser.add_argument(
        "--progress", choices=("bar", "jsonl", "none"), help="progress display (default bar)"
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser.add_argument(
        "--exit-on-stdin-eof",
        action="store_true",
        help="stop when standard input closes, so a child dies with its parent",
    )
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        text = f"{HELP[f.name]} (default: {default})"
        if f.name in ("data", "val_data", "mix"):
            parser.add_argument(flag, nargs="+", metavar="PATH", help=text)
        elif f.name in ("lr_milestones", "rgb_bands"):
            parser.add_argument(flag, nargs="+", type=int, help=text)
        elif f.name == "lr_schedule":
            parser.add_argument(flag, choices=LR_SCHEDULES, help=text)
        elif f.name in ("batch_norm", "amp"):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, help=text)
        elif f.name in (
            "bands",
            "steps",
            "batch_size",
            "patch",
            "scale",
            "width",
            "blocks",
            "disc_width",
            "adversarial_ramp",
            "val_every",
            "checkpoint_every",
            "max_val_samples",
            "seed",
            "workers",
        ):
            parser.add_argument(flag, type=int, help=text)
        elif f.name in (
            "lr",
            "lr_disc",
            "lr_gamma",
            "lr_min_ratio",
            "time_limit",
            "pixel_weight",
            "content_weight",
            "adversarial_weight",
            "sam_weight",
            "ema_decay",
            "grad_clip",
            "noise",
            "max_nodata",
            "val_fraction",
        ):
            parser.add_argument(flag, type=float, help=text)
        elif f.name == "stage":
            parser.add_argument(flag, choices=STAGES, help=text)
        else:
            parser.add_argument(flag, help=text)
    return parser


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


def main(argv: Sequence[str] | None = None) -> int:
    from geosr.cli import UsageError

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        print(f"geosr-train: error: {exc}", file=sys.stderr)
        return 2
    progress = getattr(args, "progress", "bar")
    _configure_logging(progress)
    if getattr(args, "exit_on_stdin_eof", False):
        from geosr.cli import watch_stdin

        watch_stdin()
    try:
        config = resolve_config(args)
        trainer = Trainer(config, resume=getattr(args, "resume", False), progress=progress)
        best = trainer.run()
        if trainer.dist.main:
            if progress == "jsonl":
                print(
                    json.dumps(
                        {"event": "done", "output": str(best.resolve()), "steps": trainer.step}
                    ),
                    flush=True,
                )
            else:
                print(best)
        return 0
    except KeyboardInterrupt:
        message = "interrupted; resume with --resume"
    except GeosrError as exc:
        if debug:
            raise
        message = str(exc)
    except Exception as exc:
        if debug:
            raise
        message = f"{type(exc).__name__}: {exc} (unexpected; rerun with --debug and report it)"
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    message = " ".join(message.split())
    print(f"geosr-train: error: {message}", file=sys.stderr)
    if progress == "jsonl":
        print(json.dumps({"event": "error", "message": message}), flush=True)
    return 1


def _configure_logging(progress: str) -> None:
    root = logging.getLogger("geosr")
    root.handlers.clear()
    root.setLevel(logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("geosr-train: %(message)s"))
    root.addHandler(handler)
    root.propagate = False


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
