"""Shared fixtures: the real scenes in ../shared/data and small models and rasters made here."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

import geosr

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("GEOSR_SHARED_DATA", REPO.parent / "shared" / "data"))

#: Real scenes (see ../shared/data/PROVENANCE.md).
LANDSAT8 = (
    DATA / "landsat8_lc80200392015216" / "LC08_020039_20150804_B2B3B4B5_30m.tif"
)  # 4 x uint16
LANDSAT8_ORIGINAL = DATA / "landsat8_lc80200392015216" / "original"
LANDSAT8_150M = (
    DATA / "landsat8_lc81070352015122_150m" / "LC81070352015122LGN00_B2B3B4_150m.tif"
)  # 3 x uint16, nodata 0
LANDSAT7_OLINDA = DATA / "landsat7_olinda" / "L7_ETMs.tif"  # 6 x uint8
RGB_BYTE = DATA / "landsat7_rgb_byte" / "RGB.byte.tif"  # 3 x uint8, nodata 0
NAIP_DIR = DATA / "naip_nd_m4709963"  # 4 x uint8 RGBN


def pytest_configure(config: pytest.Config) -> None:
    if not DATA.is_dir():
        raise pytest.UsageError(f"test data folder {DATA} is missing; set GEOSR_SHARED_DATA")


@pytest.fixture(scope="session")
def model_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Save a small untrained generator and return its path (cached per configuration)."""
    cache: dict[tuple, Path] = {}
    folder = tmp_path_factory.mktemp("models")

    def make(
        bands: int | None = 4, scale: int = 2, width: int = 8, blocks: int = 1, **config
    ) -> Path:
        key = (bands, scale, width, blocks, tuple(sorted(config.items())))
        if key not in cache:
            import torch

            torch.manual_seed(0)
            model = geosr.build_model(
                bands=bands, scale=scale, width=width, blocks=blocks, batch_norm=False, **config
            )
            path = folder / f"m{len(cache)}.safetensors"
            geosr.save_model(model, path, name=f"test-{len(cache)}")
            cache[key] = path
        return cache[key]

    return make


def write_crop(
    source: Path, destination: Path, window: Window | None = None, **profile_updates
) -> Path:
    """Copy a window of a real scene into a new GeoTIFF with the right transform."""
    with rasterio.open(source) as src:
        window = window or Window(0, 0, src.width, src.height)
        data = src.read(window=window)
        profile = src.profile.copy()
        profile.update(
            width=int(window.width),
            height=int(window.height),
            transform=src.window_transform(window),
            driver="GTiff",
        )
        descriptions = src.descriptions
        profile.update(profile_updates)
        dtype = np.dtype(profile["dtype"])
        if dtype != data.dtype:
            data = data.astype(dtype)
        with rasterio.open(destination, "w", **profile) as dst:
            dst.write(data[: profile["count"]])
            for index, text in enumerate(descriptions[: profile["count"]], start=1):
                if text:
                    dst.set_band_description(index, text)
    return destination


@pytest.fixture
def crop(tmp_path: Path) -> Callable[..., Path]:
    def make(source: Path, window: Window | None = None, name: str = "crop.tif", **profile) -> Path:
        return write_crop(source, tmp_path / name, window, **profile)

    return make
