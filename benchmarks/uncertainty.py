"""Fit and validate geosr's per-pixel uncertainty (geosr/uncertainty.py) on real errors.

Wald's protocol: each scene is degraded x4 (box and bicubic), upscaled by the real engine
(``geosr.upscale`` with ``uncertainty=True``) at strengths 0, 0.25, 0.5 and 1, and compared
with the original. ``fit`` solves the log-linear error model on the *training* rows of the
bundled models' training scenes and prints the constants for ``DEFAULT_ERROR_MODEL``;
``validate`` scores the uncertainty the engine writes, on the held-out rows of those scenes
(``geosr-train``'s validation split) and on scenes from dates and sensors never seen in
training: Spearman's rank correlation with the absolute error, the share of the squared
error in the 10 % most uncertain pixels, calibration (mean uncertainty / mean |error|) and
its cost in time.

    python benchmarks/uncertainty.py fit
    python benchmarks/uncertainty.py validate --json out/uncertainty.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import ColorInterp
from rasterio.windows import Window

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import geosr  # noqa: E402
from geosr.data.dataset import validation_cut  # noqa: E402
from geosr.evaluate import _degrade  # noqa: E402
from geosr.pipeline import scene_statistics  # noqa: E402
from geosr.uncertainty import DEFAULT_ERROR_MODEL, detail_features  # noqa: E402

log = logging.getLogger("benchmarks.uncertainty")
DATA = Path(os.environ.get("GEOSR_SHARED_DATA", ROOT.parent / "shared" / "data"))
STRENGTHS = (0.0, 0.25, 0.5, 1.0)
DEGRADATIONS = ("box", "bicubic")
SIZE = 512  # HR pixels per side at most


@dataclass(frozen=True)
class Scene:
    name: str
    files: tuple[str, ...]  # relative to DATA; several single-band files are stacked
    bands: tuple[int, ...] | None = None
    split: str = "centre"  # "train": the top rows, "holdout": the held-out bottom rows


L8 = "landsat8_lc80200392015216"
NAIP = "naip_nd_m4709963/m_4709963_se_14_1_{}.tif"
S2 = "s2_l1c_t33uuu_20170216/IMG_DATA/T33UUU_20170216T102101_{}.jp2"
L8B = "landsat8_lc08_224077_224078_20200518/LC08_L1TP_224077_20200518_20200518_01_RT_{}.TIF"
TRAINING = [
    ("L7_ETMs", ("landsat7_olinda/L7_ETMs.tif",)),
    ("RGB.byte", ("landsat7_rgb_byte/RGB.byte.tif",)),
    ("LC08_B2B3B4B5", (f"{L8}/LC08_020039_20150804_B2B3B4B5_30m.tif",)),
    ("l8_B1", (f"{L8}/original/l8_B1.tif",)),
    ("l8_B6", (f"{L8}/original/l8_B6.tif",)),
    ("l8_B7", (f"{L8}/original/l8_B7.tif",)),
    ("l8_B8", (f"{L8}/original/l8_B8.tif",)),
    ("LC8_150m", ("landsat8_lc81070352015122_150m/LC81070352015122LGN00_B2B3B4_150m.tif",)),
    ("naip_2010", (NAIP.format("20100629"),)),
    ("naip_2015", (NAIP.format("20150926"),)),
    ("naip_2019", (NAIP.format("20190904"),)),
]
UNSEEN = [
    Scene("naip_2009", (NAIP.format("20090818"),)),
    Scene("naip_2018", (NAIP.format("20180716"),)),
    Scene(
        "s2_l2a_t32tmt",
        ("s2_l2a_t32tmt_20190530/20190530_T32TMT_MSIL2A_S2A_pixel_division_10m.tiff",),
        (1, 2, 3, 4),
    ),
    Scene("s2_l1c_t33uuu", tuple(S2.format(b) for b in ("B02", "B03", "B04", "B08"))),
    Scene("l8_t224077", tuple(L8B.format(b) for b in ("B2", "B3", "B4"))),
]


def scenes(kind: str) -> list[Scene]:
    if kind == "fit":
        return [Scene(n, f, split="train") for n, f in TRAINING]
    return [Scene(n, f, split="holdout") for n, f in TRAINING] + UNSEEN


def read_hr(scene: Scene) -> tuple[np.ndarray, dict]:
    """The scene's HR crop (a multiple of 4 per side) and its georeference."""
    arrays, profile = [], {}
    for name in scene.files:
        with rasterio.open(DATA / name) as src:
            top, rows = 0, src.height
            cut = validation_cut(src.height, 0.15, 64)
            if scene.split == "train" and cut is not None:
                rows = cut
            elif scene.split == "holdout" and cut is not None:
                top, rows = cut, src.height - cut
            height, width = min(rows, SIZE) // 4 * 4, min(src.width, SIZE) // 4 * 4
            window = Window((src.width - width) // 2, top + (rows - height) // 2, width, height)
            arrays.append(src.read(list(scene.bands) if scene.bands else None, window=window))
            profile = {"crs": src.crs, "transform": src.window_transform(window)}
            profile.update(dtype=src.dtypes[0], nodata=src.nodata)
    return np.concatenate(arrays), profile


def write_lr(path: Path, lr: np.ndarray, profile: dict) -> Path:
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=lr.shape[2],
        height=lr.shape[1],
        count=lr.shape[0],
        dtype=lr.dtype,
        crs=profile["crs"],
        transform=profile["transform"] * rasterio.Affine.scale(4),
        nodata=profile["nodata"],
        photometric="MINISBLACK",  # 4 bytes per pixel would otherwise read as RGBA
    ) as dst:
        dst.write(lr)
        dst.colorinterp = [ColorInterp.gray] + [ColorInterp.undefined] * (lr.shape[0] - 1)
    return path


