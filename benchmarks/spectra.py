"""Should ``preserve_spectra`` be the default? Measure it, and a cheaper anchor, on real errors.

Wald's protocol on the multi-band validation scenes (the held-out rows of the bundled models'
training scenes, and unseen dates and sensors; see benchmarks/uncertainty.py): each scene is
degraded x4 (box), upscaled at each strength plain, with ``preserve_spectra`` (the strength-0
network's band ratios: a second network pass), and with the band ratios of the bicubic
upsampling (no extra pass: applied to the plain output, then projected back onto the input).
Scores: PSNR, SAM, texture (mean gradient magnitude / the plain output's) and time.

    python benchmarks/spectra.py --json out/spectra.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from uncertainty import read_hr, scenes, write_lr  # noqa: E402

import geosr  # noqa: E402
from geosr.evaluate import _degrade  # noqa: E402
from geosr.metrics import bicubic_upsample, mean_gradient_magnitude, psnr, sam  # noqa: E402
from geosr.pipeline import keep_band_ratios, project_consistent  # noqa: E402

STRENGTHS = (0.25, 0.5, 1.0)


def bicubic_ratios(sr: np.ndarray, lr: np.ndarray, dtype: np.dtype) -> np.ndarray:
    anchor = torch.from_numpy(np.clip(bicubic_upsample(lr.astype(np.float64), 4), 0, None))
    out = keep_band_ratios(torch.from_numpy(sr.astype(np.float64)), anchor).numpy()
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "ui" else None
    low, high = (info.min, info.max) if info else (-np.inf, np.inf)
    out = np.asarray(project_consistent(out, lr.astype(np.float64), 4, low, high))
    return np.clip(np.rint(out), low, high) if info else out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("geosr").setLevel(logging.ERROR)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for scene in scenes("validate"):
            hr, profile = read_hr(scene)
            if hr.shape[0] < 2:
                continue
            lr = _degrade(hr, profile["nodata"], 4, "box", profile["dtype"])
            path = write_lr(work / f"{scene.name}.tif", lr, profile)
            hr_f = hr.astype(np.float64)
            span = np.array([np.ptp(b) or 1.0 for b in hr_f])
            for strength in STRENGTHS:
                outputs, seconds = {}, {}
                for method, keep in (("plain", False), ("spectra", True)):
                    started = time.perf_counter()
                    out = geosr.upscale(
                        path,
                        work / "sr.tif",
                        model="srgan",
                        strength=strength,
                        preserve_spectra=keep,
                        overwrite=True,
                    )
                    seconds[method] = time.perf_counter() - started
                    with rasterio.open(out) as src:
                        outputs[method] = src.read().astype(np.float64)
                started = time.perf_counter()
                outputs["bicubic ratios"] = bicubic_ratios(
                    outputs["plain"], lr, np.dtype(profile["dtype"])
                )
                seconds["bicubic ratios"] = seconds["plain"] + time.perf_counter() - started
                texture = mean_gradient_magnitude(outputs["plain"])
                for method, sr in outputs.items():
                    row = {
                        "scene": scene.name,
                        "strength": strength,
                        "method": method,
                        "psnr": float(psnr(sr, hr_f, data_range=span)),
                        "sam_deg": float(np.degrees(sam(sr, hr_f))),
                        "texture": float(mean_gradient_magnitude(sr) / texture),
                        "seconds": seconds[method],
                    }
                    rows.append(row)
                    logging.info(
                        "%-14s %-4g %-15s PSNR %.2f SAM %.3f texture %.3f %.2f s", *row.values()
                    )
    for strength in STRENGTHS:
        for method in ("plain", "spectra", "bicubic ratios"):
            sel = [r for r in rows if r["strength"] == strength and r["method"] == method]
            print(
                f"strength {strength:<4g} {method:<15} PSNR {np.mean([r['psnr'] for r in sel]):.3f} "
                f"SAM {np.mean([r['sam_deg'] for r in sel]):.3f} deg  texture "
                f"{np.mean([r['texture'] for r in sel]):.3f}  time {sum(r['seconds'] for r in sel):.1f} s"
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
