"""opensr-test's correctness scores on real arrays, as the reference geosr's re-implementation
(:mod:`geosr.correctness`) is tested against (``tests/test_correctness.py``).

    python benchmarks/opensr_reference.py [OUT_JSON]

Needs ``opensr-test`` (1.3.3, with satalign) importable next to geosr, in a scratch
environment: its dependencies are too heavy for geosr's own. One way, without touching
geosr's venv::

    python -m venv /tmp/opensr-venv
    /tmp/opensr-venv/bin/pip install --no-deps opensr-test==1.3.3 satalign==0.1.17 \\
        mpltern kornia kornia_rs opencv-python-headless xarray
    echo "$PWD/.venv/lib/python3.11/site-packages" \\
        > /tmp/opensr-venv/lib/python3.11/site-packages/zz_geosr.pth   # torch, skimage...
    OMP_NUM_THREADS=2 /tmp/opensr-venv/bin/python benchmarks/opensr_reference.py

The arrays (:func:`cases`) are 256x256 NAIP crops from ``tests/data/naip_nd_m4709963``
degraded to LR as ``geosr evaluate`` does (:func:`geosr.evaluate._degrade`), and the SR is
bicubic, the bundled ``srresnet`` through :func:`geosr.upscale`, or a synthetic output (HR
itself, opensr-test's own upsampled LR, HR plus strong noise). Each is scored by
``opensr_test.Metrics().correctness(lr, sr, hr, gradient_threshold="auto")``, which is what
``Metrics.compute`` runs, with the default ``Config`` and again with
``harm_apply_spatial=False`` (no phase-correlation re-alignment, which geosr leaves out).
Values are in DN as float: the ``"nd"`` distance, the histogram matching and the phase
correlation do not depend on the value scale.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
from geosr.correctness import upsample_lr  # noqa: E402
from geosr.evaluate import _degrade, _read_hr, _reference, _write_lr  # noqa: E402
from geosr.metrics import bicubic_upsample  # noqa: E402

DATA = ROOT / "tests" / "data" / "naip_nd_m4709963"
OUT = ROOT / "tests" / "data" / "opensr_test_reference.json"
SCALE = 4
#: scene, degradation and SR methods of each group of cases
GROUPS = (
    ("m_4709963_se_14_1_20190904.tif", "bicubic", ("bicubic", "srresnet", "hr", "lr_up", "noise")),
    ("m_4709963_se_14_1_20120731.tif", "box", ("bicubic", "srresnet")),
)
NOISE_SIGMA = 40.0
NOISE_SEED = 22


def _srresnet(lr: np.ndarray, profile: dict, nodata: float | None, work: Path) -> np.ndarray:
    from geosr import upscale
    from geosr.raster import open_raster

    lr_path = _write_lr(work / "lr.tif", lr, profile, nodata, SCALE)
    upscale(lr_path, work / "sr.tif", model="srresnet", device="cpu", overwrite=True)
    with open_raster(work / "sr.tif") as src:
        return src.read().astype(np.float64)


def cases() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``name: (lr, sr, hr)``, float64, every pixel valid; ``lr`` is what evaluate scores
    against (its ``filled_lr``)."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="geosr-opensr-") as tmp:
        for scene, kind, methods in GROUPS:
            hr, profile, info = _read_hr(DATA / scene, SCALE, 1024, None, None, 64)
            lr = _degrade(hr, info.nodata, SCALE, kind, profile["dtype"])
            ref = _reference(scene, lr, hr, info.nodata, SCALE)
            if not ref.valid.all():
                raise RuntimeError(f"{scene} has invalid pixels; pick a crop without")
            for method in methods:
                if method == "bicubic":
                    sr = bicubic_upsample(ref.filled_lr, SCALE)
                elif method == "srresnet":
                    sr = _srresnet(lr, profile, info.nodata, Path(tmp))
                elif method == "hr":
                    sr = ref.hr.copy()
                elif method == "lr_up":
                    sr = upsample_lr(ref.filled_lr, SCALE)
                elif method == "noise":
                    rng = np.random.default_rng(NOISE_SEED)
                    noisy = ref.hr + rng.normal(0.0, NOISE_SIGMA, ref.hr.shape)
                    sr = np.clip(noisy, 0, 255)
                else:
                    raise ValueError(method)
                out[f"{scene.removesuffix('.tif')} {kind} {method}"] = (ref.filled_lr, sr, ref.hr)
    return out


def main() -> None:
    import opensr_test
    import torch
    from opensr_test.utils import hq_histogram_matching

    path = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    results = {}
    for name, (lr, sr, hr) in cases().items():
        tensors = [torch.from_numpy(a.astype(np.float32)) for a in (lr, sr, hr)]
        entry = {}
        for label, spatial in (("default", True), ("no_spatial", False)):
            metrics = opensr_test.Metrics(harm_apply_spatial=spatial)
            scores = metrics.correctness(*tensors, gradient_threshold="auto")
            entry[label] = {
                "improvement": scores["im_metric"],
                "omission": scores["om_metric"],
                "hallucination": scores["ha_metric"],
            }
            if spatial:
                matched = hq_histogram_matching(metrics.sr, metrics.hr)
                shift = metrics.spatial_aligner.get_metric(matched, metrics.hr)[1]
                entry["pcc_shift_pixels"] = float(shift)
        results[name] = entry
        print(name, json.dumps(entry))
    document = {
        "opensr_test_version": opensr_test.__version__,
        "opensr_test_commit": "b42b1cba8a04b32341044f1f29474e5448499158",
        "call": "opensr_test.Metrics(harm_apply_spatial=S).correctness(lr, sr, hr, "
        'gradient_threshold="auto") on float32 tensors in DN',
        "torch": torch.__version__,
        "scale": SCALE,
        "noise": {"sigma": NOISE_SIGMA, "seed": NOISE_SEED},
        "cases": results,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(path)


if __name__ == "__main__":
    main()
