"""Masks beyond nodata: alpha bands, internal masks and .msk sidecars on a real scene."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import rasterio
import rioxarray
from rasterio.enums import ColorInterp
from rasterio.windows import Window

import geosr
from tests.conftest import RGB_BYTE

WINDOW = Window(0, 40, 120, 100)  # the scene's edge: fill and data


def _scene(window: Window = WINDOW) -> tuple[np.ndarray, np.ndarray, dict]:
    """RGB_BYTE's window: its pixels, its validity mask (0/255, from nodata 0) and profile."""
    with rasterio.open(RGB_BYTE) as src:
        data = src.read(window=window)
        mask = src.dataset_mask(window=window)
        profile = src.profile | {
            "width": int(window.width),
            "height": int(window.height),
            "transform": src.window_transform(window),
            "nodata": None,  # the mask, not a value, marks the fill now
        }
    assert (mask == 0).any() and (mask == 255).any()
    return data, mask, profile


def _scramble(data: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``data`` with other values under the mask: what a valid output must not depend on."""
    noise = np.random.default_rng(7).integers(0, 256, data.shape, dtype=np.uint8)
    return np.where(mask == 0, noise, data).astype(data.dtype)


def write_rgba(path: Path, data: np.ndarray, alpha: np.ndarray, profile: dict) -> Path:
    with rasterio.open(path, "w", **(profile | {"count": 4, "photometric": "RGB"})) as dst:
        dst.write(data, [1, 2, 3])
        dst.write(alpha, 4)
        dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]
    return path


def write_masked(path: Path, data: np.ndarray, mask: np.ndarray, profile: dict, internal: bool):
    with (
        rasterio.Env(GDAL_TIFF_INTERNAL_MASK=internal),
        rasterio.open(path, "w", **profile) as dst,
    ):
        dst.write(data)
        dst.write_mask(mask)
    return path


def nearest(array: np.ndarray, scale: int) -> np.ndarray:
    return np.repeat(np.repeat(array, scale, axis=-2), scale, axis=-1)


def _read(path: Path) -> tuple[np.ndarray, np.ndarray, tuple]:
    with rasterio.open(path) as src:
        return src.read(), src.read_masks(1), src.mask_flag_enums[0]


@pytest.mark.parametrize("consistency", [True, False])
def test_alpha_band_is_carried_not_super_resolved(
    consistency: bool, model_factory, tmp_path: Path
) -> None:
    data, mask, profile = _scene()
    alpha = np.where(mask > 0, 255, 0).astype(np.uint8)
    alpha[10:20, 60:80] = 128  # partly transparent pixels stay as they are
    src = write_rgba(tmp_path / "rgba.tif", data, alpha, profile)
    other = write_rgba(tmp_path / "other.tif", _scramble(data, alpha), alpha, profile)
    model = model_factory(bands=3, scale=2)  # an RGB model: the alpha band is no input
    out = geosr.upscale(src, model=model, chunk_size=48, consistency=consistency)
    out_other = geosr.upscale(other, model=model, chunk_size=48, consistency=consistency)
    sr, _, _ = _read(out)
    with rasterio.open(out) as dst:
        assert dst.count == 4 and dst.colorinterp[3] == ColorInterp.alpha
    assert np.array_equal(sr[3], nearest(alpha, 2))
    hidden = nearest(alpha, 2) == 0
    assert (sr[:3, ~hidden].std(axis=1) > 0).all() and (sr[:3, hidden] == 0).all()
    # what sits under the mask never reaches the network, nor the statistics
    assert np.array_equal(sr, _read(out_other)[0])


@pytest.mark.parametrize("internal", [True, False], ids=["internal", "msk-sidecar"])
def test_dataset_mask_is_carried_as_an_internal_mask(
    internal: bool, model_factory, tmp_path: Path
) -> None:
    data, mask, profile = _scene()
    src = write_masked(tmp_path / "masked.tif", data, mask, profile, internal)
    other = write_masked(tmp_path / "other.tif", _scramble(data, mask), mask, profile, internal)
    assert Path(f"{src}.msk").exists() != internal
    model = model_factory(bands=3, scale=2)
    out = geosr.upscale(src, model=model, chunk_size=48)
    sr, out_mask, flags = _read(out)
    assert flags == [rasterio.enums.MaskFlags.per_dataset]
    assert not Path(f"{out}.msk").exists()  # internal, inside the one output file
    assert np.array_equal(out_mask, nearest(mask, 2))
    assert (sr[:, out_mask == 0] == 0).all() and (sr[:, out_mask > 0].std(axis=1) > 0).all()
    assert np.array_equal(sr, _read(geosr.upscale(other, model=model, chunk_size=48))[0])


def test_mask_survives_cog_output_and_band_selection(model_factory, tmp_path: Path) -> None:
    data, mask, profile = _scene()
    src = write_masked(tmp_path / "masked.tif", data, mask, profile, internal=True)
    out = geosr.upscale(src, model=model_factory(bands=None, scale=2), bands=[3, 1], cog=True)
    sr, out_mask, _ = _read(out)
    assert sr.shape[0] == 2 and np.array_equal(out_mask, nearest(mask, 2))


def test_alpha_band_not_selected_still_masks(model_factory, tmp_path: Path) -> None:
    """Bands 1-3 of an RGBA: no alpha band in the output, so its mask becomes an internal one."""
    data, mask, profile = _scene()
    src = write_rgba(tmp_path / "rgba.tif", data, mask, profile)
    out = geosr.upscale(src, model=model_factory(bands=3, scale=2), bands=[1, 2, 3])
    sr, out_mask, _ = _read(out)
    assert sr.shape[0] == 3 and np.array_equal(out_mask, nearest(mask, 2))


def test_alpha_band_alone_or_counted_as_data_is_refused(model_factory, tmp_path: Path) -> None:
    data, mask, profile = _scene()
    src = write_rgba(tmp_path / "rgba.tif", data, mask, profile)
    with pytest.raises(geosr.InputError, match="band 4 of .* is its alpha band"):
        geosr.upscale(src, model=model_factory(bands=None, scale=2), bands=[4])
    with pytest.raises(geosr.BandMismatchError, match="colorinterp_4 undefined") as exc:
        geosr.upscale(src, model=model_factory(bands=4, scale=2))
    assert "\n" not in str(exc.value)


def test_dataarray_face_takes_a_mask_and_an_alpha_band(model_factory, tmp_path: Path) -> None:
    """upscale_dataarray(mask=..., alpha=...) gives the pixels geosr.upscale writes."""
    data, mask, profile = _scene()
    rgba = write_rgba(tmp_path / "rgba.tif", data, mask, profile)
    masked = write_masked(tmp_path / "masked.tif", data, mask, profile, internal=True)
    model = geosr.load_model(model_factory(bands=3, scale=2))
    from_alpha = geosr.upscale_dataarray(
        rioxarray.open_rasterio(rgba, chunks={"x": 48, "y": 48}), model, alpha=4
    )
    with rasterio.open(masked) as src:
        valid = da.from_array(src.dataset_mask(), chunks=48)
    from_mask = geosr.upscale_dataarray(
        rioxarray.open_rasterio(masked, chunks={"x": 48, "y": 48}), model, mask=valid
    )
    assert np.array_equal(
        from_alpha.values, _read(geosr.upscale(rgba, model=model, chunk_size=48))[0]
    )
    assert np.array_equal(
        from_mask.values, _read(geosr.upscale(masked, model=model, chunk_size=48))[0]
    )
    with pytest.raises(geosr.InputError, match="alpha=5 is not a band"):
        geosr.upscale_dataarray(rioxarray.open_rasterio(rgba), model, alpha=5)


@pytest.mark.slow
def test_distributed_cluster_writes_the_same_mask(model_factory, tmp_path: Path) -> None:
    from dask.distributed import Client, LocalCluster

    data, mask, profile = _scene()
    src = write_masked(tmp_path / "masked.tif", data, mask, profile, internal=False)
    model = model_factory(bands=3, scale=2)
    threads = geosr.upscale(src, tmp_path / "threads.tif", model=model, chunk_size=48)
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster),
    ):
        dist = geosr.upscale(src, tmp_path / "dist.tif", model=model, chunk_size=48)
    (a, mask_a, _), (b, mask_b, flags) = _read(threads), _read(dist)
    assert np.array_equal(a, b) and np.array_equal(mask_a, mask_b)
    assert np.array_equal(mask_b, nearest(mask, 2)) and flags == [
        rasterio.enums.MaskFlags.per_dataset
    ]
    assert not Path(f"{dist}.msk").exists()


def test_mask_of_another_size_is_refused(model_factory, tmp_path: Path) -> None:
    data, mask, profile = _scene()
    masked = write_masked(tmp_path / "masked.tif", data, mask, profile, internal=True)
    model = geosr.load_model(model_factory(bands=3, scale=2))
    with pytest.raises(geosr.InputError) as info:
        geosr.upscale_dataarray(rioxarray.open_rasterio(masked), model, mask=mask[1:, :])
    assert "\n" not in str(info.value) and "pass a (y, x) mask of the same size" in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["masked.tif"]


def test_stack_members_masks_combine_into_the_output_mask(tmp_path: Path) -> None:
    """A stack of single-band files, one with an internal mask (the scene's fill), one with a
    .msk sidecar (a block of valid pixels), one with none: the stack is valid only where both
    masks are, as the same bands in one file with the combined internal mask are."""
    data, mask, profile = _scene(Window(60, 40, 120, 100))  # about half of it fill
    block = np.full_like(mask, 255)
    block[30:60, 70:110] = 0  # valid in the scene, so only the sidecar masks it
    combined = np.minimum(mask, block)
    assert (combined != mask).any() and (combined != block).any()
    one = profile | {"count": 1}
    members = [
        write_masked(tmp_path / "b1.tif", data[:1], mask, one, internal=True),
        write_masked(tmp_path / "b2.tif", data[1:2], block, one, internal=False),
        tmp_path / "b3.tif",
    ]
    with rasterio.open(members[2], "w", **one) as dst:
        dst.write(data[2:3])
    assert not Path(f"{members[0]}.msk").exists() and Path(f"{members[1]}.msk").exists()
    # the same bands in one file under the combined mask, with other values beneath it
    reference = write_masked(
        tmp_path / "ref.tif", _scramble(data, combined), combined, profile, internal=True
    )
    out = geosr.upscale(members, model="srgan", chunk_size=48)
    sr, out_mask, flags = _read(out)
    assert flags == [rasterio.enums.MaskFlags.per_dataset]
    assert np.array_equal(out_mask, nearest(combined, 4))
    assert (sr[:, out_mask == 0] == 0).all() and (sr[:, out_mask > 0].std(axis=1) > 0).all()
    ref, ref_mask, _ = _read(geosr.upscale(reference, model="srgan", chunk_size=48))
    assert np.array_equal(sr, ref) and np.array_equal(out_mask, ref_mask)
