"""The pipeline's fast paths give the exact paths' bytes (issue #12, item 7).

- the chunk-level range check that skips the projection's block search when no value of the
  chunk is out of the dtype's range;
- rounding in place in a per-thread scratch buffer;
- the CUDA path's speculative projection (made assuming the range holds, checked when the
  result reaches the host), run here on the CPU, and on a GPU where there is one;
- all of it against the implementation it replaced (copied below), on data that does and
  does not reach the dtype's limits, with and without nodata.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.windows import Window

import geosr
from geosr.consistency import project_block_means
from geosr.pipeline import (
    BandStats,
    TileRunner,
    _BlockPlan,
    _clip_to_limits,
    _finish_chunk,
    _inside_limits,
    _upscale_block,
    output_limits,
    project_consistent,
    to_output_dtype,
)
from tests.conftest import LANDSAT8, RGB_BYTE
from tests.generators import NearestGenerator as Nearest

# --- the implementation before the fast paths (geosr 5899456), the reference -------------------


def reference_project(sr: torch.Tensor, lr: torch.Tensor, scale: int, low: float, high: float):
    bands, h, w = lr.shape
    blocks = sr.view(bands, h, scale, w, scale)
    blocks += (lr - blocks.mean(dim=(2, 4)))[:, :, None, :, None]
    if math.isinf(low) and math.isinf(high):
        return sr
    outside = ((blocks < low) | (blocks > high)).any(dim=4).any(dim=2)
    if bool(outside.any()):
        b, y, x = torch.nonzero(outside, as_tuple=True)
        sub = blocks[b, y, :, x, :]
        target = lr[b, y, x].clamp(low, high)
        shift_low = low - sub.amax(dim=(1, 2))
        shift_high = high - sub.amin(dim=(1, 2))
        for _ in range(40):
            mid = (shift_low + shift_high) / 2
            below = (sub + mid[:, None, None]).clamp(low, high).mean(dim=(1, 2)) < target
            shift_low = torch.where(below, mid, shift_low)
            shift_high = torch.where(below, shift_high, mid)
        shift = (shift_low + shift_high) / 2
        blocks[b, y, :, x, :] = (sub + shift[:, None, None]).clamp(low, high)
    return sr


def reference_output(sr, valid, scale, dtype, nodata) -> np.ndarray:
    t = torch.as_tensor(sr)
    hr_valid = None if valid.all() else np.repeat(np.repeat(valid, scale, axis=1), scale, axis=2)
    if dtype.kind == "f":
        out = t.cpu().numpy().astype(dtype)
        if hr_valid is not None:
            out[~hr_valid] = np.nan if nodata is None else nodata
        return out
    low, high = output_limits(dtype, nodata)
    if dtype.itemsize >= 4:
        t = t.double()
    t = t.round().clamp_(low, high)
    if nodata is not None and not math.isnan(nodata) and low < nodata < high:
        hit = t == nodata
        if hr_valid is not None:
            hit &= torch.from_numpy(hr_valid)
        t[hit] = nodata + 1
    out = t.numpy().astype(dtype)
    if hr_valid is not None:
        out[~hr_valid] = dtype.type(nodata if nodata is not None and not math.isnan(nodata) else 0)
    return out


# --- cases --------------------------------------------------------------------------------------

SCALE = 4

#: name -> (dtype, nodata, reaches the dtype's limits)
CASES = {
    "uint16_inside": ("uint16", None, False),
    "uint16_at_limits": ("uint16", None, True),
    "uint8_nodata0_masked_at_limits": ("uint8", 0.0, True),
    "uint8_nodata255_inside": ("uint8", 255.0, False),
    "int16_nodata_in_range": ("int16", -9999.0, False),
    "int32_at_limits": ("int32", None, True),
    "float32_nan_fill": ("float32", None, False),
}


def make_case(name: str) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, np.dtype, float | None]:
    """A de-normalised SR chunk (float32), its LR pixels (0 where invalid, as the pipeline
    passes them), per-element validity, the dtype and nodata."""
    dtype_name, nodata, at_limits = CASES[name]
    dtype = np.dtype(dtype_name)
    rng = np.random.default_rng(sorted(CASES).index(name))
    bands, h, w = 3, 24, 20
    low, high = output_limits(dtype, nodata)
    if dtype.kind == "f":
        low, high = -1000.0, 1000.0
    span = min(high - low, 4000.0)
    if nodata is not None and low < nodata < high:  # values around nodata, some round onto it
        lr = nodata + rng.integers(-3, 4, (bands, h, w)).astype(np.float64)
    else:
        middle = (low + high) / 2 if span < 4000 else low + 2000
        lr = middle + rng.uniform(-span / 3, span / 3, (bands, h, w))
    noise = span / 20
    if at_limits:  # whole regions at the limits (saturation, black), where SR overshoots
        lr[:, :6, :5] = high
        lr[:, -5:, -6:] = low
        noise = span / 4
    lr = np.round(lr)
    valid = np.ones((bands, h, w), bool)
    if "masked" in name or "nan" in name:
        valid = rng.random((bands, h, w)) > 0.15
        lr = np.where(valid, lr, 0)
    hr = np.repeat(np.repeat(lr, SCALE, axis=1), SCALE, axis=2)
    sr = hr + rng.normal(0, noise, hr.shape)
    return (
        torch.from_numpy(sr.astype(np.float32)),
        torch.from_numpy(lr.astype(np.float32)),
        valid,
        dtype,
        nodata,
    )


def plan_for(dtype: np.dtype, nodata: float | None, consistency: bool = True) -> _BlockPlan:
    runner = TileRunner(Nearest(3, SCALE), "cpu", output_dtype=dtype)
    stats = BandStats(np.zeros(3, np.float32), np.ones(3, np.float32))
    return _BlockPlan(runner, stats, (0, 0), (1, 1), nodata, dtype, consistency)


@pytest.mark.parametrize("name", sorted(CASES))
def test_range_check_gives_the_block_search_result(name: str) -> None:
    """project_consistent skips the block search only where it would change nothing."""
    sr, lr, _, dtype, nodata = make_case(name)
    low, high = output_limits(dtype, nodata)
    fast = project_consistent(sr.clone(), lr, SCALE, low, high)
    exact = sr.clone()
    project_block_means(exact, lr, SCALE)
    if not (math.isinf(low) and math.isinf(high)):
        _clip_to_limits(exact, lr, SCALE, low, high)  # the search, always
    assert torch.equal(fast, exact)
    if not math.isinf(low):
        projected = sr.clone()
        project_block_means(projected, lr, SCALE)
        # both branches are taken: the cases are built to reach the limits or not
        assert bool(_inside_limits(projected, low, high)) is not CASES[name][2]


@pytest.mark.parametrize("consistency", [True, False])
@pytest.mark.parametrize("name", sorted(CASES))
def test_chunk_output_paths_agree(name: str, consistency: bool) -> None:
    """The CPU path, the speculative (CUDA) path and the public functions give the same bytes,
    and the implementation before them gives them too, within 1 DN (the same on this
    machine; a reduction in another order may move a value across .5)."""
    sr, lr, valid, dtype, nodata = make_case(name)
    plan = plan_for(dtype, nodata, consistency)
    lr_arg = lr if consistency else None
    direct = _finish_chunk(sr.clone(), lr_arg, valid, plan, speculate=False)
    speculative = _finish_chunk(sr.clone(), lr_arg, valid, plan, speculate=True)
    low, high = output_limits(dtype, nodata)
    projected = project_consistent(sr.clone(), lr, SCALE, low, high) if consistency else sr
    public = to_output_dtype(projected.clone(), valid, SCALE, dtype, nodata)
    assert direct.dtype == speculative.dtype == public.dtype == dtype
    np.testing.assert_array_equal(direct, speculative)
    np.testing.assert_array_equal(direct, public)
    before = sr.clone()
    if consistency:
        before = reference_project(before, lr, SCALE, low, high)
    reference = reference_output(before, valid, SCALE, dtype, nodata)
    if dtype.kind == "f":
        np.testing.assert_allclose(direct, reference, rtol=0, atol=1e-3)
    else:
        diff = np.abs(direct.astype(np.float64) - reference.astype(np.float64))
        assert diff.max() <= 1
    if nodata is not None:
        hr_valid = np.repeat(np.repeat(valid, SCALE, axis=1), SCALE, axis=2)
        assert not (direct[hr_valid] == nodata).any()  # valid pixels never become nodata


def test_to_output_dtype_leaves_its_input_alone() -> None:
    sr, _, valid, dtype, nodata = make_case("uint16_inside")
    kept = sr.clone()
    to_output_dtype(sr, valid, SCALE, dtype, nodata)
    assert torch.equal(sr, kept)
    to_output_dtype(sr.numpy(), valid, SCALE, dtype, nodata)
    assert torch.equal(sr, kept)


def test_scratch_buffer_is_reused_but_never_returned() -> None:
    """run(scratch=True) reuses one buffer per thread; what a caller gets back is its own."""
    runner = TileRunner(Nearest(2, 2), "cpu")
    rng = np.random.default_rng(1)
    a, b = (rng.random((2, 10, 12), dtype=np.float32) for _ in range(2))
    core = (0, 10, 0, 12)
    first = runner.run(a, core, scratch=True)
    second = runner.run(b, (0, 5, 0, 6), scratch=True)  # smaller: the same storage
    assert first.data_ptr() == second.data_ptr()
    got_a = runner(a, core)
    got_b = runner(b, core)
    np.testing.assert_array_equal(got_a, np.repeat(np.repeat(a, 2, axis=1), 2, axis=2))
    np.testing.assert_array_equal(got_b, np.repeat(np.repeat(b, 2, axis=1), 2, axis=2))


def _read(path: Path) -> tuple[np.ndarray, float | None]:
    with rasterio.open(path) as src:
        return src.read(), src.nodata


@pytest.mark.parametrize("consistency", [True, False])
@pytest.mark.parametrize(
    ("source", "window", "profile"),
    [
        (LANDSAT8, Window(7, 11, 150, 130), {}),
        (LANDSAT8, Window(7, 11, 150, 130), {"dtype": "float32"}),  # returned from the buffer
        (RGB_BYTE, Window(0, 40, 160, 140), {}),  # nodata 0
    ],
)
def test_a_free_generator_gives_back_the_input(
    crop, source: Path, window: Window, profile: dict, consistency: bool
) -> None:
    """Nearest neighbour through the whole pipeline (chunks of several sizes, scratch buffers
    reused across them, nodata filled and restored) is the input, nearest-upsampled."""
    scale = 2
    src = crop(source, window, **profile)
    lr, nodata = _read(src)
    model = Nearest(lr.shape[0], scale)
    out = geosr.upscale(
        src, src.with_name("x.tif"), model=model, chunk_size=48, consistency=consistency
    )
    sr, out_nodata = _read(out)
    assert out_nodata == nodata
    if nodata is not None:
        assert (lr == nodata).any()  # the case has nodata, to be filled and restored
    expected = np.repeat(np.repeat(lr, scale, axis=1), scale, axis=2)
    if sr.dtype.kind == "f":  # de-normalisation in float32 moves a value by an ulp or so
        np.testing.assert_allclose(sr, expected, rtol=1e-6, atol=0)
    else:
        np.testing.assert_array_equal(sr, expected)


@pytest.mark.parametrize("dtype", ["float32", "uint16"])
def test_computed_chunks_are_independent_arrays(dtype: str) -> None:
    """Chunks computed into memory together (not streamed to a file one by one) are each
    their own array, never the thread's reused buffer."""
    import rioxarray

    data = rioxarray.open_rasterio(LANDSAT8).isel(x=slice(0, 96), y=slice(0, 80)).astype(dtype)
    data = data.rio.write_nodata(None)
    lr = data.values
    out = geosr.upscale_dataarray(data, Nearest(4, 2), chunk_size=32).compute(scheduler="threads")
    expected = np.repeat(np.repeat(lr, 2, axis=1), 2, axis=2)
    np.testing.assert_allclose(out.values, expected, rtol=1e-6, atol=0)


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@needs_cuda
@pytest.mark.parametrize("name", ["uint16_inside", "uint16_at_limits", "uint8_nodata255_inside"])
def test_cuda_chunk_waits_only_for_its_result(name: str) -> None:
    """On CUDA a chunk queues its copies, forward and post-processing without a host
    synchronisation (torch's sync debug mode raises on one) but the wait for its result,
    and gives the CPU path's bytes."""
    _, lr, _, dtype, nodata = make_case(name)
    block = lr.numpy().astype(dtype)  # an LR chunk; its SR comes from the nearest generator
    cpu = _upscale_block(block, plan=plan_for(dtype, nodata))
    gpu_plan = plan_for(dtype, nodata)
    object.__setattr__(gpu_plan, "runner", TileRunner(Nearest(3, SCALE), "cuda", tile_size=16))
    _upscale_block(block, plan=gpu_plan)  # warm-up: the model's copy, the stream, pinned pool
    torch.cuda.set_sync_debug_mode("error")
    try:
        gpu = _upscale_block(block, plan=gpu_plan)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    np.testing.assert_array_equal(gpu, cpu)


