"""The loop of one run of a stage: steps, validation, checkpoints, the time limit."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from geosr.data import PatchSample
from geosr.training.config import CONFIG_FILE, to_toml
from geosr.training.distributed import barrier
from geosr.training.progress import StepProgress
from geosr.training.stage import Stage

log = logging.getLogger(__name__)


class TrainingLoop:
    """Runs a :class:`~geosr.training.stage.Stage` (a trainer) from its current step to the
    end of the stage."""

    def __init__(self, trainer: Stage) -> None:
        self.trainer = trainer
        self.cfg = trainer.config
        self.main = trainer.dist.main
        self.first_step = trainer.step
        self.started = 0.0

    def run(self) -> Path:
        t, cfg = self.trainer, self.cfg
        if self.main:
            (t.out / CONFIG_FILE).write_text(to_toml(cfg.to_dict()))
        checkpoint_every = cfg.checkpoint_every or cfg.val_every
        bar = StepProgress(t.progress, cfg.steps, t.step, enabled=self.main)
        self.started = t.schedule.start()
        batches: Iterator[PatchSample] = iter(t.stream)
        try:
            while t.step < cfg.steps:
                t.apply_lr()
                logs = t.train_step(next(batches))
                t.step += 1
                bar.update(t.step, logs)
                last = t.step == cfg.steps or t.schedule.out_of_time()
                if t.step % cfg.val_every == 0 or last:
                    self._validate_and_record(logs, final=last)
                if t.step % checkpoint_every == 0 or last:
                    self._checkpoint()
                if last:
                    break
        finally:
            bar.close()
        self._log_summary()
        barrier(t.dist)
        return t.out / "best.safetensors"

    def _validate_and_record(self, logs: Mapping[str, float], final: bool) -> None:
        t = self.trainer
        if self.main:
            metrics = t.validate() if len(t.data.val) else {}
            elapsed = time.perf_counter() - self.started
            done = t.step - self.first_step
            row = {
                "step": t.step,
                "seconds": round(elapsed, 2),
                "steps_per_s": round(done / elapsed, 3) if elapsed > 0 else 0,
                **{k: round(v, 6) for k, v in logs.items()},
                **{f"val_{k}": round(v, 6) for k, v in metrics.items()},
            }
            if t.records.add(row, metrics):
                t.save_model("best.safetensors")
            elif not metrics and (final or not (t.out / "best.safetensors").exists()):
                # without validation the latest weights are the best known
                t.records.best_step = t.step
                t.save_model("best.safetensors")
            t.records.plot()
        barrier(t.dist)

    def _checkpoint(self) -> None:
        if self.main:
            self.trainer.save_model("last.safetensors")
            self.trainer.save_state()
        barrier(self.trainer.dist)

    def _log_summary(self) -> None:
        if not self.main:
            return
        t = self.trainer
        elapsed = time.perf_counter() - self.started
        rate = (t.step - self.first_step) / elapsed if elapsed > 0 else math.nan
        log.info(
            "trained %d steps in %.1f s (%.2f steps/s); best step %d%s",
            t.step - self.first_step,
            elapsed,
            rate,
            t.records.best_step,
            " (time limit reached)" if t.step < self.cfg.steps else "",
        )
