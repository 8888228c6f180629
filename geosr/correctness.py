"""opensr-test's correctness scores: moved to :mod:`geosr.evaluation.correctness`; this module
keeps every name importable from ``geosr.correctness``."""

from __future__ import annotations

from geosr.evaluation.correctness import (
    AUTO_PERCENTILE,
    BORDER,
    EPSILON,
    HA_LAMBDA,
    IM_LAMBDA,
    OM_LAMBDA,
    OPENSR_TEST_COMMIT,
    OPENSR_TEST_VERSION,
    SCORES,
    TEMPERATURE,
    CorrectnessReference,
    correctness,
    match_histograms,
    normalized_difference,
    relevance_mask,
    tc_hallucination,
    tc_improvement,
    tc_omission,
    upsample_lr,
)

__all__ = [
    "AUTO_PERCENTILE",
    "BORDER",
    "EPSILON",
    "HA_LAMBDA",
    "IM_LAMBDA",
    "OM_LAMBDA",
    "OPENSR_TEST_COMMIT",
    "OPENSR_TEST_VERSION",
    "SCORES",
    "TEMPERATURE",
    "CorrectnessReference",
    "correctness",
    "match_histograms",
    "normalized_difference",
    "relevance_mask",
    "tc_hallucination",
    "tc_improvement",
    "tc_omission",
    "upsample_lr",
]
