"""How ``geosr evaluate`` scores one scene: every method's output against the HR reference on
valid pixels (fidelity, texture, LR consistency, opensr-test's correctness scores, time), and
the windows its figures show: the centre crop and the most textured squares."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geosr.checkpoint import model_meta
from geosr.data.degradations import DegradationConfig
from geosr.errors import InputError
from geosr.evaluation.baselines import (
    BASELINES,
    ModelVariant,
    _run_baseline,
    _run_model,
    _RunOptions,
    _write_lr,
)
from geosr.evaluation.correctness import SCORES, CorrectnessReference
from geosr.evaluation.results import CROP_SIZE, CROPS_PER_SCENE, FIGURE_CROP, Crop, SceneResult
from geosr.metrics import all_metrics, high_frequency_power_ratio, mean_gradient_magnitude
from geosr.nodata import valid_mask

log = logging.getLogger(__name__)

#: A square window on the HR grid: top row, left column, side.
Square = tuple[int, int, int]


@dataclass
class _Reference:
    """One scene's HR reference and LR input as float64, with their valid masks."""

    hr: np.ndarray
    valid: np.ndarray  # HR grid
    lr: np.ndarray
    lr_valid: np.ndarray
    filled_lr: np.ndarray  # invalid LR pixels replaced by the band's valid mean
    span: np.ndarray  # per-band value range of the valid HR pixels (PSNR/SSIM data range)
    gradient: float  # the reference's mean gradient magnitude
    limits: tuple[float, float]  # the data type's range: outputs there may be clipped


def _reference(
    name: str, lr: np.ndarray, hr: np.ndarray, nodata: float | None, scale: int
) -> _Reference:
    lr_f, hr_f = lr.astype(np.float64), hr.astype(np.float64)
    lr_valid = valid_mask(lr, nodata).all(axis=0)
    valid = np.repeat(np.repeat(lr_valid, scale, axis=0), scale, axis=1) & valid_mask(
        hr, nodata
    ).all(axis=0)
    if valid.sum() < 64:
        raise InputError(
            f"{name}: fewer than 64 valid pixels to evaluate; choose a scene with data"
        )
    filled_lr = np.where(
        lr_valid, lr_f, np.nanmean(np.where(lr_valid, lr_f, np.nan), axis=(1, 2), keepdims=True)
    )
    return _Reference(
        hr=hr_f,
        valid=valid,
        lr=lr_f,
        lr_valid=lr_valid,
        filled_lr=filled_lr,
        span=np.array([np.ptp(b[valid]) or 1.0 for b in hr_f]),
        gradient=float(mean_gradient_magnitude(hr_f, valid)),
        limits=_dtype_limits(lr.dtype),
    )


def _dtype_limits(dtype: np.dtype) -> tuple[float, float]:
    if np.dtype(dtype).kind in "ui":
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    return -math.inf, math.inf


def _score(
    name: str,
    kind: str,
    lr: np.ndarray,
    hr: np.ndarray,
    profile: dict,
    nodata: float | None,
    variants: Sequence[ModelVariant],
    work: Path,
    options: _RunOptions,
) -> SceneResult:
    """Every method's scores on one scene and degradation, and the windows the reports show;
    each full-size output is dropped once scored and cut."""
    scale = model_meta(variants[0].net).scale
    ref = _reference(name, lr, hr, nodata, scale)
    lr_path = _write_lr(work / f"{kind}_lr.tif", lr, profile, nodata, scale)
    degradation = DegradationConfig(kind=kind if kind != "pair" else "box")
    windows = [_centre_square(ref.valid.shape, FIGURE_CROP)]
    windows += _textured_squares(ref, CROP_SIZE, CROPS_PER_SCENE, scale)
    cuts = {"LR": _cut(np.repeat(np.repeat(ref.filled_lr, scale, 1), scale, 2), windows)}
    correct = _correctness_reference(name, ref, scale)
    metrics: dict[str, dict[str, float]] = {}
    for variant in variants:
        pred, seconds = _run_model(lr_path, work / f"{kind}_sr.tif", variant, options)
        metrics[variant.name] = _method_metrics(pred, seconds, ref, scale, degradation, correct)
        cuts[variant.name] = _cut(pred, windows)
    for method in BASELINES:
        pred, seconds = _run_baseline(method, ref.filled_lr, scale)
        metrics[method] = _method_metrics(pred, seconds, ref, scale, degradation, correct)
        cuts[method] = _cut(pred, windows)
    cuts["HR"] = _cut(ref.hr, windows)
    shown = ["LR", "bicubic", *(v.name for v in variants), "HR"]
    log.debug(
        "%s (%s): %s",
        name,
        kind,
        ", ".join(f"{m} {v['psnr']:.2f} dB in {v['seconds']:.2f} s" for m, v in metrics.items()),
    )
    return SceneResult(
        scene=name,
        degradation=kind,
        size=(hr.shape[1], hr.shape[2]),
        metrics=metrics,
        panels={n: cuts[n][0] for n in shown},
        crops=[
            Crop(row, col, size, {n: cuts[n][i] for n in shown})
            for i, (row, col, size) in enumerate(windows[1:], start=1)
        ],
    )


def _method_metrics(
    pred: np.ndarray,
    seconds: float,
    ref: _Reference,
    scale: int,
    degradation: DegradationConfig,
    correct: CorrectnessReference | None = None,
) -> dict[str, float]:
    values = all_metrics(pred, ref.hr, ref.span, scale, ref.valid)
    values["gradient_ratio"] = (
        float(mean_gradient_magnitude(pred, ref.valid)) / ref.gradient if ref.gradient else math.nan
    )
    values["hf_power_ratio"] = float(high_frequency_power_ratio(pred, ref.hr, ref.valid))
    values["lr_psnr"] = _lr_psnr(pred, ref, scale, degradation)
    values["lr_error"] = _lr_error(pred, ref, scale)
    if correct is not None:
        values.update(correct.scores(pred))
    else:
        values.update(dict.fromkeys(SCORES, math.nan))
    values["seconds"] = seconds
    return values


