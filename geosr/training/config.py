"""The options of a training run: :class:`TrainConfig`, its help texts and its TOML file."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import tomli_w

from geosr.checkpoint import check_strength, read_meta
from geosr.data import DataConfig, DegradationConfig
from geosr.errors import ConfigError, ModelError
from geosr.losses import LossConfig

STAGES = ("pretrain", "gan", "guided")
LR_SCHEDULES = ("step", "cosine")
CONFIG_FILE = "config.toml"


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
    preset: str = "fast"
    width: int | None = None
    blocks: int | None = None
    batch_norm: bool | None = None
    init: str | None = None
    init_strength: float | None = None
    discriminator: str = "srgan"
    disc_width: int = 32
    disc_spectral_norm: bool = True
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
    sensor: str | None = None
    targets: list[str] = field(default_factory=list)
    guides: list[str] = field(default_factory=list)
    ratio: int = 2
    mtf: float = 0.3

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ConfigError(f"unknown stage {self.stage!r}; use 'pretrain', 'gan' or 'guided'")
        if not 0 < self.mtf < 1:
            raise ConfigError(f"mtf must be between 0 and 1, got {self.mtf}")
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
        if self.init_strength is not None:
            if not self.init:
                raise ConfigError(
                    "init_strength applies to an --init model with a strength dial; "
                    "give --init (such as srgan) or leave out --init-strength"
                )
            try:
                check_strength(self.init_strength)
            except ModelError as exc:
                raise ConfigError(f"init_strength: {exc}") from None
        if self.time_limit is not None and not self.time_limit > 0:
            raise ConfigError(
                f"time_limit must be a positive number of minutes, got {self.time_limit}"
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Options as given (a TOML file, flags); ``bands`` and ``scale`` left out of them
        are the ``init`` model's, since a fine-tune keeps its starting point's architecture."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown training option(s): {', '.join(unknown)}")
        return cls(**_inherit_from_init(data))

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
    "stage": "pretrain (pixel loss only), gan (adds discriminator, content, adversarial) or guided (a guided model from --data products by Wald's protocol)",
    "bands": "band count of a multiband model; omit for a band-shared model (any band count), or with --init for the init model's",
    "scale": "upscaling factor: 2, 4 or 8 (with --init: the init model's)",
    "steps": "optimisation steps of this stage (a resumed run continues up to it)",
    "batch_size": "patches per step (per process under torchrun)",
    "patch": "HR patch side in pixels",
    "preset": "generator preset: fast (48 ch, 7 blocks, reconstruction at LR resolution: the bundled models), compact (32 ch, 8 blocks, geosr 0.x) or paper (64 ch, 16 blocks, BN)",
    "width": "generator channels (overrides the preset)",
    "blocks": "generator residual blocks (overrides the preset)",
    "batch_norm": "batch norm in the generator's blocks (overrides the preset)",
    "init": "initialise the generator from this .safetensors model or bundled name (the pretrain result for gan); bands and scale not given are its own. A model with a strength dial (srgan, default) gives its network at --init-strength, and what is trained and saved is that one network, without a dial (geosr blend --default-strength makes a new dial from it and a PSNR model)",
    "init_strength": "with an --init model that has a strength dial: the strength of the network training starts from, 0 (its PSNR model) to 1 (its GAN endpoint; e.g. to fine-tune the GAN on your scenes with --stage gan); omit for the model's own default strength (geosr info srgan)",
    "discriminator": "srgan (image-level) or unet (per-pixel, Real-ESRGAN)",
    "disc_width": "channels of the discriminator's first stage",
    "disc_spectral_norm": "spectral norm on the discriminator's layers (off: the SRGAN net uses batch norm, as in the paper)",
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
    "sensor": "guided stage: the stages of a sensor's bundled guided model, sentinel-2 (20 m bands x2 and 60 m bands x6, guided by B02 B03 B04 B08) or landsat (30 m bands x2, guided by the pan band B8)",
    "targets": "guided stage: coarse band names to restore (instead of --sensor)",
    "guides": "guided stage: fine band names that guide them (instead of --sensor)",
    "ratio": "guided stage: coarse pixel over fine pixel, 2, 3, 4 or 6 (with --targets)",
    "mtf": "guided stage: the sensor MTF at Nyquist of the Gaussian that degrades the products (Wald's protocol)",
}


def _inherit_from_init(values: Mapping[str, Any]) -> dict[str, Any]:
    missing = {"bands", "scale"} - set(values)
    if not values.get("init") or not missing:
        return dict(values)
    meta = read_meta(values["init"])
    inherited = {"bands": meta.bands, "scale": meta.scale}
    return {**{k: inherited[k] for k in missing}, **values}


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
    """TOML of a config (None values, which TOML cannot hold, are left out)."""
    header = "# geosr-train configuration (resolved); rerun with: geosr-train --config THIS_FILE\n"
    return header + tomli_w.dumps({k: v for k, v in values.items() if v is not None})
