"""Validation and its records: metrics on held-out patches, ``metrics.csv``, ``metrics.png``
and which step's weights are the best."""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from geosr.consistency import project_block_means
from geosr.data import ValidationPatches
from geosr.metrics import all_metrics, mean_gradient_magnitude

METRICS_FILE = "metrics.csv"
PLOT_FILE = "metrics.png"

log = logging.getLogger(__name__)
#: How far below bicubic's validation PSNR a GAN checkpoint may fall and still be the best.
FIDELITY_FLOOR = 1.0


@torch.no_grad()
def validate(
    model: nn.Module, val: ValidationPatches, scale: int, device: torch.device
) -> dict[str, float]:
    """Metrics of ``model`` and of bicubic on the fixed validation patches, in the rasters'
    own units (de-normalised). The model's output is projected onto the LR input's block
    means first, as ``geosr upscale`` does by default, so checkpoints are chosen on what
    users get."""
    rows: dict[str, list[float]] = {}
    for index in range(len(val)):
        sample = val[index]
        valid = sample.valid.numpy()[0]
        if valid.sum() < 16:
            continue
        lr = sample.lr[None].to(device)
        bicubic = torch.nn.functional.interpolate(
            lr, scale_factor=scale, mode="bicubic", align_corners=False
        )[0]
        offset = sample.offset.numpy()[:, None, None]
        spread = sample.scale.numpy()[:, None, None]
        hr = sample.hr.numpy() * spread + offset
        data_range = spread[:, 0, 0]  # p_low..p_high span of each band
        sr = project_block_means(model(lr)[0].float(), lr[0].float(), scale)
        for label, pred in (("model", sr), ("bicubic", bicubic)):
            pred = pred.cpu().numpy() * spread + offset
            for key, value in all_metrics(pred, hr, data_range, scale, valid).items():
                rows.setdefault(f"{label}_{key}", []).append(value)
            rows.setdefault(f"{label}_gradient", []).append(
                float(mean_gradient_magnitude(pred, valid))
            )
        rows.setdefault("hr_gradient", []).append(float(mean_gradient_magnitude(hr, valid)))
    return {key: _finite_mean(values) for key, values in rows.items()}


def score(stage: str, metrics: Mapping[str, float]) -> float:
    """Higher is better. Pretrain: validation PSNR. GAN: the closest high-frequency energy
    to the reference among checkpoints that keep PSNR within FIDELITY_FLOOR dB of bicubic
    (the GAN endpoint is strength 1 of a dial: users turn it down for more fidelity)."""
    if stage == "pretrain":
        return metrics.get("model_psnr", -math.inf)
    error = abs(metrics["model_gradient"] - metrics["hr_gradient"]) / max(
        metrics["hr_gradient"], 1e-12
    )
    keeps_fidelity = metrics["model_psnr"] >= metrics["bicubic_psnr"] - FIDELITY_FLOOR
    return (1000.0 if keeps_fidelity else 0.0) - error * 100 + metrics["model_psnr"] * 1e-3


def _finite_mean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


class Records:
    """``metrics.csv`` and ``metrics.png`` of a run, and its best step so far."""

    def __init__(self, out: Path, stage: str) -> None:
        self.csv = out / METRICS_FILE
        self.png = out / PLOT_FILE
        self.stage = stage
        self.best_score = -math.inf
        self.best_step = 0

    def add(self, row: Mapping[str, Any], metrics: Mapping[str, float]) -> bool:
        """Append ``row`` (validation ``metrics`` included); True if its step is the new best."""
        append_csv(self.csv, row)
        if not metrics:
            return False
        log.info(
            "step %s: val PSNR %.2f dB (bicubic %.2f), SSIM %.4f",
            row["step"],
            metrics.get("model_psnr", math.nan),
            metrics.get("bicubic_psnr", math.nan),
            metrics.get("model_ssim", math.nan),
        )
        value = score(self.stage, metrics)
        if value <= self.best_score:
            return False
        self.best_score, self.best_step = value, int(row["step"])
        return True

    def plot(self) -> None:
        plot_metrics(self.csv, self.png)

    def best(self) -> dict[str, float]:
        """The best step and its score, for the resume state."""
        return {"best_score": self.best_score, "best_step": self.best_step}

    def restore_best(self, state: Mapping[str, Any]) -> None:
        self.best_score = float(state["best_score"])
        self.best_step = int(state["best_step"])


def append_csv(path: Path, row: Mapping[str, Any]) -> None:
    rows: list[dict[str, Any]] = []
    if path.exists():
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    # a resumed run rewrites what followed
    rows = [r for r in rows if int(float(r["step"])) < int(row["step"])]
    rows.append(dict(row))
    columns: list[str] = []
    for r in rows:
        columns.extend(k for k in r if k not in columns)
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def plot_metrics(csv_path: Path, png_path: Path) -> None:
    """Training losses and validation PSNR over the steps of ``csv_path``."""
    from geosr.figures import new_figure, save_png

    with csv_path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return

    def series(key: str) -> tuple[list[float], list[float]]:
        pairs = [
            (float(r["step"]), float(r[key])) for r in rows if r.get(key) not in (None, "", "nan")
        ]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    fig = new_figure(10, 4)
    ax_loss, ax_psnr = fig.subplots(1, 2)
    for key in ("g_total", "g_pixel", "g_content", "g_adversarial", "d_loss"):
        x, y = series(key)
        if x:
            ax_loss.plot(x, y, label=key)
    ax_loss.set(xlabel="step", yscale="log", title="training losses")
    ax_loss.legend(fontsize=8)
    for key, label in (("val_model_psnr", "model"), ("val_bicubic_psnr", "bicubic")):
        x, y = series(key)
        if x:
            ax_psnr.plot(x, y, marker="o", label=label)
    ax_psnr.set(xlabel="step", ylabel="validation PSNR (dB)")
    ax_psnr.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, png_path, dpi=90)
