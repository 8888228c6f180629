"""One stage of training, assembled from its parts (see :mod:`geosr.training`)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from geosr.checkpoint import save_model
from geosr.data import BatchStream, PatchSample, TrainingData, prepare_data
from geosr.errors import ConfigError
from geosr.losses import GeneratorLoss
from geosr.training.config import TrainConfig
from geosr.training.distributed import Dist, barrier, hardware, init_distributed, pick_device
from geosr.training.loop import TrainingLoop
from geosr.training.networks import Networks, initial_generator
from geosr.training.records import Records, validate
from geosr.training.schedule import Schedule
from geosr.training.state import (
    STATE_FILE,
    load_state,
    model_meta,
    save_state,
    training_domain,
)
from geosr.training.step import DivergenceError, TrainingError, TrainStep

log = logging.getLogger(__name__)


class Trainer:
    """One stage of training, from a config. ``run()`` trains up to ``config.steps``."""

    def __init__(self, config: TrainConfig, resume: bool = False, progress: str = "bar") -> None:
        self.config = config
        self.progress = progress
        self.dist = init_distributed()
        self.device = pick_device(config.device, self.dist)
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
        self.domain = training_domain(self.data)  # the card's input contract, read once
        generator = initial_generator(config, self.device)
        self.loss = GeneratorLoss(config.loss_config(), adversarial=config.stage == "gan")
        self.loss = self.loss.to(self.device)
        self.nets = Networks.around(generator, config, self.device, self.dist)
        self.generator = self.nets.generator  # the network being trained
        self.schedule = Schedule(config, self.dist, self.device)
        self.records = Records(self.out, config.stage)
        self.stream = _batch_stream(self.data, config, self.dist, self.device)
        self.stepper = TrainStep(self.nets, self.loss, self.device, config.grad_clip, self.dist)
        self.step = 0
        if resume:
            self._resume()

    # --- parts, for one step at a time ---

    def elapsed(self) -> float:
        """Training seconds of this stage so far, resumed runs included."""
        return self.schedule.elapsed()

    def apply_lr(self) -> None:
        self.schedule.apply_lr(self.step, self.nets.opt_g, self.nets.opt_d)

    def train_step(self, batch: PatchSample) -> dict[str, float]:
        """One optimisation step on ``batch`` (does not advance ``step``); the logged losses."""
        try:
            return self.stepper(batch, self.schedule.adversarial_ramp(self.step))
        except DivergenceError as exc:
            saved = None
            if self.dist.main and self.step > 0:
                saved = self.save_model("last.safetensors")  # the step before is still good
            message = exc.explain(self.step + 1, saved)
            if self.dist.world > 1:
                # every process says why it stops before any exits: torchrun ends the others
                # as soon as one exits, which can cut their own error line short
                log.warning("process %d stops: %s", self.dist.rank, message)
                barrier(self.dist)
            raise TrainingError(message) from None

    def validate(self) -> dict[str, float]:
        return validate(self.nets.ema.model, self.data.val, self.config.scale, self.device)

    def save_model(self, name: str) -> Path:
        provenance = {
            "steps": self.step,
            "batch_size": self.config.batch_size * self.dist.world,
            "hardware": hardware(self.device),
        }
        ema = self.nets.ema.model
        ema.meta = model_meta(self.config, self.data, self.generator, provenance, self.domain)
        return save_model(ema, self.out / name)

    def save_state(self) -> None:
        counters = {"step": self.step, "elapsed_s": self.elapsed(), **self.records.best()}
        save_state(
            self.out / STATE_FILE, self.nets, self.stream, self.config, counters, self.device
        )

    def _resume(self) -> None:
        path = self.out / STATE_FILE
        state = load_state(path, self.nets, self.stream, self.config, self.device)
        self.step = int(state["step"])
        self.records.restore_best(state)
        self.schedule.elapsed_before = float(state.get("elapsed_s", 0.0))
        self.apply_lr()
        log.info("resumed %s at step %d", path, self.step)

    def run(self) -> Path:
        """Train up to ``config.steps`` (or the time limit); returns the best model's path."""
        return TrainingLoop(self).run()


def _batch_stream(
    data: TrainingData, cfg: TrainConfig, d: Dist, device: torch.device
) -> BatchStream:
    """This process's share of the training batches."""
    return BatchStream(
        data.train,
        cfg.batch_size,
        num_workers=cfg.workers,
        rank=d.rank,
        world_size=d.world,
        pin_memory=device.type == "cuda",
    )


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
