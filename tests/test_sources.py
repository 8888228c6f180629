"""Inputs beyond a local GeoTIFF: URLs served over real HTTP, GDAL names, JPEG 2000 and band
stacks of single-band files."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.env import get_gdal_config
from rasterio.shutil import copy as rio_copy
from rasterio.windows import Window

import geosr
from geosr.raster import default_output_path
from geosr.sources import REMOTE_DEFAULTS, dataset_name, redact, remote_env
from tests.conftest import LANDSAT8, LANDSAT8_ORIGINAL, write_crop
from tests.http_server import HTTP_ENV, SECRET, Server


def _read(path: Path) -> tuple[np.ndarray, rasterio.Affine, rasterio.crs.CRS | None]:
    with rasterio.open(path) as src:
        return src.read(), src.transform, src.crs


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and text
    return text


def write_cog(destination: Path, size: int) -> Path:
    """A COG (256-pixel tiles, internal overviews) of ``size`` x ``size`` pixels, mosaicked
    from mirrored copies of a real Landsat 8 crop."""
    with rasterio.open(LANDSAT8) as src:
        tile, profile = src.read(), src.profile
    row = np.concatenate([tile, tile[:, :, ::-1]] * (size // (2 * tile.shape[2]) + 1), axis=2)
    data = np.concatenate([row, row[:, ::-1]] * (size // (2 * tile.shape[1]) + 1), axis=1)
    data = np.ascontiguousarray(data[:, :size, :size])
    plain = destination.with_name(f"{destination.stem}.plain.tif")
    with rasterio.open(plain, "w", **(profile | {"width": size, "height": size})) as dst:
        dst.write(data)
    rio_copy(plain, destination, driver="COG", blocksize=256, compress="DEFLATE", predictor=2)
    plain.unlink()
    return destination


def test_remote_cog_equals_local_and_is_read_about_once(
    http_server: Server, model_factory, tmp_path: Path
) -> None:
    """A 1024 x 1024 COG over HTTP: the same pixels and georeference as read locally, every
    byte fetched about once (statistics come from an overview, chunks by range requests)."""
    cog = write_cog(http_server.folder / "scene.tif", 1024)
    with rasterio.open(cog) as src:
        assert src.overviews(1) and src.block_shapes[0] == (256, 256)
    model = model_factory(bands=4, scale=2)
    local = geosr.upscale(cog, tmp_path / "local.tif", model=model)
    assert http_server.bytes_served == 0
    with rasterio.Env(**HTTP_ENV):
        remote = geosr.upscale(f"{http_server.url}/scene.tif", tmp_path / "remote.tif", model=model)
    ratio = http_server.bytes_served / cog.stat().st_size
    assert 0.5 < ratio <= 1.2, f"read {ratio:.2f} x the file"
    (a, ta, ca), (b, tb, cb) = _read(local), _read(remote)
    assert np.array_equal(a, b) and ta == tb and ca == cb


def test_url_forms_keep_their_slashes_and_default_output_goes_here(
    http_server: Server, model_factory, tmp_path: Path, monkeypatch, caplog
) -> None:
    """``https://`` and ``/vsicurl/`` names read the same raster; the default output is the
    file name in the current folder; a token in the URL reaches no tag, log or message."""
    write_crop(LANDSAT8, http_server.folder / "scene.tif", Window(40, 30, 96, 80))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    model = model_factory(bands=4, scale=2)
    url = f"{http_server.url}/scene.tif?token={SECRET}"
    caplog.set_level(logging.DEBUG, logger="geosr")
    with rasterio.Env(**HTTP_ENV):
        out = geosr.upscale(url, model=model)
        again = geosr.upscale(f"/vsicurl/{url}", work / "again.tif", model=model)
        with pytest.raises(geosr.OutputExistsError):
            geosr.upscale(url, model=model)
    assert out == default_output_path(url, 2) == work / "scene_x2.tif"
    reference = geosr.upscale(http_server.folder / "scene.tif", work / "ref.tif", model=model)
    assert np.array_equal(_read(out)[0], _read(reference)[0])
    assert np.array_equal(_read(again)[0], _read(reference)[0])
    assert _read(out)[1:] == _read(reference)[1:]
    with rasterio.open(out) as dst:
        assert SECRET not in repr(dst.tags()) and dst.tags()["GEOSR_SCALE"] == "2"
    assert "127.0.0.1" in caplog.text and SECRET not in caplog.text


def test_missing_remote_raster_names_the_url_without_its_token(
    http_server: Server, model_factory, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with rasterio.Env(**HTTP_ENV), pytest.raises(geosr.InputNotFoundError) as exc:
        geosr.upscale(f"{http_server.url}/nope.tif?sig={SECRET}", model=model_factory())
    message = _one_line(exc)
    assert f"{http_server.url}/nope.tif" in message and SECRET not in message
    assert "http:/127" not in message
    assert list(tmp_path.iterdir()) == [tmp_path / "www"]


def test_url_with_a_space_and_a_password_holding_an_at_loses_both_in_the_message(
    http_server: Server, model_factory, tmp_path: Path, monkeypatch
) -> None:
    """The one-line error names the URL with neither its query nor any of its userinfo, though
    the label and GDAL's reason both quote it."""
    monkeypatch.chdir(tmp_path)
    host = http_server.url.removeprefix("http://")
    for url in (
        f"{http_server.url}/my scene.tif?sig={SECRET}",
        f"http://user:p@{SECRET}@{host}/nope.tif",
    ):
        with rasterio.Env(**HTTP_ENV), pytest.raises(geosr.GeosrError) as exc:
            geosr.upscale(url, model=model_factory())
        message = _one_line(exc)
        assert host in message and SECRET not in message and "p@" not in message
    assert list(tmp_path.iterdir()) == [tmp_path / "www"]


