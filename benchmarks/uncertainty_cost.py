"""The cost in time of ``uncertainty=True``: the same ``geosr.upscale`` of a full scene with
and without it, alternated, in one run; reports each pair's ratio (issue #22).

    python benchmarks/uncertainty_cost.py            # the shared NAIP 2014 scene, 2 pairs
    python benchmarks/uncertainty_cost.py scene.tif --repeats 3 --json cost.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import geosr

log = logging.getLogger("uncertainty_cost")
DATA = Path(os.environ.get("GEOSR_SHARED_DATA", Path(__file__).parents[2] / "shared" / "data"))
SCENE = DATA / "naip_nd_m4709963" / "m_4709963_se_14_1_20140720.tif"


def timed_upscale(scene: Path, out: Path, uncertainty: bool) -> float:
    start = time.perf_counter()
    geosr.upscale(scene, out, uncertainty=uncertainty)
    return time.perf_counter() - start


def measure(scene: Path, repeats: int) -> list[dict[str, float]]:
    pairs = []
    with tempfile.TemporaryDirectory(prefix="geosr-uncertainty-cost-") as work:
        for i in range(repeats):
            plain = timed_upscale(scene, Path(work) / f"plain_{i}.tif", False)
            with_it = timed_upscale(scene, Path(work) / f"with_{i}.tif", True)
            pairs.append({"plain_s": plain, "uncertainty_s": with_it, "ratio": with_it / plain})
            log.info(
                "pair %d: %.1f s plain, %.1f s with uncertainty: x%.2f",
                i,
                plain,
                with_it,
                with_it / plain,
            )
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scene", nargs="?", type=Path, default=SCENE)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.scene.is_file():
        raise SystemExit(f"no scene at {args.scene}; pass one or set GEOSR_SHARED_DATA")
    pairs = measure(args.scene, args.repeats)
    ratios = [p["ratio"] for p in pairs]
    log.info("uncertainty=True costs x%.2f to x%.2f a plain run", min(ratios), max(ratios))
    if args.json:
        args.json.write_text(json.dumps(pairs, indent=1))


if __name__ == "__main__":
    main()
