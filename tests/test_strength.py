"""The strength dial of ``srgan`` and the x8 self-ensemble, through every face, on real crops."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rioxarray
import torch
from rasterio.windows import Window

import geosr
from geosr.checkpoint import load_model, save_model, with_endpoints
from geosr.metrics import mean_gradient_magnitude, sam
from tests.conftest import DATA, LANDSAT8, NAIP_DIR

NAIP = NAIP_DIR / "m_4709963_se_14_1_20150926.tif"
OLD_SRGAN = DATA / "models" / "srgan-0.x.safetensors"


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def _box_down(image: np.ndarray, scale: int) -> np.ndarray:
    b, h, w = image.shape
    return image.reshape(b, h // scale, scale, w // scale, scale).astype(np.float64).mean((2, 4))


@pytest.fixture(scope="module")
def naip_crop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.conftest import write_crop

    return write_crop(NAIP, tmp_path_factory.mktemp("naip") / "naip.tif", Window(64, 64, 96, 96))


@pytest.fixture(scope="module")
def outputs(naip_crop: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[float, Path]:
    """The crop upscaled by srgan at five strengths, and by srresnet (key -1)."""
    folder = tmp_path_factory.mktemp("strengths")
    result = {
        s: geosr.upscale(naip_crop, folder / f"s{s}.tif", model="srgan", strength=s)
        for s in (0.0, 0.25, 0.5, 0.75, 1.0)
    }
    result[-1] = geosr.upscale(naip_crop, folder / "srresnet.tif", model="srresnet")
    return result


def test_strength_zero_is_srresnet(outputs: dict[float, Path]) -> None:
    zero, srresnet = _read(outputs[0.0]).astype(int), _read(outputs[-1]).astype(int)
    assert np.abs(zero - srresnet).max() <= 1


def test_texture_grows_with_strength_on_a_real_crop(outputs: dict[float, Path]) -> None:
    gradients = [mean_gradient_magnitude(_read(outputs[s]).astype(float)) for s in sorted(outputs)]
    gradients = gradients[1:]  # without srresnet
    assert all(b >= a for a, b in itertools.pairwise(gradients)), gradients
    assert gradients[-1] > gradients[0] * 1.05, gradients


def test_projection_holds_at_every_strength(naip_crop: Path, outputs: dict[float, Path]) -> None:
    lr = _read(naip_crop).astype(np.float64)
    for strength in (0.0, 0.5, 1.0):
        out = _read(outputs[strength])
        inside = (out > 0).all(axis=0) & (out < 255).all(axis=0)  # no clipped pixel in a block
        blocks = _box_down(inside[None].astype(float), 4)[0] == 1
        error = np.abs(_box_down(out, 4) - lr)[:, blocks]
        assert error.max() <= 1.0, (strength, error.max())


def test_strengths_differ_and_are_tagged(outputs: dict[float, Path]) -> None:
    assert not np.array_equal(_read(outputs[0.0]), _read(outputs[1.0]))
    with rasterio.open(outputs[0.5]) as src:
        assert src.tags()["GEOSR_MODEL"] == "srgan, strength 0.5"
    with rasterio.open(outputs[-1]) as src:
        assert src.tags()["GEOSR_MODEL"] == "srresnet"


def test_default_strength_is_the_models(
    outputs: dict[float, Path], naip_crop: Path, tmp_path
) -> None:
    default = load_model("srgan").meta.default_strength
    assert default is not None and 0 < default <= 1
    out = geosr.upscale(naip_crop, tmp_path / "default.tif")  # model "default" is srgan
    with rasterio.open(out) as src:
        assert src.tags()["GEOSR_MODEL"] == f"srgan, strength {default:g}"
    if default in outputs:
        assert np.array_equal(_read(out), _read(outputs[default]))


def test_interpolation_is_linear_in_the_weights() -> None:
    zero, one, half = (load_model("srgan", strength=s) for s in (0.0, 1.0, 0.5))
    for key, value in half.state_dict().items():
        expected = (zero.state_dict()[key] + one.state_dict()[key]) / 2
        assert torch.allclose(value, expected, atol=1e-6), key
    assert half.strength == 0.5 and zero.strength == 0.0


def test_a_dial_round_trips_through_a_file(tmp_path: Path) -> None:
    fidelity, texture = load_model("srgan", strength=0), load_model("srgan", strength=1)
    dial = with_endpoints(fidelity, texture, 0.3)
    path = save_model(dial, tmp_path / "dial.safetensors")
    loaded = load_model(path, strength=0.8)
    assert loaded.meta.default_strength == 0.3 and loaded.strength == 0.8
    reference = geosr.pipeline.with_strength(dial, 0.8)
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, reference.state_dict()[key]), key
    # saving a model loaded at some strength keeps both endpoints, not the blend
    again = save_model(loaded, tmp_path / "again.safetensors")
    assert torch.equal(load_model(again, strength=0).conv_head.weight, fidelity.conv_head.weight)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "high"])
def test_strength_out_of_range_is_one_line(bad: object) -> None:
    with pytest.raises(geosr.ModelError, match="strength must be a number from 0") as info:
        load_model("srgan", strength=bad)
    assert "\n" not in str(info.value)


def test_strength_for_a_model_without_a_gan_endpoint_is_refused(naip_crop: Path, tmp_path) -> None:
    with pytest.raises(geosr.ModelError, match="srresnet has no GAN endpoint") as info:
        geosr.upscale(naip_crop, tmp_path / "out.tif", model="srresnet", strength=0.5)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out.tif").exists()
    module = load_model("srresnet")
    with pytest.raises(geosr.ModelError, match="no GAN endpoint"):
        geosr.upscale_dataarray(rioxarray.open_rasterio(naip_crop), module, strength=0.2)


def run(*args: str) -> subprocess.CompletedProcess:
    """``geosr ARGS...`` in a child process, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "geosr", *args], capture_output=True, text=True, check=False
    )


