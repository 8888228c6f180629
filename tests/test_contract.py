"""The input contract: a model card's training domain, and scenes checked against it, on real
files (crops of the real scenes, their pixels unchanged or converted as a user would)."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rioxarray
import torch
from affine import Affine
from rasterio.warp import Resampling, calculate_default_transform, reproject
from rasterio.windows import Window

import geosr
from geosr.checkpoint import load_tensors, save_tensors
from geosr.contract import (
    TrainingDomain,
    check_domain,
    describe_raster,
    describe_scene_file,
    domain_from_scenes,
)
from geosr.errors import DomainError, DomainWarning, InputError
from geosr.products import open_source
from geosr.raster import read_sample
from tests.conftest import (
    DATA,
    LANDSAT7_OLINDA,
    LANDSAT8,
    LANDSAT8_150M,
    LANDSAT8_ORIGINAL,
    NAIP_DIR,
    RGB_BYTE,
    write_crop,
)

NAIP = NAIP_DIR / "m_4709963_se_14_1_20100629.tif"
C2L2 = DATA / "landsat8_c2l2" / "LC08_L2SP_020039_20150804_20200908_02_T1"
S2_L2A = (
    DATA / "s2_l2a_t32tmt" / "S2A_MSIL2A_20190530T103031_N0400_R108_T32TMT_20190530T103031.SAFE"
)
S2_L1C = (
    DATA / "s2_l1c_t55hfa" / "S2B_MSIL1C_20201011T000249_N0209_R030_T55HFA_20201011T011446.SAFE"
)
OLD_MODEL = DATA / "models" / "srgan-0.x.safetensors"
GEOSR = [sys.executable, "-m", "geosr"]


@pytest.fixture(scope="module")
def domain() -> TrainingDomain:
    domain = geosr.read_meta("srgan").domain
    assert domain is not None, "run benchmarks/model_domain.py to write the bundled domains"
    return domain


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory, domain: TrainingDomain) -> Path:
    """A tiny band-shared x2 model whose card carries srgan's training domain."""
    torch.manual_seed(0)
    model = geosr.build_model(bands=None, scale=2, width=8, blocks=1, batch_norm=False)
    path = tmp_path_factory.mktemp("contract") / "small.safetensors"
    return geosr.save_model(model, path, name="small", domain=domain)


