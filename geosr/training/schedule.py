"""When a stage ends and how fast it learns: its clock, time limit and learning-rate schedule."""

from __future__ import annotations

import math
import time

import torch

from geosr.training.config import TrainConfig
from geosr.training.distributed import Dist, flagged_ranks


class Schedule:
    """Learning-rate factor, adversarial ramp and time limit of one stage.

    The clock counts training seconds of this stage, resumed runs included.
    """

    def __init__(self, cfg: TrainConfig, d: Dist, device: torch.device) -> None:
        self.cfg = cfg
        self.dist = d
        self.device = device
        self.elapsed_before = 0.0  # training seconds of earlier (resumed) runs of this stage
        self.run_started: float | None = None

    def start(self) -> float:
        """Start this run's clock; returns the start time."""
        self.run_started = time.perf_counter()
        return self.run_started

    def elapsed(self) -> float:
        """Training seconds of this stage so far, resumed runs included."""
        running = 0.0 if self.run_started is None else time.perf_counter() - self.run_started
        return self.elapsed_before + running

    def progress_fraction(self, step: int) -> float:
        """How far the stage is: by steps, or by its time limit when that comes first."""
        fraction = step / self.cfg.steps
        if self.cfg.time_limit is not None:
            fraction = max(fraction, self.elapsed() / (self.cfg.time_limit * 60))
        return min(fraction, 1.0)

    def lr_factor(self, step: int) -> float:
        cfg = self.cfg
        if cfg.lr_schedule == "cosine":
            cosine = 0.5 * (1 + math.cos(math.pi * self.progress_fraction(step)))
            return cfg.lr_min_ratio + (1 - cfg.lr_min_ratio) * cosine
        decays = sum(1 for m in cfg.lr_milestones if step >= m)
        return cfg.lr_gamma**decays

    def apply_lr(
        self, step: int, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer | None
    ) -> None:
        factor = self.lr_factor(step)
        for group in opt_g.param_groups:
            group["lr"] = self.cfg.lr * factor
        if opt_d is not None:
            for group in opt_d.param_groups:
                group["lr"] = self.cfg.lr_disc * factor

    def adversarial_ramp(self, step: int) -> float:
        """Factor of the adversarial weight at ``step``: linear from 0 over the ramp."""
        ramp = self.cfg.adversarial_ramp
        return 1.0 if ramp <= 0 else min(1.0, (step + 1) / ramp)

    def out_of_time(self) -> bool:
        """True once the time limit is spent; under DDP every rank stops at the same step."""
        limit = self.cfg.time_limit
        if limit is None:
            return False
        spent = self.elapsed() >= limit * 60
        return bool(flagged_ranks(spent, self.dist, self.device))