def test_cli_strength_and_tta(naip_crop: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli.tif"
    done = run("upscale", str(naip_crop), str(out), "--strength", "1", "--tta")
    assert done.returncode == 0, done.stderr
    with rasterio.open(out) as src:
        assert src.tags()["GEOSR_MODEL"] == "srgan, strength 1, tta x8"
    refused = run(
        "upscale",
        str(naip_crop),
        str(tmp_path / "x.tif"),
        "--model",
        "srresnet",
        "--strength",
        "0.5",
    )
    assert refused.returncode == 1
    assert refused.stderr.strip().count("\n") == 0 and "no GAN endpoint" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "x.tif").exists()
    usage = run("upscale", str(naip_crop), "--strength", "2")
    assert usage.returncode == 2 and "from 0 to 1" in usage.stderr
    info = run("info", "srgan")
    assert info.returncode == 0 and "strength:" in info.stdout and "default" in info.stdout


def test_tta_is_invariant_to_flipping_the_input(tmp_path: Path) -> None:
    """The self-ensemble averages all eight orientations, so flipping or rotating the input
    only flips or rotates the output (within rounding), which a single pass does not do."""
    with rasterio.open(LANDSAT8) as src:
        data = src.read(window=Window(100, 100, 64, 64))
    import xarray as xr

    def upscale(array: np.ndarray, tta: bool) -> np.ndarray:
        da = xr.DataArray(array, dims=("band", "y", "x"))
        da = da.rio.write_transform(rasterio.Affine(30, 0, 0, 0, -30, 0))
        return geosr.upscale_dataarray(da, "srgan", tta=tta, chunk_size=64).values.astype(int)

    for tta in (True, False):
        plain = upscale(data, tta)
        flipped = upscale(data[:, :, ::-1].copy(), tta)[:, :, ::-1]
        turned = np.rot90(upscale(np.rot90(data, 1, (1, 2)).copy(), tta), -1, (1, 2))
        worst = max(np.abs(plain - flipped).max(), np.abs(plain - turned).max())
        if tta:
            assert worst <= 1, worst
        else:
            assert worst > 1  # a single pass is not equivariant: the test can fail


def test_tta_through_the_accessor_and_cube(naip_crop: Path) -> None:
    da = rioxarray.open_rasterio(naip_crop, chunks={"x": 48, "y": 48})
    plain = da.geosr.upscale("srgan", strength=0.5)
    ensemble = da.geosr.upscale("srgan", strength=0.5, tta=True)
    assert ensemble.attrs["geosr_model"] == "srgan, strength 0.5, tta x8"
    a, b = plain.values.astype(int), ensemble.values.astype(int)
    assert a.shape == b.shape and not np.array_equal(a, b)
    cube = da.expand_dims(time=2).copy()
    result = cube.geosr.upscale("srgan", strength=0.5, tta=True)
    assert result.attrs["geosr_model"] == "srgan, strength 0.5, tta x8"
    assert np.array_equal(result.isel(time=1).values, ensemble.values)


def test_old_checkpoints_still_load_and_run(naip_crop: Path, tmp_path: Path) -> None:
    """geosr 0.x's bundled srgan (the compact layout, no upsampler field in its metadata)."""
    old = load_model(OLD_SRGAN)
    assert old.config.upsampler == "pixelshuffle" and old.config.tail_kernel == 9
    assert old.strength is None
    out = geosr.upscale(naip_crop, tmp_path / "old.tif", model=OLD_SRGAN)
    assert _read(out).shape == (4, 384, 384)


