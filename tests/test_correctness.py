"""geosr.correctness against opensr-test's own numbers on real NAIP arrays, and properties.

``tests/data/opensr_test_reference.json`` holds what opensr-test 1.3.3 gives on the arrays of
``benchmarks/opensr_reference.py`` (which also regenerates it); the arrays are rebuilt here
the same way and scored by geosr.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
from skimage.exposure import match_histograms as skimage_match_histograms

from geosr import correctness as C
from geosr.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = json.loads((ROOT / "tests/data/opensr_test_reference.json").read_text())
#: softmin memberships when one class distance is 0 and the other two 1 (temperature 0.25)
DOMINANT = 1 / (1 + 2 * math.exp(-4))
SCENE = "m_4709963_se_14_1_20190904 bicubic"


def _load_generator():
    spec = importlib.util.spec_from_file_location(
        "opensr_reference", ROOT / "benchmarks/opensr_reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cases() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    return _load_generator().cases()


def test_reference_names_the_release() -> None:
    assert REFERENCE["opensr_test_version"] == C.OPENSR_TEST_VERSION
    assert REFERENCE["opensr_test_commit"] == C.OPENSR_TEST_COMMIT


def test_matches_opensr_test_without_realignment(cases) -> None:
    """Every case, every score: opensr-test (float32) within float32 rounding."""
    assert set(cases) == set(REFERENCE["cases"])
    for name, (lr, sr, hr) in cases.items():
        got = C.correctness(lr, sr, hr, 4)
        want = REFERENCE["cases"][name]["no_spatial"]
        # srresnet's output may round differently on another CPU: a few pixels of 65536
        tol = 1e-4 if "srresnet" in name else 2e-6
        for score in C.SCORES:
            assert got[score] == pytest.approx(want[score], abs=tol), (name, score)
        assert sum(got.values()) == pytest.approx(1.0, abs=1e-9)


def test_close_to_opensr_test_default(cases) -> None:
    """opensr-test by default also re-aligns SR to HR by sub-pixel phase correlation; on these
    co-registered arrays it finds shifts of 0.02-0.13 pixel and the scores move by < 0.015."""
    for name, (lr, sr, hr) in cases.items():
        got = C.correctness(lr, sr, hr, 4)
        entry = REFERENCE["cases"][name]
        assert entry["pcc_shift_pixels"] < 0.2
        for score in C.SCORES:
            assert got[score] == pytest.approx(entry["default"][score], abs=0.015), (name, score)


def test_sr_equal_to_hr_is_improvement(cases) -> None:
    lr, _, hr = cases[f"{SCENE} bicubic"]
    got = C.correctness(lr, hr, hr, 4)
    assert got["improvement"] == pytest.approx(DOMINANT, abs=1e-12)
    assert got["omission"] == pytest.approx(got["hallucination"], abs=1e-12)
    assert got["omission"] == pytest.approx((1 - DOMINANT) / 2, abs=1e-12)


def test_sr_equal_to_upsampled_lr_is_omission(cases) -> None:
    lr, _, hr = cases[f"{SCENE} bicubic"]
    ref = C.CorrectnessReference.from_arrays(lr, hr, 4)
    # the LR opensr-test compares with is upsampled after the border is cut (edges clamped)
    lr_up = hr.copy()
    lr_up[:, 16:-16, 16:-16] = ref.lr_up
    exact = C.correctness(lr, lr_up, hr, 4, harmonize=False)
    assert exact["omission"] == pytest.approx(DOMINANT, abs=1e-12)
    lr_up = C.upsample_lr(lr, 4)  # upsampled whole: differs on the cut's edge pixels only
    # harmonised (histogram-matched to HR) it is no longer exactly the LR, but still omission
    harmonised = C.correctness(lr, lr_up, hr, 4)
    assert harmonised["omission"] > 0.6
    assert harmonised["omission"] > 3 * max(harmonised["improvement"], harmonised["hallucination"])


def test_noise_far_from_both_is_hallucination(cases) -> None:
    lr, sr, hr = cases[f"{SCENE} noise"]
    got = C.correctness(lr, sr, hr, 4)
    assert got["hallucination"] > 0.8
    # bicubic, close to the LR, is mostly omission and hardly hallucination
    bicubic = C.correctness(*cases[f"{SCENE} bicubic"], 4)
    assert bicubic["omission"] > 0.5 > bicubic["hallucination"] * 2


def test_model_improves_on_bicubic(cases) -> None:
    for scene in (SCENE, "m_4709963_se_14_1_20120731 box"):
        model = C.correctness(*cases[f"{scene} srresnet"], 4)
        bicubic = C.correctness(*cases[f"{scene} bicubic"], 4)
        assert model["improvement"] > bicubic["improvement"] + 0.1
        assert model["omission"] < bicubic["omission"] - 0.1


def test_match_histograms_is_skimage(cases) -> None:
    _, sr, hr = cases[f"{SCENE} srresnet"]
    want = skimage_match_histograms(sr, hr, channel_axis=0)
    np.testing.assert_array_equal(C.match_histograms(sr, hr), want)


def test_match_histograms_over_valid_pixels_only(cases) -> None:
    _, sr, hr = cases[f"{SCENE} bicubic"]
    valid = np.zeros(sr.shape[1:], bool)
    valid[40:200, 30:220] = True
    got = C.match_histograms(sr, hr, valid)
    want = skimage_match_histograms(sr[:, 40:200, 30:220], hr[:, 40:200, 30:220], channel_axis=0)
    np.testing.assert_array_equal(got[:, 40:200, 30:220], want)
    np.testing.assert_array_equal(got[:, ~valid], sr[:, ~valid])


def test_invalid_pixels_do_not_count(cases) -> None:
    """Whatever fills invalid pixels, the scores are those of the valid ones."""
    lr, sr, hr = cases[f"{SCENE} srresnet"]
    valid = np.ones(hr.shape[1:], bool)
    valid[:, 160:] = False
    base = C.correctness(lr, sr, hr, 4, valid)
    junk_sr, junk_hr = sr.copy(), hr.copy()
    junk_sr[:, ~valid] = 255.0
    junk_hr[:, ~valid] = np.nan
    assert C.correctness(lr, junk_sr, junk_hr, 4, valid) == pytest.approx(base, abs=1e-12)
    assert C.correctness(lr, sr, hr, 4) != pytest.approx(base, abs=1e-3)


def test_valid_mask_of_everything_changes_nothing(cases) -> None:
    lr, sr, hr = cases[f"{SCENE} srresnet"]
    everything = np.ones(hr.shape[1:], bool)
    assert C.correctness(lr, sr, hr, 4, everything) == C.correctness(lr, sr, hr, 4)


def test_reference_scores_many_outputs(cases) -> None:
    lr, sr, hr = cases[f"{SCENE} srresnet"]
    ref = C.CorrectnessReference.from_arrays(lr, hr, 4)
    assert ref.hr.shape == (4, 256 - 32, 256 - 32)
    assert ref.scores(sr) == C.correctness(lr, sr, hr, 4)
    bicubic = cases[f"{SCENE} bicubic"][1]
    assert ref.scores(bicubic) == C.correctness(lr, bicubic, hr, 4)


def test_auto_threshold_is_kthvalue() -> None:
    d_ref = np.arange(1.0, 9.0).reshape(2, 4)  # 1..8; rank int(0.75 * 8) = 6 -> 6.0
    zeros = np.zeros_like(d_ref)
    np.testing.assert_array_equal(C.relevance_mask(d_ref, zeros, zeros), d_ref > 6.0)
    np.testing.assert_array_equal(C.relevance_mask(d_ref, zeros, zeros, "auto50"), d_ref > 4.0)
    d_im = np.where(d_ref == 1.0, 9.0, 0.0)  # any of the three above the threshold counts
    assert C.relevance_mask(d_ref, d_im, zeros)[0, 0]


def test_normalized_difference_by_hand() -> None:
    x = np.array([[[1.0, 2.0]], [[3.0, 0.0]]])
    y = np.array([[[3.0, 2.0]], [[1.0, 0.0]]])
    np.testing.assert_allclose(C.normalized_difference(x, y), [[0.5, 0.0]], atol=1e-8)


def test_class_distances_by_hand() -> None:
    a, b = np.array(0.5), np.array(2.0)
    h = a + b - 1
    assert C.tc_improvement(a, b) == pytest.approx(a + b * (1 - math.exp(-0.05 * h)))
    assert C.tc_omission(a, b) == pytest.approx(b + a * (1 - math.exp(-0.05 * h)))
    assert C.tc_hallucination(a, b) == pytest.approx(math.exp(-0.05 * a * b))


def test_bad_inputs(cases) -> None:
    lr, sr, hr = cases[f"{SCENE} bicubic"]
    with pytest.raises(InputError, match="x4"):
        C.correctness(lr, sr[:, :-4], hr[:, :-4], 4)
    with pytest.raises(InputError, match="shape of hr"):
        C.correctness(lr, sr[:, :-4], hr, 4)
    with pytest.raises(InputError, match="too small"):
        C.correctness(lr[:, :8, :8], sr[:, :32, :32], hr[:, :32, :32], 4)
    with pytest.raises(InputError, match="threshold"):
        C.correctness(lr, sr, hr, 4, threshold="median")
    with pytest.raises(InputError, match="no valid pixel"):
        C.correctness(lr, sr, hr, 4, np.zeros(hr.shape[1:], bool))


def test_live_opensr_test(cases) -> None:
    """Where opensr-test is installed (not in geosr's environment), also against it live."""
    opensr_test = pytest.importorskip("opensr_test")
    torch = pytest.importorskip("torch")
    lr, sr, hr = cases[f"{SCENE} srresnet"]
    tensors = [torch.from_numpy(a.astype(np.float32)) for a in (lr, sr, hr)]
    want = opensr_test.Metrics(harm_apply_spatial=False).correctness(
        *tensors, gradient_threshold="auto"
    )
    got = C.correctness(lr, sr, hr, 4)
    assert got["improvement"] == pytest.approx(want["im_metric"], abs=2e-6)
    assert got["omission"] == pytest.approx(want["om_metric"], abs=2e-6)
    assert got["hallucination"] == pytest.approx(want["ha_metric"], abs=2e-6)
