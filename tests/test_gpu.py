"""The CUDA path gives the CPU path's output: fp32, channels-last, fp16/bf16 autocast.

Skipped where torch sees no GPU (CI has none); run on a GPU machine with
``pytest tests/test_gpu.py``. Each fast path is compared with the plain CPU fp32 path on real
scenes, in units of the output dtype.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.windows import Window

import geosr
from tests.conftest import LANDSAT7_OLINDA, LANDSAT8, NAIP_DIR, RGB_BYTE, write_crop

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

SCENES = {
    "landsat8_uint16": LANDSAT8,
    "naip_uint8": NAIP_DIR / "m_4709963_se_14_1_20190904.tif",
    "landsat7_uint8_6band": LANDSAT7_OLINDA,
    "rgb_byte_nodata": RGB_BYTE,
}


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


EIGHT_BIT = [name for name in SCENES if "uint8" in name or "byte" in name]


@pytest.fixture(scope="module")
def cpu_reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    folder = tmp_path_factory.mktemp("gpu")
    refs = {}
    for name, scene in SCENES.items():
        crop = write_crop(scene, folder / f"{name}.tif", Window(0, 0, 256, 200))
        out = geosr.upscale(crop, folder / f"{name}_cpu.tif", device="cpu", chunk_size=128)
        refs[name] = (crop, out)
    return refs


def _max_diff(a: Path, b: Path) -> int:
    return int(np.abs(_read(a).astype(np.int64) - _read(b).astype(np.int64)).max())


@pytest.mark.parametrize("model", ["srgan", "srresnet"])
@pytest.mark.parametrize("name", list(SCENES))
def test_cuda_fp32_equals_cpu_within_one_unit(
    name: str, model: str, cpu_reference, tmp_path: Path
) -> None:
    crop, _ = cpu_reference[name]
    cpu = geosr.upscale(crop, tmp_path / "cpu.tif", model=model, device="cpu", chunk_size=128)
    gpu = geosr.upscale(
        crop, tmp_path / "gpu.tif", model=model, device="cuda", precision="fp32", chunk_size=128
    )
    assert _max_diff(cpu, gpu) <= 1


@pytest.mark.parametrize("name", list(SCENES))
def test_default_precision_within_one_unit(name: str, cpu_reference, tmp_path: Path) -> None:
    """The default (auto: fp16 for 8-bit outputs, fp32 otherwise) keeps within 1 DN."""
    crop, reference = cpu_reference[name]
    out = geosr.upscale(crop, tmp_path / "auto.tif", device="cuda", chunk_size=128)
    assert _max_diff(out, reference) <= 1


@pytest.mark.parametrize("name", EIGHT_BIT)
def test_fp16_within_one_unit_on_eight_bit_outputs(
    name: str, cpu_reference, tmp_path: Path
) -> None:
    crop, reference = cpu_reference[name]
    out = geosr.upscale(
        crop, tmp_path / "fp16.tif", device="cuda", precision="fp16", chunk_size=128
    )
    assert _max_diff(out, reference) <= 1


def test_auto_precision_choice() -> None:
    from geosr.pipeline import TileRunner

    model = geosr.load_model("default")
    assert TileRunner(model, "cuda", output_dtype="uint8").autocast_dtype == torch.float16
    assert TileRunner(model, "cuda", output_dtype="uint16").autocast_dtype is None
    assert TileRunner(model, "cuda", output_dtype="float32").autocast_dtype is None
    assert TileRunner(model, "cuda", precision="bf16").autocast_dtype == torch.bfloat16


def test_gpu_batching_equals_cpu(cpu_reference, tmp_path: Path) -> None:
    crop, reference = cpu_reference["landsat8_uint16"]
    out = geosr.upscale(
        crop, tmp_path / "batched.tif", device="cuda", chunk_size=128, batch_size=32, tile_size=64
    )
    assert _max_diff(out, reference) <= 1
