"""Radiometry: the output keeps the input's values. The projection onto the input's block
means (within a dtype's limits), the band ratios kept from the fidelity network, and the
conversion to the output's dtype with its nodata."""

from __future__ import annotations

import math

import numpy as np
import torch

from geosr.consistency import project_block_means


def keep_band_ratios(sr: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
    """``sr`` (bands, y, x) with ``anchor``'s band ratios, in place: each pixel becomes
    ``anchor * sum(sr) / sum(anchor)`` over its bands, so it keeps ``sr``'s brightness (its
    texture) and ``anchor``'s spectral angle. Band-shared GAN texture is invented band by band
    and bends the spectra (SAM); the strength-0 network's spectra are the faithful ones
    (docs/texture.md). Pixels where a ratio means nothing (a non-positive sum, a negative
    anchor value) keep ``sr``; so does a single band, whose ratio is 1."""
    if sr.shape[0] < 2:
        return sr
    total, base = sr.sum(0), anchor.sum(0)
    ok = (total > 0) & (base > 0) & (anchor.amin(0) >= 0)
    factor = total / torch.where(ok, base, 1.0)  # pixels not ok keep sr below
    return sr.copy_(torch.where(ok, anchor * factor, sr))


def project_consistent(
    sr: np.ndarray | torch.Tensor,
    lr: np.ndarray | torch.Tensor,
    scale: int,
    low: float = -math.inf,
    high: float = math.inf,
) -> np.ndarray | torch.Tensor:
    """Make each ``scale`` x ``scale`` block of ``sr`` average exactly to its ``lr`` pixel.

    The Euclidean projection onto that constraint is SR + upsample_nearest(LR - box_down(SR)).
    With value limits (a dtype's range) it becomes ``clip(SR + t, low, high)`` with one shift
    ``t`` per block, found by bisection for the few blocks the plain projection pushes out of
    range; so outputs keep the input's radiometry (NDVI and the like average back to the
    input's) even next to saturated or black pixels.

    Works in place on float32 torch tensors (on the device that made them) or numpy arrays.
    The blocks are searched for values out of range only when the chunk's minimum or maximum
    is (one pass over it, where the search took several): the result is the same.
    """
    if isinstance(sr, np.ndarray):
        lr_t = torch.from_numpy(np.asarray(lr, np.float32))
        return project_consistent(torch.from_numpy(sr), lr_t, scale, low, high).numpy()
    project_block_means(sr, lr, scale)
    if math.isinf(low) and math.isinf(high):
        return sr
    if not bool(_inside_limits(sr, low, high)):
        _clip_to_limits(sr, lr, scale, low, high)
    return sr


def _inside_limits(sr: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Whether every value of ``sr`` lies in [low, high], as a 0-d bool tensor where ``sr``
    is (reading it needs no wait for a GPU until asked). False where a value is NaN, which
    sends the chunk to the exact search, as before."""
    if sr.numel() == 0:
        return torch.ones((), dtype=torch.bool, device=sr.device)
    lo, hi = torch.aminmax(sr)
    return (lo >= low) & (hi <= high)


def _clip_to_limits(
    sr: torch.Tensor, lr: torch.Tensor, scale: int, low: float, high: float
) -> None:
    """The constrained projection, in place, of blocks already projected by
    :func:`_project_mean`: blocks with a value outside [low, high] get the shift ``t`` that
    makes ``clip(block + t, low, high)`` average to their ``lr`` pixel clipped to the range."""
    bands, h, w = lr.shape
    blocks = sr.view(bands, h, scale, w, scale)
    outside = ((blocks < low) | (blocks > high)).any(dim=4).any(dim=2)
    if bool(outside.any()):
        b, y, x = torch.nonzero(outside, as_tuple=True)
        sub = blocks[b, y, :, x, :]  # (n, scale, scale)
        target = lr[b, y, x].clamp(low, high)
        shift_low = low - sub.amax(dim=(1, 2))  # every pixel at `low`
        shift_high = high - sub.amin(dim=(1, 2))  # every pixel at `high`
        for _ in range(40):  # the block mean is monotone in the shift
            mid = (shift_low + shift_high) / 2
            below = (sub + mid[:, None, None]).clamp(low, high).mean(dim=(1, 2)) < target
            shift_low = torch.where(below, mid, shift_low)
            shift_high = torch.where(below, shift_high, mid)
        shift = (shift_low + shift_high) / 2
        blocks[b, y, :, x, :] = (sub + shift[:, None, None]).clamp(low, high)


def output_limits(dtype: np.dtype, nodata: float | None) -> tuple[float, float]:
    """Range valid output pixels may take: the dtype's, minus a nodata value at either end,
    as the floats nearest inside it (float64 rounds int64/uint64 limits outwards, to 2**63
    and 2**64, which would wrap around on the cast back)."""
    if dtype.kind == "f":
        return -math.inf, math.inf
    info = np.iinfo(dtype)
    low, high = int(info.min), int(info.max)
    if nodata is not None and not math.isnan(nodata):
        if nodata == float(low):  # nodata arrives as a float
            low += 1
        elif nodata == float(high):
            high -= 1
    low_f, high_f = float(low), float(high)
    if low_f < low:
        low_f = math.nextafter(low_f, math.inf)
    if high_f > high:
        high_f = math.nextafter(high_f, -math.inf)
    return low_f, high_f


_TORCH_INTEGERS = {
    "uint8": torch.uint8,
    "int8": torch.int8,
    "uint16": torch.uint16,
    "int16": torch.int16,
    "int32": torch.int32,
}


def to_output_dtype(
    sr: np.ndarray | torch.Tensor,
    valid: np.ndarray,
    scale: int,
    dtype: np.dtype,
    nodata: float | None,
    *,
    inplace: bool = False,
) -> np.ndarray:
    """Clip and round to ``dtype``; pixels from nodata sources become nodata (or NaN).

    ``sr`` may be a tensor on a GPU: rounding and clipping run there, before the copy back.
    ``inplace`` lets rounding overwrite ``sr`` instead of a copy of it.
    """
    t = torch.as_tensor(sr)
    valid_t = None if valid.all() else torch.from_numpy(np.ascontiguousarray(valid)).to(t.device)
    values = _device_output(t, valid_t, scale, dtype, nodata, inplace).cpu().numpy()
    return _host_output(values, valid, scale, dtype, nodata)


def _device_output(
    t: torch.Tensor,
    valid: torch.Tensor | None,
    scale: int,
    dtype: np.dtype,
    nodata: float | None,
    inplace: bool,
) -> torch.Tensor:
    """The part of :func:`to_output_dtype` that runs where ``t`` is: rounding, clipping and
    the integer conversion. ``valid`` is the per-input-pixel validity there, or None when
    all pixels are valid. Float outputs come back as they are."""
    if dtype.kind == "f":
        return t
    low, high = output_limits(dtype, nodata)  # data never turns into nodata
    if dtype.itemsize >= 4:  # float32 cannot hold int32 limits exactly (2**31 - 1 -> 2**31)
        t = t.double()
        inplace = True  # a copy already
    # round half to even, as numpy's rint; in place, a fresh output-size tensor costs page faults
    t = t.round_() if inplace else t.round()
    t.clamp_(low, high)
    if nodata is not None and not math.isnan(nodata) and low < nodata < high:
        hit = t == nodata
        if valid is not None:
            bands, h, w = valid.shape
            hit.view(bands, h, scale, w, scale).logical_and_(valid[:, :, None, :, None])
        t.masked_fill_(hit, nodata + 1)  # indexing with a mask would wait for a GPU
    # convert where the data is: a uint8 copy off a GPU moves a quarter of float32's bytes
    torch_dtype = _TORCH_INTEGERS.get(dtype.name)
    return t.to(torch_dtype) if torch_dtype else t


def _host_output(
    values: np.ndarray, valid: np.ndarray, scale: int, dtype: np.dtype, nodata: float | None
) -> np.ndarray:
    """The host part of :func:`to_output_dtype`: ``dtype``, and nodata under invalid pixels.
    Float values may be a reused buffer, and are copied; integers are a new array already."""
    out = values.astype(dtype, copy=dtype.kind == "f")
    if valid.all():  # the common case: no output-size mask is built
        return out
    hr_valid = _nearest(valid, scale)
    if dtype.kind == "f":
        out[~hr_valid] = np.nan if nodata is None else nodata
    else:
        # under a mask without a nodata value: 0, whatever the network made of the fill
        fill = nodata if nodata is not None and not math.isnan(nodata) else 0
        out[~hr_valid] = dtype.type(fill)
    return out


def _nearest(array: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upsampling of the last two axes by ``scale``."""
    return np.repeat(np.repeat(array, scale, axis=-2), scale, axis=-1)
