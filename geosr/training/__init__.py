"""Two-stage SRGAN training (PSNR pretraining, then adversarial) on GeoTIFFs.

:class:`Trainer` runs one stage of a :class:`TrainConfig`; ``geosr-train``
(:mod:`geosr.train`) is its command line. The parts, one job each:

- :mod:`~geosr.training.config`: the options, their help and the TOML file;
- :mod:`~geosr.training.distributed`: torchrun's process group, devices, agreement;
- :mod:`~geosr.training.networks`: generator, discriminator, EMA, optimisers;
- :mod:`~geosr.training.schedule`: learning-rate schedule, adversarial ramp, time limit;
- :mod:`~geosr.training.step`: one optimisation step and its divergence check;
- :mod:`~geosr.training.records`: validation, ``metrics.csv``/``.png``, the best step;
- :mod:`~geosr.training.state`: saved models' metadata and the resume state;
- :mod:`~geosr.training.stage`: what the loop drives (the trainer's interface);
- :mod:`~geosr.training.loop`: the loop of a run; :mod:`~geosr.training.trainer` assembles it.
"""

from geosr.training.config import HELP, LR_SCHEDULES, STAGES, TrainConfig, read_toml, to_toml
from geosr.training.step import TrainingError
from geosr.training.trainer import Trainer

__all__ = [
    "HELP",
    "LR_SCHEDULES",
    "STAGES",
    "TrainConfig",
    "Trainer",
    "TrainingError",
    "read_toml",
    "to_toml",
]