def recorded(call) -> tuple[object, list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call()
    return result, [w for w in caught if issubclass(w.category, DomainWarning)]


def fine_naip(tmp_path: Path) -> Path:
    """A real NAIP crop whose georeference claims 0.3 m pixels (the pixels stay real)."""
    src = write_crop(NAIP, tmp_path / "naip_fine.tif", Window(40, 40, 64, 64))
    with rasterio.open(src, "r+") as f:
        t = f.transform
        f.transform = Affine(0.3, 0, t.c, 0, -0.3, t.f)
    return src


def reflectance_crop(tmp_path: Path) -> Path:
    """Landsat 8 Collection 2 Level-2 bands B4, B3, B2 as float32 reflectance (0-1), converted
    with the product's own scale and offset, as a user would."""
    files = [next(C2L2.glob(f"*_SR_B{n}.TIF")) for n in (4, 3, 2)]
    bands = []
    for file in files:
        with rasterio.open(file) as f:
            profile = f.profile.copy()
            window = Window(0, 0, 64, 64)
            dn = f.read(1, window=window).astype(np.float32)
            transform = f.window_transform(window)
        bands.append(np.clip(dn * 2.75e-5 - 0.2, 0, 1))
    profile.update(count=3, dtype="float32", nodata=None, width=64, height=64, transform=transform)
    path = tmp_path / "reflectance.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.stack(bands))
    return path


# --- the bundled models' cards ----------------------------------------------------------------


def test_bundled_cards_record_their_training_domain(domain: TrainingDomain) -> None:
    assert domain.gsd_m is not None and domain.gsd_m[0] == pytest.approx(5.0)
    assert domain.gsd_m[1] == pytest.approx(300.0, abs=0.1)
    assert domain.values == "DN" and set(domain.dtypes) == {"uint8", "uint16"}
    assert {"Landsat 7 ETM+", "Landsat 8 OLI", "NAIP (aerial)"} <= set(domain.sensors)
    assert domain.scenes == 11 and domain.p99 is not None and domain.p99[1] > 10_000
    assert geosr.read_meta("srresnet").domain == domain
    from geosr.checkpoint import read_guided_meta

    for name in ("s2-guided", "landsat-pan"):
        assert read_guided_meta(name).domain is not None


def test_geosr_info_shows_the_domain() -> None:
    result = subprocess.run(
        [*GEOSR, "info", "srgan"], capture_output=True, text=True, timeout=120, check=True
    )
    assert "training domain" in result.stdout
    assert "pixel size:    5\u2013300 m" in result.stdout
    assert "dtypes:        uint8, uint16" in result.stdout


def test_an_old_model_file_loads_without_a_domain() -> None:
    model = geosr.load_model(OLD_MODEL)
    assert model.meta.domain is None
    assert "training domain: not recorded" in model.meta.summary()


def test_domain_round_trips_and_tolerates_newer_keys(tmp_path: Path, domain) -> None:
    model = geosr.build_model(bands=None, scale=2, width=8, blocks=1)
    path = geosr.save_model(model, tmp_path / "m.safetensors", domain=domain.to_dict())
    assert geosr.load_model(path).meta.domain == domain
    tensors, metadata = load_tensors(path)
    metadata["geosr"]["domain"]["from_a_newer_geosr"] = [1, 2]
    save_tensors(path, tensors, metadata)
    assert geosr.read_meta(path).domain == domain
    metadata["geosr"]["domain"] = {"gsd_m": "not a range"}
    save_tensors(path, tensors, metadata)
    with pytest.raises(geosr.CheckpointError, match="invalid geosr metadata"):
        geosr.load_model(path)


# --- in-domain scenes do not warn -------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "bands"),
    [
        (NAIP, None),
        (LANDSAT7_OLINDA, None),
        (RGB_BYTE, None),
        (LANDSAT8, None),
        (LANDSAT8_150M, None),
        (LANDSAT8_ORIGINAL / "l8_B8.tif", None),
        (LANDSAT8_ORIGINAL / "l8_MTL.txt", None),
        (C2L2, None),
        (S2_L2A, None),
        (S2_L1C, ["B04", "B03", "B02", "B08"]),
        (Path(geosr.__file__).parent / "sample" / "naip_sample.tif", None),
    ],
    ids=lambda v: Path(v).name if isinstance(v, Path) else str(v),
)
def test_in_domain_scenes_have_no_findings(source: Path, bands, domain) -> None:
    info, _ = open_source(source, bands, mask="auto")
    assert check_domain(domain, describe_raster(info, read_sample(info))) == []


def test_the_training_scenes_lie_in_their_own_domain(domain) -> None:
    for path in (NAIP, LANDSAT7_OLINDA, RGB_BYTE, LANDSAT8, LANDSAT8_150M):
        assert check_domain(domain, describe_scene_file(path)) == []


def test_upscaling_an_in_domain_scene_does_not_warn(tmp_path: Path) -> None:
    src = write_crop(NAIP, tmp_path / "naip.tif", Window(40, 40, 48, 48))
    out, caught = recorded(lambda: geosr.upscale(src, chunk_size=48))
    assert caught == [] and out.is_file()


def test_geographic_pixels_are_measured_in_metres(tmp_path: Path, domain) -> None:
    """A real Landsat 8 crop reprojected to EPSG:4326 still has ~30 m pixels: no finding."""
    with rasterio.open(LANDSAT8) as src:
        transform, width, height = calculate_default_transform(
            src.crs, "EPSG:4326", src.width, src.height, *src.bounds
        )
        profile = src.profile.copy()
        profile.update(crs="EPSG:4326", transform=transform, width=width, height=height)
        path = tmp_path / "geographic.tif"
        with rasterio.open(path, "w", **profile) as dst:
            for band in range(1, src.count + 1):
                reproject(
                    rasterio.band(src, band),
                    rasterio.band(dst, band),
                    resampling=Resampling.nearest,
                )
    scene = describe_scene_file(path)
    assert scene.gsd_m == pytest.approx(30.0, rel=0.15)
    assert check_domain(domain, scene) == []


