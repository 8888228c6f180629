"""Every bad input: a clear one-line error of geosr's own hierarchy, nothing lost or half-written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

import geosr
from tests.conftest import LANDSAT7_OLINDA, LANDSAT8


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and text
    return text


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_missing_input(tmp_path: Path, model_factory) -> None:
    with pytest.raises(geosr.InputNotFoundError) as exc:
        geosr.upscale(tmp_path / "nope.tif", model=model_factory())
    assert "does not exist" in _one_line(exc)
    assert isinstance(exc.value, FileNotFoundError)


def test_not_a_raster(tmp_path: Path, model_factory) -> None:
    path = tmp_path / "notes.tif"
    path.write_text("these are field notes, not pixels")
    with pytest.raises(geosr.NotARasterError) as exc:
        geosr.upscale(path, model=model_factory())
    assert "not a raster GDAL can read" in _one_line(exc)
    assert _files(tmp_path) == ["notes.tif"]


def test_folder_as_input(tmp_path: Path, model_factory) -> None:
    with pytest.raises(geosr.NotARasterError, match="is a folder"):
        geosr.upscale(tmp_path, model=model_factory())


def test_truncated_tiff(tmp_path: Path, model_factory) -> None:
    data = LANDSAT8.read_bytes()
    path = tmp_path / "cut.tif"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(geosr.NotARasterError) as exc:
        geosr.upscale(path, model=model_factory(bands=4))
    assert "corrupt or truncated" in _one_line(exc) or "not a raster" in _one_line(exc)
    assert _files(tmp_path) == ["cut.tif"]


def test_corrupt_tiff_header(tmp_path: Path, model_factory) -> None:
    data = bytearray(LANDSAT7_OLINDA.read_bytes())
    data[4:8] = b"\xff\xff\xff\x7f"  # first IFD offset points past the end
    path = tmp_path / "bad.tif"
    path.write_bytes(bytes(data))
    with pytest.raises(geosr.NotARasterError):
        geosr.upscale(path, model=model_factory(bands=6))


def test_band_count_mismatch_names_both_and_the_fix(model_factory) -> None:
    with pytest.raises(geosr.BandMismatchError) as exc:
        geosr.upscale(LANDSAT7_OLINDA, model=model_factory(bands=4))
    text = _one_line(exc)
    assert "expects 4 band(s)" in text and "has 6" in text and "--bands" in text


def test_bad_band_selection(model_factory) -> None:
    with pytest.raises(geosr.InputError, match="band.* 9 do not exist .* 6 band"):
        geosr.upscale(LANDSAT7_OLINDA, model=model_factory(bands=3), bands=[1, 2, 9])


def test_complex_data_is_refused(tmp_path: Path, model_factory) -> None:
    path = tmp_path / "complex.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=8, height=8, count=1, dtype="complex64"
    ) as dst:
        dst.write(np.ones((1, 8, 8), np.complex64))
    with pytest.raises(geosr.InputError) as exc:
        geosr.upscale(path, model=model_factory(bands=1))
    assert "complex" in _one_line(exc)


def test_scale_the_model_cannot_do(model_factory) -> None:
    with pytest.raises(geosr.ModelError) as exc:
        geosr.upscale(LANDSAT8, model=model_factory(bands=4, scale=2), scale=4)
    assert "x2 only, not x4" in _one_line(exc)


def test_output_equal_to_input_is_always_refused(crop, model_factory) -> None:
    src = crop(LANDSAT8, Window(0, 0, 32, 32))
    before = src.read_bytes()
    for overwrite in (False, True):
        with pytest.raises(geosr.OutputError, match="is the input file"):
            geosr.upscale(src, src, model=model_factory(bands=4), overwrite=overwrite)
    assert src.read_bytes() == before


def test_existing_output_needs_overwrite(crop, model_factory) -> None:
    src = crop(LANDSAT8, Window(0, 0, 32, 32))
    out = src.with_name("out.tif")
    out.write_bytes(b"keep me")
    with pytest.raises(geosr.OutputExistsError) as exc:
        geosr.upscale(src, out, model=model_factory(bands=4))
    assert "overwrite=True" in _one_line(exc)
    assert out.read_bytes() == b"keep me"
    geosr.upscale(src, out, model=model_factory(bands=4), overwrite=True)
    with rasterio.open(out) as o:
        assert o.width == 64


def test_missing_output_folder(crop, model_factory, tmp_path: Path) -> None:
    src = crop(LANDSAT8, Window(0, 0, 32, 32))
    with pytest.raises(geosr.OutputError, match="folder .* does not exist"):
        geosr.upscale(src, tmp_path / "no" / "such" / "out.tif", model=model_factory(bands=4))


def test_output_is_a_folder(crop, model_factory, tmp_path: Path) -> None:
    src = crop(LANDSAT8, Window(0, 0, 32, 32))
    (tmp_path / "dir.tif").mkdir()
    with pytest.raises(geosr.OutputError, match="is a folder"):
        geosr.upscale(src, tmp_path / "dir.tif", model=model_factory(bands=4))


def test_cuda_without_a_gpu(crop, model_factory) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    src = crop(LANDSAT8, Window(0, 0, 32, 32))
    with pytest.raises(geosr.ConfigError, match="no GPU"):
        geosr.upscale(src, model=model_factory(bands=4), device="cuda")
    assert _files(src.parent) == ["crop.tif"]


def test_bad_chunk_size(crop, model_factory) -> None:
    src = crop(LANDSAT8, Window(0, 0, 32, 32))
    with pytest.raises(geosr.ConfigError, match="chunk_size"):
        geosr.upscale(src, model=model_factory(bands=4), chunk_size=-5)


def test_default_model_is_the_bundled_srgan(crop) -> None:
    src = crop(LANDSAT8, Window(0, 0, 24, 24))
    assert {"srgan", "srresnet"} <= set(geosr.bundled_models())
    out = geosr.upscale(src)
    assert out == src.with_name("crop_x4.tif")
    with rasterio.open(src) as s, rasterio.open(out) as o:
        assert (o.width, o.height, o.count, o.dtypes) == (96, 96, 4, s.dtypes)
        assert o.bounds == s.bounds and o.crs == s.crs
        default = geosr.read_meta("srgan").default_strength
        assert o.tags()["GEOSR_MODEL"] == f"srgan, strength {default:g}"
        assert o.tags()["GEOSR_SCALE"] == "4"


def test_corrupt_model_file(crop, tmp_path: Path) -> None:
    src = crop(LANDSAT8, Window(0, 0, 24, 24))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(geosr.CheckpointError):
        geosr.upscale(src, model=bad)
    assert _files(tmp_path) == ["bad.safetensors", "crop.tif"]
