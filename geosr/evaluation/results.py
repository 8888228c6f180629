"""What ``geosr evaluate`` measures and keeps: the columns, each scene's scores and the crops
its figures show (:class:`SceneResult`), and the report of all of them with their means
(:class:`EvaluationReport`: the text table, the JSON)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from geosr.evaluation.baselines import BASELINES
from geosr.evaluation.correctness import SCORES
from geosr.evaluation.rgb import DisplayBands

COLUMNS = (
    "psnr",
    "ssim",
    "sam",
    "ergas",
    "uiqi",
    "gradient_ratio",
    "hf_power_ratio",
    "lr_psnr",
    "lr_error",
    *SCORES,
    "seconds",
)
#: Side of the centre crop drawn in the PNG figure (HR pixels, at most).
FIGURE_CROP = 256
#: Zoomed crops per scene in the HTML report, their side (HR pixels, at most), and how many
#: scene/degradation results get them (the rest are in the table only).
CROPS_PER_SCENE = 3
CROP_SIZE = 64
MAX_CROP_RESULTS = 12
LEGEND = (
    "psnr/ssim/uiqi: higher is better; sam (radians) and ergas: lower is better; "
    "gradient_ratio and hf_power_ratio: texture relative to the reference (mean gradient "
    "magnitude; spectral power above half Nyquist), 1 is ideal, below is blur, above invented "
    "texture or noise; lr_psnr: output degraded back to LR against the LR input; lr_error: "
    "largest difference (DN) between an output block's mean and its input pixel, blocks "
    "clipped at the data type's limits left out; improvement/omission/hallucination: "
    "opensr-test's correctness scores (over the pixels that change most between LR and HR, "
    "the mean soft membership of: the output moved towards the HR, stayed at the LR, or went "
    "away from both; they sum to 1; improvement: higher is better); seconds: wall time of "
    "the upscaling."
)


@dataclass
class Crop:
    """A zoomed window of a scene on the HR grid (``row``, ``col``: top-left; ``size`` pixels
    a side) and every displayed method's pixels in it: LR (nearest-upsampled), bicubic, the
    model's methods and HR."""

    row: int
    col: int
    size: int
    images: dict[str, np.ndarray] = field(default_factory=dict, repr=False)


@dataclass
class SceneResult:
    """Scores of every method on one scene and degradation.

    ``panels`` holds the centre crop (at most ``FIGURE_CROP`` pixels a side) of LR
    (nearest-upsampled), bicubic, each model method and HR, as the PNG figure draws them;
    ``crops`` the most textured windows shown zoomed in the HTML report; ``display`` the
    bands they draw as red, green and blue (:func:`~geosr.evaluation.rgb.display_bands`;
    None: bands 1-2-3, or band 1 in grey).
    """

    scene: str
    degradation: str
    size: tuple[int, int]
    metrics: dict[str, dict[str, float]]
    panels: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    crops: list[Crop] = field(default_factory=list, repr=False)
    display: DisplayBands | None = field(default=None, repr=False)


@dataclass
class EvaluationReport:
    """All results plus their means; ``table()`` is what ``geosr evaluate`` prints."""

    model: str
    scale: int
    results: list[SceneResult]
    strengths: tuple[float, ...] | None = None
    tta: bool = False
    preserve_spectra: bool = False

    @property
    def methods(self) -> list[str]:
        """Every scored method: the model's, in the order they ran, then the baselines."""
        seen = dict.fromkeys(m for r in self.results for m in r.metrics)
        return [m for m in seen if m not in BASELINES] + [m for m in BASELINES if m in seen]

    @property
    def model_methods(self) -> list[str]:
        return [m for m in self.methods if m not in BASELINES]

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """Mean of each metric by degradation and method (NaN-aware)."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        methods = self.methods
        for degradation in dict.fromkeys(r.degradation for r in self.results):
            rows = [r for r in self.results if r.degradation == degradation]
            out[degradation] = {
                method: {
                    column: _nanmean(
                        [r.metrics.get(method, {}).get(column, math.nan) for r in rows]
                    )
                    for column in COLUMNS
                }
                for method in methods
            }
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; undefined values (SAM of one band) are None."""
        return _finite_or_none(
            {
                "model": self.model,
                "scale": self.scale,
                "strengths": None if self.strengths is None else list(self.strengths),
                "tta": self.tta,
                "preserve_spectra": self.preserve_spectra,
                "methods": self.methods,
                "summary": self.summary(),
                "scenes": [
                    {
                        "scene": r.scene,
                        "degradation": r.degradation,
                        "size": list(r.size),
                        "metrics": r.metrics,
                    }
                    for r in self.results
                ],
            }
        )

    def table(self) -> str:
        """The means as text: the metrics, then opensr-test's correctness scores (a block of
        their own, so lines stay short), then a one-line legend."""
        width = max([len("method"), *(len(m) for m in self.methods)])
        summary = self.summary()
        lines: list[str] = []
        for columns in (tuple(c for c in COLUMNS if c not in SCORES), SCORES):
            cells = {c: max(len(c), 8) for c in columns}
            header = f"{'degradation':<11} {'method':<{width}} " + " ".join(
                f"{c:>{cells[c]}}" for c in columns
            )
            lines += ["", header] if lines else [header]
            lines.append("-" * len(header))
            for degradation, methods in summary.items():
                for method, values in methods.items():
                    row = " ".join(f"{_cell(c, values[c]):>{cells[c]}}" for c in columns)
                    lines.append(f"{degradation:<11} {method:<{width}} {row}")
        lines.append(
            "psnr/ssim/uiqi: higher is better; sam (rad), ergas: lower; gradient_ratio, "
            "hf_power_ratio: texture / reference's (1 is ideal); lr_psnr: output degraded back "
            "vs LR input; improvement (higher)/omission/hallucination (lower): opensr-test "
            "correctness; seconds: upscaling time"
        )
        return "\n".join(lines)


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def _fmt(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4f}"


def _cell(column: str, value: float) -> str:
    if column == "seconds" and value is not None and math.isfinite(value):
        return f"{value:.2f}"
    return _fmt(value)


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, float | np.floating) and not math.isfinite(value):
        return None
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot serialise {type(value).__name__}")