def test_keep_band_ratios_takes_brightness_from_one_and_spectra_from_the_other() -> None:
    from geosr.pipeline import keep_band_ratios

    generator = torch.Generator().manual_seed(0)
    sr = torch.rand(4, 8, 8, generator=generator) * 200 + 1
    anchor = torch.rand(4, 8, 8, generator=generator) * 200 + 1
    anchor[:, 0, 0] = torch.tensor([-5.0, 10, 10, 10])  # a negative value: no ratio to keep
    before = sr.clone()
    out = keep_band_ratios(sr, anchor)
    assert out is sr  # in place
    assert torch.allclose(out.sum(0), before.sum(0), rtol=1e-5)  # brightness (texture) of sr
    ratios = out / out.sum(0)
    expected = anchor / anchor.sum(0)
    ok = torch.ones(8, 8, dtype=torch.bool)
    ok[0, 0] = False
    assert torch.allclose(ratios[:, ok], expected[:, ok], atol=1e-6)  # spectra of anchor
    assert torch.equal(out[:, 0, 0], before[:, 0, 0])
    one = torch.rand(1, 8, 8, generator=generator)
    assert torch.equal(keep_band_ratios(one.clone(), torch.rand(1, 8, 8)), one)


@pytest.fixture(scope="module")
def kept(naip_crop: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The crop at strength 1 with strength 0's band ratios."""
    folder = tmp_path_factory.mktemp("spectra")
    return geosr.upscale(
        naip_crop, folder / "kept.tif", model="srgan", strength=1, preserve_spectra=True
    )


def test_preserve_spectra_keeps_strength_zero_spectra_and_strength_one_texture(
    naip_crop: Path, outputs: dict[float, Path], kept: Path
) -> None:
    zero, one, out = (_read(p).astype(np.float64) for p in (outputs[0.0], outputs[1.0], kept))
    plain_angle, kept_angle = sam(one, zero), sam(out, zero)
    # what is left comes from the projection's per-band shifts and rounding to 8 bits
    assert kept_angle < 0.4 * plain_angle, (kept_angle, plain_angle)
    texture = {
        name: mean_gradient_magnitude(x) for name, x in (("0", zero), ("1", one), ("k", out))
    }
    assert texture["k"] > 0.9 * texture["1"] and texture["k"] > 1.05 * texture["0"], texture
    # the projection still holds: every unclipped block averages back to its input pixel
    lr = _read(naip_crop).astype(np.float64)
    inside = (out > 0).all(axis=0) & (out < 255).all(axis=0)
    blocks = _box_down(inside[None].astype(float), 4)[0] == 1
    assert np.abs(_box_down(out, 4) - lr)[:, blocks].max() <= 1.0
    with rasterio.open(kept) as src:
        assert src.tags()["GEOSR_MODEL"] == "srgan, strength 1, spectra of strength 0"


def test_preserve_spectra_is_a_no_op_at_strength_zero_and_on_one_band(
    naip_crop: Path, outputs: dict[float, Path], tmp_path: Path
) -> None:
    zero = geosr.upscale(
        naip_crop, tmp_path / "zero.tif", model="srgan", strength=0, preserve_spectra=True
    )
    assert np.array_equal(_read(zero), _read(outputs[0.0]))
    one_band = {
        kept: geosr.upscale(
            naip_crop,
            tmp_path / f"band_{kept}.tif",
            model="srgan",
            strength=1,
            bands=[2],
            preserve_spectra=kept,
        )
        for kept in (False, True)
    }
    assert np.array_equal(_read(one_band[False]), _read(one_band[True]))


def test_preserve_spectra_through_the_accessor_and_cube(naip_crop: Path, kept: Path) -> None:
    da = rioxarray.open_rasterio(naip_crop, chunks={"x": 48, "y": 48})
    lazy = da.geosr.upscale("srgan", strength=1, preserve_spectra=True)
    assert lazy.attrs["geosr_model"] == "srgan, strength 1, spectra of strength 0"
    assert np.abs(lazy.values.astype(int) - _read(kept).astype(int)).max() <= 1
    cube = da.expand_dims(time=2).copy().geosr.upscale("srgan", strength=1, preserve_spectra=True)
    assert np.array_equal(cube.isel(time=0).values, lazy.values)


def test_preserve_spectra_without_a_dial_is_refused(naip_crop: Path, tmp_path: Path) -> None:
    with pytest.raises(geosr.ModelError, match="preserve_spectra needs a model with a strength"):
        geosr.upscale(naip_crop, tmp_path / "out.tif", model="srresnet", preserve_spectra=True)
    assert not (tmp_path / "out.tif").exists()
    done = run(
        "upscale",
        str(naip_crop),
        str(tmp_path / "cli.tif"),
        "--model",
        "srresnet",
        "--preserve-spectra",
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "--preserve-spectra" in done.stderr
    assert not (tmp_path / "cli.tif").exists()
    ok = run(
        "upscale", str(naip_crop), str(tmp_path / "ok.tif"), "--strength", "1", "--preserve-spectra"
    )
    assert ok.returncode == 0, ok.stderr
    with rasterio.open(tmp_path / "ok.tif") as src:
        assert src.tags()["GEOSR_MODEL"] == "srgan, strength 1, spectra of strength 0"
