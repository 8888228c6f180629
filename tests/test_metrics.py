"""Metrics against scikit-image and hand-computed cases, on real crops and synthetic arrays."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window
from scipy.ndimage import gaussian_filter
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from geosr import metrics
from geosr.errors import InputError
from tests.conftest import LANDSAT8, NAIP_DIR

NAIP = NAIP_DIR / "m_4709963_se_14_1_20150926.tif"

# scikit-image settings that reproduce Wang et al. 2004 (and geosr.metrics.ssim)
SKIMAGE_SSIM = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}


def read_crop(path: Path, col: int, row: int, size: int) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(window=Window(col, row, size, size)).astype(np.float64)


@pytest.fixture(scope="module")
def naip() -> np.ndarray:
    return read_crop(NAIP, 100, 50, 96)


@pytest.fixture(scope="module")
def landsat() -> np.ndarray:
    return read_crop(LANDSAT8, 280, 250, 96)


def degraded(hr: np.ndarray, scale: int = 4) -> np.ndarray:
    """A realistic 'prediction': box-downsampled then bicubic-upsampled HR."""
    bands, h, w = hr.shape
    lr = hr.reshape(bands, h // scale, scale, w // scale, scale).mean(axis=(2, 4))
    return metrics.bicubic_upsample(lr, scale)


# --- PSNR ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["naip", "landsat"])
def test_psnr_matches_skimage_per_band_on_real_crops(which, request):
    hr = request.getfixturevalue(which)
    pred = degraded(hr)
    data_range = 255.0 if which == "naip" else 65535.0
    ours = metrics.psnr(pred, hr, data_range, per_band=True)
    theirs = [peak_signal_noise_ratio(hr[b], pred[b], data_range=data_range) for b in range(4)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert metrics.psnr(pred, hr, data_range) == pytest.approx(np.mean(theirs))


def test_psnr_per_band_data_range(landsat):
    pred = degraded(landsat)
    ranges = landsat.max(axis=(1, 2)) - landsat.min(axis=(1, 2))
    ours = metrics.psnr(pred, landsat, ranges, per_band=True)
    for b in range(4):
        assert ours[b] == pytest.approx(
            peak_signal_noise_ratio(landsat[b], pred[b], data_range=ranges[b])
        )


def test_psnr_hand_computed_and_identical():
    target = np.zeros((2, 8, 8))
    assert metrics.psnr(target + 0.1, target, 1.0) == pytest.approx(20.0)
    assert metrics.psnr(target + 1.0, target, 10.0) == pytest.approx(20.0)
    assert metrics.psnr(target, target, 1.0) == math.inf


def test_psnr_mask_excludes_pixels(naip):
    pred = naip.copy()
    valid = np.ones(naip.shape[1:], dtype=bool)
    valid[:, :40] = False
    pred[:, :, :40] = 0.0  # garbage where the mask says nodata
    pred[:, :, 40:] += 2.0
    expected = 10 * math.log10(255.0**2 / 4.0)
    assert metrics.psnr(pred, naip, 255.0, valid) == pytest.approx(expected)
    assert metrics.psnr(pred, naip, 255.0) < expected - 10


# --- SSIM ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["naip", "landsat"])
def test_ssim_matches_skimage_on_real_crops(which, request):
    hr = request.getfixturevalue(which)
    pred = degraded(hr)
    data_range = 255.0 if which == "naip" else 65535.0
    ours = metrics.ssim(pred, hr, data_range)
    theirs = structural_similarity(hr, pred, data_range=data_range, channel_axis=0, **SKIMAGE_SSIM)
    assert ours == pytest.approx(theirs, rel=1e-10)
    assert 0.2 < ours < 0.999  # a blurred image: similar but not identical


def test_ssim_per_band_data_range_matches_skimage(landsat):
    pred = degraded(landsat)
    ranges = np.array([4000.0, 5000.0, 6000.0, 9000.0])
    ours = metrics.ssim(pred, landsat, ranges, per_band=True)
    for b in range(4):
        theirs = structural_similarity(landsat[b], pred[b], data_range=ranges[b], **SKIMAGE_SSIM)
        assert ours[b] == pytest.approx(theirs, rel=1e-10)


def test_ssim_with_rectangular_mask_equals_skimage_on_the_block(naip):
    pred = degraded(naip)
    valid = np.zeros(naip.shape[1:], dtype=bool)
    valid[10:70, 25:90] = True
    block = (slice(None), slice(10, 70), slice(25, 90))
    theirs = structural_similarity(
        naip[block], pred[block], data_range=255.0, channel_axis=0, **SKIMAGE_SSIM
    )
    assert metrics.ssim(pred, naip, 255.0, valid) == pytest.approx(theirs, rel=1e-10)


def test_ssim_ignores_values_under_the_mask(naip):
    pred = degraded(naip)
    valid = np.ones(naip.shape[1:], dtype=bool)
    valid[60:, :] = False
    garbage = pred.copy()
    garbage[:, 60:, :] = np.random.default_rng(0).uniform(0, 255, garbage[:, 60:, :].shape)
    masked = metrics.ssim(pred, naip, 255.0, valid)
    assert metrics.ssim(garbage, naip, 255.0, valid) == pytest.approx(masked, abs=1e-14)
    assert metrics.ssim(garbage, naip, 255.0) < masked - 0.05  # unmasked, garbage counts


def test_ssim_identical_is_one_and_needs_a_window():
    image = np.random.default_rng(1).uniform(0, 1, (3, 20, 20))
    assert metrics.ssim(image, image, 1.0) == pytest.approx(1.0)
    with pytest.raises(InputError, match="at least 11x11"):
        metrics.ssim(image[:, :8, :8], image[:, :8, :8], 1.0)
    checker = np.indices((20, 20)).sum(axis=0) % 2 == 0  # no full 11x11 valid window
    with pytest.raises(InputError, match="no 11x11 window"):
        metrics.ssim(image, image, 1.0, checker)


# --- SAM -----------------------------------------------------------------------------------------


def test_sam_hand_computed_angles():
    a = np.zeros((3, 2, 2))
    b = np.zeros((3, 2, 2))
    a[0] = 1.0
    b[1] = 5.0  # orthogonal everywhere
    assert metrics.sam(a, b) == pytest.approx(math.pi / 2)
    b[0] = 5.0  # (1,0,0) vs (5,5,0): 45 degrees
    assert metrics.sam(a, b) == pytest.approx(math.pi / 4)
    assert metrics.sam(a, 7.3 * a) == pytest.approx(0.0, abs=1e-15)


def test_sam_on_real_crop_scale_invariant_and_matches_arccos(landsat):
    assert metrics.sam(landsat * 2.5, landsat) == pytest.approx(0.0, abs=1e-12)
    pred = degraded(landsat)
    dot = (pred * landsat).sum(axis=0)
    cos = dot / (np.linalg.norm(pred, axis=0) * np.linalg.norm(landsat, axis=0))
    expected = np.arccos(np.clip(cos, -1, 1)).mean()
    assert metrics.sam(pred, landsat) == pytest.approx(expected, rel=1e-6)
    assert metrics.sam(pred, landsat) > 1e-3


def test_sam_mask_and_zero_spectra_excluded():
    a = np.ones((2, 4, 4))
    b = np.ones((2, 4, 4))
    b[:, 0, :] = [[0.0], [1.0]]  # first row orthogonal-ish: (1,1) vs (0,1) -> pi/4
    valid = np.ones((4, 4), dtype=bool)
    valid[0, :] = False
    assert metrics.sam(a, b, valid) == pytest.approx(0.0, abs=1e-15)
    assert metrics.sam(a, b) == pytest.approx(math.pi / 4 / 4)
    b[:, 1, :] = 0.0  # all-zero spectra have no angle: skipped
    assert metrics.sam(a, b, valid) == pytest.approx(0.0, abs=1e-15)
    angles = metrics.sam(a, b, per_pixel=True)
    assert np.isnan(angles[1]).all() and angles[0] == pytest.approx(math.pi / 4)


# --- ERGAS ---------------------------------------------------------------------------------------


def test_ergas_hand_computed():
    target = np.stack([np.full((6, 6), 100.0), np.full((6, 6), 200.0)])
    pred = target + 10.0  # RMSE/mean = 0.1 and 0.05
    expected = 100 / 4 * math.sqrt((0.1**2 + 0.05**2) / 2)
    assert metrics.ergas(pred, target, 4) == pytest.approx(expected)
    assert metrics.ergas(pred, target, 2) == pytest.approx(2 * expected)
    assert metrics.ergas(target, target, 4) == 0.0


def test_ergas_mask_and_zero_mean():
    target = np.full((1, 4, 4), 50.0)
    pred = target.copy()
    pred[0, :, 0] = 1e6
    valid = np.ones((4, 4), dtype=bool)
    valid[:, 0] = False
    assert metrics.ergas(pred, target, 4, valid) == 0.0
    assert metrics.ergas(pred, target, 4) > 1000
    with pytest.raises(InputError, match="mean is 0"):
        metrics.ergas(target, np.zeros_like(target), 4)


def test_ergas_real_crop_matches_formula(landsat):
    pred = degraded(landsat)
    rmse = np.sqrt(((pred - landsat) ** 2).mean(axis=(1, 2)))
    expected = 25 * np.sqrt(np.mean((rmse / landsat.mean(axis=(1, 2))) ** 2))
    assert metrics.ergas(pred, landsat, 4) == pytest.approx(expected)


# --- UIQI ----------------------------------------------------------------------------------------


def test_uiqi_single_window_hand_computed():
    rng = np.random.default_rng(2)
    x = rng.uniform(10, 20, (8, 8))
    y = 0.5 * x + rng.normal(0, 1, (8, 8)) + 3
    mx, my = x.mean(), y.mean()
    vx, vy = x.var(), y.var()
    cov = ((x - mx) * (y - my)).mean()
    expected = 4 * cov * mx * my / ((vx + vy) * (mx**2 + my**2))
    assert metrics.uiqi(y, x) == pytest.approx(expected, rel=1e-10)
    assert metrics.uiqi(x, x) == pytest.approx(1.0)
    assert metrics.uiqi(x * 2, x) < 1.0  # contrast and luminance distortion count


def test_uiqi_flat_windows_and_real_crop(naip):
    flat = np.full((1, 16, 16), 4.0)
    assert metrics.uiqi(flat, flat) == pytest.approx(1.0)
    assert metrics.uiqi(flat * 2, flat) == pytest.approx(2 * 8 * 4 / (8**2 + 4**2))
    q = metrics.uiqi(degraded(naip), naip)
    assert 0.1 < q < 0.99


# --- gradients and upsamplers --------------------------------------------------------------------


def test_mean_gradient_magnitude_ramp_and_blur(naip):
    ramp = np.tile(3.0 * np.arange(10.0), (2, 10, 1))
    assert metrics.mean_gradient_magnitude(ramp) == pytest.approx(3.0)
    assert metrics.mean_gradient_magnitude(naip) > 1.5 * metrics.mean_gradient_magnitude(
        degraded(naip)
    )
    valid = np.ones((10, 10), dtype=bool)
    ramp[:, :, 5:] = 1000.0
    valid[:, 5:] = False
    assert metrics.mean_gradient_magnitude(ramp, valid) == pytest.approx(3.0)


@pytest.mark.parametrize("upsample", [metrics.bicubic_upsample, metrics.lanczos_upsample])
def test_upsamplers_keep_constants_and_linear_ramps(upsample):
    constant = np.full((2, 6, 7), 42.0)
    np.testing.assert_allclose(upsample(constant, 4), 42.0)
    ramp = np.tile(np.arange(12.0), (1, 12, 1))
    up = upsample(ramp, 2)
    assert up.shape == (1, 24, 24)
    # pixel centres are aligned: output j sits at input coordinate (j + 0.5) / 2 - 0.5, so on a
    # ramp each pair of output pixels averages to the input pixel it came from
    pairs = up[0, 12, 6:18].reshape(-1, 2).mean(axis=1)
    np.testing.assert_allclose(pairs, ramp[0, 0, 3:9], atol=1e-9)
    expected = (np.arange(24) + 0.5) / 2 - 0.5
    np.testing.assert_allclose(up[0, 12, 6:18], expected[6:18], atol=0.05)


def test_lanczos_scale_one_is_identity_and_beats_bicubic_on_real_data(naip):
    np.testing.assert_allclose(metrics.lanczos_upsample(naip, 1), naip, atol=1e-9)
    lr = naip[:, ::2, ::2]
    lanczos = metrics.psnr(metrics.lanczos_upsample(lr, 2)[:, 1:, 1:], naip[:, 1:, 1:], 255.0)
    bicubic = metrics.psnr(metrics.bicubic_upsample(lr, 2)[:, 1:, 1:], naip[:, 1:, 1:], 255.0)
    assert lanczos > 20 and bicubic > 20
    assert abs(lanczos - bicubic) < 2  # both sane interpolators on the same grid


def test_all_metrics_report(landsat):
    report = metrics.all_metrics(degraded(landsat), landsat, 65535.0, 4)
    assert set(report) == {"psnr", "ssim", "sam", "ergas", "uiqi"}
    assert all(math.isfinite(v) for v in report.values())
    single = metrics.all_metrics(landsat[:1] * 1.01, landsat[:1], 65535.0, 4)
    assert math.isnan(single["sam"])


# --- high-frequency power ratio -------------------------------------------------------------------


@pytest.mark.parametrize("which", ["naip", "landsat"])
def test_hf_power_ratio_identical_blurred_noisy_on_real_crops(which, request):
    hr = request.getfixturevalue(which)
    ratio = metrics.high_frequency_power_ratio
    assert ratio(hr, hr) == pytest.approx(1.0, rel=1e-12)
    # power is quadratic and the mean is removed: an affine change of values scales it by a^2
    assert ratio(3.0 * hr + 7.0, hr) == pytest.approx(9.0, rel=1e-9)
    blurred = gaussian_filter(hr, sigma=(0, 1.0, 1.0))
    per_band = ratio(blurred, hr, per_band=True)
    assert per_band.shape == (4,) and np.all(per_band < 0.1)
    assert ratio(blurred, hr) == pytest.approx(per_band.mean())
    # bicubic from 4x coarser pixels has next to nothing above half Nyquist
    assert ratio(degraded(hr), hr) < 0.01
    noise = np.random.default_rng(0).normal(0.0, 0.1 * hr.std(), hr.shape)
    assert np.all(ratio(hr + noise, hr, per_band=True) > 1.1)


def test_hf_power_ratio_leaves_out_invalid_pixels(naip):
    """Invalid pixels are filled with the band's valid mean: their values never count."""
    valid = np.ones(naip.shape[1:], dtype=bool)
    valid[:, 60:] = False
    pred = gaussian_filter(naip, sigma=(0, 0.7, 0.7))
    wild = pred.copy()
    wild[:, :, 60:] = np.random.default_rng(1).uniform(0, 255, wild[:, :, 60:].shape)
    a = metrics.high_frequency_power_ratio(pred, naip, valid, per_band=True)
    b = metrics.high_frequency_power_ratio(wild, naip, valid, per_band=True)
    np.testing.assert_allclose(a, b, rtol=1e-12)
    assert np.all(a < 1)
    assert metrics.high_frequency_power_ratio(wild, naip) > 1.5  # without the mask they count


