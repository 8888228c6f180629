"""What the training loop drives: one stage of a run, as :class:`Stage` describes it.

:class:`~geosr.training.trainer.Trainer` assembles a stage from its parts and
:class:`~geosr.training.loop.TrainingLoop` runs it; both depend on this interface, not on
each other, so the loop never imports the trainer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from geosr.data import BatchStream, PatchSample, TrainingData
from geosr.training.config import TrainConfig
from geosr.training.distributed import Dist
from geosr.training.records import Records
from geosr.training.schedule import Schedule


class Stage(Protocol):
    """One stage of training, one step at a time (:class:`~geosr.training.trainer.Trainer`)."""

    config: TrainConfig
    dist: Dist
    out: Path
    progress: str
    step: int  # steps done; the loop advances it
    data: TrainingData
    stream: BatchStream
    schedule: Schedule
    records: Records

    def apply_lr(self) -> None:
        """Set the optimisers' learning rates for the current step."""

    def train_step(self, batch: PatchSample) -> dict[str, float]:
        """One optimisation step on ``batch`` (does not advance ``step``); the logged losses."""

    def validate(self) -> dict[str, float]:
        """Validation metrics of the current weights."""

    def save_model(self, name: str) -> Path:
        """Write the current model to ``name`` in the output folder."""

    def save_state(self) -> None:
        """Write the resume state."""