#: (text, what redact makes of it): whole messages, so the words around a URL stay.
REDACTIONS = [
    ("https://user:p@ss@host/x.tif?sig=abc", "https://host/x.tif?…"),
    ("https://user:pw@host/x.tif", "https://host/x.tif"),
    ("ftp://user:p@ss@host:21/a.tif is missing", "ftp://host:21/a.tif is missing"),
    ("http://host:8080/a.tif?token=abc", "http://host:8080/a.tif?…"),
    ("https://host/my scene.tif?sig=abc", "https://host/my scene.tif?…"),
    ("/vsicurl/https://host/my scene.tif?sig=abc", "/vsicurl/https://host/my scene.tif?…"),
    (
        "cannot read 'https://host/a.tif?sig=abc' (HTTP 403); check the URL",
        "cannot read 'https://host/a.tif?…' (HTTP 403); check the URL",
    ),
    (
        '"/vsicurl/https://u:p@ss@host/my scene.tif?X-Amz-Signature=abc": not found, sorry',
        '"/vsicurl/https://host/my scene.tif?…": not found, sorry',
    ),
    ("input https://host/a.tif?X-Amz-Signature=abc", "input https://host/a.tif?…"),
    (
        "https://h/a.tif?sig=1 and https://u:pw@h/my b.tif?sig=2 differ in size",
        "https://h/a.tif?… and https://h/my b.tif?… differ in size",
    ),
    (
        "https://h/a.tif is fine but https://h/b.tif?sig=2 is not",
        "https://h/a.tif is fine but https://h/b.tif?… is not",
    ),
    ("/vsis3/bucket/key.tif?x=1 is not a raster", "/vsis3/bucket/key.tif?… is not a raster"),
    ("/vsis3/bucket/my key.tif: No such file", "/vsis3/bucket/my key.tif: No such file"),
    (
        "'/vsiaz/container/my blob.tif?sv=2022&sig=abc' not recognized as a raster",
        "'/vsiaz/container/my blob.tif?…' not recognized as a raster",
    ),
    ("/vsicurl?url=https%3A%2F%2Fhost%2Fa.tif&sig=abc", "/vsicurl?…"),
    ("s3://bucket/key.tif?versionId=abc is old", "s3://bucket/key.tif?… is old"),
    ("az://container/blob.tif?sv=2022&sig=abc", "az://container/blob.tif?…"),
    (
        "gs://bucket/a.tif?X-Goog-Signature=abc\nnext line? yes",
        "gs://bucket/a.tif?…\nnext line? yes",
    ),
    ("https://user:p?ss@host/x.tif", "https://?…"),  # "?" ends the host: the rest is a query
    ("https://host/x.tif?sig=a@b", "https://host/x.tif?…"),
    ("https://host/a.tif\nis it a raster?yes", "https://host/a.tif\nis it a raster?yes"),
    (
        "https://host/a.tif failed; is it a raster? check",
        "https://host/a.tif failed; is it a raster? check",
    ),
    ("s3://bucket/a.tif; mail admin@example.com", "s3://bucket/a.tif; mail admin@example.com"),
    ("no URL at all: is it a raster? check it", "no URL at all: is it a raster? check it"),
    ("C:\\data\\scene.tif has 4 bands", "C:\\data\\scene.tif has 4 bands"),
    ("", ""),
]


