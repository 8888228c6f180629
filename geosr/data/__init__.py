"""Training data: scenes, degradations, and reproducible patch sampling.

``prepare_data`` is the entry point; the rest is exported for the trainer, evaluation and
tests. See :mod:`geosr.data.patches` for how sampling stays reproducible and resumable.
"""

from __future__ import annotations

from geosr.data.dataset import (
    BatchStream,
    DataConfig,
    Draw,
    PatchSample,
    Region,
    TrainingData,
    TrainPatches,
    ValidationPatches,
    d4_transform,
    fill_invalid,
    prepare_data,
    resolve_seed,
)
from geosr.data.degradations import (
    DEFAULT_MIX,
    DEGRADATIONS,
    DegradationConfig,
    add_noise,
    bicubic,
    box,
    degrade,
    gaussian,
    mtf_sigma,
    register,
)
from geosr.data.scenes import (
    Scene,
    SceneReader,
    band_percentiles,
    describe_scene,
    find_scenes,
    pooled_percentiles,
    valid_mask,
)

__all__ = [
    "DEFAULT_MIX",
    "DEGRADATIONS",
    "BatchStream",
    "DataConfig",
    "DegradationConfig",
    "Draw",
    "PatchSample",
    "Region",
    "Scene",
    "SceneReader",
    "TrainPatches",
    "TrainingData",
    "ValidationPatches",
    "add_noise",
    "band_percentiles",
    "bicubic",
    "box",
    "d4_transform",
    "degrade",
    "describe_scene",
    "fill_invalid",
    "find_scenes",
    "gaussian",
    "mtf_sigma",
    "pooled_percentiles",
    "prepare_data",
    "register",
    "resolve_seed",
    "valid_mask",
]
