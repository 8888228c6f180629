"""opensr-test's correctness scores: improvement, omission and hallucination, on numpy arrays.

A re-implementation of the correctness part of opensr-test (Aybar et al. 2024, "A
comprehensive benchmark for optical remote sensing image super-resolution", IEEE GRSL;
https://github.com/ESAOpenSR/opensr-test), release 1.3.3, commit
``b42b1cba8a04b32341044f1f29474e5448499158``, with its default ``Config``, so geosr does not
need opensr-test's dependencies (satalign, kornia, OpenCV, LPIPS, CLIP...). What
``opensr_test.Metrics().compute(lr, sr, hr)`` does for these three scores
(``opensr_test/main.py``, ``Metrics.setup``, ``Metrics.sr_harm_setup``, ``Metrics.correctness``,
``Metrics._create_mask``; ``opensr_test/correctness.py``; ``opensr_test/distance.py``
``FractionalDifference``; ``opensr_test/utils.py``):

1. A 16-pixel HR border (``Config.border_mask``; ``16 // scale`` LR pixels) is cut off LR, SR
   and HR.
2. ``lr_up``: the cut LR upsampled to the HR grid, bilinear
   (``torch.nn.functional.interpolate(mode="bilinear", antialias=True)``).
3. ``sr_harm``: SR with its histogram matched to HR's, band by band
   (``skimage.exposure.match_histograms``). opensr-test then also re-aligns it to HR by
   phase correlation (satalign's PCC, sub-pixel, at most 5 pixels); that step is **not**
   re-implemented here: geosr evaluates LR synthesised from the HR itself, on the same grid,
   so there is nothing to re-align (see ``tests/test_correctness.py`` for how far the two
   differ on real outputs).
4. Distances per pixel, opensr-test's ``"nd"`` (normalised/fractional difference, its default
   ``correctness_distance``), ``mean over bands of |x - y| / |x + y + 1e-8|``:
   ``d_ref = nd(lr_up, hr)``, ``d_im = nd(sr_harm, hr)``, ``d_om = nd(sr_harm, lr_up)``.
5. Pixels kept: where any of the three exceeds the threshold, by default (``"auto"``) the
   75th percentile of ``d_ref`` (``kthvalue`` at ``int(0.75 n)``); the others, where nothing
   happens between LR and HR, are left out.
6. Relative distances ``a = d_im / d_ref``, ``b = d_om / d_ref`` and the distance of each
   pixel to the three classes, with ``H = a + b - 1``::

       improvement   = a + b (1 - exp(-0.05 H))
       omission      = b + a (1 - exp(-0.05 H))
       hallucination = exp(-0.05 a b)

7. Each pixel's softmin over the three (temperature 0.25) gives its membership of each class;
   the scores are the means of those memberships over the kept pixels
   (``correctness_norm="softmin"``), so they sum to 1. Improvement: the SR moved from the LR
   towards the HR (higher is better); omission: it stayed at the LR (detail missed);
   hallucination: it moved away from both (detail invented).

geosr adds a valid mask (nodata, scene-edge fill): invalid pixels are left out of the
histogram matching, the threshold's percentile and every mean, exactly as if they were not
there; with every pixel valid the numbers are opensr-test's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from geosr.errors import InputError

log = logging.getLogger(__name__)

__all__ = [
    "OPENSR_TEST_COMMIT",
    "OPENSR_TEST_VERSION",
    "SCORES",
    "CorrectnessReference",
    "correctness",
    "match_histograms",
    "normalized_difference",
    "relevance_mask",
    "tc_hallucination",
    "tc_improvement",
    "tc_omission",
    "upsample_lr",
]

#: The opensr-test release and commit re-implemented (``opensr_test/correctness.py``).
OPENSR_TEST_VERSION = "1.3.3"
OPENSR_TEST_COMMIT = "b42b1cba8a04b32341044f1f29474e5448499158"
#: The score names, in opensr-test's stacking order.
SCORES = ("improvement", "omission", "hallucination")
#: ``Config.border_mask``: HR pixels cut off each side before scoring.
BORDER = 16
#: ``Config.im_score``, ``om_score``, ``ha_score``: the gamma of each class distance.
IM_LAMBDA = 0.05
OM_LAMBDA = 0.05
HA_LAMBDA = 0.05
#: ``Config.correctness_temperature``: the softmin's temperature.
TEMPERATURE = 0.25
#: ``FractionalDifference.epsilon``.
EPSILON = 1e-8
#: ``Metrics.compute(gradient_threshold="auto")``: the percentile of ``d_ref`` used.
AUTO_PERCENTILE = 75


def _as_bands(array: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(array, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise InputError(f"{name} must be (bands, H, W) or (H, W), got shape {a.shape}")
    return a


def upsample_lr(lr: np.ndarray, scale: int) -> np.ndarray:
    """LR on the HR grid as opensr-test puts it there (``utils.apply_downsampling``, despite
    its name): bilinear, ``align_corners=False``, ``antialias=True``; float64
    ``(bands, H*scale, W*scale)``."""
    x = _as_bands(lr, "lr")
    if int(scale) != scale or scale < 1:
        raise InputError(f"scale must be a positive integer, got {scale}")
    if scale == 1:
        return x.copy()
    out = F.interpolate(
        torch.from_numpy(np.ascontiguousarray(x))[None],
        scale_factor=int(scale),
        mode="bilinear",
        antialias=True,
    )
    return out[0].numpy()


def normalized_difference(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """opensr-test's ``"nd"`` distance per pixel (``distance.FractionalDifference``,
    ``agg_method="pixel"``): the NaN-aware mean over bands of ``|x - y| / |x + y + 1e-8|``,
    shape ``(H, W)``. Scale-free: DN or reflectance give the same value."""
    a, b = _as_bands(x, "x"), _as_bands(y, "y")
    if a.shape != b.shape:
        raise InputError(f"x and y must have the same shape, got {a.shape} and {b.shape}")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.abs(a - b) / np.abs(a + b + EPSILON)
    finite = ~np.isnan(ratio)
    counts = finite.sum(axis=0)
    with np.errstate(invalid="ignore"):
        return np.where(finite, ratio, 0.0).sum(axis=0) / np.where(counts, counts, np.nan)


def match_histograms(
    image: np.ndarray, reference: np.ndarray, valid: np.ndarray | None = None
) -> np.ndarray:
    """``image`` with each band's histogram matched to ``reference``'s, over ``valid`` pixels
    only (the rest are returned unchanged): ``skimage.exposure.match_histograms(image,
    reference, channel_axis=0)`` for floats, as opensr-test harmonises SR (``utils.
    hq_histogram_matching``). Each distinct value goes to the reference value at its
    cumulative quantile, linearly interpolated."""
    img, ref = _as_bands(image, "image"), _as_bands(reference, "reference")
    if img.shape != ref.shape:
        raise InputError(
            f"image and reference must have the same shape, got {img.shape} and {ref.shape}"
        )
    mask = np.ones(img.shape[1:], bool) if valid is None else np.asarray(valid, bool)
    out = img.copy()
    if not mask.any():
        return out
    for band in range(img.shape[0]):
        source, template = img[band][mask], ref[band][mask]
        _values, lookup, counts = np.unique(source, return_inverse=True, return_counts=True)
        t_values, t_counts = np.unique(template, return_counts=True)
        quantiles = np.cumsum(counts) / source.size
        t_quantiles = np.cumsum(t_counts) / template.size
        out[band][mask] = np.interp(quantiles, t_quantiles, t_values)[lookup.reshape(-1)]
    return out


def _threshold(d_ref: np.ndarray, keep: np.ndarray, threshold: float | str) -> float:
    """A number as is; ``"auto"`` (``"auto75"``) or ``"autoP"``: the value of rank ``int(P/100
    * n)`` (1-based, as ``torch.kthvalue``; at least 1) among the ``n`` kept ``d_ref``."""
    if not isinstance(threshold, str):
        return float(threshold)
    text = f"auto{AUTO_PERCENTILE}" if threshold == "auto" else threshold
    if not text.startswith("auto") or not text[4:].isdigit():
        raise InputError(f"threshold must be a number, 'auto' or 'autoP', got {threshold!r}")
    values = d_ref[keep]
    if values.size == 0:
        raise InputError("no valid pixel to score correctness on")
    rank = max(int(int(text[4:]) / 100 * values.size), 1)
    return float(np.partition(values, rank - 1)[rank - 1])


def relevance_mask(
    d_ref: np.ndarray,
    d_im: np.ndarray,
    d_om: np.ndarray,
    threshold: float | str = "auto",
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """Pixels scored (``Metrics._create_mask``): valid ones where ``d_ref``, ``d_im`` or
    ``d_om`` exceeds ``threshold``. ``"auto"`` (``"auto75"``) or ``"autoP"``: the value of
    rank ``int(P/100 * n)`` (1-based, ``torch.kthvalue``) among the ``n`` valid ``d_ref``."""
    ref = np.asarray(d_ref, np.float64)
    keep = ~np.isnan(ref) if valid is None else np.asarray(valid, bool) & ~np.isnan(ref)
    threshold = _threshold(ref, keep, threshold)
    with np.errstate(invalid="ignore"):
        above = (ref > threshold) | (np.asarray(d_im) > threshold) | (np.asarray(d_om) > threshold)
    return above & keep


def tc_improvement(d_im: np.ndarray, d_om: np.ndarray, plambda: float = IM_LAMBDA) -> np.ndarray:
    """Distance to the improvement class: ``d_im + d_om (1 - exp(-plambda (d_im + d_om - 1)))``
    (``correctness.tc_improvement``), ``d_im``/``d_om`` relative to ``d_ref``."""
    h = d_im + d_om - 1
    return d_im + d_om * (1 - np.exp(-h * plambda))


def tc_omission(d_im: np.ndarray, d_om: np.ndarray, plambda: float = OM_LAMBDA) -> np.ndarray:
    """Distance to the omission class: ``d_om + d_im (1 - exp(-plambda (d_im + d_om - 1)))``."""
    h = d_im + d_om - 1
    return d_om + d_im * (1 - np.exp(-h * plambda))


def tc_hallucination(d_im: np.ndarray, d_om: np.ndarray, plambda: float = HA_LAMBDA) -> np.ndarray:
    """Distance to the hallucination class: ``exp(-plambda d_im d_om)``."""
    return np.exp(-d_im * d_om * plambda)


def _softmin(stack: np.ndarray, temperature: float) -> np.ndarray:
    e = np.exp(-stack / temperature)
    return e / e.sum(axis=0)


def _scores(d_ref: np.ndarray, d_im: np.ndarray, d_om: np.ndarray, keep: np.ndarray) -> dict:
    """Mean softmin memberships over ``keep`` (``correctness.get_correctness_stats``)."""
    if not keep.any():
        log.debug("correctness: no pixel above the threshold; scores undefined")
        return dict.fromkeys(SCORES, float("nan"))
    ref, im, om = d_ref[keep], d_im[keep], d_om[keep]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        a, b = im / ref, om / ref
        stack = np.stack([tc_improvement(a, b), tc_omission(a, b), tc_hallucination(a, b)])
        member = _softmin(stack, TEMPERATURE)
    means = [float(np.nanmean(m)) if not np.isnan(m).all() else float("nan") for m in member]
    return dict(zip(SCORES, means, strict=True))


@dataclass
class CorrectnessReference:
    """One scene's HR and upsampled LR, border cut, with ``d_ref`` and the threshold, ready to
    score any number of SR outputs (:meth:`scores`); build it with :meth:`from_arrays`."""

    hr: np.ndarray
    lr_up: np.ndarray
    valid: np.ndarray
    d_ref: np.ndarray
    threshold: float
    scale: int
    border: int  # HR pixels cut off each side

    @classmethod
    def from_arrays(
        cls,
        lr: np.ndarray,
        hr: np.ndarray,
        scale: int,
        valid: np.ndarray | None = None,
        *,
        border: int = BORDER,
        threshold: float | str = "auto",
    ) -> CorrectnessReference:
        """``lr`` ``(bands, h, w)`` (no NaN: fill invalid pixels first), ``hr`` ``(bands,
        h*scale, w*scale)`` and its ``valid`` mask ``(H, W)``. The border is ``border //
        scale`` LR pixels (opensr-test's rule; whole LR pixels, so 15 HR pixels at x3)."""
        lr_f, hr_f = _as_bands(lr, "lr"), _as_bands(hr, "hr")
        scale = int(scale)
        if hr_f.shape != (lr_f.shape[0], lr_f.shape[1] * scale, lr_f.shape[2] * scale):
            raise InputError(f"hr {hr_f.shape} must be lr {lr_f.shape} with each side x{scale}")
        cut = border // scale
        if min(lr_f.shape[1:]) <= 2 * cut:
            raise InputError(
                f"image of {lr_f.shape[1]}x{lr_f.shape[2]} LR pixels is too small for a "
                f"{cut}-pixel border on each side; pass a smaller border"
            )
        hr_cut = cut * scale
        if cut:
            lr_f = lr_f[:, cut:-cut, cut:-cut]
            hr_f = hr_f[:, hr_cut:-hr_cut, hr_cut:-hr_cut]
        lr_up = upsample_lr(lr_f, scale)
        ok = np.isfinite(hr_f).all(axis=0) & np.isfinite(lr_up).all(axis=0)
        if valid is not None:
            mask = np.asarray(valid, bool)
            if mask.shape != (hr_f.shape[1] + 2 * hr_cut, hr_f.shape[2] + 2 * hr_cut):
                raise InputError(f"valid mask {mask.shape} does not match hr {hr.shape}")
            ok &= mask[hr_cut : mask.shape[0] - hr_cut, hr_cut : mask.shape[1] - hr_cut]
        if not ok.any():
            raise InputError("no valid pixel to score correctness on")
        d_ref = normalized_difference(lr_up, hr_f)
        ok &= ~np.isnan(d_ref)
        return cls(hr_f, lr_up, ok, d_ref, _threshold(d_ref, ok, threshold), scale, hr_cut)

    def scores(self, sr: np.ndarray, harmonize: bool = True) -> dict[str, float]:
        """``improvement``, ``omission`` and ``hallucination`` of ``sr`` (the full HR grid,
        border included), after matching its histograms to HR's when ``harmonize``."""
        s = _as_bands(sr, "sr")
        c = self.border
        full = (self.hr.shape[0], self.hr.shape[1] + 2 * c, self.hr.shape[2] + 2 * c)
        if s.shape != full:
            raise InputError(f"sr {s.shape} must have the shape of hr {full}")
        if c:
            s = s[:, c:-c, c:-c]
        valid = self.valid & np.isfinite(s).all(axis=0)
        if harmonize:
            s = match_histograms(s, self.hr, valid)
        d_im = normalized_difference(s, self.hr)
        d_om = normalized_difference(s, self.lr_up)
        keep = relevance_mask(self.d_ref, d_im, d_om, self.threshold, valid)
        return _scores(self.d_ref, d_im, d_om, keep)


def correctness(
    lr: np.ndarray,
    sr: np.ndarray,
    hr: np.ndarray,
    scale: int,
    valid: np.ndarray | None = None,
    *,
    border: int = BORDER,
    threshold: float | str = "auto",
    harmonize: bool = True,
) -> dict[str, float]:
    """opensr-test's ``improvement``, ``omission`` and ``hallucination`` (each in [0, 1],
    summing to 1) of ``sr`` given its ``lr`` input and the ``hr`` reference; see the module
    docstring. ``valid`` ``(H, W)`` marks the HR pixels to score; ``lr`` must have no NaN."""
    ref = CorrectnessReference.from_arrays(lr, hr, scale, valid, border=border, threshold=threshold)
    return ref.scores(sr, harmonize=harmonize)
