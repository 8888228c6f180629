"""``geosr evaluate --temporal``: moved to :mod:`geosr.evaluation.temporal` (and the
modules beside it). This module keeps the names imported from ``geosr.evaluate_temporal``."""

from __future__ import annotations

from geosr.evaluation.temporal import (
    DEFAULT_LIMIT,
    DEFAULT_STABLE_FRACTION,
    DEFAULT_STRENGTHS,
    evaluate_temporal,
)
from geosr.evaluation.temporal_grid import (
    _common_grid,
)
from geosr.evaluation.temporal_report import (
    TemporalMethod,
    TemporalReport,
)

__all__ = [
    "DEFAULT_LIMIT",
    "DEFAULT_STABLE_FRACTION",
    "DEFAULT_STRENGTHS",
    "TemporalMethod",
    "TemporalReport",
    "_common_grid",
    "evaluate_temporal",
]
