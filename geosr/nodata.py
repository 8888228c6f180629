"""Nodata: which values are missing, and how they are filled before a network sees them.

A pixel is missing where it holds the nodata value, is NaN or infinite, or where the raster's
alpha band or per-dataset mask (internal or ``.msk``) is 0.

Inference and training share these, so the network sees at inference the same fill it
learned on. The fill is bounded (:data:`FILL_RADIUS`), which keeps tiled inference exact.
"""

from __future__ import annotations

import math

import numpy as np

#: Rounds of neighbour-mean filling of nodata; inference adds them to the halo.
FILL_RADIUS = 4
#: Normalised value given to nodata pixels farther than FILL_RADIUS from valid data.
FILL_VALUE = 0.5


def valid_mask(
    values: np.ndarray, nodata: float | None, mask: np.ndarray | None = None
) -> np.ndarray:
    """True per element (same shape as ``values``) where it holds data: not the nodata value,
    finite for floats, and not hidden by ``mask`` (the pixels' alpha or per-dataset mask,
    shaped as the last two axes of ``values``: 0 = masked). Reduce with ``.all(axis=0)`` for
    pixels valid in every band."""
    if values.dtype.kind == "f":
        valid = np.isfinite(values)
        if nodata is not None and not math.isnan(nodata):
            valid &= values != nodata
    elif nodata is None:
        valid = np.ones(values.shape, bool)
    else:
        valid = values != nodata
    if mask is not None:
        valid &= mask != 0
    return valid


def fill_invalid(x: np.ndarray, valid: np.ndarray, rounds: int = FILL_RADIUS) -> np.ndarray:
    """Give invalid elements of ``x`` (bands, H, W) the mean of their valid 3x3 neighbours,
    ``rounds`` times outwards, then :data:`FILL_VALUE`; so the network sees no step at data
    edges (no dark halos). ``valid`` is per element or per pixel (H, W). The result at a pixel
    depends only on inputs within ``rounds`` pixels, which keeps tiling exact."""
    if valid.all():
        return x.astype(np.float32, copy=False)
    x = np.where(valid, x, 0.0).astype(np.float32)
    known = np.broadcast_to(valid, x.shape).astype(np.float32)
    for _ in range(rounds):
        if known.all():
            break
        total = _box3_sum(x * known)
        count = _box3_sum(known)
        grow = (known == 0) & (count > 0)
        x = np.where(grow, total / np.maximum(count, 1), x)
        known = np.where(grow, 1.0, known).astype(np.float32)
    return np.where(known > 0, x, FILL_VALUE).astype(np.float32)


def _box3_sum(a: np.ndarray) -> np.ndarray:
    padded = np.pad(a, ((0, 0), (1, 1), (1, 1)))
    h, w = a.shape[-2:]
    return sum(padded[:, dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3))