@pytest.mark.parametrize(("text", "expected"), REDACTIONS)
def test_redact_drops_queries_and_userinfo_and_keeps_the_message(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert redact(expected) == expected  # nothing left to drop


def test_outputs_are_local_files(crop, model_factory) -> None:
    src = crop(LANDSAT8, Window(0, 0, 32, 32))
    for output in (f"s3://bucket/out.tif?X-Amz-Signature={SECRET}", "/vsis3/bucket/out.tif"):
        with pytest.raises(geosr.OutputError, match="not a local file") as exc:
            geosr.upscale(src, output, model=model_factory())
        assert SECRET not in _one_line(exc)


def test_dataset_names() -> None:
    assert dataset_name("https://host/a/b.tif?x=1") == "/vsicurl/https://host/a/b.tif?x=1"
    assert dataset_name("s3://bucket/key/b.tif") == "/vsis3/bucket/key/b.tif"
    assert dataset_name("gs://bucket/b.tif") == "/vsigs/bucket/b.tif"
    assert dataset_name("az://container/b.tif") == "/vsiaz/container/b.tif"
    assert dataset_name("/vsis3/bucket/b.tif") == "/vsis3/bucket/b.tif"
    assert dataset_name("~/b.tif") == str(Path.home() / "b.tif")
    assert default_output_path("s3://bucket/key/b.tif", 4) == Path.cwd() / "b_x4.tif"


def test_remote_defaults_leave_the_callers_settings() -> None:
    def config() -> dict[str, str | None]:
        return {k: get_gdal_config(k, normalize=False) for k in REMOTE_DEFAULTS}

    with remote_env(["/vsis3/bucket/b.tif"]):
        assert config() == REMOTE_DEFAULTS
    with rasterio.Env(VSI_CACHE="FALSE"), remote_env(["/vsicurl/http://h/b.tif"]):
        assert config() == REMOTE_DEFAULTS | {"VSI_CACHE": "FALSE"}
    with remote_env([str(LANDSAT8)]):
        assert set(config().values()) == {None}


# --- JPEG 2000 -----------------------------------------------------------------------------------


def test_jpeg2000_input(model_factory, tmp_path: Path) -> None:
    """A lossless JPEG 2000 (as Sentinel-2 SAFE bands are) upscales exactly as its GeoTIFF."""
    assert "JP2OpenJPEG" in rasterio.drivers.raster_driver_extensions().values()
    tif = write_crop(LANDSAT8, tmp_path / "crop.tif", Window(50, 70, 120, 96))
    data, transform, crs = _read(tif)
    jp2 = tmp_path / "crop.jp2"
    with rasterio.open(tif) as src:
        profile = src.profile | {"driver": "JP2OpenJPEG", "quality": 100, "reversible": "YES"}
    for key in ("tiled", "blockxsize", "blockysize", "compress", "interleave"):
        profile.pop(key, None)
    with rasterio.open(jp2, "w", **profile) as dst:
        dst.write(data)
    back, jp2_transform, jp2_crs = _read(jp2)
    assert np.array_equal(back, data) and jp2_transform == transform and jp2_crs == crs
    model = model_factory(bands=4, scale=2)
    out = geosr.upscale(jp2, model=model)
    assert out == tmp_path / "crop_x2.tif"
    ref = geosr.upscale(tif, tmp_path / "ref.tif", model=model)
    (a, ta, ca), (b, tb, cb) = _read(out), _read(ref)
    assert np.array_equal(a, b) and ta == tb and ca == cb


def test_vrt_file_input(model_factory, tmp_path: Path) -> None:
    tif = write_crop(LANDSAT8, tmp_path / "crop.tif", Window(10, 20, 64, 48))
    vrt = tmp_path / "scene.vrt"
    rio_copy(tif, vrt, driver="VRT")
    model = model_factory(bands=4, scale=2)
    out = geosr.upscale(str(vrt), model=model)
    assert out == tmp_path / "scene_x2.tif"
    (a, ta, ca), (b, tb, cb) = _read(out), _read(geosr.upscale(tif, model=model))
    assert np.array_equal(a, b) and ta == tb and ca == cb


# --- band stacks ---------------------------------------------------------------------------------


@pytest.fixture
def band_files(tmp_path: Path) -> list[Path]:
    """Landsat 8 bands 2-5 as the single-band files they are delivered as (copied, so
    outputs beside them land in tmp_path)."""
    files = []
    for band in ("B2", "B3", "B4", "B5"):
        files.append(tmp_path / f"l8_{band}.tif")
        shutil.copy(LANDSAT8_ORIGINAL / f"l8_{band}.tif", files[-1])
    return files


def test_stack_of_band_files_equals_the_stacked_scene(
    band_files: list[Path], model_factory, tmp_path: Path
) -> None:
    model = model_factory(bands=4, scale=2)
    out = geosr.upscale([str(p) for p in band_files], model=model, chunk_size=64)
    assert out == tmp_path / "l8_B2_stack_x2.tif"
    stacked = write_crop(LANDSAT8, tmp_path / "stacked.tif", Window(0, 0, 192, 192))
    ref = geosr.upscale(stacked, model=model, chunk_size=64)
    (a, ta, ca), (b, tb, cb) = _read(out), _read(ref)
    assert np.array_equal(a, b) and ta == tb and ca == cb
    with rasterio.open(out) as dst:
        assert dst.descriptions == ("l8_B2", "l8_B3", "l8_B4", "l8_B5")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [p.name for p in band_files] + [out.name, stacked.name, ref.name]
    )


