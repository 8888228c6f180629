"""Per-pixel uncertainty: a calibrated estimate of each output pixel's absolute error.

A x4 network estimates the detail below the input's pixel size; how wrong that estimate is
depends on how much detail the scene holds there. The estimate here predicts the expected
absolute error of the super-resolved value from the input's own local detail, at three
scales, with a log-linear model fitted on the bundled models' errors (Wald's protocol:
degraded scenes against their originals; ``benchmarks/uncertainty.py`` fits and validates
it). It is in the band's units, computed from the input alone, so it costs no network pass,
and it is exact under tiling: a chunk with a halo of :data:`HALO` input pixels gives the
same values as the whole scene.

Measured alternatives, weaker at predicting the error (docs/uncertainty.md): the spread of
the x8 self-ensemble (8 network passes) and the spread between the strength dial's
endpoints (2 passes) both rank the error worse than the input's detail does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from geosr.nodata import fill_invalid

#: Input pixels of context a chunk needs for exact values (the filters' reach plus bicubic's).
HALO = 8


@dataclass(frozen=True)
class ErrorModel:
    """``log E|error| = intercept + strength_slope * strength + sum(w_i * log(d_i + eps))``
    in normalised units (the band's p1-p99 span is 1), where ``d_i`` is the gradient
    magnitude of the bicubic upsampling blurred by ``sigmas[i]`` fine pixels, smoothed by
    ``smooth``; ``calibration`` turns the log-space fit into a mean absolute error."""

    weights: tuple[float, ...]
    intercept: float
    strength_slope: float
    calibration: float = 1.0
    sigmas: tuple[float, ...] = (0.75, 1.5, 3.0)
    smooth: float = 1.5
    eps: float = 1e-4

    def predict(self, features: torch.Tensor, strength: float) -> torch.Tensor:
        """Expected absolute error (normalised units) from :func:`detail_features`' output."""
        log_error = torch.full_like(features[0], self.intercept + self.strength_slope * strength)
        for weight, feature in zip(self.weights, features, strict=True):
            log_error += weight * torch.log(feature + self.eps)
        return torch.exp(log_error).mul_(self.calibration)


#: Fitted by ``python benchmarks/uncertainty.py fit`` on the training rows of the bundled
#: models' training scenes, at strengths 0, 0.25, 0.5 and 1 (box and bicubic degradations).
DEFAULT_ERROR_MODEL = ErrorModel(
    weights=(2.306, -1.62, -0.014), intercept=-1.37, strength_slope=0.127, calibration=1.757
)


def _gaussian_taps(sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(4 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    taps = torch.exp(-0.5 * (x / sigma) ** 2)
    return taps / taps.sum()


def _blur_axis(image: torch.Tensor, taps: torch.Tensor, axis: int) -> torch.Tensor:
    # shifted multiply-adds: three times faster than a one-channel conv2d on CPU
    r = taps.numel() // 2
    size = image.shape[axis]
    padded = F.pad(image, (r, r, 0, 0) if axis == -1 else (0, 0, r, r), mode="replicate")
    out = padded.narrow(axis, 0, size) * float(taps[0])
    for i in range(1, taps.numel()):
        out.add_(padded.narrow(axis, i, size), alpha=float(taps[i]))
    return out


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, 1, H, W), edges replicated."""
    taps = _gaussian_taps(sigma)
    return _blur_axis(_blur_axis(image, taps, -1), taps, -2)


def gradient_magnitude(image: torch.Tensor) -> torch.Tensor:
    """Central-difference gradient magnitude of (N, 1, H, W), one-sided at the edges."""
    padded = F.pad(image, (1, 1, 1, 1), mode="replicate")
    gx = (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]) * 0.5
    gy = (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]) * 0.5
    # a replicated edge halves the one-sided difference; np.gradient does not: match it
    gx[..., 0] *= 2
    gx[..., -1] *= 2
    gy[..., 0, :] *= 2
    gy[..., -1, :] *= 2
    return torch.hypot(gx, gy)


def detail_features(
    normalised: np.ndarray, scale: int, model: ErrorModel = DEFAULT_ERROR_MODEL
) -> torch.Tensor:
    """The error model's features (k, bands, H*scale, W*scale) of normalised input bands
    (bands, H, W): the input's detail at each of ``model.sigmas`` on the output grid."""
    x = torch.from_numpy(np.ascontiguousarray(normalised, dtype=np.float32))[:, None]
    up = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
    features = [
        gaussian_blur(gradient_magnitude(gaussian_blur(up, sigma)), model.smooth)[:, 0]
        for sigma in model.sigmas
    ]
    return torch.stack(features)


def uncertainty_block(
    block: np.ndarray,
    valid: np.ndarray,
    offset: np.ndarray,
    spread: np.ndarray,
    scale: int,
    strength: float,
    model: ErrorModel = DEFAULT_ERROR_MODEL,
) -> np.ndarray:
    """Expected absolute error, in the band's units (float32, NaN where invalid), of each
    output pixel of ``block`` (bands, H, W) normalised by ``offset``/``spread`` per band."""
    x = (block.astype(np.float32) - offset[:, None, None]) / spread[:, None, None]
    if not valid.all():
        x = fill_invalid(x, valid)
    error = model.predict(detail_features(x, scale, model), strength).numpy()
    error *= spread[:, None, None].astype(np.float32)
    invalid = ~np.repeat(np.repeat(valid, scale, axis=-2), scale, axis=-1)
    error[invalid] = np.nan
    return error.astype(np.float32, copy=False)
