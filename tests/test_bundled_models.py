"""The models shipped in the package, on real scenes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.windows import Window

import geosr
from geosr.evaluate import evaluate
from tests.conftest import LANDSAT7_OLINDA, LANDSAT8, LANDSAT8_150M, RGB_BYTE, write_crop

BUNDLED = ["srgan", "srresnet"]
pytestmark = pytest.mark.skipif(
    not set(BUNDLED) <= set(geosr.bundled_models()),
    reason="the bundled models are not in this checkout",
)


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_model_loads_with_a_card(name: str) -> None:
    model = geosr.load_model(name)
    meta = model.meta
    assert meta.name == name and meta.scale == 4 and meta.band_shared
    assert meta.trained_on["steps"] > 0 and meta.trained_on["scenes"]
    path = Path(geosr.__file__).parent / "weights" / f"{name}.safetensors"
    assert path.stat().st_size < 20 * 1024 * 1024
    assert geosr.load_model("default").meta.name == "srgan"


@pytest.mark.parametrize(
    ("source", "window"),
    [
        (LANDSAT8, Window(200, 301, 96, 80)),  # 4 x uint16, rows training held out
        (LANDSAT7_OLINDA, Window(7, 164, 90, 90)),  # 6 x uint8
        (RGB_BYTE, Window(0, 200, 100, 100)),  # 3 x uint8 with nodata at the scene edge
        (LANDSAT8_150M, Window(40, 100, 120, 100)),  # 3 x uint16 with nodata fill
    ],
)
@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_model_keeps_footprint_and_radiometry(
    name: str, source: Path, window: Window, tmp_path: Path
) -> None:
    src = write_crop(source, tmp_path / "crop.tif", window)
    out = geosr.upscale(src, model=name, chunk_size=64)
    with rasterio.open(src) as s, rasterio.open(out) as o:
        assert o.crs == s.crs and o.transform == s.transform @ Affine.scale(0.25)
        assert (o.count, o.dtypes, o.nodata) == (s.count, s.dtypes, s.nodata)
        lr = s.read().astype(np.float64)
        sr = o.read().astype(np.float64)
    valid = np.ones(lr.shape, bool) if s.nodata is None else lr != s.nodata
    back = sr.reshape(lr.shape[0], lr.shape[1], 4, lr.shape[2], 4).mean(axis=(2, 4))
    assert np.abs(back - lr)[valid].max() <= 1.0


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_model_sam_no_worse_than_bicubic(name: str) -> None:
    """On the Landsat 8 rows training held out, degraded x4 both ways."""
    report = evaluate([LANDSAT8], name, holdout=0.15, patch=64, max_size=256)
    for degradation in ("box", "bicubic"):
        summary = report.summary()[degradation]
        assert summary["model"]["sam"] <= summary["bicubic"]["sam"]
        assert summary["model"]["psnr"] >= summary["bicubic"]["psnr"] - 0.5
