"""How a low-resolution training input is made from a high-resolution window.

A super-resolution model learns to invert one degradation; used on another it does worse
(see the training notes: box-averaged and bicubic-antialiased LR differ measurably). So the
degradation is a named, configurable part of training, and the default for real scenes mixes
several. All functions take and return float tensors shaped (N, C, H, W); H and W must be
multiples of ``scale``. Every kernel sums to one, so a degradation commutes with the affine
per-band normalisation and keeps a constant image constant.

LR pixel ``i`` covers HR pixels ``[i*scale, (i+1)*scale)``: every degradation here keeps that
pixel-area alignment (the one GDAL and rasterio use), so LR and HR stay co-registered.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from geosr.errors import ConfigError, InputError
from geosr.mtf import DEFAULT_MTF_AT_NYQUIST, blur_decimate, mtf_sigma

#: A degradation: ``fn(hr, scale, **options) -> lr``.
DegradationFn = Callable[..., torch.Tensor]

#: Registered degradations by name; :func:`register` adds one.
DEGRADATIONS: dict[str, DegradationFn] = {}

#: Kinds the ``"mixed"`` degradation draws from by default.
DEFAULT_MIX = ("bicubic", "box", "gaussian")


def register(name: str) -> Callable[[DegradationFn], DegradationFn]:
    """Decorator that adds a degradation to :data:`DEGRADATIONS` under ``name``."""

    def decorate(fn: DegradationFn) -> DegradationFn:
        if name in DEGRADATIONS:
            raise ConfigError(f"degradation {name!r} is already registered")
        DEGRADATIONS[name] = fn
        return fn

    return decorate


def _check(hr: torch.Tensor, scale: int) -> None:
    if hr.dim() != 4:
        raise InputError(f"degradations take (N, C, H, W) tensors, got shape {tuple(hr.shape)}")
    if int(scale) != scale or scale < 1:
        raise ConfigError(f"scale must be a positive integer, got {scale}")
    if hr.shape[-2] % scale or hr.shape[-1] % scale:
        raise InputError(
            f"HR size {hr.shape[-2]}x{hr.shape[-1]} is not a multiple of scale {scale}; "
            "crop the patch to a multiple of the scale"
        )


@register("bicubic")
def bicubic(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """Antialiased bicubic downsampling, as PIL / MATLAB ``imresize`` do (kernel widened by
    ``scale``). The standard SR benchmark degradation."""
    _check(hr, scale)
    size = (hr.shape[-2] // scale, hr.shape[-1] // scale)
    return F.interpolate(hr, size=size, mode="bicubic", antialias=True, align_corners=False)


@register("box")
def box(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """Mean over each ``scale x scale`` block: how a detector integrates light over a pixel.

    A model trained on it preserves radiometry exactly: box-averaging its output reproduces
    the input.
    """
    _check(hr, scale)
    return F.avg_pool2d(hr, scale)


@register("gaussian")
def gaussian(hr: torch.Tensor, scale: int, sigma: float | None = None) -> torch.Tensor:
    """Gaussian blur (the sensor's MTF) and decimation to the LR grid.

    ``sigma`` in HR pixels; by default :func:`mtf_sigma` (MTF 0.3 at the LR Nyquist frequency).
    Edges are reflected. Separable: one strided convolution per axis.
    """
    _check(hr, scale)
    sigma = mtf_sigma(scale) if sigma is None else float(sigma)
    return blur_decimate(hr, scale, sigma)


def add_noise(
    lr: torch.Tensor, std: float | torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Add white Gaussian noise of standard deviation ``std`` (normalised units; 1 is the
    p1-p99 range of a band). ``std`` may be one value per sample, shaped (N,)."""
    std = torch.as_tensor(std, dtype=lr.dtype)
    if std.dim() == 1:
        std = std.view(-1, 1, 1, 1)
    noise = torch.randn(lr.shape, generator=generator, dtype=lr.dtype, device=lr.device)
    return lr + std.to(lr.device) * noise


@dataclass(frozen=True)
class DegradationConfig:
    """The degradation of training (and validation) samples.

    Attributes:
        kind: a name in :data:`DEGRADATIONS` (``"bicubic"``, ``"box"``, ``"gaussian"``) or
            ``"mixed"``: each sample draws one of ``mix`` from the data generator. Mixed is the
            default because a model meant for real scenes should not overfit one synthetic
            degradation (training notes: box vs bicubic LR measurably differ).
        mix: the kinds ``"mixed"`` draws from, uniformly.
        sigma: Gaussian blur sigma in HR pixels; None derives it from ``mtf_at_nyquist``.
        mtf_at_nyquist: the sensor MTF at the LR Nyquist frequency, used when sigma is None.
        noise: maximum noise standard deviation in normalised units; each sample draws its
            std uniformly from ``[0, noise]`` (0 = no noise, the default).
    """

    kind: str = "mixed"
    mix: tuple[str, ...] = field(default=DEFAULT_MIX)
    sigma: float | None = None
    mtf_at_nyquist: float = DEFAULT_MTF_AT_NYQUIST
    noise: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "mix", tuple(self.mix))
        names = [self.kind] if self.kind != "mixed" else list(self.mix)
        unknown = [n for n in names if n not in DEGRADATIONS]
        if unknown or not names:
            raise ConfigError(
                f"unknown degradation {', '.join(map(repr, unknown)) or '(empty mix)'}; "
                f"use one of {', '.join(DEGRADATIONS)} or 'mixed'"
            )
        if self.noise < 0:
            raise ConfigError(f"noise must be >= 0, got {self.noise}")
        if self.sigma is not None and not self.sigma > 0:
            raise ConfigError(f"gaussian sigma must be positive, got {self.sigma}")
        mtf_sigma(2, self.mtf_at_nyquist)  # validates the range

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds samples can get: one, or the mix."""
        return self.mix if self.kind == "mixed" else (self.kind,)

    def choose(self, rng: np.random.Generator) -> str:
        """Draw a kind for one sample (always one draw, so the stream stays aligned)."""
        index = int(rng.integers(len(self.kinds)))
        return self.kinds[index]

    def apply(self, hr: torch.Tensor, scale: int, kind: str) -> torch.Tensor:
        """Degrade ``hr`` with the named kind (one of :attr:`kinds`)."""
        if kind == "gaussian":
            return gaussian(hr, scale, sigma=self.sigma_for(scale))
        return DEGRADATIONS[kind](hr, scale)

    def sigma_for(self, scale: int) -> float:
        """The Gaussian sigma (HR pixels) this config uses at ``scale``."""
        return self.sigma if self.sigma is not None else mtf_sigma(scale, self.mtf_at_nyquist)

    def apply_numpy(self, hr: np.ndarray, scale: int, kind: str) -> np.ndarray:
        """The same degradation on one float32 numpy patch (C, H, W), as two small matrix
        products (see :func:`operator_matrix`); equal to :meth:`apply` to float rounding and
        about a hundred times faster on a busy CPU than torch's small-tensor kernels."""
        sigma = self.sigma_for(scale) if kind == "gaussian" else None
        rows = operator_matrix(kind, hr.shape[-2], scale, sigma)
        cols = operator_matrix(kind, hr.shape[-1], scale, sigma)
        return rows @ hr @ cols.T

    def describe(self) -> str:
        """One line for checkpoint provenance (``trained_on``)."""
        text = self.kind if self.kind != "mixed" else f"mixed({', '.join(self.mix)})"
        if "gaussian" in self.kinds:
            text += (
                f", gaussian sigma {self.sigma:g}"
                if self.sigma is not None
                else f", gaussian MTF {self.mtf_at_nyquist:g} at Nyquist"
            )
        if self.noise:
            text += f", noise std up to {self.noise:g}"
        return text