def test_hf_power_ratio_flat_target_and_bad_input(naip):
    flat = naip.copy()
    flat[1] = 0.1  # a constant band has no power to compare with: NaN, left out of the mean
    values = metrics.high_frequency_power_ratio(naip, flat, per_band=True)
    assert math.isnan(values[1]) and np.isfinite(values[[0, 2, 3]]).all()
    assert metrics.high_frequency_power_ratio(naip, flat) == pytest.approx(values[[0, 2, 3]].mean())
    with pytest.raises(InputError, match="shapes differ"):
        metrics.high_frequency_power_ratio(naip, naip[:2])
    with pytest.raises(InputError, match="at least 8x8 pixels, got 6x96"):
        metrics.high_frequency_power_ratio(naip[:, :6], naip[:, :6])
    with pytest.raises(InputError, match="excludes every pixel"):
        metrics.high_frequency_power_ratio(naip, naip, np.zeros(naip.shape[1:], dtype=bool))
    with pytest.raises(InputError, match=r"valid mask must be shaped \(H, W\)"):
        metrics.high_frequency_power_ratio(naip, naip, np.ones((8, 8), dtype=bool))


# --- bad input -----------------------------------------------------------------------------------


def test_bad_input_errors():
    a = np.zeros((2, 16, 16))
    with pytest.raises(InputError, match="shapes differ"):
        metrics.psnr(a, a[:1], 1.0)
    with pytest.raises(InputError, match="one per band"):
        metrics.psnr(a, a, [1.0, 2.0, 3.0])
    with pytest.raises(InputError, match="positive"):
        metrics.ssim(a, a, 0.0)
    with pytest.raises(InputError, match="excludes every pixel"):
        metrics.psnr(a, a, 1.0, np.zeros((16, 16), dtype=bool))
    with pytest.raises(InputError, match=r"\(H, W\)"):
        metrics.sam(a, a, np.ones((8, 8), dtype=bool))
    with pytest.raises(InputError, match="bands, H, W"):
        metrics.psnr(np.zeros((1, 2, 3, 4)), np.zeros((1, 2, 3, 4)), 1.0)
    assert issubclass(InputError, ValueError)
