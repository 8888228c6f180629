"""Evaluation: how well a model does, on real scenes, against the classical baselines.

- :mod:`~geosr.evaluation.runner`: ``geosr evaluate`` (:func:`evaluate`), a model against
  bicubic and Lanczos on held-out scenes, with the steps beside it:
  :mod:`~geosr.evaluation.inputs` (scenes read, LR synthesised),
  :mod:`~geosr.evaluation.baselines` (the model's variants and the baselines, run),
  :mod:`~geosr.evaluation.scoring` (one scene's scores and the windows shown),
  :mod:`~geosr.evaluation.results` (what is kept: :class:`EvaluationReport`) and
  :mod:`~geosr.evaluation.report` (JSON, PNG, HTML);
- :mod:`~geosr.evaluation.temporal`: ``geosr evaluate --temporal`` (:func:`evaluate_temporal`),
  stability across dates, with :mod:`~geosr.evaluation.temporal_grid` and
  :mod:`~geosr.evaluation.temporal_report`;
- :mod:`~geosr.evaluation.guided`: ``geosr evaluate --guided`` (:func:`evaluate_guided`),
  Wald's protocol for guided models;
- :mod:`~geosr.evaluation.correctness`: opensr-test's correctness scores;
- :mod:`~geosr.evaluation.rgb`: which bands every evaluation figure draws as RGB.

Layers, lowest first: ``rgb`` and ``correctness``; ``baselines``; ``results``, ``inputs``;
``scoring``; ``report``; ``runner``; the temporal modules above ``baselines``; ``guided``
on its own. Evaluation uses the engine (:mod:`geosr.engine`), the models and the metrics;
nothing below it imports it, and it never imports the CLI. The names below are imported on
first use, so ``import geosr.evaluation.rgb`` does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "evaluate": "geosr.evaluation.runner",
    "EvaluationReport": "geosr.evaluation.results",
    "SceneResult": "geosr.evaluation.results",
    "ModelVariant": "geosr.evaluation.baselines",
    "model_variants": "geosr.evaluation.baselines",
    "evaluate_temporal": "geosr.evaluation.temporal",
    "TemporalReport": "geosr.evaluation.temporal_report",
    "evaluate_guided": "geosr.evaluation.guided",
    "GuidedReport": "geosr.evaluation.guided",
    "display_bands": "geosr.evaluation.rgb",
    "DisplayBands": "geosr.evaluation.rgb",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'geosr.evaluation' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