@functools.lru_cache(maxsize=64)
def operator_matrix(kind: str, size: int, scale: int, sigma: float | None = None) -> np.ndarray:
    """The degradation along one axis of length ``size`` as a (size // scale, size) matrix.

    Every degradation here is linear and separable, so ``M_rows @ patch @ M_cols.T`` equals it
    exactly. The matrix is read off the torch function itself (degrading images that are
    constant along the other axis), so the two can never disagree. Cached per shape.
    """
    impulses = torch.zeros(size, 1, size, size, dtype=torch.float64)
    impulses[torch.arange(size), 0, torch.arange(size), :] = 1.0
    options = {"sigma": sigma} if kind == "gaussian" else {}
    out = DEGRADATIONS[kind](impulses, scale, **options)  # constant along W: any column will do
    matrix = out[:, 0, :, 0].T.contiguous().numpy().astype(np.float32)
    matrix.setflags(write=False)
    return matrix


def degrade(
    hr: torch.Tensor,
    scale: int,
    kinds: str | Sequence[str] = "bicubic",
    config: DegradationConfig | None = None,
) -> torch.Tensor:
    """Degrade a batch, one kind for all samples or one kind per sample.

    A convenience for evaluation code that degrades HR scenes "as training does"; noise is not
    added here (it is random, pass the result to :func:`add_noise`).
    """
    config = config or DegradationConfig(kind="mixed")
    if isinstance(kinds, str):
        return config.apply(hr, scale, kinds)
    if len(kinds) != hr.shape[0]:
        raise ConfigError(f"got {len(kinds)} degradation kinds for a batch of {hr.shape[0]}")
    return torch.cat([config.apply(hr[i : i + 1], scale, k) for i, k in enumerate(kinds)])
