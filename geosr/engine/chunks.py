"""A chunk's work and the lazy graph of it: each halo'd block normalised, run through the
network, de-normalised, projected onto its input and converted to the output's dtype."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np
import torch

from geosr.consistency import project_block_means
from geosr.engine.devices import TileRunner, _release_freed_memory
from geosr.engine.plan import Core, core_window, halo_blocks
from geosr.engine.radiometry import (
    _clip_to_limits,
    _device_output,
    _host_output,
    _inside_limits,
    _nearest,
    keep_band_ratios,
    output_limits,
)
from geosr.engine.stats import BandStats
from geosr.nodata import fill_invalid, valid_mask

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _BlockPlan:
    runner: TileRunner
    stats: BandStats
    halo: tuple[int, int]
    numblocks: tuple[int, int]
    nodata: float | None
    dtype: np.dtype
    consistency: bool
    carry: tuple[int, ...] = ()  # band positions carried by nearest neighbour (alpha)
    anchor: TileRunner | None = None  # strength 0, whose band ratios the output keeps


def _upscale_block(
    block: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    plan: _BlockPlan,
    block_id: tuple[int, ...] | None = None,
) -> np.ndarray:
    top, bottom, left, right = core = core_window(block.shape, block_id, plan.halo, plan.numblocks)
    scale = plan.runner.meta.scale
    whole = block
    if plan.carry:
        block = np.delete(whole, plan.carry, axis=0)
    valid = valid_mask(block, plan.nodata, mask)
    offset = plan.stats.offset[:, None, None]
    spread = plan.stats.scale[:, None, None]
    x = (block.astype(np.float32) - offset) / spread
    if not valid.all():
        x = fill_invalid(x, valid)
    core_valid = valid[:, top:bottom, left:right]
    lr = block[:, top:bottom, left:right] if plan.consistency else None
    out = _run_block(x, lr, core, core_valid, plan)
    del x
    _release_freed_memory()
    if plan.carry:
        carried = whole[list(plan.carry), top:bottom, left:right]
        out = np.insert(out, [c - i for i, c in enumerate(plan.carry)], _nearest(carried, scale), 0)
    return out


def _run_block(
    x: np.ndarray, lr: np.ndarray | None, core: Core, valid: np.ndarray, plan: _BlockPlan
) -> np.ndarray:
    """The normalised block ``x`` through the network on its ``core``, de-normalised there
    (the anchor's band ratios kept) and finished onto ``lr`` (the core's input pixels; None:
    consistency off), all queued on the runner's stream."""
    runner = plan.runner
    spread = plan.stats.scale[:, None, None]
    offset = plan.stats.offset[:, None, None]
    with runner.stream():
        sr = runner.run(x, core, scratch=True)
        # the rest goes up without waiting (a pageable copy would wait for the forward pass)
        spread_t, offset_t = runner.to_device(spread), runner.to_device(offset)
        sr = sr.mul_(spread_t).add_(offset_t)
        if plan.anchor is not None:
            anchor = plan.anchor.run(x, core, scratch=True)
            keep_band_ratios(sr, anchor.mul_(spread_t).add_(offset_t))
            del anchor
        lr_t = None
        if lr is not None:
            lr_t = runner.to_device(np.where(valid, lr, 0).astype(np.float32))
        return _finish_chunk(sr, lr_t, valid, plan, speculate=runner.device.type == "cuda")


def _finish_chunk(
    sr: torch.Tensor,
    lr: torch.Tensor | None,
    valid: np.ndarray,
    plan: _BlockPlan,
    *,
    speculate: bool,
) -> np.ndarray:
    """A chunk's de-normalised SR (float32, on the runner's device, overwritten) as its output
    array: the radiometric projection onto ``lr`` (None: consistency off), rounding, clipping
    and nodata, as :func:`project_consistent` and :func:`to_output_dtype` make them.

    ``speculate`` (CUDA) waits for the device once per chunk, for the result: the output is
    made assuming the plain projection stays within the dtype's range, and that is checked
    when it arrives; only chunks where it fails are redone with the exact search. Without it
    the check is read first (free on a CPU), and the exact search runs only where needed."""
    runner = plan.runner
    scale = runner.meta.scale
    dtype, nodata = plan.dtype, plan.nodata
    valid_t = None if valid.all() else runner.to_device(valid)
    if lr is not None:
        project_block_means(sr, lr, scale)
        low, high = output_limits(dtype, nodata)
        if not (math.isinf(low) and math.isinf(high)):
            inside = _inside_limits(sr, low, high)
            if not speculate:
                if not bool(inside):
                    _clip_to_limits(sr, lr, scale, low, high)
            else:
                guess = _device_output(sr, valid_t, scale, dtype, nodata, inplace=False)
                values, ok = runner.to_host(guess, inside)
                if bool(ok):
                    return _host_output(values, valid, scale, dtype, nodata)
                log.debug("chunk reaches its dtype's limits: exact projection")
                _clip_to_limits(sr, lr, scale, low, high)
    (values,) = runner.to_host(_device_output(sr, valid_t, scale, dtype, nodata, inplace=True))
    return _host_output(values, valid, scale, dtype, nodata)


def upscaled_mask(mask: da.Array, scale: int, chunks: tuple[tuple[int, ...], ...]) -> da.Array:
    """The output's mask: ``mask`` (y, x; 0 = masked) as 0/255, nearest-upsampled by
    ``scale`` and chunked as the output's (y, x) ``chunks``."""
    flags = da.where(mask != 0, np.uint8(255), np.uint8(0))
    return da.repeat(da.repeat(flags, scale, axis=0), scale, axis=1).rechunk(chunks)


def upscale_array(
    array: da.Array,
    runner: TileRunner,
    stats: BandStats,
    nodata: float | None,
    halo: int,
    consistency: bool = True,
    mask: da.Array | None = None,
    carry: Sequence[int] = (),
    anchor: TileRunner | None = None,
) -> da.Array:
    """Lazy super-resolution of a dask array (bands, y, x); output chunks are ``scale`` times
    the input chunks. Bands stay in one chunk, since the network needs all of them.

    ``mask`` (y, x) marks masked pixels with 0: they are invalid, as nodata is. The bands at
    0-based positions ``carry`` (an alpha band) are upsampled by nearest neighbour, never
    super-resolved; ``runner`` and ``stats`` see the other bands only. With ``anchor`` (a
    runner like ``runner``, of the strength-0 network) each output pixel keeps the anchor's
    band ratios (:func:`keep_band_ratios`)."""
    scale = runner.meta.scale
    blocks = halo_blocks(array, halo, mask)
    plan = _BlockPlan(
        runner=runner,
        stats=stats,
        halo=blocks.halo,
        numblocks=blocks.numblocks,
        nodata=nodata,
        dtype=np.dtype(array.dtype),
        consistency=consistency,
        carry=tuple(sorted(int(c) for c in carry)),
        anchor=anchor,
    )
    return da.map_blocks(
        _upscale_block,
        blocks.extended,
        *blocks.masks,  # (y, x): dask aligns it with the last two axes
        # one graph key holding the model: a cluster ships it once per worker, not per chunk
        plan=dask.delayed(plan, pure=False),
        chunks=blocks.output_chunks(scale),
        dtype=array.dtype,
        token=f"geosr-upscale-x{scale}",
        meta=np.empty((0, 0, 0), array.dtype),
    )
