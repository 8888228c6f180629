"""Image quality metrics for multispectral super-resolution, on numpy arrays.

Every metric takes ``pred`` and ``target`` shaped ``(bands, H, W)`` (a 2-D array is one band)
and an optional boolean ``valid`` mask ``(H, W)``: pixels where it is False (nodata, scene-edge
fill) are left out of every statistic, so fill never counts as a perfect or a terrible match.
Metrics that depend on the value scale (PSNR, SSIM) need an explicit ``data_range``: guessing
it from the data (as scikit-image does for floats) makes numbers from different scenes or
dtypes incomparable. A scalar applies to all bands; a sequence gives one range per band.

Per-band metrics are averaged over bands with equal weight (``per_band=True`` returns the
per-band values instead). All arithmetic is float64.

References:
    PSNR/SSIM: Wang, Bovik, Sheikh, Simoncelli 2004, "Image quality assessment: from error
    visibility to structural similarity", IEEE TIP 13(4).
    UIQI: Wang, Bovik 2002, "A universal image quality index", IEEE SPL 9(3).
    SAM: Kruse et al. 1993, "The spectral image processing system (SIPS)".
    ERGAS: Wald 2000, "Quality of high resolution synthesised images: is there a simple
    criterion?", Fusion of Earth Data.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TypeAlias

import numpy as np
import torch
import torch.nn.functional as F
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.warp import reproject

from geosr.errors import InputError

log = logging.getLogger(__name__)

ArrayLike: TypeAlias = np.ndarray
DataRange: TypeAlias = float | Sequence[float] | np.ndarray

__all__ = [
    "all_metrics",
    "bicubic_upsample",
    "ergas",
    "gaussian_kernel",
    "high_frequency_power_ratio",
    "lanczos_upsample",
    "mean_gradient_magnitude",
    "psnr",
    "sam",
    "ssim",
    "uiqi",
]


# --- input handling ----------------------------------------------------------------------------


def _as_bands(array: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise InputError(f"{name} must be shaped (bands, H, W) or (H, W), got shape {array.shape}")
    return array.astype(np.float64, copy=False)


def _pair(
    pred: np.ndarray, target: np.ndarray, valid: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both images as float64 (bands, H, W) and the mask as bool (H, W), all checked."""
    p, t = _as_bands(pred, "pred"), _as_bands(target, "target")
    if p.shape != t.shape:
        raise InputError(f"pred and target shapes differ: {p.shape} vs {t.shape}")
    if valid is None:
        mask = np.ones(p.shape[1:], dtype=bool)
    else:
        mask = np.asarray(valid, dtype=bool)
        if mask.shape != p.shape[1:]:
            raise InputError(f"valid mask must be shaped (H, W) = {p.shape[1:]}, got {mask.shape}")
    if not mask.any():
        raise InputError("the valid mask excludes every pixel; there is nothing to compare")
    return p, t, mask


def _ranges(data_range: DataRange, bands: int) -> np.ndarray:
    values = np.asarray(data_range, dtype=np.float64).ravel()
    if values.size not in (1, bands):
        raise InputError(f"data_range needs 1 or {bands} values (one per band), got {values.size}")
    ranges = np.broadcast_to(values, (bands,))
    if not np.all(np.isfinite(ranges)) or np.any(ranges <= 0):
        raise InputError(f"data_range must be positive and finite, got {data_range!r}")
    return ranges


def _reduce(per_band: np.ndarray, keep: bool) -> float | np.ndarray:
    return per_band if keep else float(np.mean(per_band))


# --- PSNR --------------------------------------------------------------------------------------


def psnr(
    pred: np.ndarray,
    target: np.ndarray,
    data_range: DataRange,
    valid: np.ndarray | None = None,
    *,
    per_band: bool = False,
) -> float | np.ndarray:
    """Peak signal-to-noise ratio in dB, ``10 log10(R^2 / MSE)`` per band over valid pixels.

    Identical bands give ``inf``. The mean over bands is the mean of per-band PSNRs, not the
    PSNR of the pooled MSE that ``skimage.metrics.peak_signal_noise_ratio`` gives for a
    multiband array, so each band (with its own range) counts the same.

    Example:
        >>> a = np.zeros((1, 4, 4)); b = a + 0.1
        >>> round(psnr(b, a, data_range=1.0), 6)
        20.0
    """
    p, t, mask = _pair(pred, target, valid)
    ranges = _ranges(data_range, p.shape[0])
    mse = ((p - t) ** 2)[:, mask].mean(axis=1)
    with np.errstate(divide="ignore"):
        values = 10.0 * np.log10(ranges**2 / mse)
    return _reduce(values, per_band)


