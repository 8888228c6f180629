"""A sensor's modulation transfer function as a Gaussian, and the blur-and-decimate that
Wald's protocol and guided models use. Tensor-only: shared by training degradations
(:mod:`geosr.data.degradations`) and guided models (:mod:`geosr.models.guided`).

Coarse pixel ``i`` covers fine pixels ``[i*scale, (i+1)*scale)`` (GDAL's pixel-area
alignment), and every kernel sums to one, so constants stay constant.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from geosr.errors import ConfigError, InputError

#: Gaussian MTF value at the coarse grid's Nyquist frequency used when no sigma is given;
#: 0.2-0.3 is typical of Earth-observation sensors (the usual assumption of Wald's protocol).
DEFAULT_MTF_AT_NYQUIST = 0.3


def mtf_sigma(scale: int, mtf_at_nyquist: float = DEFAULT_MTF_AT_NYQUIST) -> float:
    """Gaussian sigma (fine pixels) whose MTF equals ``mtf_at_nyquist`` at the coarse grid's
    Nyquist frequency.

    A Gaussian PSF has MTF ``exp(-2 pi^2 sigma^2 f^2)``; at ``f = 1 / (2 scale)`` cycles per
    fine pixel this gives ``sigma = scale * sqrt(-2 ln m) / pi`` (about 0.49 * scale for m = 0.3).
    """
    if not 0 < mtf_at_nyquist < 1:
        raise ConfigError(f"mtf_at_nyquist must be between 0 and 1, got {mtf_at_nyquist}")
    return scale * math.sqrt(-2.0 * math.log(mtf_at_nyquist)) / math.pi


def block_gaussian_taps(scale: int, sigma: float) -> tuple[torch.Tensor, int]:
    """Taps of a Gaussian centred on a coarse pixel's centre, for a stride-``scale``
    convolution.

    The taps start ``radius`` pixels before the block and end ``radius`` after it; their centre
    ``(scale - 1) / 2`` is the block centre, so even scales stay aligned (no half-pixel shift).
    """
    radius = max(1, math.ceil(3.0 * sigma - (scale - 1) / 2))
    positions = torch.arange(-radius, scale + radius, dtype=torch.float64)
    taps = torch.exp(-0.5 * ((positions - (scale - 1) / 2) / sigma) ** 2)
    return taps / taps.sum(), radius


def blur_decimate(fine: torch.Tensor, scale: int, sigma: float) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, H/scale, W/scale): Gaussian blur of ``sigma`` fine pixels, then
    decimation; edges reflected. Separable: one strided convolution per axis."""
    if not sigma > 0:
        raise ConfigError(f"gaussian sigma must be positive, got {sigma}")
    taps, radius = block_gaussian_taps(scale, sigma)
    taps = taps.to(fine.dtype).to(fine.device)
    n, c, h, w = fine.shape
    if radius >= min(h, w):
        raise InputError(
            f"a {h}x{w} patch is too small for gaussian sigma {sigma:g} (kernel radius {radius})"
        )
    x = F.pad(fine.reshape(n * c, 1, h, w), (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, taps.view(1, 1, -1, 1), stride=(scale, 1))
    x = F.conv2d(x, taps.view(1, 1, 1, -1), stride=(1, scale))
    return x.reshape(n, c, h // scale, w // scale)
