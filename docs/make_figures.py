"""Make the documentation's figures from the bundled sample scene.

    .venv/bin/python docs/make_figures.py        # writes docs/_static/before-after.png

The before/after picture of the README and the docs' front page: ``geosr.upscale`` of the
bundled sample (``geosr/sample/naip_sample.tif``, a NAIP crop, USDA FSA, public domain) with the
bundled default model at its default strength, next to bicubic, on the most textured 64 x 64
input-pixel window of the scene (red, green, blue; the same stretch on both panels).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CROP = 64  # input pixels on a side


def most_textured(image: np.ndarray, size: int, step: int = 16) -> tuple[int, int]:
    """Top-left corner of the ``size`` window with the largest mean gradient magnitude."""
    grey = image.mean(axis=0)
    gy, gx = np.gradient(grey)
    energy = np.hypot(gx, gy)
    best, corner = -1.0, (0, 0)
    for y in range(0, grey.shape[0] - size + 1, step):
        for x in range(0, grey.shape[1] - size + 1, step):
            value = float(energy[y : y + size, x : x + size].mean())
            if value > best:
                best, corner = value, (y, x)
    return corner


def before_after(out: Path) -> Path:
    import rasterio

    import geosr
    from geosr.demo import SAMPLE
    from geosr.figures import new_figure, save_png, side_by_side
    from geosr.metrics import bicubic_upsample

    with tempfile.TemporaryDirectory() as tmp:
        path = geosr.upscale(SAMPLE, Path(tmp) / "sample_x4.tif")
        with rasterio.open(SAMPLE) as src, rasterio.open(path) as dst:
            lr = src.read().astype(np.float64)
            sr = dst.read().astype(np.float64)
            scale = dst.width // src.width
    rgb = [0, 1, 2]
    y0, x0 = most_textured(lr[rgb], CROP)
    lr_crop = lr[rgb, y0 : y0 + CROP, x0 : x0 + CROP]
    panels = {
        "bicubic": bicubic_upsample(lr_crop, scale),
        f"geosr (default model, x{scale})": sr[
            rgb, y0 * scale : (y0 + CROP) * scale, x0 * scale : (x0 + CROP) * scale
        ],
    }
    fig = new_figure(9, 4.8)
    side_by_side(fig, panels, lr_crop)
    fig.suptitle(
        f"The bundled NAIP sample, 5 m to 1.25 m: a {CROP} x {CROP}-pixel crop "
        "(USDA FSA, public domain)",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    out.parent.mkdir(parents=True, exist_ok=True)
    save_png(fig, out, dpi=80)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "_static" / "before-after.png")
    args = parser.parse_args()
    print(before_after(args.out))


if __name__ == "__main__":
    main()
