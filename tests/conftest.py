"""Shared fixtures: real scenes (small crops in tests/data, the full ones when present) and
small models and rasters made here."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import ColorInterp
from rasterio.windows import Window

import geosr
from tests.datasets import TEST_DATA, ci_requires_shared_data, shared_data_folder
from tests.http_server import http_server  # noqa: F401  (a fixture for every test file)

DATA = TEST_DATA
SHARED = shared_data_folder()

#: Real scenes: crops committed in tests/data (see its PROVENANCE.md).
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

RGB = (ColorInterp.red, ColorInterp.green, ColorInterp.blue)


def pytest_configure(config: pytest.Config) -> None:
    if SHARED is None and ci_requires_shared_data():
        raise pytest.UsageError(
            "CI=true but the shared data folder is missing: set GEOSR_SHARED_DATA or put "
            "shared/data beside the repository"
        )


@pytest.fixture(scope="session")
def shared_scenes() -> Path:
    """The full shared scenes; the test is skipped (with its reason) where they are absent."""
    if SHARED is None:
        pytest.skip(
            "needs the full shared scenes: set GEOSR_SHARED_DATA or put shared/data beside the repo"
        )
    return SHARED


@pytest.fixture(scope="session")
def full_scene(shared_scenes: Path) -> Callable[[Path], Path]:
    """Map a crop in tests/data to the full scene it was cut from."""
    return lambda crop: shared_scenes / crop.relative_to(DATA)


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
        # a 4-band uint8 GeoTIFF is RGBA by default: say what each band is, as the source does
        colorinterp = src.colorinterp
        profile.setdefault("photometric", "RGB" if colorinterp[:3] == RGB else "MINISBLACK")
        profile.update(profile_updates)
        dtype = np.dtype(profile["dtype"])
        if dtype != data.dtype:
            data = data.astype(dtype)
        with rasterio.open(destination, "w", **profile) as dst:
            dst.write(data[: profile["count"]])
            if profile["count"] == len(colorinterp):
                dst.colorinterp = colorinterp
            for index, text in enumerate(descriptions[: profile["count"]], start=1):
                if text:
                    dst.set_band_description(index, text)
    return destination


@pytest.fixture
def crop(tmp_path: Path) -> Callable[..., Path]:
    def make(source: Path, window: Window | None = None, name: str = "crop.tif", **profile) -> Path:
        return write_crop(source, tmp_path / name, window, **profile)

    return make