def _correctness_reference(name: str, ref: _Reference, scale: int) -> CorrectnessReference | None:
    """opensr-test's correctness set-up for one scene (border cut, LR upsampled, threshold),
    shared by its methods; None (scores n/a) where the scene is too small for the border."""
    try:
        return CorrectnessReference.from_arrays(ref.filled_lr, ref.hr, scale, ref.valid)
    except InputError as err:
        log.debug("%s: no correctness scores: %s", name, err)
        return None


def _lr_psnr(
    pred: np.ndarray, ref: _Reference, scale: int, degradation: DegradationConfig
) -> float:
    """PSNR of ``pred`` degraded back to LR against the LR input: radiometric consistency."""
    back = degradation.apply_numpy(
        np.where(ref.valid, pred, ref.hr).astype(np.float32), scale, degradation.kind
    )
    lr_span = np.array([np.ptp(b[ref.lr_valid]) or 1.0 for b in ref.lr])
    mse = ((back - ref.lr) ** 2)[:, ref.lr_valid].mean(axis=1)
    return float(np.mean(10 * np.log10(lr_span**2 / np.maximum(mse, 1e-12))))


def _lr_error(pred: np.ndarray, ref: _Reference, scale: int) -> float:
    """Largest |mean of an output block - its LR input pixel| (DN) over valid LR pixels, as the
    radiometric projection promises (within 1 DN after rounding), leaving out blocks with a
    value at the data type's limits, where clipping may break it."""
    b, h, w = pred.shape
    blocks = pred.reshape(b, h // scale, scale, w // scale, scale)
    means = blocks.mean(axis=(2, 4))
    low, high = ref.limits
    unclipped = ~((blocks <= low) | (blocks >= high)).any(axis=(0, 2, 4))
    keep = ref.lr_valid & unclipped
    if not keep.any():
        return math.nan
    return float(np.abs(means - ref.lr)[:, keep].max())


# --- windows shown -----------------------------------------------------------------------------


def _centre_square(shape: tuple[int, int], size: int) -> Square:
    side = min(shape[0], shape[1], size)
    return (shape[0] - side) // 2, (shape[1] - side) // 2, side


def _cut(image: np.ndarray, windows: Sequence[Square]) -> list[np.ndarray]:
    return [image[:, r : r + s, c : c + s].copy() for r, c, s in windows]


def _textured_squares(ref: _Reference, size: int, count: int, scale: int) -> list[Square]:
    """Up to ``count`` non-overlapping squares of at most ``size`` pixels (a third of the scene
    side at most, whole LR pixels) where the HR has the most texture: the highest mean
    gradient magnitude (each band relative to its range) over valid gradients, on a
    half-overlapping grid of candidates at least 90% valid. Best first."""
    h, w = ref.valid.shape
    side = min(size, h // 3, w // 3) // scale * scale
    if side < 8:
        return []
    gradient, ok = _gradient_map(ref)
    step = max(side // 2 // scale, 1) * scale
    rows, cols = _starts(h, side, step), _starts(w, side, step)
    total = _window_sums(np.where(ok, gradient, 0.0), rows, cols, side)
    counted = _window_sums(ok.astype(np.float64), rows, cols, side)
    score = np.where(counted >= 0.9 * side * side, total / np.maximum(counted, 1), -np.inf)
    chosen: list[Square] = []
    for flat in np.argsort(-score, axis=None, kind="stable"):
        i, j = np.unravel_index(flat, score.shape)
        if len(chosen) == count or not np.isfinite(score[i, j]):
            break
        r, c = int(rows[i]), int(cols[j])
        if all(abs(r - r2) >= side or abs(c - c2) >= side for r2, c2, _ in chosen):
            chosen.append((r, c, side))
    return chosen


def _gradient_map(ref: _Reference) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) forward-difference gradient magnitude of the HR, mean over bands each relative
    to its range, and where it is defined (its three pixels valid; never on the last row or
    column)."""
    gx = np.diff(ref.hr, axis=2)[:, :-1, :]
    gy = np.diff(ref.hr, axis=1)[:, :, :-1]
    gradient = np.zeros(ref.valid.shape)
    gradient[:-1, :-1] = (np.sqrt(gx**2 + gy**2) / ref.span[:, None, None]).mean(axis=0)
    ok = np.zeros(ref.valid.shape, dtype=bool)
    ok[:-1, :-1] = ref.valid[:-1, :-1] & ref.valid[:-1, 1:] & ref.valid[1:, :-1]
    return gradient, ok


def _starts(length: int, side: int, step: int) -> np.ndarray:
    """Window starts every ``step`` pixels, plus one flush with the far edge."""
    return np.unique(np.r_[np.arange(0, length - side + 1, step), length - side])


def _window_sums(image: np.ndarray, rows: np.ndarray, cols: np.ndarray, side: int) -> np.ndarray:
    """Sums of ``image`` over the ``side`` squares at ``rows`` x ``cols`` (summed-area table)."""
    table = np.pad(image.cumsum(axis=0).cumsum(axis=1), ((1, 0), (1, 0)))
    r, c = rows[:, None], cols[None, :]
    return table[r + side, c + side] - table[r, c + side] - table[r + side, c] + table[r, c]
