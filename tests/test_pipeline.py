"""The inference engine on real scenes: georeference, seams, nodata, dtypes, bands, COG, atomicity."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import rasterio
import rioxarray
from affine import Affine
from rasterio.windows import Window

import geosr
from tests.conftest import (
    LANDSAT7_OLINDA,
    LANDSAT8,
    LANDSAT8_150M,
    LANDSAT8_ORIGINAL,
    NAIP_DIR,
    RGB_BYTE,
)


def assert_same_footprint(src_path: Path, out_path: Path, scale: int) -> None:
    """The promise: same CRS and bounds, pixel size / scale, same bands, dtype and nodata."""
    with rasterio.open(src_path) as src, rasterio.open(out_path) as out:
        assert out.crs == src.crs
        assert out.transform == src.transform @ Affine.scale(1 / scale)
        assert np.allclose(tuple(out.bounds), tuple(src.bounds), rtol=0, atol=1e-6)
        assert np.allclose(out.res, (src.res[0] / scale, src.res[1] / scale))
        assert (out.width, out.height) == (src.width * scale, src.height * scale)
        assert out.count == src.count and out.dtypes == src.dtypes
        assert out.nodata == src.nodata or (np.isnan(out.nodata) and np.isnan(src.nodata))
        assert out.descriptions == src.descriptions
        assert out.colorinterp == src.colorinterp
        for key, value in src.tags().items():
            assert out.tags()[key] == value
        assert out.tags()["GEOSR_SCALE"] == str(scale)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("source", "window", "bands", "scale"),
    [
        (LANDSAT8, Window(100, 80, 150, 120), 4, 4),  # uint16, 4 bands, band descriptions
        (RGB_BYTE, Window(0, 40, 160, 140), 3, 2),  # uint8 RGB, nodata 0, scene edge
        (LANDSAT7_OLINDA, None, None, 2),  # uint8, 6 bands, band-shared model
        (LANDSAT8_150M, Window(4, 10, 220, 200), 3, 2),  # uint16, nodata 0 fill at the edge
    ],
)
def test_output_lands_exactly_on_the_input_footprint(
    source: Path,
    window: Window | None,
    bands: int | None,
    scale: int,
    crop,
    model_factory,
    tmp_path: Path,
) -> None:
    src = crop(source, window)
    before = sha256(src)
    out = geosr.upscale(src, model=model_factory(bands=bands, scale=scale), chunk_size=64)
    assert out == src.with_name(f"{src.stem}_x{scale}.tif")
    assert_same_footprint(src, out, scale)
    assert sha256(src) == before  # the input is never modified
    with rasterio.open(out) as dst:
        data = dst.read()
    assert data.std() > 0


def test_full_landsat_scene_all_bands_keep_radiometry(
    model_factory, full_scene, tmp_path: Path
) -> None:
    """The whole 627x603 Landsat 8 stack; each output block averages back to its input pixel."""
    scene = full_scene(LANDSAT8)
    out = geosr.upscale(
        scene, tmp_path / "l8_x2.tif", model=model_factory(bands=4, scale=2), chunk_size=256
    )
    assert_same_footprint(scene, out, 2)
    with rasterio.open(scene) as src, rasterio.open(out) as dst:
        lr = src.read().astype(np.float64)
        sr = dst.read().astype(np.float64)
    back = sr.reshape(4, lr.shape[1], 2, lr.shape[2], 2).mean(axis=(2, 4))
    assert np.abs(back - lr).max() <= 1.0


def test_rotated_raster_keeps_its_rotation(crop, model_factory) -> None:
    with rasterio.open(LANDSAT8) as src:
        rotated = src.transform @ Affine.rotation(20)
    src = crop(LANDSAT8, Window(0, 0, 90, 70), transform=rotated)
    out = geosr.upscale(src, model=model_factory(bands=4, scale=2), chunk_size=32)
    with rasterio.open(src) as s, rasterio.open(out) as o:
        assert o.transform == s.transform @ Affine.scale(0.5)
        assert o.transform @ (o.width, o.height) == pytest.approx(s.transform @ (s.width, s.height))
        assert o.crs == s.crs


@pytest.mark.parametrize("model_bands", [4, None])
def test_chunked_equals_whole_scene_no_seams(
    model_bands: int | None, model_factory, tmp_path: Path
) -> None:
    """chunk_size=128 and one whole-scene chunk agree within one unit of the output dtype,
    on a real scene whose size is not a multiple of the chunk."""
    model = model_factory(bands=model_bands, scale=2, width=8, blocks=2)
    window = Window(20, 30, 300, 270)
    src = tmp_path / "scene.tif"
    from tests.conftest import write_crop

    write_crop(LANDSAT8, src, window)
    tiled = geosr.upscale(src, tmp_path / "tiled.tif", model=model, chunk_size=128)
    whole = geosr.upscale(src, tmp_path / "whole.tif", model=model, chunk_size=1000)
    with rasterio.open(tiled) as a, rasterio.open(whole) as b:
        diff = np.abs(a.read().astype(np.int64) - b.read().astype(np.int64))
    assert diff.max() <= 1
    # and the halo is what makes it so: without it, chunk borders differ
    seamy = geosr.upscale(src, tmp_path / "seamy.tif", model=model, chunk_size=128, overlap=0)
    with rasterio.open(seamy) as a, rasterio.open(whole) as b:
        assert np.abs(a.read().astype(np.int64) - b.read().astype(np.int64)).max() > 1


def test_seam_free_with_nodata_and_small_tiles(model_factory, tmp_path: Path) -> None:
    from tests.conftest import write_crop

    src = write_crop(LANDSAT8_150M, tmp_path / "edge.tif", Window(4, 10, 260, 230))
    model = model_factory(bands=3, scale=2, width=8, blocks=2)
    a = geosr.upscale(src, tmp_path / "a.tif", model=model, chunk_size=100, tile_size=40)
    b = geosr.upscale(src, tmp_path / "b.tif", model=model, chunk_size=1000)
    with rasterio.open(a) as ra, rasterio.open(b) as rb:
        assert np.abs(ra.read().astype(np.int64) - rb.read().astype(np.int64)).max() <= 1


def test_nodata_is_restored_exactly_and_never_produced(crop, model_factory) -> None:
    src = crop(LANDSAT8_150M, Window(4, 10, 220, 200))
    out = geosr.upscale(src, model=model_factory(bands=3, scale=2), chunk_size=64)
    with rasterio.open(src) as s, rasterio.open(out) as o:
        lr, sr = s.read(), o.read()
        nodata = s.nodata
    lr_invalid = lr == nodata
    assert lr_invalid.any() and (~lr_invalid).any()
    expected = np.repeat(np.repeat(lr_invalid, 2, axis=1), 2, axis=2)
    assert np.array_equal(sr == nodata, expected)


def test_nodata_values_do_not_bleed_into_valid_pixels(model_factory, tmp_path: Path) -> None:
    """Two float rasters equal on valid pixels, one marking holes with -9999, one with NaN:
    the valid output must not depend on what sits under the holes."""
    with rasterio.open(LANDSAT8) as s:
        data = s.read(window=Window(0, 0, 120, 100)).astype(np.float32) / 10000
        profile = s.profile | {
            "width": 120,
            "height": 100,
            "dtype": "float32",
            "transform": s.transform,
        }
    hole = np.zeros(data.shape[1:], bool)
    hole[30:60, 40:90] = True
    sentinel = np.where(hole, -9999.0, data).astype(np.float32)
    nan = np.where(hole, np.nan, data).astype(np.float32)
    paths = []
    for name, values, nodata in (("sentinel", sentinel, -9999.0), ("nan", nan, None)):
        path = tmp_path / f"{name}.tif"
        with rasterio.open(path, "w", **(profile | {"nodata": nodata})) as dst:
            dst.write(values)
        paths.append(path)
    model = model_factory(bands=4, scale=2)
    stats = geosr.BandStats(np.zeros(4, np.float32), np.full(4, 0.3, np.float32))
    outs = []
    for path in paths:
        outs.append(geosr.upscale(path, model=model, chunk_size=48))
    with rasterio.open(outs[0]) as a, rasterio.open(outs[1]) as b:
        sa, sb = a.read(), b.read()
        assert a.nodata == -9999.0 and b.nodata is None
    hr_hole = np.repeat(np.repeat(hole, 2, axis=0), 2, axis=1)
    assert np.all(sa[:, hr_hole] == -9999.0) and np.all(np.isnan(sb[:, hr_hole]))
    assert np.allclose(sa[:, ~hr_hole], sb[:, ~hr_hole], atol=1e-5)
    assert np.isfinite(sa[:, ~hr_hole]).all()
    del stats


@pytest.mark.parametrize("dtype", ["uint8", "int16", "uint16", "float32"])
def test_dtypes_are_kept(dtype: str, model_factory, tmp_path: Path) -> None:
    with rasterio.open(LANDSAT8) as s:
        data = s.read(window=Window(200, 200, 64, 48)).astype(np.float64)
        profile = s.profile | {
            "width": 64,
            "height": 48,
            "transform": s.window_transform(Window(200, 200, 64, 48)),
            "photometric": "MINISBLACK",  # not RGBA, GDAL's default for 4 x uint8
        }
    scaled = {
        "uint8": data / 256,
        "int16": data - 20000,
        "uint16": data,
        "float32": data / 65535,
    }[dtype].astype(dtype)
    path = tmp_path / f"{dtype}.tif"
    with rasterio.open(path, "w", **(profile | {"dtype": dtype})) as dst:
        dst.write(scaled)
    out = geosr.upscale(path, model=model_factory(bands=4, scale=2), chunk_size=32)
    with rasterio.open(out) as o:
        assert o.dtypes[0] == dtype
        sr = o.read().astype(np.float64)
    back = sr.reshape(4, 48, 2, 64, 2).mean(axis=(2, 4))
    tolerance = 1e-4 * np.abs(scaled).max() if dtype == "float32" else 1.0
    assert np.abs(back - scaled.astype(np.float64)).max() <= tolerance


@pytest.mark.parametrize("count", [1, 3, 4, 13])
def test_any_band_count(count: int, model_factory, tmp_path: Path) -> None:
    """1 to 13 bands from the real Landsat 8 band files, with a multiband and a band-shared model."""
    files = sorted(LANDSAT8_ORIGINAL.glob("l8_B*.tif"))
    files = [f for f in files if f.name != "l8_B8.tif"]  # pan band is on a finer grid
    window = Window(100, 100, 40, 36)
    layers = []
    for index in range(count):
        with rasterio.open(files[index % len(files)]) as s:
            layers.append(s.read(1, window=window))
            profile = s.profile | {
                "count": count,
                "width": 40,
                "height": 36,
                "transform": s.window_transform(window),
            }
    path = tmp_path / f"b{count}.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.stack(layers))
    for bands in (count, None):
        out = geosr.upscale(
            path,
            tmp_path / f"out_{bands}.tif",
            model=model_factory(bands=bands, scale=2),
            chunk_size=16,
        )
        with rasterio.open(out) as o:
            assert o.count == count and (o.width, o.height) == (80, 72)


def test_band_selection(model_factory, tmp_path: Path) -> None:
    """The selected bands, in the order given: each output band averages back to its source."""
    with rasterio.open(LANDSAT7_OLINDA) as src:
        lr = src.read([4, 3, 2]).astype(np.float64)
    out = geosr.upscale(
        LANDSAT7_OLINDA,
        tmp_path / "sel.tif",
        model=model_factory(bands=3, scale=2),
        bands=[4, 3, 2],
        chunk_size=128,
    )
    with rasterio.open(out) as o:
        assert o.count == 3
        sr = o.read().astype(np.float64)
    back = sr.reshape(3, lr.shape[1], 2, lr.shape[2], 2).mean(axis=(2, 4))
    assert np.abs(back - lr).max() <= 1.0
    # the bands differ enough that any other order would fail
    assert min(np.abs(lr[i] - lr[j]).mean() for i in range(3) for j in range(3) if i != j) > 5


def test_tiny_raster_smaller_than_chunk_and_halo(crop, model_factory) -> None:
    src = crop(LANDSAT8, Window(10, 10, 7, 5))
    out = geosr.upscale(src, model=model_factory(bands=4, scale=4), chunk_size=512)
    assert_same_footprint(src, out, 4)


def test_all_nodata_raster_gives_all_nodata(crop, model_factory) -> None:
    src = crop(RGB_BYTE, Window(0, 0, 40, 30))  # the corner of RGB.byte is fill
    with rasterio.open(src) as s:
        assert (s.read() == 0).all()
    out = geosr.upscale(src, model=model_factory(bands=3, scale=2), chunk_size=16)
    with rasterio.open(out) as o:
        assert (o.read() == 0).all() and o.nodata == 0


def test_nan_and_inf_in_float_input(model_factory, tmp_path: Path) -> None:
    with rasterio.open(LANDSAT8) as s:
        data = s.read(window=Window(0, 0, 50, 40)).astype(np.float32) / 10000
        profile = s.profile | {"width": 50, "height": 40, "dtype": "float32", "nodata": None}
    data[:, 5, 5] = np.nan
    data[1, 20, 30] = np.inf
    path = tmp_path / "nan.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    out = geosr.upscale(path, model=model_factory(bands=4, scale=2), chunk_size=16)
    with rasterio.open(out) as o:
        sr = o.read()
    assert np.isnan(sr[:, 10:12, 10:12]).all() and np.isnan(sr[1, 40:42, 60:62]).all()
    assert np.isfinite(sr).sum() == sr.size - 4 * 4 - 4


def test_raster_without_crs_works_with_a_warning(model_factory, tmp_path: Path) -> None:
    with rasterio.open(LANDSAT8) as s:
        data = s.read(window=Window(0, 0, 32, 32))
    path = tmp_path / "plain.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=32, height=32, count=4, dtype="uint16"
    ) as dst:
        dst.write(data)
    with pytest.warns(geosr.NotGeoreferencedWarning, match="no CRS"):
        out = geosr.upscale(path, model=model_factory(bands=4, scale=2), chunk_size=16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(out) as o:
            assert o.crs is None and (o.width, o.height) == (64, 64)


def test_cog_output_is_valid(crop, model_factory) -> None:
    from rio_cogeo.cogeo import cog_validate

    src = crop(RGB_BYTE, Window(300, 140, 160, 128))
    out = geosr.upscale(src, model=model_factory(bands=3, scale=4), chunk_size=64, cog=True)
    valid, errors, _ = cog_validate(out, strict=True)
    assert valid, errors
    with rasterio.open(out) as o:
        assert o.overviews(1), "a COG of this size has overviews"
        assert o.nodata == 0 and o.colorinterp[:3] == (
            rasterio.enums.ColorInterp.red,
            rasterio.enums.ColorInterp.green,
            rasterio.enums.ColorInterp.blue,
        )
    assert_same_footprint(src, out, 4)
    assert sorted(p.name for p in src.parent.iterdir()) == sorted([src.name, out.name])


def test_interrupted_write_leaves_nothing_and_keeps_old_output(crop, model_factory) -> None:
    src = crop(LANDSAT8, Window(0, 0, 128, 128))
    target = src.with_name("out.tif")
    target.write_bytes(b"previous result")

    def stop(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        geosr.upscale(
            src,
            target,
            model=model_factory(bands=4, scale=2),
            chunk_size=32,
            overwrite=True,
            progress=stop,
        )
    assert target.read_bytes() == b"previous result"
    assert sorted(p.name for p in src.parent.iterdir()) == ["crop.tif", "out.tif"]


def test_progress_callback_counts_every_chunk(crop, model_factory) -> None:
    src = crop(LANDSAT8, Window(0, 0, 128, 96))
    seen = []
    geosr.upscale(
        src,
        model=model_factory(bands=4, scale=2),
        chunk_size=32,
        progress=lambda d, t: seen.append((d, t)),
    )
    assert seen[0] == (0, 12) and seen[-1] == (12, 12) and len(seen) == 13


def test_upscale_dataarray_is_lazy_and_georeferenced(model_factory, tmp_path: Path) -> None:
    src = tmp_path / "naip.tif"
    from tests.conftest import write_crop

    naip = sorted(NAIP_DIR.glob("*.tif"))[0]
    # MINISBLACK: GDAL writes 4 x uint8 as RGBA by default, and an alpha band is not SR'd
    write_crop(naip, src, Window(100, 100, 96, 80), photometric="MINISBLACK")
    model = geosr.load_model(model_factory(bands=4, scale=2))
    data = rioxarray.open_rasterio(src, chunks={"x": 48, "y": 48})
    sr = geosr.upscale_dataarray(data, model)
    assert isinstance(sr.data, da.Array)
    assert sr.shape == (4, 160, 192)
    assert sr.rio.crs == data.rio.crs
    assert sr.rio.transform() == data.rio.transform() @ Affine.scale(0.5)
    assert sr.rio.nodata == data.rio.nodata
    assert list(sr.band.values) == list(data.band.values)
    transform = sr.rio.transform()
    assert sr.x.values[0] == pytest.approx(transform.c + transform.a / 2)
    assert sr.y.values[-1] == pytest.approx(transform.f + transform.e * (160 - 0.5))
    # computing it gives the same pixels as the file path
    out = geosr.upscale(src, model=model, chunk_size=48)
    with rasterio.open(out) as o:
        assert np.array_equal(sr.values, o.read())


def test_fixed_normalisation_from_the_checkpoint(model_factory, tmp_path: Path, crop) -> None:
    """A model storing its own per-band offset/scale uses them rather than scene statistics."""
    model = geosr.load_model(model_factory(bands=4, scale=2))
    fixed = geosr.Normalization(mode="fixed", offset=(5000.0,) * 4, scale=(20000.0,) * 4)
    path = geosr.save_model(model, tmp_path / "fixed.safetensors", normalization=fixed)
    src = crop(LANDSAT8, Window(0, 0, 64, 64))
    a = geosr.upscale(src, tmp_path / "a.tif", model=path, chunk_size=32, consistency=False)
    b = geosr.upscale(src, tmp_path / "b.tif", model=model, chunk_size=32, consistency=False)
    with rasterio.open(a) as ra, rasterio.open(b) as rb:
        assert not np.array_equal(ra.read(), rb.read())


def test_radiometry_holds_next_to_saturated_and_black_pixels(model_factory, tmp_path: Path) -> None:
    """Stretched so many pixels sit at 1 (0 is nodata) and 255: the clipped projection still
    makes every block average back to its input pixel within one unit."""
    with rasterio.open(RGB_BYTE) as s:
        window = Window(300, 140, 96, 80)
        data = s.read(window=window).astype(np.float64)
        profile = s.profile | {"width": 96, "height": 80, "transform": s.window_transform(window)}
    stretched = np.clip((data - 40) * 4, 1, 255).astype("uint8")
    assert (stretched == 255).mean() > 0.05 and (stretched == 1).mean() > 0.05
    path = tmp_path / "stretched.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(stretched)
    out = geosr.upscale(path, model=model_factory(bands=3, scale=4), chunk_size=48)
    with rasterio.open(out) as o:
        sr = o.read().astype(np.float64)
    back = sr.reshape(3, 80, 4, 96, 4).mean(axis=(2, 4))
    assert np.abs(back - stretched).max() <= 1.0
    assert sr.min() >= 1  # valid data never becomes nodata


def test_project_consistent_respects_limits() -> None:
    from geosr.pipeline import project_consistent

    rng = np.random.default_rng(0)
    lr = rng.uniform(0, 10, (2, 5, 6))
    lr[0, 0, 0], lr[1, 2, 3] = 0.0, 10.0  # blocks that must be flat at a limit
    sr = rng.normal(5, 6, (2, 20, 24))
    out = project_consistent(sr.copy(), lr, 4, low=0.0, high=10.0)
    assert out.min() >= 0 and out.max() <= 10
    assert np.allclose(out.reshape(2, 5, 4, 6, 4).mean(axis=(2, 4)), lr, atol=1e-6)
    free = project_consistent(sr.copy(), lr, 4)
    assert np.allclose(free.reshape(2, 5, 4, 6, 4).mean(axis=(2, 4)), lr)


def test_outputs_get_ordinary_permissions(crop, model_factory) -> None:
    import os

    src = crop(LANDSAT8, Window(0, 0, 32, 32))
    out = geosr.upscale(src, model=model_factory(bands=4))
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask
    saved = geosr.save_model(
        geosr.load_model(model_factory(bands=4)), src.with_name("m.safetensors")
    )
    assert saved.stat().st_mode & 0o777 == 0o666 & ~mask


def test_cpu_runs_float32_whatever_the_precision() -> None:
    from geosr.errors import ConfigError
    from geosr.pipeline import TileRunner

    model = geosr.load_model("default")
    for precision in ("auto", "fp16", "bf16"):
        assert TileRunner(model, "cpu", precision=precision).autocast_dtype is None
    with pytest.raises(ConfigError, match="precision must be one of"):
        TileRunner(model, "cpu", precision="fp8")


@pytest.mark.parametrize("dtype", ["int32", "uint32"])
def test_wide_integer_limits_do_not_wrap(dtype: str) -> None:
    """Values at the top of int32/uint32 clip to the largest value, never wrap around."""
    import torch

    from geosr.pipeline import to_output_dtype

    info = np.iinfo(dtype)
    sr = torch.tensor([[[1e12, -1e12], [float(info.max), 5.4]]], dtype=torch.float32)
    sr = sr.repeat_interleave(2, 1).repeat_interleave(2, 2)
    valid = np.ones((1, 2, 2), bool)
    out = to_output_dtype(sr, valid, 2, np.dtype(dtype), None)
    assert out.dtype == np.dtype(dtype)
    assert out[0, 0, 0] == info.max and out[0, 0, 2] == info.min
    assert out[0, 2, 0] == info.max and out[0, 2, 2] == 5


@pytest.mark.parametrize("dtype", ["int64", "uint64"])
def test_64bit_integer_limits_do_not_wrap(dtype: str) -> None:
    """float64 rounds the int64/uint64 maxima up to 2**63 / 2**64; values there and beyond
    clip just inside the range, at either limit, instead of wrapping to the other end."""
    import torch

    from geosr.pipeline import to_output_dtype

    info = np.iinfo(dtype)
    top, bottom = int(info.max), int(info.min)
    sr = torch.tensor([[[1e30, -1e30], [float(info.max), float(info.min)]]], dtype=torch.float32)
    sr = sr.repeat_interleave(2, 1).repeat_interleave(2, 2)
    valid = np.ones((1, 2, 2), bool)
    out = to_output_dtype(sr, valid, 2, np.dtype(dtype), None)
    assert out.dtype == np.dtype(dtype)
    assert all(top - 2048 < int(v) <= top for v in out[0, :, :2].ravel())
    assert all(int(v) == bottom for v in out[0, :, 2:].ravel())
    # a nodata value at either limit is never produced, and nothing wraps past it
    high = to_output_dtype(sr, valid, 2, np.dtype(dtype), float(info.max))
    assert all(top - 2048 < int(v) < top for v in high[0, :, :2].ravel())
    low = to_output_dtype(sr, valid, 2, np.dtype(dtype), float(info.min))
    assert all(bottom < int(v) < bottom + 2048 for v in low[0, :, 2:].ravel())


@pytest.mark.parametrize("dtype", ["int64", "uint64"])
def test_64bit_rasters_at_their_limits_upscale_without_wrapping(
    dtype: str, model_factory, tmp_path: Path
) -> None:
    info = np.iinfo(dtype)
    window = Window(0, 0, 32, 32)
    with rasterio.open(LANDSAT8) as s:
        data = s.read(window=window).astype(dtype)
        profile = s.profile | {
            "width": 32,
            "height": 32,
            "transform": s.window_transform(window),
            "dtype": dtype,
        }
    data[:, :, :8] = info.max
    data[:, :, -8:] = info.min
    path = tmp_path / f"{dtype}.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    out = geosr.upscale(path, model=model_factory(bands=4, scale=2), chunk_size=32)
    with rasterio.open(out) as o:
        assert o.dtypes[0] == dtype
        sr = o.read()
    span = float(info.max) - float(info.min)
    top = sr[:, :, :16].astype(np.float64)
    bottom = sr[:, :, -16:].astype(np.float64)
    assert np.abs(top - float(info.max)).max() <= 1e-6 * span
    assert np.abs(bottom - float(info.min)).max() <= 1e-6 * span


@pytest.mark.parametrize("chunk_size", [0, 2.5])
def test_bad_chunk_sizes_are_refused_not_replaced(chunk_size, crop, model_factory) -> None:
    src = crop(RGB_BYTE, Window(0, 0, 32, 32))
    model = model_factory(bands=3, scale=2)
    with pytest.raises(geosr.ConfigError, match=rf"chunk_size .*got {chunk_size}; pass") as e:
        geosr.upscale(src, model=model, chunk_size=chunk_size)
    assert "\n" not in str(e.value)
    assert not src.with_name(f"{src.stem}_x2.tif").exists()
    data = rioxarray.open_rasterio(src)
    with pytest.raises(geosr.ConfigError, match=rf"chunk_size .*got {chunk_size}"):
        geosr.upscale_dataarray(data, model, chunk_size=chunk_size)


def test_statistics_sample_is_the_same_from_files_arrays_and_training(crop) -> None:
    """A scene's statistics come from one decimated sample, whether the scene is a file
    (upscale), an array (upscale_dataarray) or a training scene."""
    from geosr.data import SceneReader, describe_scene
    from geosr.raster import lazy_array, open_info, read_sample, sample_array

    src = crop(LANDSAT8, Window(0, 0, 96, 90))
    info = open_info(src)
    reader = SceneReader([describe_scene(src)])
    for max_pixels in (700, 1000, 2000, 4321, 96 * 90):
        from_file = read_sample(info, max_pixels)
        assert from_file.shape[0] == 4 and from_file[0].size <= max_pixels
        np.testing.assert_array_equal(sample_array(lazy_array(info, 32), max_pixels), from_file)
        np.testing.assert_array_equal(reader.read_decimated(0, max_pixels)[0], from_file)
    reader.close()
