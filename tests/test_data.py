"""Degradations, scene handling and patch sampling, on real scenes and small written GeoTIFFs."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin
from rasterio.windows import Window
from scipy.ndimage import binary_dilation

from geosr import metrics
from geosr.data import (
    DEGRADATIONS,
    BatchStream,
    DataConfig,
    DegradationConfig,
    add_noise,
    box,
    d4_transform,
    fill_invalid,
    find_scenes,
    gaussian,
    mtf_sigma,
    prepare_data,
)
from geosr.data.degradations import operator_matrix
from geosr.errors import (
    BandMismatchError,
    ConfigError,
    GeosrError,
    InputError,
    InputNotFoundError,
    NotARasterError,
)
from geosr.nodata import FILL_RADIUS, FILL_VALUE
from tests.conftest import DATA, LANDSAT8, NAIP_DIR
from tests.conftest import LANDSAT7_OLINDA as OLINDA
from tests.conftest import LANDSAT8_150M as JAPAN

NAIP = sorted(NAIP_DIR.glob("*.tif"))


def write_tif(
    path: Path, data: np.ndarray, nodata: float | None = None, tiled: bool = True
) -> Path:
    """A small georeferenced GeoTIFF (UTM 33N, 10 m pixels)."""
    profile = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": data.shape[0],
        "dtype": data.dtype.name,
        "crs": "EPSG:32633",
        "transform": from_origin(500000, 4000000, 10, 10),
        "nodata": nodata,
    }
    if tiled:
        profile.update(tiled=True, blockxsize=64, blockysize=64, compress="deflate")
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def textured(bands: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth random texture in uint16, different per band."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    out = np.empty((bands, height, width), dtype=np.uint16)
    for b in range(bands):
        fx, fy = rng.uniform(0.02, 0.2, 2)
        wave = np.sin(fx * xx + b) * np.cos(fy * yy - b)
        out[b] = (1000 + 400 * b + 300 * wave + rng.normal(0, 20, wave.shape)).astype(np.uint16)
    return out


def naip_crop(size: int = 96, band: int | None = None) -> torch.Tensor:
    with rasterio.open(NAIP[4]) as src:
        data = src.read(window=Window(100, 100, size, size)).astype(np.float64)
    if band is not None:
        data = data[band : band + 1]
    return torch.from_numpy(data)[None]


# --- degradations --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["bicubic", "box", "gaussian"])
def test_degradations_keep_constants_and_shape(kind):
    hr = torch.full((2, 3, 32, 48), 7.25, dtype=torch.float64)
    lr = DEGRADATIONS[kind](hr, 4)
    assert lr.shape == (2, 3, 8, 12)
    torch.testing.assert_close(lr, torch.full_like(lr, 7.25))


def test_box_is_the_block_mean_of_a_real_crop():
    hr = naip_crop()
    expected = hr.numpy().reshape(1, 4, 24, 4, 24, 4).mean(axis=(3, 5))
    np.testing.assert_allclose(box(hr, 4).numpy(), expected, rtol=1e-12)


def test_bicubic_matches_pillow_antialiased_resize():
    image_module = pytest.importorskip("PIL.Image")
    hr = naip_crop(band=0).float()
    pil = image_module.fromarray(hr[0, 0].numpy(), mode="F").resize((24, 24), image_module.BICUBIC)
    lr = DEGRADATIONS["bicubic"](hr, 4)[0, 0].numpy()
    np.testing.assert_allclose(lr, np.asarray(pil), atol=1e-3)


@pytest.mark.parametrize("kind", ["bicubic", "box", "gaussian"])
@pytest.mark.parametrize("scale", [2, 4])
def test_degradations_keep_lr_and_hr_aligned(kind, scale):
    """A blob's centre of mass lands on the same ground position in LR and HR: LR pixel i
    is centred on HR coordinate i * scale + (scale - 1) / 2 (no half-pixel shift)."""
    size = 16 * scale
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    cy, cx = 0.43 * size, 0.58 * size
    blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (1.5 * scale) ** 2))
    lr = DEGRADATIONS[kind](torch.from_numpy(blob)[None, None], scale)[0, 0].numpy()
    ly, lx = np.mgrid[0 : size // scale, 0 : size // scale].astype(np.float64)
    centre_y = (lr * ly).sum() / lr.sum() * scale + (scale - 1) / 2
    centre_x = (lr * lx).sum() / lr.sum() * scale + (scale - 1) / 2
    assert centre_y == pytest.approx(cy, abs=0.05 * scale)
    assert centre_x == pytest.approx(cx, abs=0.05 * scale)


def test_gaussian_sigma_from_mtf_and_blur_strength():
    sigma = mtf_sigma(4, 0.3)
    nyquist = 1 / (2 * 4)
    assert math.exp(-2 * math.pi**2 * sigma**2 * nyquist**2) == pytest.approx(0.3)
    hr = naip_crop()
    sharp = metrics.mean_gradient_magnitude(gaussian(hr, 4, sigma=0.5)[0].numpy())
    default = metrics.mean_gradient_magnitude(gaussian(hr, 4)[0].numpy())
    blurred = metrics.mean_gradient_magnitude(gaussian(hr, 4, sigma=4.0)[0].numpy())
    assert sharp > default > blurred


def test_degradations_differ_on_real_data():
    """The point of a mixed default: the three kinds give measurably different LR inputs."""
    hr = naip_crop()
    lrs = {k: DEGRADATIONS[k](hr, 4) for k in ("bicubic", "box", "gaussian")}
    for a, b in [("bicubic", "box"), ("box", "gaussian"), ("bicubic", "gaussian")]:
        assert (lrs[a] - lrs[b]).abs().mean() > 0.3  # DN, on a crop with ~13 DN std


@pytest.mark.parametrize("kind", ["bicubic", "box", "gaussian"])
def test_numpy_operator_equals_torch_degradation(kind):
    config = DegradationConfig(kind=kind, sigma=1.7 if kind == "gaussian" else None)
    hr = naip_crop().float()[0]
    fast = config.apply_numpy(hr.numpy(), 4, kind)
    np.testing.assert_allclose(fast, config.apply(hr[None], 4, kind)[0].numpy(), atol=1e-3)
    assert operator_matrix(kind, 96, 4, config.sigma).shape == (24, 96)


def test_degradation_config_and_noise():
    config = DegradationConfig()
    assert config.kind == "mixed" and len(config.kinds) > 1
    rng = np.random.default_rng(0)
    assert {config.choose(rng) for _ in range(60)} == set(config.kinds)
    assert DegradationConfig(kind="box").kinds == ("box",)
    with pytest.raises(ConfigError, match="unknown degradation 'lanczos'"):
        DegradationConfig(kind="lanczos")
    with pytest.raises(ConfigError, match="unknown degradation"):
        DegradationConfig(kind="mixed", mix=("box", "nearest"))
    with pytest.raises(ConfigError, match="noise"):
        DegradationConfig(noise=-1)
    lr = torch.zeros(2, 1, 64, 64)
    noisy = add_noise(lr, torch.tensor([0.0, 0.1]), torch.Generator().manual_seed(1))
    assert noisy[0].abs().max() == 0
    assert noisy[1].std().item() == pytest.approx(0.1, rel=0.1)
    with pytest.raises(InputError, match="multiple of scale"):
        box(torch.zeros(1, 1, 30, 30), 4)


# --- finding and checking scenes -------------------------------------------------------------


def test_find_scenes_folder_glob_and_files(tmp_path):
    assert find_scenes(NAIP_DIR) == NAIP
    assert find_scenes(str(DATA / "landsat7_*" / "*.tif")) == sorted(
        [OLINDA, DATA / "landsat7_rgb_byte" / "RGB.byte.tif"]
    )
    assert find_scenes([LANDSAT8, OLINDA]) == sorted([LANDSAT8, OLINDA])
    with pytest.raises(InputNotFoundError, match="does not exist"):
        find_scenes(tmp_path / "missing")
    with pytest.raises(InputError, match="no GeoTIFFs"):
        find_scenes(tmp_path)
    with pytest.raises(InputError, match="no scenes found"):
        find_scenes(str(tmp_path / "*.tif"))


def test_unreadable_and_truncated_files(tmp_path):
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"this is not a GeoTIFF at all" * 100)
    with pytest.raises(NotARasterError, match=r"junk\.tif is not a readable raster"):
        prepare_data(junk, DataConfig(bands=None, patch=32, val_fraction=0), generator=0)
    good = write_tif(tmp_path / "good.tif", textured(2, 256, 256))
    truncated = tmp_path / "truncated.tif"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(NotARasterError, match=r"truncated\.tif.*corrupt or truncated"):
        prepare_data(truncated, DataConfig(bands=None, patch=32, val_fraction=0), generator=0)


def test_band_count_mismatch_names_files_and_counts():
    with pytest.raises(BandMismatchError) as info:
        prepare_data([NAIP[0], OLINDA, JAPAN], DataConfig(bands=4), generator=0)
    message = str(info.value)
    assert "L7_ETMs.tif has 6" in message and "B2B3B4_150m.tif has 3" in message
    assert NAIP[0].name not in message and "\n" not in message
    assert isinstance(info.value, GeosrError)


def test_patch_larger_than_scene(tmp_path):
    small = write_tif(tmp_path / "small.tif", textured(1, 60, 200))
    with pytest.raises(InputError, match=r"small\.tif is 200x60 pixels, smaller than the 96x96"):
        prepare_data([LANDSAT8, small], DataConfig(bands=None), generator=0)


def test_bad_config_values():
    with pytest.raises(ConfigError, match="multiple of scale"):
        DataConfig(patch=90, scale=4)
    with pytest.raises(ConfigError, match="scale 3"):
        DataConfig(scale=3)
    with pytest.raises(ConfigError, match="max_nodata"):
        DataConfig(max_nodata=1.5)
    with pytest.raises(ConfigError, match="unknown data option"):
        DataConfig.from_dict({"patch": 96, "pach": 1})
    config = DataConfig(bands=4, degradation=DegradationConfig(kind="mixed", mix=("box",)))
    assert DataConfig.from_dict(config.to_dict()) == config


# --- samples ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_data():
    """Band-shared data over four sensors (uint8 and uint16, 3 to 6 bands)."""
    return prepare_data(
        [NAIP[0], NAIP[5], LANDSAT8, OLINDA, JAPAN],
        DataConfig(bands=None),
        generator=torch.Generator().manual_seed(0),
    )


def raw_window(path: Path, window: Window, band: int | None) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(None if band is None else band + 1, window=window).astype(np.float64)


def test_band_shared_samples_are_normalised_windows_of_the_scenes(shared_data):
    data = shared_data
    assert data.normalization.mode == "scene"
    assert data.normalization.percentiles == (1.0, 99.0)
    seen_scenes, seen_kinds, seen_transforms = set(), set(), set()
    for index in range(40):
        sample = data.train[index]
        draw = data.train.locate(index)[0]
        assert sample.hr.shape == (1, 96, 96) and sample.lr.shape == (1, 24, 24)
        assert sample.hr.dtype == torch.float32 and sample.valid.dtype == torch.bool
        scene = data.train.catalog.scenes[draw.scene]
        raw = raw_window(scene.path, Window(draw.col, draw.row, 96, 96), draw.band)
        offset, scale = sample.offset.double().numpy(), sample.scale.double().numpy()
        expected = (raw[None] - offset[:, None, None]) / scale[:, None, None]
        expected = d4_transform(expected, draw.transform)
        valid = sample.valid[0].numpy()
        np.testing.assert_allclose(sample.hr.numpy()[:, valid], expected[:, valid], atol=1e-5)
        # LR is the HR patch degraded with the drawn kind
        lr = DegradationConfig().apply(sample.hr[None], 4, draw.kind)[0]
        torch.testing.assert_close(sample.lr, lr, atol=1e-4, rtol=0)
        seen_scenes.add(draw.scene)
        seen_kinds.add(draw.kind)
        seen_transforms.add(draw.transform)
    assert len(seen_scenes) >= 4 and seen_kinds == {"bicubic", "box", "gaussian"}
    assert len(seen_transforms) >= 6


def test_band_shared_normalisation_uses_each_scenes_percentiles(shared_data):
    catalog = shared_data.train.catalog
    with rasterio.open(LANDSAT8) as src:
        full = src.read().astype(np.float64)
    index = [s.path for s in catalog.scenes].index(LANDSAT8)
    offset, scale = catalog.radiometry(index, 2)
    # the crops fit the 1M-pixel statistics budget: exact full-resolution percentiles
    low, high = np.percentile(full[2], [1, 99])
    assert offset[0] == pytest.approx(low, rel=1e-6)
    assert offset[0] + scale[0] == pytest.approx(high, rel=1e-6)
    with rasterio.open(JAPAN) as src:
        band = src.read(1).astype(np.float64)
    japan = [s.path for s in catalog.scenes].index(JAPAN)
    offset, scale = catalog.radiometry(japan, 0)
    low, high = np.percentile(band[band != 0], [1, 99])
    assert offset[0] == pytest.approx(low, rel=1e-6)
    assert offset[0] + scale[0] == pytest.approx(high, rel=1e-6)
    # sensors with very different DN ranges land on the same normalised scale
    values = [shared_data.train[i].hr.mean().item() for i in range(30)]
    assert all(-0.5 < v < 1.5 for v in values)


def test_multiband_fixed_normalisation_is_pooled_train_rows(tmp_path):
    a = textured(3, 200, 150, seed=1)
    b = textured(3, 180, 170, seed=2) + 500
    paths = [write_tif(tmp_path / "a.tif", a), write_tif(tmp_path / "b.tif", b)]
    config = DataConfig(bands=3, patch=32, val_fraction=0.25)
    data = prepare_data(paths, config, generator=0)
    norm = data.normalization
    assert norm.mode == "fixed"
    train_pixels = np.concatenate(
        [a[:, :150].reshape(3, -1), b[:, :135].reshape(3, -1)], axis=1
    ).astype(np.float64)  # 25 % of 200 and of 180 rows held out
    low, high = np.percentile(train_pixels, [1, 99], axis=1)
    np.testing.assert_allclose(norm.offset, low, rtol=1e-6)
    np.testing.assert_allclose(np.add(norm.offset, norm.scale), high, rtol=1e-6)
    sample = data.train[0]
    assert sample.hr.shape == (3, 32, 32) and sample.lr.shape == (3, 8, 8)
    np.testing.assert_allclose(sample.offset.numpy(), norm.offset, rtol=1e-6)


def test_nodata_windows_are_skipped_and_masked(tmp_path):
    data = textured(2, 256, 256)
    data[:, :, :150] = 0  # scene-edge fill over 150 of 256 columns
    path = write_tif(tmp_path / "fill.tif", data, nodata=0)
    config = DataConfig(bands=2, patch=32, max_nodata=0.2, val_fraction=0.0)
    prepared = prepare_data(path, config, generator=3)
    for index in range(40):
        sample = prepared.train[index]
        draw = prepared.train.locate(index)[0]
        raw = raw_window(path, Window(draw.col, draw.row, 32, 32), None)
        expected_valid = d4_transform(raw[0] != 0, draw.transform)
        np.testing.assert_array_equal(sample.valid[0].numpy(), expected_valid)
        assert sample.valid.float().mean() >= 0.8
        # nodata cells near valid data are filled from valid neighbours, not left at the fill value
        hr = sample.hr.numpy()
        valid = sample.valid[0].numpy()
        near = binary_dilation(valid, np.ones((3, 3), bool), iterations=FILL_RADIUS) & ~valid
        if near.any():
            assert hr[:, near].min() >= hr[:, valid].min() - 1e-6
    # a third of the window positions are free of fill: 30 tries find one almost surely
    strict = DataConfig(bands=2, patch=32, max_nodata=0.0, max_tries=30, val_fraction=0)
    prepared = prepare_data(path, strict, generator=3)
    assert all(prepared.train[i].valid.all() for i in range(20))


def test_nodata_override_for_untagged_fill(tmp_path):
    data = textured(1, 128, 128)
    data[:, :64] = 0
    path = write_tif(tmp_path / "untagged.tif", data, nodata=None)
    loose = prepare_data(path, DataConfig(patch=32, val_fraction=0, max_nodata=0.9), generator=0)
    override = prepare_data(
        path, DataConfig(patch=32, val_fraction=0, max_nodata=0.9, nodata=0), generator=0
    )
    assert all(loose.train[i].valid.all() for i in range(10))
    assert not all(override.train[i].valid.all() for i in range(10))


def test_fill_invalid_grows_from_valid_neighbours():
    x = np.zeros((1, 5, 5), dtype=np.float32)
    valid = np.zeros((5, 5), dtype=bool)
    x[0, :, 0], valid[:, 0] = 3.0, True
    x[0, :, 4], valid[:, 4] = 9.0, True
    out = fill_invalid(x, valid)
    np.testing.assert_allclose(out[0, :, 1], 3.0)
    np.testing.assert_allclose(out[0, :, 3], 9.0)
    np.testing.assert_allclose(out[0, :, 2], 6.0)
    # bounded, as at inference: FILL_VALUE beyond FILL_RADIUS pixels from valid data
    np.testing.assert_array_equal(fill_invalid(x, np.zeros((5, 5), dtype=bool)), FILL_VALUE)
    wide = np.zeros((1, 3, 12), dtype=np.float32)
    edge = np.zeros((3, 12), dtype=bool)
    wide[0, :, 0], edge[:, 0] = 3.0, True
    out = fill_invalid(wide, edge)
    np.testing.assert_allclose(out[0, :, 1 : FILL_RADIUS + 1], 3.0)
    np.testing.assert_array_equal(out[0, :, FILL_RADIUS + 1 :], FILL_VALUE)


def test_training_fills_nodata_as_inference_does(tmp_path):
    """Training patches get the inference engine's bounded fill (neighbour means up to
    FILL_RADIUS pixels from valid data, FILL_VALUE beyond), so the network learns the fill
    it sees when upscaling."""
    data = textured(1, 128, 128)
    data[:, :, :64] = 0
    path = write_tif(tmp_path / "edge.tif", data, nodata=0)
    config = DataConfig(patch=32, val_fraction=0, max_nodata=0.9, augment=False)
    prepared = prepare_data(path, config, generator=0)
    far_seen = False
    for index in range(20):
        sample = prepared.train[index]
        valid = sample.valid[0].numpy()
        hr = sample.hr[0].numpy()
        near = binary_dilation(valid, np.ones((3, 3), bool), iterations=FILL_RADIUS)
        np.testing.assert_array_equal(hr[~near], FILL_VALUE)
        far_seen |= bool((~near).any())
        if valid.any():  # neighbour means stay within the valid values
            low, high = hr[valid].min() - 1e-6, hr[valid].max() + 1e-6
            assert low <= hr[near].min() and hr[near].max() <= high
    assert far_seen


# --- validation split ------------------------------------------------------------------------------


def overlaps(a: Window, b: Window) -> bool:
    return (
        a.col_off < b.col_off + b.width
        and b.col_off < a.col_off + a.width
        and a.row_off < b.row_off + b.height
        and b.row_off < a.row_off + a.height
    )


def test_large_scenes_get_decimated_statistics(full_scene):
    """A 1550x1578 scene is over the 1M-pixel statistics budget: its percentiles come from a
    decimated read and stay close to the full-resolution ones."""
    japan = full_scene(JAPAN)
    data = prepare_data([japan], DataConfig(bands=None), generator=0)
    with rasterio.open(japan) as src:
        assert src.width * src.height > 1_000_000
        band = src.read(1).astype(np.float64)
    offset, scale = data.train.catalog.radiometry(0, 0)
    low, high = np.percentile(band[band != 0], [1, 99])
    assert offset[0] == pytest.approx(low, rel=0.02)
    assert offset[0] + scale[0] == pytest.approx(high, rel=0.02)


def test_validation_windows_never_overlap_training_windows(shared_data):
    data = shared_data
    val = data.val.windows()
    assert 0 < len(val) <= 64
    assert {s for s, _ in val} >= {0, 1, 2, 4}  # every scene tall enough holds some out
    train = [
        (d.scene, Window(d.col, d.row, 96, 96))
        for d in (data.train.draw(i, attempt) for i in range(300) for attempt in range(2))
    ]
    for scene, window in train:
        for val_scene, val_window in val:
            assert scene != val_scene or not overlaps(window, val_window)
    # the held-out strip is at the bottom of each scene, at least one patch tall
    for scene, window in val:
        height = data.train.catalog.scenes[scene].height
        assert window.row_off + 96 <= height
        assert window.row_off >= height - max(96, round(0.1 * height))
    kinds = [d.kind for d in data.val.draws]
    assert set(kinds) == {"bicubic", "box", "gaussian"}
    assert data.val[0].hr.shape == (1, 96, 96)


def test_separate_validation_scenes(tmp_path):
    train = [write_tif(tmp_path / f"t{i}.tif", textured(2, 100, 100, seed=i)) for i in range(2)]
    val = write_tif(tmp_path / "v.tif", textured(2, 100, 100, seed=9))
    data = prepare_data(train, DataConfig(bands=2, patch=32), generator=0, val_sources=val)
    val_paths = {data.val.catalog.scenes[s].path for s, _ in data.val.windows()}
    assert val_paths == {val.resolve()}
    drawn = {data.train.catalog.scenes[data.train.draw(i).scene].path for i in range(100)}
    assert drawn == {p.resolve() for p in train}
    assert len(data.val) == 9  # a 3x3 grid of 32-pixel windows in 100x100


def test_too_small_for_any_validation_strip(tmp_path):
    path = write_tif(tmp_path / "short.tif", textured(1, 100, 300))
    with pytest.raises(InputError, match="validation"):
        prepare_data(path, DataConfig(patch=64), generator=0)
    assert prepare_data(path, DataConfig(patch=64, val_fraction=0), generator=0).train[0]


# --- reproducibility and resume --------------------------------------------------------------------


def take(stream: BatchStream, count: int) -> list:
    batches = []
    for batch in stream:
        batches.append(batch)
        if len(batches) == count:
            break
    return batches


def assert_same_batches(a: list, b: list) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        for tx, ty in zip(x, y, strict=True):
            torch.testing.assert_close(tx, ty, rtol=0, atol=0)


def test_seeded_generator_reproduces_and_differs(shared_data):
    again = prepare_data(
        [NAIP[0], NAIP[5], LANDSAT8, OLINDA, JAPAN],
        DataConfig(bands=None),
        generator=torch.Generator().manual_seed(0),
    )
    assert again.train.seed == shared_data.train.seed
    assert_same_batches(
        take(BatchStream(shared_data.train, 4), 2), take(BatchStream(again.train, 4), 2)
    )
    other = prepare_data(NAIP[:1], DataConfig(), generator=torch.Generator().manual_seed(1))
    assert other.train.seed != shared_data.train.seed
    np_seeded = prepare_data(NAIP[:1], DataConfig(), generator=np.random.default_rng(5))
    assert (
        np_seeded.train.seed
        == prepare_data(NAIP[:1], generator=np.random.default_rng(5)).train.seed
    )


def test_resume_gives_the_batches_of_an_uninterrupted_run(shared_data):
    uninterrupted = take(BatchStream(shared_data.train, 4), 5)
    first = BatchStream(shared_data.train, 4)
    head = take(first, 2)
    state = first.state_dict()
    assert state["samples"] == 8
    # a fresh process: new data object with a *different* generator, state restores the order
    fresh = prepare_data(
        [NAIP[0], NAIP[5], LANDSAT8, OLINDA, JAPAN],
        DataConfig(bands=None),
        generator=torch.Generator().manual_seed(123),
    )
    resumed = BatchStream(fresh.train, 4)
    resumed.load_state_dict(pickle.loads(pickle.dumps(state)))
    tail = take(resumed, 3)
    assert_same_batches(head + tail, uninterrupted)
    with pytest.raises(ConfigError, match="batch size 4"):
        BatchStream(fresh.train, 3).load_state_dict(state)


def test_workers_give_the_same_batches_and_leave_global_rng_alone(shared_data):
    """Workers get the dataset by pickling: no open handle travels, order is unchanged."""
    shared_data.train[0]  # opens handles in this process first
    state = torch.get_rng_state()
    in_process = take(BatchStream(shared_data.train, 4), 3)
    assert torch.equal(state, torch.get_rng_state())
    with_workers = take(BatchStream(shared_data.train, 4, num_workers=2), 3)
    assert_same_batches(in_process, with_workers)
    clone = pickle.loads(pickle.dumps(shared_data.train))
    assert clone.catalog.reader._handles == {}
    torch.testing.assert_close(clone[7].hr, shared_data.train[7].hr, rtol=0, atol=0)


def test_distributed_ranks_share_one_sequence_without_overlap(shared_data):
    single = take(BatchStream(shared_data.train, 2), 4)
    rank0 = take(BatchStream(shared_data.train, 2, rank=0, world_size=2), 2)
    rank1 = take(BatchStream(shared_data.train, 2, rank=1, world_size=2), 2)
    # global batch order 0,1,2,3 is split as rank0: 0,2 and rank1: 1,3
    assert_same_batches([single[0], single[2]], rank0)
    assert_same_batches([single[1], single[3]], rank1)
    stream = BatchStream(shared_data.train, 2, rank=1, world_size=2)
    take(stream, 2)
    assert stream.state_dict()["samples"] == 8
    with pytest.raises(ConfigError, match="rank 2"):
        BatchStream(shared_data.train, 2, rank=2, world_size=2)
