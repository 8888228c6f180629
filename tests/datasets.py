"""Where the tests' real scenes live, resolved in one place.

Two folders with the same layout:

- ``tests/data``: small lossless crops of the shared scenes, committed with the repository
  (see ``tests/data/PROVENANCE.md``), so a clone with nothing beside it runs the tests;
- the full shared scenes: ``$GEOSR_SHARED_DATA``, else ``../shared/data`` beside the
  repository when present. Tests that need them (multi-scene training, large scenes,
  benchmark-like runs) take the ``shared_data`` fixture, which skips with a reason when the
  folder is absent; under ``CI=true`` a missing folder is an error instead.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = REPO / "tests" / "data"
SHARED_ENV = "GEOSR_SHARED_DATA"
#: The small test products (tests/data/make_products.py)
L1C = (
    TEST_DATA
    / "s2_l1c_t55hfa"
    / "S2B_MSIL1C_20201011T000249_N0209_R030_T55HFA_20201011T011446.SAFE"
)
L2A = (
    TEST_DATA
    / "s2_l2a_t32tmt"
    / "S2A_MSIL2A_20190530T103031_N0400_R108_T32TMT_20190530T103031.SAFE"
)
L2A_IMG = L2A / "GRANULE" / "L2A_T32TMT_A020476_20190530T103031" / "IMG_DATA"
LANDSAT_PRE = TEST_DATA / "landsat8_lc80200392015216" / "original"


class SharedDataMissingError(RuntimeError):
    """The full shared scenes are needed and cannot be found."""


def shared_data_folder(required: bool = False) -> Path | None:
    """The full shared data folder, or None when it is absent (an error if ``required``)."""
    configured = os.environ.get(SHARED_ENV)
    folder = Path(configured) if configured else REPO.parent / "shared" / "data"
    if folder.is_dir():
        return folder
    if configured or required:
        raise SharedDataMissingError(
            f"shared data folder {folder} is missing; set {SHARED_ENV} to the folder "
            "holding the shared scenes (see tests/data/PROVENANCE.md)"
        )
    return None


def ci_requires_shared_data() -> bool:
    """CI runs every test: there a missing shared folder fails the run instead of skipping."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}