def test_stack_on_several_grids_lands_on_the_finest(band_files: list[Path], model_factory) -> None:
    """Band files on different grids (30 m and the 15 m pan band) are a product: the output
    is on the finest grid divided by the scale, and each band is named by its file."""
    pan = LANDSAT8_ORIGINAL / "l8_B8.tif"  # 15 m, 384 x 384
    out = geosr.upscale(  # cubic: the guided landsat-pan lands on the 30 m grid cut in two
        [*band_files[:2], pan, band_files[3]], model=model_factory(bands=None), guided=None
    )
    with rasterio.open(out) as dst, rasterio.open(pan) as src:
        assert dst.transform == src.transform * rasterio.Affine.scale(1 / 2)
        assert dst.descriptions == ("B2", "B3", "B8", "B5")
        assert dst.tags()["GEOSR_ALIGNER"] == "cubic"


def test_stack_takes_single_band_rasters(band_files: list[Path], model_factory) -> None:
    with pytest.raises(geosr.InputError, match="has 4 bands but a stack takes single-band") as e:
        geosr.upscale([band_files[0], LANDSAT8], model=model_factory())
    _one_line(e)
    with pytest.raises(geosr.InputError, match="no input given"):
        geosr.upscale([], model=model_factory())
    with pytest.raises(geosr.InputNotFoundError, match="does not exist"):
        geosr.upscale([band_files[0], band_files[0].with_name("nope.tif")], model=model_factory())


def test_output_cannot_be_a_stacked_input(band_files: list[Path], model_factory) -> None:
    before = band_files[1].read_bytes()
    with pytest.raises(geosr.OutputError, match="is the input file"):
        geosr.upscale(band_files, band_files[1], model=model_factory(), overwrite=True)
    assert band_files[1].read_bytes() == before