# --- each kind of mismatch --------------------------------------------------------------------


def test_pixel_size_outside_the_domain(tmp_path: Path, domain) -> None:
    findings = check_domain(domain, describe_scene_file(fine_naip(tmp_path)))
    assert findings == ["scene pixel 0.3 m; this model saw 5\u2013300 m inputs"]
    coarse = write_crop(RGB_BYTE, tmp_path / "coarse.tif", Window(0, 200, 64, 64))
    with rasterio.open(coarse, "r+") as f:
        t = f.transform
        f.transform = Affine(2000.0, 0, t.c, 0, -2000.0, t.f)
    assert check_domain(domain, describe_scene_file(coarse)) == [
        "scene pixel 2000 m; this model saw 5\u2013300 m inputs"
    ]


def test_reflectance_against_dn(tmp_path: Path, domain) -> None:
    scene = describe_scene_file(reflectance_crop(tmp_path))
    findings = check_domain(domain, scene)
    assert findings[0] == "dtype float32; this model saw uint8, uint16"
    assert findings[1].startswith("values 0") and "look like reflectance" in findings[1]
    assert findings[1].endswith(f"this model saw DN 4\u2013{domain.p99[1]:.0f}")
    # and the other way round: a model trained on float reflectance, given DN
    float_domain = domain_from_scenes([reflectance_crop(tmp_path)])
    assert float_domain.values == "reflectance"
    findings = check_domain(float_domain, describe_scene_file(LANDSAT8))
    assert any("look like DN" in f and "this model saw reflectance" in f for f in findings)


def test_a_dtype_never_seen(tmp_path: Path, domain) -> None:
    src = write_crop(LANDSAT7_OLINDA, tmp_path / "int16.tif", Window(0, 0, 64, 64), dtype="int16")
    assert check_domain(domain, describe_scene_file(src)) == [
        "dtype int16; this model saw uint8, uint16"
    ]


