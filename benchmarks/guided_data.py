"""Write the shared T32TMT L2A stack as two SAFE products that geosr reads (for guided
training and evaluation), into a folder outside the repository.

    python benchmarks/guided_data.py OUT_FOLDER [SHARED_DATA]

The stack copied each 20 m pixel into a 2x2 block whose row pairing shifts by one at row
550, so each side of the shift is its own product: rows 0-549 (``t32tmt_north``) and rows
551-1098 (``t32tmt_south``), every column pair. The products are written as
tests/data/make_products.py writes the small test product (baseline 04.00 DNs, a derived
SCL), without its strip of fill.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rasterio.windows import Window

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from tests.data.make_products import L2A_SAFE, make_l2a  # noqa: E402
from tests.datasets import shared_data_folder  # noqa: E402

HALVES = {"t32tmt_north": Window(0, 0, 1102, 550), "t32tmt_south": Window(0, 551, 1102, 548)}


def main() -> None:
    out = Path(sys.argv[1])
    shared = Path(sys.argv[2]) if len(sys.argv) > 2 else shared_data_folder(required=True)
    for name, window in HALVES.items():
        make_l2a(shared, out / name / L2A_SAFE, window, fill_strip=False)
        print(out / name / L2A_SAFE)


if __name__ == "__main__":
    main()
