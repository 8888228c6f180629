"""One optimisation step: the generator, then (GAN stage) the discriminator."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from geosr.data import PatchSample
from geosr.errors import GeosrError
from geosr.losses import GeneratorLoss
from geosr.training.distributed import Dist, flagged_ranks
from geosr.training.networks import Networks


class TrainingError(GeosrError, RuntimeError):
    """Training cannot go on (diverged, or a resume does not match)."""


class DivergenceError(TrainingError):
    """A loss became NaN/inf on some rank; every rank raises it at the same step."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} became NaN/inf")
        self.what = what

    def explain(self, step: int, saved: Path | None) -> str:
        """The user's one line: what diverged, when, what to change, what was kept."""
        kept = f"; the last good weights (step {step - 1}) are in {saved}" if saved else ""
        return (
            f"{self.what} became NaN/inf at step {step}; lower --lr or --adversarial-weight, "
            f"keep --grad-clip on, or look for extreme values in the scenes{kept}"
        )


def agree_finite(
    loss: torch.Tensor, terms: Mapping[str, torch.Tensor], d: Dist, device: torch.device
) -> None:
    """Raise :class:`DivergenceError` on every rank if ``loss`` is not finite on any: a rank
    that stopped alone would leave the others waiting in the gradient all-reduce."""
    finite = bool(torch.isfinite(loss).all())
    bad_ranks = flagged_ranks(not finite, d, device)
    if not bad_ranks:
        return
    if not finite:
        bad = ", ".join(k for k, v in terms.items() if not torch.isfinite(v).all()) or "total"
        where = f" of process {d.rank}" if d.world > 1 else ""
        raise DivergenceError(f"the {bad} loss{where}")
    raise DivergenceError(f"the loss of process {', '.join(map(str, bad_ranks))}")


class TrainStep:
    """Runs steps on batches; returns the logged losses of each."""

    def __init__(
        self, nets: Networks, loss: GeneratorLoss, device: torch.device, grad_clip: float, d: Dist
    ) -> None:
        self.nets = nets
        self.loss = loss
        self.device = device
        self.grad_clip = grad_clip
        self.dist = d
        self.base_adversarial_weight = loss.adversarial.loss_weight

    def __call__(self, batch: PatchSample, adversarial_factor: float = 1.0) -> dict[str, float]:
        lr, hr = (
            batch.lr.to(self.device, non_blocking=True),
            batch.hr.to(self.device, non_blocking=True),
        )
        valid = batch.valid.to(self.device, non_blocking=True).float()
        offset, scale = batch.offset.to(self.device), batch.scale.to(self.device)
        self.loss.adversarial.loss_weight = self.base_adversarial_weight * adversarial_factor
        sr, logs = self._generator_step(lr, hr, valid, offset, scale)
        if self.nets.d_train is not None:
            logs["d_loss"] = self._discriminator_step(sr, hr, valid)
        self.nets.scaler.update()
        self.nets.ema.update(self.nets.generator)
        return logs

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.device.type == "cuda":
            return torch.autocast("cuda", enabled=self.nets.amp)
        return contextlib.nullcontext()

    def _generator_step(
        self,
        lr: torch.Tensor,
        hr: torch.Tensor,
        valid: torch.Tensor,
        offset: torch.Tensor,
        scale: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        nets = self.nets
        with self._autocast():
            sr = nets.g_train(lr)
            fake = real = None
            if nets.discriminator is not None:
                # the generator step needs no gradient sync in D: use the unwrapped module, in
                # eval mode so spectral norm's power iteration does not move between the SR and
                # HR passes (which would make feature matching nonzero for SR == HR)
                nets.discriminator.eval()
                nets.discriminator.requires_grad_(False)
                fake = nets.discriminator(sr, return_features=True)
                real = nets.discriminator(hr, return_features=True)
            total, terms = self.loss(
                sr, hr, valid, fake=fake, real=real, offset=offset, scale=scale
            )
        agree_finite(total, terms, self.dist, self.device)
        self._update(total, nets.generator, nets.opt_g)
        logs = {f"g_{k}": float(v) for k, v in terms.items()}
        logs["g_total"] = float(total.detach())
        return sr, logs

    def _discriminator_step(self, sr: torch.Tensor, hr: torch.Tensor, valid: torch.Tensor) -> float:
        nets = self.nets
        assert (
            nets.discriminator is not None and nets.d_train is not None and nets.opt_d is not None
        )
        nets.discriminator.train()
        nets.discriminator.requires_grad_(True)
        with self._autocast():
            real_logits = nets.d_train(hr)
            fake_logits = nets.d_train(sr.detach())
            d_loss = self.loss.adversarial.discriminator_loss(real_logits, fake_logits, valid)
        agree_finite(d_loss, {"discriminator": d_loss}, self.dist, self.device)
        self._update(d_loss, nets.discriminator, nets.opt_d)
        return float(d_loss.detach())

    def _update(
        self, loss: torch.Tensor, module: nn.Module, optimizer: torch.optim.Optimizer
    ) -> None:
        scaler = self.nets.scaler
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if self.grad_clip > 0:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(module.parameters(), self.grad_clip)
        scaler.step(optimizer)
