"""``geosr evaluate --guided``: moved to :mod:`geosr.evaluation.guided`. This module keeps the
names imported from ``geosr.evaluate_guided``."""

from __future__ import annotations

from geosr._callable_module import make_callable
from geosr.evaluation.guided import (
    METHODS,
    GuidedReport,
    StageResult,
    evaluate_guided,
    gdal_pansharpen,
    injection,
)

__all__ = [
    "METHODS",
    "GuidedReport",
    "StageResult",
    "evaluate_guided",
    "gdal_pansharpen",
    "injection",
]

# geosr.evaluate_guided is called as the function even once this module is imported
make_callable(__name__, evaluate_guided)