@dataclass
class Sample:
    scene: str
    degradation: str
    strength: float
    error: np.ndarray  # |SR - HR|, band units, valid pixels only
    uncertainty: np.ndarray  # the engine's sidecar, same pixels
    features: np.ndarray | None  # (k, n) normalised detail features (fit only)
    spread: np.ndarray | None  # per-pixel band span (fit only)
    seconds: float
    seconds_plain: float


def run(kind: str, work: Path) -> list[Sample]:
    out = []
    for scene in scenes(kind):
        hr, profile = read_hr(scene)
        for degradation in DEGRADATIONS:
            lr = _degrade(hr, profile["nodata"], 4, degradation, profile["dtype"])
            path = write_lr(work / f"{scene.name}_{degradation}.tif", lr, profile)
            for strength in STRENGTHS:
                started = time.perf_counter()
                plain = geosr.upscale(
                    path, work / "plain.tif", model="srgan", strength=strength, overwrite=True
                )
                seconds_plain = time.perf_counter() - started
                started = time.perf_counter()
                sr_path = geosr.upscale(
                    path,
                    work / "sr.tif",
                    model="srgan",
                    strength=strength,
                    overwrite=True,
                    uncertainty=True,
                )
                seconds = time.perf_counter() - started
                with rasterio.open(sr_path) as src:
                    sr = src.read().astype(np.float64)
                with rasterio.open(geosr.uncertainty_path(sr_path)) as src:
                    unc = src.read().astype(np.float64)
                del plain
                valid = np.isfinite(unc) & (
                    hr != profile["nodata"] if profile["nodata"] is not None else True
                )
                error = np.abs(sr - hr)
                features = spread = None
                if kind == "fit":
                    stats = scene_statistics(lr, profile["nodata"])
                    x = (lr - stats.offset[:, None, None]) / stats.scale[:, None, None]
                    features = detail_features(x, 4).numpy()[:, valid]
                    spread = np.broadcast_to(stats.scale[:, None, None], hr.shape)[valid]
                out.append(
                    Sample(
                        scene.name,
                        degradation,
                        strength,
                        error[valid],
                        unc[valid],
                        features,
                        spread,
                        seconds,
                        seconds_plain,
                    )
                )
                log.info("%s %s strength %g: %.1f s", scene.name, degradation, strength, seconds)
    return out


def fit(samples: list[Sample]) -> dict:
    """Least squares of log|error| (normalised) on log features, with a strength term; then
    the factor that makes the mean prediction the mean absolute error."""
    rows, targets = [], []
    rng = np.random.default_rng(0)
    for s in samples:
        take = rng.choice(s.error.size, min(s.error.size, 40_000), replace=False)
        feats = np.log(s.features[:, take] + DEFAULT_ERROR_MODEL.eps)
        columns = [*feats, np.ones(take.size), np.full(take.size, s.strength)]
        rows.append(np.stack(columns, 1))
        targets.append(np.log(s.error[take] / s.spread[take] + 1e-3))
    x, y = np.concatenate(rows), np.concatenate(targets)
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    k = len(DEFAULT_ERROR_MODEL.sigmas)
    predicted = np.exp(x @ coef)
    actual = np.exp(y) - 1e-3
    return {
        "weights": [round(float(c), 3) for c in coef[:k]],
        "intercept": round(float(coef[k]), 3),
        "strength_slope": round(float(coef[k + 1]), 3),
        "calibration": round(float(actual.mean() / predicted.mean()), 3),
    }


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def scores(samples: list[Sample]) -> list[dict]:
    rows = []
    for s in samples:
        step = max(1, s.error.size // 200_000)
        top = s.uncertainty >= np.quantile(s.uncertainty, 0.9)
        squared = s.error**2
        rows.append(
            {
                "scene": s.scene,
                "degradation": s.degradation,
                "strength": s.strength,
                "spearman": spearman(s.uncertainty[::step], s.error[::step]),
                "top10_share": float(squared[top].sum() / squared.sum()),
                "calibration": float(s.uncertainty.mean() / s.error.mean()),
                "seconds": s.seconds,
                "seconds_plain": s.seconds_plain,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=("fit", "validate"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("geosr").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        samples = run(args.mode, Path(tmp))
    if args.mode == "fit":
        result = fit(samples)
        print(json.dumps(result, indent=2))
    else:
        result = scores(samples)
        by_set: dict[str, list[dict]] = {}
        for row in result:
            held = row["scene"] in {n for n, _ in TRAINING}
            by_set.setdefault("held-out rows" if held else "unseen scenes", []).append(row)
            print(
                f"{row['scene']:<15} {row['degradation']:<8} {row['strength']:<5g} "
                f"rho {row['spearman']:.3f}  top10 {row['top10_share']:.3f}  "
                f"calib {row['calibration']:.2f}  {row['seconds']:.2f} s vs {row['seconds_plain']:.2f} s"
            )
        for name, rows in by_set.items():
            time_ratio = sum(r["seconds"] for r in rows) / sum(r["seconds_plain"] for r in rows)
            print(
                f"{name}: mean rho {np.mean([r['spearman'] for r in rows]):.3f}, min "
                f"{min(r['spearman'] for r in rows):.3f}; mean top10 "
                f"{np.mean([r['top10_share'] for r in rows]):.3f}, min "
                f"{min(r['top10_share'] for r in rows):.3f}; time x{time_ratio:.2f}"
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
