"""``geosr evaluate``: moved to the :mod:`geosr.evaluation` package (:func:`evaluate` is in
:mod:`~geosr.evaluation.runner`, its steps in the modules beside it). This module keeps the
names imported from ``geosr.evaluate``: the public ones, and the private ones benchmarks and
tests use."""

from __future__ import annotations

from geosr._callable_module import make_callable
from geosr.evaluation.baselines import (
    BASELINES,
    MODEL_METHOD,
    SPECTRA_SUFFIX,
    TTA_SUFFIX,
    ModelVariant,
    _write_lr,
    model_variants,
)
from geosr.evaluation.inputs import (
    _degrade,
    _read_hr,
)
from geosr.evaluation.results import (
    COLUMNS,
    CROP_SIZE,
    CROPS_PER_SCENE,
    FIGURE_CROP,
    LEGEND,
    MAX_CROP_RESULTS,
    Crop,
    EvaluationReport,
    SceneResult,
)
from geosr.evaluation.runner import (
    DEFAULT_DEGRADATIONS,
    DEFAULT_MAX_SIZE,
    evaluate,
)
from geosr.evaluation.scoring import (
    Square,
    _reference,
)

__all__ = [
    "BASELINES",
    "COLUMNS",
    "CROPS_PER_SCENE",
    "CROP_SIZE",
    "DEFAULT_DEGRADATIONS",
    "DEFAULT_MAX_SIZE",
    "FIGURE_CROP",
    "LEGEND",
    "MAX_CROP_RESULTS",
    "MODEL_METHOD",
    "SPECTRA_SUFFIX",
    "TTA_SUFFIX",
    "Crop",
    "EvaluationReport",
    "ModelVariant",
    "SceneResult",
    "Square",
    "_degrade",
    "_read_hr",
    "_reference",
    "_write_lr",
    "evaluate",
    "model_variants",
]

# geosr.evaluate is called as the function even once this module is imported
make_callable(__name__, evaluate)