# --- windowed statistics (SSIM, UIQI) ----------------------------------------------------------


def gaussian_kernel(sigma: float, truncate: float = 3.5) -> np.ndarray:
    """Normalised 1-D Gaussian taps, radius ``int(truncate * sigma + 0.5)``.

    The same taps as ``scipy.ndimage.gaussian_filter1d``; with ``sigma=1.5, truncate=3.5`` this
    is the 11-tap window of Wang et al. 2004 and of scikit-image's ``gaussian_weights=True``.
    """
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-0.5 * (x / sigma) ** 2)
    return taps / taps.sum()


def _filter_valid(images: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable correlation over (..., H, W) keeping only fully inside windows ("valid" mode).

    Windows that would need padding are dropped, which is exactly the border scikit-image
    crops from its SSIM map, so no padding convention leaks into the result. Shifted sums in
    numpy beat a one-channel ``conv2d`` here and need no scipy.
    """
    n = len(taps)
    rows = images.shape[-2] - n + 1
    out = taps[0] * images[..., 0:rows, :]
    for k in range(1, n):
        out += taps[k] * images[..., k : rows + k, :]
    cols = images.shape[-1] - n + 1
    result = taps[0] * out[..., 0:cols]
    for k in range(1, n):
        result += taps[k] * out[..., k : cols + k]
    return result


def _local_moments(
    p: np.ndarray, t: np.ndarray, mask: np.ndarray, taps: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Weighted local means, variances and covariance over valid pixels only.

    ``p`` and ``t`` are single bands (H, W). Invalid pixels get zero weight (normalised
    convolution), so their values never enter a statistic. Returns ``(mu_p, mu_t, var_p, var_t, cov, full)`` where ``full`` marks windows
    that lie entirely on valid pixels.
    """
    m = mask.astype(np.float64)
    p0, t0 = p * m, t * m  # zero the invalid pixels so they cannot contaminate the sums
    stack = np.stack([p0, t0, p0 * p, t0 * t, p0 * t])  # (5, H, W)
    sums = _filter_valid(stack, taps)
    weight = _filter_valid(m, taps)
    full = weight > 1.0 - 1e-9
    safe = np.where(weight > 0, weight, 1.0)
    mu_p, mu_t, e_pp, e_tt, e_pt = (s / safe for s in sums)
    return mu_p, mu_t, e_pp - mu_p**2, e_tt - mu_t**2, e_pt - mu_p * mu_t, full


def _check_size(shape: tuple[int, ...], size: int, metric: str) -> None:
    if min(shape[-2:]) < size:
        raise InputError(
            f"{metric} needs images of at least {size}x{size} pixels (its window), got "
            f"{shape[-2]}x{shape[-1]}"
        )


def _check_windows(full: np.ndarray, size: int, metric: str) -> None:
    if not full.any():
        raise InputError(
            f"{metric}: no {size}x{size} window lies entirely on valid pixels; pass a larger "
            "valid area or a smaller window"
        )


def ssim(
    pred: np.ndarray,
    target: np.ndarray,
    data_range: DataRange,
    valid: np.ndarray | None = None,
    *,
    sigma: float = 1.5,
    truncate: float = 3.5,
    k1: float = 0.01,
    k2: float = 0.03,
    per_band: bool = False,
) -> float | np.ndarray:
    """Structural similarity of Wang et al. 2004 with an 11x11 Gaussian window (sigma 1.5).

    ``SSIM = (2 mu_x mu_y + C1)(2 cov + C2) / ((mu_x^2 + mu_y^2 + C1)(var_x + var_y + C2))``
    with ``C1 = (k1 R)^2``, ``C2 = (k2 R)^2`` and population (not sample) moments. The SSIM
    map is averaged over windows that lie entirely on valid pixels.

    Without a mask this equals ``skimage.metrics.structural_similarity(target, pred,
    data_range=R, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    channel_axis=0)`` (which also drops the window radius at the borders). With a rectangular
    valid block it equals that call on the block.
    """
    p, t, mask = _pair(pred, target, valid)
    ranges = _ranges(data_range, p.shape[0])
    taps = gaussian_kernel(sigma, truncate)
    _check_size(p.shape, len(taps), "SSIM")
    values = np.empty(p.shape[0])
    for band in range(p.shape[0]):  # band by band keeps memory at a few images
        mu_p, mu_t, var_p, var_t, cov, full = _local_moments(p[band], t[band], mask, taps)
        _check_windows(full, len(taps), "SSIM")
        c1, c2 = (k1 * ranges[band]) ** 2, (k2 * ranges[band]) ** 2
        num = (2 * mu_p * mu_t + c1) * (2 * cov + c2)
        den = (mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2)
        values[band] = (num / den)[full].mean()
    return _reduce(values, per_band)


def uiqi(
    pred: np.ndarray,
    target: np.ndarray,
    valid: np.ndarray | None = None,
    *,
    block_size: int = 8,
    per_band: bool = False,
) -> float | np.ndarray:
    """Universal image quality index Q of Wang & Bovik 2002, in a sliding square window.

    ``Q = 4 cov mu_x mu_y / ((var_x + var_y)(mu_x^2 + mu_y^2))``: correlation x luminance x
    contrast, 1 only for identical windows. It is SSIM with C1 = C2 = 0 and a uniform window
    (``block_size`` 8 as in the paper), averaged over windows entirely on valid pixels. Where
    both windows are flat (zero variance) Q reduces to its luminance term
    ``2 mu_x mu_y / (mu_x^2 + mu_y^2)`` (1 if both means are zero); scale-free, so it needs no
    data range.
    """
    if block_size < 2:
        raise InputError(f"UIQI block_size must be at least 2, got {block_size}")
    p, t, mask = _pair(pred, target, valid)
    taps = np.full(block_size, 1.0 / block_size)
    _check_size(p.shape, block_size, "UIQI")
    values = np.array([_uiqi_band(p[b], t[b], mask, taps) for b in range(p.shape[0])])
    return _reduce(values, per_band)


def _uiqi_band(p: np.ndarray, t: np.ndarray, mask: np.ndarray, taps: np.ndarray) -> float:
    mu_p, mu_t, var_p, var_t, cov, full = _local_moments(p, t, mask, taps)
    _check_windows(full, len(taps), "UIQI")
    # moments from sums of squares carry rounding noise; treat tiny variances as flat
    scale = np.maximum(mu_p**2 + mu_t**2, 1e-300)
    flat = (var_p + var_t) <= 1e-12 * scale
    lum_den = mu_p**2 + mu_t**2
    luminance = np.where(lum_den > 0, 2 * mu_p * mu_t / np.where(lum_den > 0, lum_den, 1), 1.0)
    den = (var_p + var_t) * lum_den
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.where(den > 0, 4 * cov * mu_p * mu_t / np.where(den > 0, den, 1), 0.0)
    q = np.where(flat, luminance, q)
    return float(q[full].mean())


# --- spectral and global metrics ---------------------------------------------------------------


def sam(
    pred: np.ndarray,
    target: np.ndarray,
    valid: np.ndarray | None = None,
    *,
    per_pixel: bool = False,
) -> float | np.ndarray:
    """Mean spectral angle in radians between the pixel spectra of ``pred`` and ``target``.

    The angle between two spectra ignores their brightness, so it measures whether band
    *ratios* are kept: a spectrum scaled by any positive factor has angle 0, orthogonal spectra
    pi/2. Computed with Kahan's stable formula ``2 atan2(|u - v|, |u + v|)`` on unit vectors,
    exact near 0 where ``arccos`` loses half its digits. Pixels where either spectrum is all
    zero have no angle and are skipped like invalid pixels. Compute it on radiometry (DN or
    reflectance), not on values shifted by a normalisation offset, or the angles change.

    Returns the mean over valid pixels, or with ``per_pixel=True`` the (H, W) angle map with
    NaN where no angle is defined.
    """
    p, t, mask = _pair(pred, target, valid)
    norm_p = np.sqrt((p**2).sum(axis=0))
    norm_t = np.sqrt((t**2).sum(axis=0))
    defined = mask & (norm_p > 0) & (norm_t > 0)
    if not defined.any():
        raise InputError("SAM: every valid pixel has an all-zero spectrum; no angle is defined")
    u = p / np.where(norm_p > 0, norm_p, 1.0)
    v = t / np.where(norm_t > 0, norm_t, 1.0)
    angle = 2.0 * np.arctan2(
        np.sqrt(((u - v) ** 2).sum(axis=0)), np.sqrt(((u + v) ** 2).sum(axis=0))
    )
    if per_pixel:
        return np.where(defined, angle, np.nan)
    return float(angle[defined].mean())


def ergas(
    pred: np.ndarray,
    target: np.ndarray,
    scale: float,
    valid: np.ndarray | None = None,
) -> float:
    """ERGAS of Wald 2000: ``100 / scale * sqrt(mean_b (RMSE_b / mu_b)^2)``.

    ``scale`` is the resolution ratio (4 for 4x super-resolution: the ``h/l`` pixel-size ratio
    of the formula is ``1/scale``); ``mu_b`` is the mean of the target band over valid pixels.
    Lower is better, 0 is perfect. Relative errors make it comparable across bands and
    sensors, which is why it needs radiometry with a positive mean, not zero-centred values.
    """
    if not scale > 0:
        raise InputError(f"ERGAS scale must be positive, got {scale}")
    p, t, mask = _pair(pred, target, valid)
    rmse = np.sqrt(((p - t) ** 2)[:, mask].mean(axis=1))
    mean = t[:, mask].mean(axis=1)
    if np.any(mean == 0):
        raise InputError(
            "ERGAS is undefined for a band whose reference mean is 0; compute it on radiometry "
            "(DN or reflectance), not on normalised or zero-centred values"
        )
    return float(100.0 / scale * np.sqrt(np.mean((rmse / mean) ** 2)))


def mean_gradient_magnitude(
    image: np.ndarray, valid: np.ndarray | None = None, *, per_band: bool = False
) -> float | np.ndarray:
    """Mean length of the forward-difference gradient per band: high-frequency energy.

    Compare it between a super-resolved image and its reference: much lower means blur (the
    typical PSNR-trained output), much higher means invented texture or noise. Only gradients
    whose three pixels (centre, right, below) are all valid count.
    """
    x = _as_bands(image, "image")
    if min(x.shape[-2:]) < 2:
        raise InputError(f"gradients need at least 2x2 pixels, got {x.shape[-2]}x{x.shape[-1]}")
    if valid is None:
        mask = np.ones(x.shape[1:], dtype=bool)
    else:
        mask = np.asarray(valid, dtype=bool)
        if mask.shape != x.shape[1:]:
            raise InputError(f"valid mask must be shaped {x.shape[1:]}, got {mask.shape}")
    gx = x[:, :-1, 1:] - x[:, :-1, :-1]
    gy = x[:, 1:, :-1] - x[:, :-1, :-1]
    ok = mask[:-1, :-1] & mask[:-1, 1:] & mask[1:, :-1]
    if not ok.any():
        raise InputError("no pixel with valid right and lower neighbours; nothing to measure")
    values = np.sqrt(gx**2 + gy**2)[:, ok].mean(axis=1)
    return _reduce(values, per_band)


#: Smallest image side for the power spectrum: the Hann window zeroes the edge pixels, and
#: smaller images leave too few frequencies above half Nyquist to average.
HF_MIN_SIZE = 8


def high_frequency_power_ratio(
    pred: np.ndarray,
    target: np.ndarray,
    valid: np.ndarray | None = None,
    *,
    per_band: bool = False,
) -> float | np.ndarray:
    """Power above half Nyquist of ``pred`` over that of ``target``: texture, by frequency.

    Per band: invalid pixels are filled with the band's valid mean, the mean is subtracted, a
    2-D Hann window tapers the edges (so the image border does not leak power into every
    frequency) and the power spectrum is averaged over the frequencies whose radius lies in
    (0.5, 1] of Nyquist (0.5 cycles per pixel): the top octave, inside the Nyquist circle.
    Below 1 means missing fine detail (blur), above 1 invented texture or noise; bicubic
    upsampling has almost no power there. Unlike :func:`mean_gradient_magnitude` it ignores
    the edges and ramps of coarser structures. A band whose target has no power there has no
    ratio (NaN); the mean is over the other bands.

    Example:
        >>> rng = np.random.default_rng(0); a = rng.normal(size=(32, 32))
        >>> high_frequency_power_ratio(a, a)
        1.0
    """
    p, t, mask = _pair(pred, target, valid)
    if min(p.shape[-2:]) < HF_MIN_SIZE:
        raise InputError(
            f"high-frequency power needs at least {HF_MIN_SIZE}x{HF_MIN_SIZE} pixels, got "
            f"{p.shape[-2]}x{p.shape[-1]}"
        )
    window = np.outer(np.hanning(p.shape[1]), np.hanning(p.shape[2]))
    band = _high_frequency_band(p.shape[1], p.shape[2])
    values = np.empty(p.shape[0])
    for b in range(p.shape[0]):
        power_t = _band_power(t[b], mask, window, band)
        power_p = _band_power(p[b], mask, window, band)
        values[b] = power_p / power_t if power_t > 0 else math.nan
    if per_band:
        return values
    defined = values[np.isfinite(values)]
    return float(defined.mean()) if defined.size else math.nan


def _high_frequency_band(height: int, width: int) -> np.ndarray:
    """(H, W) mask of the FFT bins with radius in (0.5, 1], Nyquist (0.5 cycles/pixel) = 1."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.fftfreq(width)[None, :]
    radius = np.sqrt(fx**2 + fy**2) / 0.5
    return (radius > 0.5) & (radius <= 1.0)


def _band_power(image: np.ndarray, mask: np.ndarray, window: np.ndarray, band: np.ndarray) -> float:
    """Mean FFT power over ``band`` of one mean-filled, mean-free, Hann-windowed band (0 for
    a constant band, exactly: the mean's rounding would otherwise leave a tiny power)."""
    values = image[mask]
    if np.ptp(values) == 0:
        return 0.0
    mean = values.mean()
    centred = np.where(mask, image - mean, 0.0)
    power = np.abs(np.fft.fft2(centred * window)) ** 2
    return float(power[band].mean())


def all_metrics(
    pred: np.ndarray,
    target: np.ndarray,
    data_range: DataRange,
    scale: float,
    valid: np.ndarray | None = None,
) -> dict[str, float]:
    """PSNR, SSIM, SAM, ERGAS and UIQI of one image pair, as the trainer and evaluate report.

    SAM is left out (NaN) for a single band, where it is always 0 and says nothing.
    """
    bands = _as_bands(target, "target").shape[0]
    return {
        "psnr": float(psnr(pred, target, data_range, valid)),
        "ssim": float(ssim(pred, target, data_range, valid)),
        "sam": float(sam(pred, target, valid)) if bands > 1 else math.nan,
        "ergas": ergas(pred, target, scale, valid),
        "uiqi": float(uiqi(pred, target, valid)),
    }


# --- reference upsamplers ----------------------------------------------------------------------


def _check_upsample(image: np.ndarray, scale: int) -> np.ndarray:
    if int(scale) != scale or scale < 1:
        raise InputError(f"upsampling scale must be a positive integer, got {scale}")
    return _as_bands(image, "image")


def bicubic_upsample(image: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic upsampling (Keys, a = -0.75, edge pixels replicated), float64 (bands, sH, sW).

    The same interpolation as the generator's bicubic skip (``F.interpolate(mode="bicubic",
    align_corners=False)``), so "model vs bicubic" compares against what the model adds to.
    """
    x = _check_upsample(image, scale)
    out = F.interpolate(
        torch.from_numpy(np.ascontiguousarray(x))[None],
        scale_factor=int(scale),
        mode="bicubic",
        align_corners=False,
    )
    return out[0].numpy()


def lanczos_upsample(image: np.ndarray, scale: int) -> np.ndarray:
    """Lanczos-3 upsampling by GDAL's warper, float64 (bands, sH, sW), pixel centres aligned;
    at the borders GDAL renormalises the kernel over the pixels that exist.

    The sharper classical baseline: reported beside bicubic so a model has to beat both.
    """
    x = _check_upsample(image, scale)
    out = np.empty((x.shape[0], x.shape[1] * int(scale), x.shape[2] * int(scale)), np.float64)
    crs = CRS.from_epsg(3857)  # any one CRS: both grids share it, only the pixel size changes
    reproject(
        np.ascontiguousarray(x),
        out,
        src_transform=Affine.identity(),
        src_crs=crs,
        dst_transform=Affine.scale(1 / int(scale)),
        dst_crs=crs,
        resampling=Resampling.lanczos,
        src_nodata=None,
        dst_nodata=None,
        init_dest_nodata=False,
    )
    return out
