"""Guided super-resolution: the model kind, its checkpoints, training by Wald's protocol
(geosr-train --stage guided), the guided aligner in the engine (seams, georeference,
consistency, masks, end to end with the SRGAN), evaluation, and bad guides.

Engine tests use small guided models with random weights saved here: what they check (block
structure, halos, grids, masks, tags) does not depend on training. The bundled models are
checked in test_bundled_guided below when they are present."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine

import geosr
from geosr.checkpoint import GuidedMeta, build_guided, load_guided, save_guided
from geosr.errors import InputError, ModelError
from geosr.models.guided import GuidedConfig, GuidedNet, injection_gains
from tests.datasets import L1C, L2A, L2A_IMG, LANDSAT_PRE

TWENTY = ("B05", "B06", "B07", "B8A", "B11", "B12")
TEN = ("B02", "B03", "B04", "B08")


def _random_model(path: Path, stages: dict[str, GuidedConfig], name: str) -> Path:
    """A guided model whose every weight is random (the last layers too, which training
    starts at zero), so halos and block edges are exercised."""
    torch.manual_seed(0)
    model = build_guided(GuidedMeta(stages=stages, name=name))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.05)
    save_guided(model, path)
    return path


@pytest.fixture(scope="module")
def s2_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    stages = {
        "20m": GuidedConfig(TWENTY, TEN, 2, width=8, blocks=1, refine=4),
        "60m": GuidedConfig(("B01", "B09"), TEN, 6, width=8, blocks=1, refine=4),
    }
    return _random_model(tmp_path_factory.mktemp("guided") / "s2.safetensors", stages, "s2-test")


@pytest.fixture(scope="module")
def pan_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    stages = {
        "pan": GuidedConfig(
            ("B1", "B2", "B3", "B4", "B5", "B6", "B7"), ("B8",), 2, width=8, blocks=1, refine=4
        )
    }
    return _random_model(tmp_path_factory.mktemp("guided") / "pan.safetensors", stages, "pan-test")


def _geosr(*args: str, cwd: Path, module: str = "geosr") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True, timeout=900
    )


def _read(path: Path) -> tuple[np.ndarray, dict, rasterio.Affine, object]:
    with rasterio.open(path) as dst:
        return dst.read(), dst.tags(), dst.transform, dst.crs


# --- the model ----------------------------------------------------------------------------------


@pytest.mark.parametrize("ratio", [2, 3, 6])
def test_net_output_averages_back_to_its_input_at_every_ratio(ratio: int) -> None:
    torch.manual_seed(ratio)
    net = GuidedNet(GuidedConfig(("a", "b"), ("g1", "g2", "g3"), ratio, width=8, blocks=1))
    for parameter in net.parameters():  # random last layers: the projection must do the work
        parameter.data.normal_(0, 0.1)
    coarse = torch.rand(1, 2, 8, 10)
    guides = torch.rand(1, 3, 8 * ratio, 10 * ratio)
    gains = torch.rand(1, 2, 3)
    out = net(coarse, guides, gains=gains)
    assert out.shape == (1, 2, 8 * ratio, 10 * ratio)
    means = out.reshape(1, 2, 8, ratio, 10, ratio).mean(dim=(3, 5))
    torch.testing.assert_close(means, coarse, atol=1e-5, rtol=0)
    free = net(coarse, guides, gains=gains, project=False)
    assert not torch.allclose(free, out)  # the projection did something


def test_an_absent_band_changes_nothing_else() -> None:
    torch.manual_seed(1)
    net = GuidedNet(GuidedConfig(("a", "b"), ("g",), 2, width=8, blocks=1))
    for parameter in net.parameters():
        parameter.data.normal_(0, 0.1)
    coarse, guides = torch.rand(1, 2, 8, 8), torch.rand(1, 1, 16, 16)
    present = torch.tensor([[1.0, 0.0]])
    other = coarse.clone()
    other[:, 1] = 5.0  # whatever the absent band holds
    out_a = net(coarse, guides, present)
    out_b = net(other, guides, present)
    torch.testing.assert_close(out_a[:, 0], out_b[:, 0])


def test_injection_gains_recover_a_linear_band() -> None:
    """A band that is a linear mix of the guides gets that mix back as its gains."""
    torch.manual_seed(2)
    guides = torch.rand(3, 64, 64)
    mix = torch.tensor([0.5, -0.2, 1.5])
    fine = torch.einsum("g,ghw->hw", mix, guides)[None] + 0.3
    coarse = fine.reshape(1, 32, 2, 32, 2).mean(dim=(2, 4))
    from geosr.mtf import blur_decimate, mtf_sigma

    coarse = blur_decimate(fine[None], 2, mtf_sigma(2))[0]  # degraded as the guides are
    gains = injection_gains(coarse, guides, 2)
    torch.testing.assert_close(gains[0], mix, atol=1e-4, rtol=0)


def test_checkpoint_round_trip_and_refusals(s2_model: Path, tmp_path: Path) -> None:
    model = load_guided(s2_model)
    assert model.meta.name == "s2-test"
    assert model.meta.stages["60m"].ratio == 6 and model.meta.targets[:2] == ("B05", "B06")
    with pytest.raises(ModelError, match="guided model.*guided="):
        geosr.load_model(s2_model)
    with pytest.raises(ModelError, match="not a guided one"):
        load_guided("srresnet")
    with pytest.raises(ModelError, match="ratio 5 is not supported"):
        GuidedConfig(("a",), ("b",), 5)
    result = _geosr("info", str(s2_model), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (
        "stage 20m: B05, B06, B07, B8A, B11, B12 x2, guided by B02, B03, B04, B08" in result.stdout
    )


# --- training ------------------------------------------------------------------------------------


def test_train_guided_by_wald_protocol_and_resume(tmp_path: Path) -> None:
    out = tmp_path / "run"
    common = [
        "--stage", "guided", "--data", str(L2A), "--targets", "B05", "B11",
        "--guides", *TEN, "--ratio", "2", "--width", "8", "--blocks", "1",
        "--batch-size", "2", "--patch", "16", "--val-every", "2", "--val-fraction", "0.25",
        "--out", str(out), "--progress", "none", "--name", "tiny",
    ]  # fmt: skip
    first = _geosr(*common, "--steps", "2", cwd=tmp_path, module="geosr.train")
    assert first.returncode == 0, first.stderr
    state = geosr.checkpoint.load_tensors(out / "state.safetensors")[1]["training_state"]
    assert state["step"] == 2
    second = _geosr(*common, "--steps", "4", "--resume", cwd=tmp_path, module="geosr.train")
    assert second.returncode == 0, second.stderr
    assert "resumed" in second.stderr and "at step 2" in second.stderr
    rows = (out / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["2", "4"]
    header = rows[0].split(",")
    ratio = float(rows[-1].split(",")[header.index("val_custom_rmse_ratio")])
    assert 0 < ratio < 2
    model = load_guided(out / "best.safetensors")
    assert model.meta.name == "tiny" and model.meta.holdout == 0.25
    assert "Wald" in model.meta.trained_on["protocol"]
    assert model.meta.trained_on["products"] == [str(L2A)]


def test_train_guided_refuses_a_product_without_the_targets(tmp_path: Path) -> None:
    result = _geosr(
        "--stage", "guided", "--data", str(L2A), "--targets", "B01", "--guides", *TEN,
        "--ratio", "6", "--steps", "1", "--out", str(tmp_path / "r"), "--progress", "none",
        cwd=tmp_path, module="geosr.train",
    )  # fmt: skip
    assert result.returncode != 0
    assert "no product in --data has a target band of stage custom" in result.stderr
    assert "Traceback" not in result.stderr


# --- the engine ----------------------------------------------------------------------------------


def test_guided_aligner_is_seamless_consistent_and_on_the_10m_grid(
    s2_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kwargs = {"guided": s2_model, "resolution": 10, "mask": None}
    whole = geosr.upscale(L2A, tmp_path / "whole.tif", chunk_size=600, **kwargs)
    monkeypatch.setattr("geosr.engine.guided.GUIDED_BLOCK", 36)  # 6 x 6 blocks of 36 pixels
    small = geosr.upscale(L2A, tmp_path / "small.tif", chunk_size=36, **kwargs)
    a, tags, transform, crs = _read(small)
    b = _read(whole)[0]
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # chunked equals whole
    with rasterio.open(next(L2A_IMG.glob("R10m/*_B02_10m.jp2"))) as ten:
        assert transform == ten.transform and crs == ten.crs and a.shape[1:] == ten.shape
    assert tags["GEOSR_ALIGNER"].startswith("guided s2-test (B05 B06 B07 B8A B11 B12 x2")
    names = list(rasterio.open(small).descriptions)
    for band in ("B05", "B11"):
        with rasterio.open(next(L2A_IMG.glob(f"R20m/*_{band}_20m.jp2"))) as twenty:
            coarse = twenty.read(1).astype(float)
        fine = a[names.index(band)].astype(float)
        means = fine.reshape(96, 2, 96, 2).mean(axis=(1, 3))
        valid = coarse > 0  # the strip of fill stays fill
        assert np.abs(means - coarse)[valid].max() <= 1.0
        blocks = fine.reshape(96, 2, 96, 2).transpose(0, 2, 1, 3)
        assert (blocks[~valid] == 0).all()
    # the 10 m bands are the product's own pixels
    with rasterio.open(next(L2A_IMG.glob("R10m/*_B04_10m.jp2"))) as red:
        np.testing.assert_array_equal(a[names.index("B04")], red.read(1))


def test_guided_path_keeps_the_cloud_mask(s2_model: Path, tmp_path: Path) -> None:
    guided = geosr.upscale(L2A, tmp_path / "g.tif", guided=s2_model, resolution=10)
    cubic = geosr.upscale(L2A, tmp_path / "c.tif", guided=None, resolution=10)
    with rasterio.open(guided) as g, rasterio.open(cubic) as c:
        mask_g, mask_c = g.dataset_mask(), c.dataset_mask()
        assert (mask_g == 0).any() and (mask_g != 0).any()
        np.testing.assert_array_equal(mask_g, mask_c)
        assert c.tags()["GEOSR_ALIGNER"] == "cubic"
        assert g.tags()["GEOSR_MASK"] == "clouds"


def test_masked_pixels_reach_neither_the_guided_net_nor_its_statistics(
    s2_model: Path, tmp_path: Path
) -> None:
    """Clouds changed in a guide band change nothing of the clear guided output with
    mask="clouds"; with mask="nodata" they do."""
    changed = tmp_path / L2A.name
    shutil.copytree(L2A, changed)
    with rasterio.open(next(L2A_IMG.glob("R20m/*_SCL_20m.jp2"))) as scl:
        cloudy = np.repeat(np.repeat(np.isin(scl.read(1), (8, 9, 10)), 2, 0), 2, 1)
    nir = next(changed.rglob("R10m/*_B08_10m.jp2"))
    with rasterio.open(nir) as src:
        profile, values = src.profile, src.read(1)
    nir.unlink()
    with rasterio.open(nir, "w", **{**profile, "quality": 100, "reversible": "YES"}) as dst:
        dst.write(np.where(cloudy, 30000, values).astype(np.uint16), 1)
    outputs = {}
    for name, product in (("a", L2A), ("b", changed)):
        for mode in ("clouds", "nodata"):
            out = geosr.upscale(
                product,
                tmp_path / f"{name}_{mode}.tif",
                guided=s2_model,
                bands=["B05", "B11"],
                mask=mode,
                resolution=10,
            )
            with rasterio.open(out) as dst:
                outputs[name, mode] = (dst.read(), dst.dataset_mask() > 0)
    (data_a, clear), (data_b, clear_b) = outputs["a", "clouds"], outputs["b", "clouds"]
    assert np.array_equal(clear, clear_b) and 0.05 < clear.mean() < 0.95
    assert np.array_equal(data_a[:, clear], data_b[:, clear])
    assert not np.array_equal(outputs["a", "nodata"][0], outputs["b", "nodata"][0])


def test_product_end_to_end_guided_then_srgan(
    s2_model: Path, model_factory, tmp_path: Path
) -> None:
    sr = model_factory(bands=None, scale=4)
    out = geosr.upscale(
        L1C, tmp_path / "x4.tif", guided=s2_model, model=sr, bands=["B04", "B05", "B01"]
    )
    data, tags, transform, _ = _read(out)
    with rasterio.open(next(L1C.rglob("*_B04.jp2"))) as ten:
        assert transform == ten.transform * Affine.scale(0.25)
        assert data.shape == (3, ten.height * 4, ten.width * 4)
    assert tags["GEOSR_ALIGNER"].startswith("guided s2-test (B05 x2 guided by")
    assert "B01 x6" in tags["GEOSR_ALIGNER"]
    assert tags["GEOSR_MODEL"] == sr.name and tags["GEOSR_SCALE"] == "4"


def test_landsat_pan_guides_the_30m_bands_onto_their_nested_15m_grid(
    pan_model: Path, tmp_path: Path
) -> None:
    out = geosr.upscale(
        LANDSAT_PRE,
        tmp_path / "l15.tif",
        guided=pan_model,
        resolution=15,
        bands=["B4", "B5"],
        mask=None,
    )
    data, tags, transform, _ = _read(out)
    with rasterio.open(LANDSAT_PRE / "l8_B4.tif") as ms:
        assert transform == ms.transform * Affine.scale(0.5)  # the MS footprint, not the pan's
        assert data.shape == (2, ms.height * 2, ms.width * 2)
        coarse = ms.read(1).astype(float)
    means = data[0].astype(float).reshape(ms.height, 2, ms.width, 2).mean(axis=(1, 3))
    assert np.abs(means - coarse).max() <= 1.0
    assert tags["GEOSR_ALIGNER"].startswith("guided pan-test (B4 B5 x2 guided by B8)")


def test_open_dataarray_takes_the_guided_path(s2_model: Path, tmp_path: Path) -> None:
    data = geosr.open_dataarray(L2A, bands=["B05", "B04"], guided=s2_model, mask=None)
    assert data.shape == (2, 192, 192)
    file = geosr.upscale(
        L2A, tmp_path / "f.tif", guided=s2_model, bands=["B05", "B04"], mask=None, resolution=10
    )
    np.testing.assert_array_equal(data.values, _read(file)[0])


# --- bad guides -----------------------------------------------------------------------------------


def _band_file(
    tmp_path: Path, band: str, shift: float = 0.0, factor: int = 1, name: str | None = None
) -> Path:
    """A copy of one L2A band file (as band ``name``), moved by ``shift`` metres or
    coarsened ``factor`` times."""
    source = min(L2A_IMG.rglob(f"*_{band}_*.jp2"), key=lambda p: p.parent.name)  # R10m first
    with rasterio.open(source) as src:
        data = src.read(1)
        transform = src.transform * Affine.translation(0, 0)
        if factor > 1:
            h, w = data.shape[0] // factor * factor, data.shape[1] // factor * factor
            data = data[:h, :w].reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))
            transform = transform * Affine.scale(factor)
        transform = Affine.translation(shift, 0) * transform
        profile = {"driver": "GTiff", "count": 1, "dtype": "uint16", "crs": src.crs}
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / f"T32TMT_{name or band}.tif"
    with rasterio.open(
        path, "w", height=data.shape[0], width=data.shape[1], transform=transform, **profile
    ) as dst:
        dst.write(data.astype(np.uint16), 1)
    return path


def test_bad_guides_get_one_line_each(s2_model: Path, tmp_path: Path) -> None:
    guides = [_band_file(tmp_path, b) for b in ("B02", "B03", "B04")]
    five = _band_file(tmp_path, "B05")
    with pytest.raises(
        InputError, match="lacks guide band B08 of stage 20m of guided model s2-test"
    ):
        geosr.upscale([*guides, five], tmp_path / "o.tif", guided=s2_model, resolution=10)
    eight = _band_file(tmp_path, "B08", shift=3000.0)
    with pytest.raises(InputError, match="must cover one footprint"):
        geosr.upscale([*guides, eight, five], tmp_path / "o.tif", guided=s2_model, resolution=10)
    eight = _band_file(tmp_path, "B08")
    coarse = _band_file(tmp_path / "thirty", "B08", factor=3, name="B05")  # a "B05" on a 30 m grid
    with pytest.raises(InputError, match="3 times finer.*does ratio 2"):
        geosr.upscale([*guides, eight, coarse], tmp_path / "o.tif", guided=s2_model, resolution=10)
    assert not (tmp_path / "o.tif").exists()
    # the CLI: one line, an exit code, no traceback
    result = _geosr(
        "upscale", "--stack", *map(str, [*guides, five]), "--guided", str(s2_model),
        "--resolution", "10", "-o", str(tmp_path / "cli.tif"), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "guide band B08" in result.stderr


# --- evaluation ----------------------------------------------------------------------------------


def test_evaluate_guided_reports_every_band_against_bicubic_and_baselines(
    s2_model: Path, tmp_path: Path
) -> None:
    html, report = tmp_path / "report.html", tmp_path / "report.json"
    result = _geosr(
        "evaluate", "--guided", str(L2A), "--model", str(s2_model), "--holdout", "0.5",
        "--html", str(html), "--json", str(report), "--progress", "none", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(report.read_text())
    (stage,) = data["stages"]  # the test product has no 60 m bands
    assert stage["band_names"] == list(TWENTY)
    for method in ("model", "bicubic", "injection"):
        for band in TWENTY:
            assert np.isfinite(stage["bands"][method][band]["psnr"])
    assert stage["bands"]["bicubic"]["B05"]["rmse_vs_bicubic"] == 1.0
    assert stage["overall"]["model"]["consistency"] <= 0.5 + 1e-6
    text = html.read_text()
    assert "<img" in text and "B8A" in text and "injection" in text
    assert "B05" in result.stdout


# --- the bundled guided models ----------------------------------------------------------------

BUNDLED_GUIDED = {"s2-guided": ("20m", "60m"), "landsat-pan": ("pan",)}
needs_bundled = pytest.mark.skipif(
    not set(BUNDLED_GUIDED) <= set(geosr.bundled_models()),
    reason="the bundled guided models are not in this checkout",
)


@needs_bundled
@pytest.mark.parametrize("name", sorted(BUNDLED_GUIDED))
def test_bundled_guided_model_loads_with_a_card(name: str, tmp_path: Path) -> None:
    model = load_guided(name)
    meta = model.meta
    assert meta.name == name and tuple(meta.stages) == BUNDLED_GUIDED[name]
    assert meta.trained_on["steps"] > 0 and meta.trained_on["products"]
    assert "Wald" in meta.trained_on["protocol"] and meta.description
    assert all(not p.startswith("/") for p in meta.trained_on["products"])  # no local paths
    path = Path(geosr.__file__).parent / "weights" / f"{name}.safetensors"
    assert path.stat().st_size < 10 * 1024 * 1024
    result = _geosr("info", "--list", cwd=tmp_path)
    assert name in result.stdout.split()


@needs_bundled
def test_a_product_by_default_goes_guided_to_10m_then_srgan_to_2_5m(tmp_path: Path) -> None:
    """geosr.upscale(SAFE) with every default: s2-guided brings the 20 and 60 m bands to
    10 m, the bundled SRGAN takes all bands to 2.5 m; the tags name both; resolution=10
    stops after the guided step."""
    out = geosr.upscale(L1C, tmp_path / "x4.tif", bands=["B04", "B05", "B11", "B01"])
    with rasterio.open(out) as dst, rasterio.open(next(L1C.rglob("*_B04.jp2"))) as ten:
        assert dst.res == (ten.res[0] / 4, ten.res[1] / 4) and dst.crs == ten.crs
        tags = dst.tags()
    assert tags["GEOSR_ALIGNER"].startswith("guided s2-guided (B05 B11 x2 guided by")
    assert "B01 x6" in tags["GEOSR_ALIGNER"]
    assert tags["GEOSR_MODEL"].startswith("srgan")
    ten_m = geosr.upscale(L1C, tmp_path / "ten.tif", bands=["B04", "B11"], resolution=ten.res[0])
    with rasterio.open(ten_m) as dst:
        assert dst.res == ten.res and dst.tags()["GEOSR_MODEL"] == "none (aligner only)"
        assert dst.tags()["GEOSR_ALIGNER"].startswith("guided s2-guided (B11 x2")


@needs_bundled
def test_landsat_by_default_goes_to_15m_guided_then_3_75m(tmp_path: Path) -> None:
    out = geosr.upscale(LANDSAT_PRE, tmp_path / "l8.tif", bands=["B4", "B5"], chunk_size=128)
    with rasterio.open(out) as dst, rasterio.open(LANDSAT_PRE / "l8_B4.tif") as ms:
        assert dst.res == (3.75, 3.75)
        assert dst.transform == ms.transform * Affine.scale(0.125)  # the 30 m footprint
        tags = dst.tags()
    assert tags["GEOSR_ALIGNER"] == "guided landsat-pan (B4 B5 x2 guided by B8)"
    assert tags["GEOSR_MODEL"].startswith("srgan")