@needs_cuda
@pytest.mark.parametrize("consistency", [True, False])
@pytest.mark.parametrize("name", sorted(CASES))
def test_cuda_speculative_output_matches_the_cpu(name: str, consistency: bool) -> None:
    """The speculative projection on the GPU, its fallback included (cases at the limits),
    gives the CPU path's output: the same bytes, or within 1 DN where the GPU's reductions
    add in another order."""
    sr, lr, valid, dtype, nodata = make_case(name)
    plan = plan_for(dtype, nodata, consistency)
    cpu = _finish_chunk(sr.clone(), lr if consistency else None, valid, plan, speculate=False)
    object.__setattr__(plan, "runner", TileRunner(Nearest(3, SCALE), "cuda"))
    with plan.runner.stream():
        lr_gpu = plan.runner.to_device(lr.numpy()) if consistency else None
        sr_gpu = plan.runner.to_device(sr.numpy())
        gpu = _finish_chunk(sr_gpu, lr_gpu, valid, plan, speculate=True)
    assert gpu.dtype == cpu.dtype
    if dtype.kind == "f":
        np.testing.assert_allclose(gpu, cpu, rtol=0, atol=1e-3)
    else:
        assert np.abs(gpu.astype(np.float64) - cpu.astype(np.float64)).max() <= 1