def test_values_far_outside_the_training_percentiles(tmp_path: Path, domain) -> None:
    dark = tmp_path / "dark.tif"
    crop = write_crop(LANDSAT7_OLINDA, tmp_path / "l7.tif", Window(0, 0, 64, 64))
    with rasterio.open(crop) as f:
        profile, data = f.profile, f.read()
    with rasterio.open(dark, "w", **profile) as dst:
        dst.write(data // 32)  # a 3-bit scene: a handful of grey levels
    [finding] = check_domain(domain, describe_scene_file(dark))
    assert finding.startswith("values reach only ") and "(p99)" in finding
    bright = tmp_path / "bright.tif"
    with rasterio.open(LANDSAT8) as f:
        profile, data = f.profile, f.read(window=Window(0, 0, 64, 64))
    profile.update(dtype="float32", width=64, height=64)
    with rasterio.open(bright, "w", **profile) as dst:
        dst.write(data.astype(np.float32) * 100)  # radiance-like magnitudes
    findings = check_domain(domain, describe_scene_file(bright))
    assert findings[0] == "dtype float32; this model saw uint8, uint16"
    assert findings[1].startswith("values reach ") and "this model saw DN" in findings[1]


def test_band_names_only_matter_to_a_multiband_model(domain) -> None:
    scene = describe_scene_file(LANDSAT8)  # B2 blue, B3 green, B4 red, B5 nir
    assert check_domain(domain, scene, band_shared=False) == []
    swapped = TrainingDomain(**{**domain.to_dict(), "band_names": ("B04", "B03", "B02", "B08")})
    assert check_domain(swapped, scene, band_shared=True) == []
    [finding] = check_domain(swapped, scene, band_shared=False)
    assert finding == (
        "bands B2 blue, B3 green, B4 red, B5 nir; this model was trained on B04, B03, B02, B08"
    )


# --- upscale: one warning per call, or a refusal ------------------------------------------------


def test_upscale_warns_once_per_call(tmp_path: Path, small_model: Path) -> None:
    src = fine_naip(tmp_path)
    for n in range(2):
        out, caught = recorded(
            lambda n=n: geosr.upscale(src, tmp_path / f"out{n}.tif", model=small_model)
        )
        assert out.is_file() and len(caught) == 1
        message = str(caught[0].message)
        assert "\n" not in message
        assert message.startswith(f"{src} is outside what small was trained on: ")
        assert "scene pixel 0.3 m; this model saw 5\u2013300 m inputs" in message


def test_several_findings_make_one_warning(tmp_path: Path, small_model: Path) -> None:
    src = reflectance_crop(tmp_path)
    _, caught = recorded(lambda: geosr.upscale(src, model=small_model, chunk_size=32))
    [warning] = caught
    assert "(1) dtype float32" in str(warning.message)
    assert "(2) values 0" in str(warning.message)


def test_strict_refuses_before_writing_anything(tmp_path: Path, small_model: Path) -> None:
    src = fine_naip(tmp_path)
    before = sorted(tmp_path.iterdir())
    with pytest.raises(DomainError, match=r"scene pixel 0\.3 m") as error:
        geosr.upscale(src, model=small_model, strict=True)
    assert isinstance(error.value, InputError)
    assert "pass strict=False" in str(error.value)
    assert sorted(tmp_path.iterdir()) == before


def test_a_model_without_a_domain_is_not_checked(tmp_path: Path, model_factory) -> None:
    src = fine_naip(tmp_path)
    out, caught = recorded(lambda: geosr.upscale(src, model=model_factory(bands=4), strict=True))
    assert out.is_file() and caught == []


def test_dataarrays_and_cubes_warn_once(tmp_path: Path, small_model: Path) -> None:
    data = rioxarray.open_rasterio(reflectance_crop(tmp_path))  # in memory
    _, caught = recorded(lambda: geosr.upscale_dataarray(data, small_model))
    assert len(caught) == 1 and "look like reflectance" in str(caught[0].message)
    lazy = rioxarray.open_rasterio(reflectance_crop(tmp_path), chunks=32)
    cube = lazy.expand_dims(time=2)  # two slices: still one warning
    result, caught = recorded(lambda: geosr.upscale_dataarray(cube, small_model))
    assert len(caught) == 1 and result.sizes["time"] == 2
    with pytest.raises(DomainError):
        geosr.upscale_dataarray(cube, small_model, strict=True)
    _, caught = recorded(lambda: lazy.geosr.upscale(small_model, strict=None))
    assert caught == []


# --- the command line ---------------------------------------------------------------------------


def test_cli_warns_on_one_line_and_strict_exits_1(tmp_path: Path, small_model: Path) -> None:
    src = fine_naip(tmp_path)
    out = tmp_path / "out.tif"
    common = ["upscale", str(src), str(out), "--model", str(small_model), "--progress", "none"]
    result = subprocess.run([*GEOSR, *common], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and out.is_file()
    lines = [line for line in result.stderr.splitlines() if "outside what" in line]
    assert len(lines) == 1 and lines[0].startswith("geosr: warning: ")
    assert "scene pixel 0.3 m; this model saw 5\u2013300 m inputs" in lines[0]
    out.unlink()
    result = subprocess.run(
        [*GEOSR, *common, "--strict"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1 and not out.exists()
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("geosr: error: ") and "scene pixel 0.3 m" in line
    assert "Traceback" not in result.stderr


# --- training ---------------------------------------------------------------------------------


def test_training_writes_the_domain_into_the_card(tmp_path: Path) -> None:
    from geosr.train import TrainConfig, Trainer

    config = TrainConfig(
        data=[str(LANDSAT8), str(NAIP)],
        out=str(tmp_path / "run"),
        width=8,
        blocks=1,
        patch=32,
        batch_size=2,
        steps=1,
        val_every=1000,
        max_val_samples=2,
    )
    Trainer(config, progress="none").run()
    card = geosr.read_meta(tmp_path / "run" / "best.safetensors")
    assert card.domain is not None and card.domain.scenes == 2
    assert card.domain.gsd_m == (5.0, 30.0)
    assert card.domain.dtypes == ("uint8", "uint16")
    assert set(card.domain.sensors) == {"Landsat 8 OLI", "NAIP (aerial)"}
