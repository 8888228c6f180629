"""The networks of a stage and what updates them: generator, discriminator, EMA, optimisers."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from geosr.checkpoint import build_model, load_model, read_meta
from geosr.errors import ConfigError
from geosr.models import build_discriminator
from geosr.training.config import TrainConfig
from geosr.training.distributed import Dist


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


def initial_generator(cfg: TrainConfig, device: torch.device) -> nn.Module:
    """A new generator, or the ``init`` model's (which must match the run's scale and bands).

    An ``init`` model with a strength dial (``srgan``) gives its network at ``init_strength``
    (default: its own default strength), as one network: training moves the weights off the
    dial, so what is trained and saved is that network alone, without the dial's endpoints.
    """
    if not cfg.init:
        model = build_model(
            bands=cfg.bands, scale=cfg.scale, preset=cfg.preset, **cfg.generator_options()
        )
        return model.to(device).train()
    if cfg.init_strength is not None and read_meta(cfg.init).default_strength is None:
        raise ConfigError(
            f"--init-strength needs an --init model with a strength dial (such as srgan), and "
            f"{cfg.init} has none; leave out --init-strength"
        )
    model = load_model(cfg.init, strength=cfg.init_strength)
    model.endpoints = model.strength = None
    meta = model.meta
    if meta.scale != cfg.scale:
        raise ConfigError(
            f"--init model is x{meta.scale} but --scale is {cfg.scale}; they must agree "
            "(leave out --scale to take the model's)"
        )
    if meta.bands != cfg.bands:
        want = "band-shared" if cfg.bands is None else f"{cfg.bands}-band"
        got = "band-shared" if meta.bands is None else f"{meta.bands}-band"
        raise ConfigError(
            f"--init model is {got} but this run trains a {want} model; leave out --bands "
            "to take the model's"
        )
    return model.to(device).train()


@dataclass
class Networks:
    """What a step trains: ``g_train``/``d_train`` are the DDP-wrapped modules under torchrun,
    the plain ``generator``/``discriminator`` otherwise."""

    generator: nn.Module
    discriminator: nn.Module | None
    ema: EMA
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer | None
    g_train: nn.Module
    d_train: nn.Module | None
    amp: bool
    scaler: torch.amp.GradScaler

    @classmethod
    def around(
        cls, generator: nn.Module, cfg: TrainConfig, device: torch.device, d: Dist
    ) -> Networks:
        """The discriminator (GAN stage), EMA, optimisers and DDP wrappers for ``generator``."""
        discriminator = None
        if cfg.stage == "gan":
            discriminator = build_discriminator(
                cfg.discriminator,
                bands=generator.config.bands,
                width=cfg.disc_width,
                spectral_norm=cfg.disc_spectral_norm,
            ).to(device)
        ema = EMA(generator, cfg.ema_decay)
        opt_g = torch.optim.Adam(generator.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
        opt_d = None
        if discriminator is not None:
            opt_d = torch.optim.Adam(discriminator.parameters(), lr=cfg.lr_disc, betas=(0.9, 0.99))
        g_train, d_train = _data_parallel(generator, device, d), None
        if discriminator is not None:
            d_train = _data_parallel(discriminator, device, d)
        amp = cfg.amp and device.type == "cuda"
        scaler = torch.amp.GradScaler("cuda", enabled=amp)
        return cls(generator, discriminator, ema, opt_g, opt_d, g_train, d_train, amp, scaler)


def _data_parallel(module: nn.Module, device: torch.device, d: Dist) -> nn.Module:
    if d.world <= 1:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)
