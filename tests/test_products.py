"""Satellite products in, products out: Sentinel-2 SAFE (L1C, L2A; folder, .zip, metadata
file), Landsat (Collection 2 Level-2 and pre-collection with its pan band), band files on
several grids, masks from SCL/QA_PIXEL/BQA, resolution=, band names, and bad products.

The products are small real crops in tests/data (see make_products.py and PROVENANCE.md)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio

import geosr
from geosr.products import open_product, product_info
from tests.datasets import L1C, L2A, L2A_IMG, LANDSAT_PRE, TEST_DATA

C2L2 = TEST_DATA / "landsat8_c2l2" / "LC08_L2SP_020039_20150804_20200908_02_T1"
L2A_STACK = "s2_l2a_t32tmt_20190530/20190530_T32TMT_MSIL2A_S2A_pixel_division_10m.tiff"
RGBN = ["B04", "B03", "B02", "B8A"]


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and text
    return text


def _geosr(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "geosr", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def model(model_factory) -> Path:
    return model_factory(bands=None, scale=4)


# --- readers ------------------------------------------------------------------------------------


def test_l2a_reader_takes_native_grids_offsets_wavelengths_and_scl() -> None:
    product = open_product(L2A)
    assert product.kind == "Sentinel-2 L2A"
    assert product.names == ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
    blue = product.band("b02")  # names are case-insensitive
    assert blue.file.endswith("R10m/T32TMT_20190530T103031_B02_10m.jp2")  # the finest of two
    assert blue.grid.resolution == 10 and product.band("B8A").grid.resolution == 20
    # baseline 04.00: BOA_ADD_OFFSET -1000 over QUANTIFICATION_VALUE 10000
    assert (blue.scale, blue.offset) == (1e-4, -0.1)
    assert blue.wavelength == 0.4927 and blue.common_name == "blue"  # from the metadata
    assert blue.nodata == 0 and blue.quantity == "surface reflectance"
    assert [q.name for q in product.quality] == ["SCL"]
    assert product.tags["PROCESSING_BASELINE"] == "04.00"
    assert product.datetime == "2019-05-30T10:30:31.024Z"


def test_safe_folder_zip_and_metadata_file_are_one_product(tmp_path: Path) -> None:
    archive = tmp_path / f"{L1C.stem}.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for file in L1C.rglob("*"):
            out.write(file, f"{L1C.name}/{file.relative_to(L1C)}")
    products = [open_product(p) for p in (L1C, archive, L1C / "MTD_MSIL1C.xml")]
    for product in products:
        assert product.kind == "Sentinel-2 L1C"
        assert product.stem == L1C.stem
        assert product.tags["PROCESSING_BASELINE"] == "02.09"
        assert product.band("B04").offset == 0.0  # no offset before baseline 04.00
        assert set(product.missing) == {"B8A"}  # the real product lacks it too
    assert products[1].band("B05").file.startswith(f"/vsizip/{archive}")
    grids = [[b.grid for b in p.bands] for p in products]
    assert grids[0] == grids[1] == grids[2]
    infos = [product_info(p, ["B04", "B05"]) for p in products]
    with rasterio.open(infos[0].name) as a, rasterio.open(infos[1].name) as b:
        assert np.array_equal(a.read(), b.read())


def test_landsat_readers_collection_2_and_pre_collection() -> None:
    c2 = open_product(C2L2)
    assert c2.kind == "Landsat Collection 2 Level-2"
    assert c2.names == tuple(f"B{n}" for n in range(1, 8))
    # a Level-2 MTL also holds Level-1 rescaling: the surface reflectance parameters win
    assert (c2.band("B4").scale, c2.band("B4").offset) == (2.75e-05, -0.2)
    assert [q.name for q in c2.quality] == ["QA_PIXEL"]
    pre = open_product(LANDSAT_PRE / "l8_MTL.txt")
    assert pre.kind == "Landsat pre-collection Level-1"
    # the MTL names LC80200392015216LGN00_B4.TIF; the folder has l8_B4.tif
    assert pre.band("B4").file.endswith("l8_B4.tif")
    assert pre.band("B8").grid.resolution == 15 and pre.band("B8").common_name == "pan"
    assert pre.default_bands == (
        "B1",
        "B2",
        "B3",
        "B4",
        "B5",
        "B6",
        "B7",
        "B9",
    )  # no pan, no thermal
    assert (pre.band("B2").scale, pre.band("B2").offset) == (2e-05, -0.1)
    # C2 SR DNs and pre-collection DNs of one scene give the same reflectance
    with rasterio.open(c2.band("B3").file) as a, rasterio.open(pre.band("B3").file) as b:
        sr, dn = a.read(1).astype(float), b.read(1).astype(float)
    assert np.abs((sr * 2.75e-05 - 0.2) - (dn * 2e-05 - 0.1)).max() <= 2.75e-05 / 2 + 1e-9


# --- upscaling products -------------------------------------------------------------------------


def test_l2a_upscale_lands_on_the_finest_grid_with_names_reflectance_and_mask(
    model: Path, tmp_path: Path
) -> None:
    out = geosr.upscale(L2A, tmp_path / "l2a.tif", model=model, bands=RGBN)
    with rasterio.open(L2A_IMG / "R10m" / "T32TMT_20190530T103031_B04_10m.jp2") as ten:
        grid, fine = ten.transform, ten.read(1)
    with rasterio.open(L2A_IMG / "R20m" / "T32TMT_20190530T103031_SCL_20m.jp2") as scl:
        classes = scl.read(1)
    with rasterio.open(out) as dst:
        assert dst.transform == grid * rasterio.Affine.scale(1 / 4)  # 10 m / 4
        assert (dst.width, dst.height) == (192 * 4, 192 * 4)
        assert dst.descriptions == tuple(RGBN)
        assert dst.scales == (1e-4,) * 4 and dst.offsets == (-0.1,) * 4
        assert dst.tags(4)["CENTRAL_WAVELENGTH_UM"] == "0.8647"
        assert dst.tags(4)["NATIVE_RESOLUTION"] == "20"
        tags = dst.tags()
        # B8A, the 20 m band, comes to 10 m by the bundled guided model (cubic without it)
        aligner = "guided s2-guided (B8A x2 guided by B02 B03 B04 B08)"
        if "s2-guided" not in geosr.bundled_models():
            aligner = "cubic"
        assert tags["GEOSR_ALIGNER"] == aligner and tags["GEOSR_MASK"] == "clouds"
        assert tags["PRODUCT_ID"] == L2A.stem and tags["GEOSR_PRODUCT"] == "Sentinel-2 L2A"
        data, mask = dst.read(), dst.dataset_mask()
    # masked: SCL's no data, saturated, shadow, cloud and cirrus classes, 8x8 output pixels each
    masked_scl = np.isin(classes, (0, 1, 3, 8, 9, 10))
    assert 0.05 < masked_scl.mean() < 0.95
    expected = np.repeat(np.repeat(~masked_scl, 8, 0), 8, 1)
    assert np.array_equal(mask > 0, expected)
    # where clear, each 4x4 block of the red band averages back to its 10 m pixel (projection)
    red = data[0].astype(float).reshape(192, 4, 192, 4).mean(axis=(1, 3))
    clear = expected[::4, ::4]
    assert np.abs(red - fine)[clear].max() <= 1.0


def test_masked_pixels_never_reach_the_network(model: Path, tmp_path: Path) -> None:
    """Clouds changed in the product change nothing of the clear output with mask="clouds"
    (neither the network's input nor the scene statistics); with mask="nodata" they do."""
    changed = tmp_path / L2A.name
    shutil.copytree(L2A, changed)
    with rasterio.open(L2A_IMG / "R20m" / "T32TMT_20190530T103031_SCL_20m.jp2") as scl:
        cloudy = np.repeat(np.repeat(np.isin(scl.read(1), (8, 9, 10)), 2, 0), 2, 1)
    red = changed.joinpath(
        *(L2A_IMG / "R10m" / "T32TMT_20190530T103031_B04_10m.jp2").relative_to(L2A).parts
    )
    with rasterio.open(red) as src:
        profile, values = src.profile, src.read(1)
    red.unlink()
    with rasterio.open(red, "w", **{**profile, "quality": 100, "reversible": "YES"}) as dst:
        dst.write(np.where(cloudy, 40000, values).astype(np.uint16), 1)
    outputs = {}
    for name, product in (("a", L2A), ("b", changed)):
        for mode in ("clouds", "nodata"):
            out = geosr.upscale(
                product, tmp_path / f"{name}_{mode}.tif", model=model, bands=RGBN, mask=mode
            )
            with rasterio.open(out) as dst:
                outputs[name, mode] = (dst.read(), dst.dataset_mask() > 0)
    data_a, clear = outputs["a", "clouds"]
    data_b, clear_b = outputs["b", "clouds"]
    assert np.array_equal(clear, clear_b)
    assert np.array_equal(data_a[:, clear], data_b[:, clear])
    assert not np.array_equal(outputs["a", "nodata"][0], outputs["b", "nodata"][0])
    assert outputs["a", "nodata"][1][:, 60:].all()  # only the fill strip on the left is masked


def test_landsat_with_its_pan_band_comes_out_on_the_pan_grid(model: Path, tmp_path: Path) -> None:
    out = geosr.upscale(  # cubic: the guided landsat-pan lands on the 30 m grid cut in two
        LANDSAT_PRE, tmp_path / "l8.tif", model=model, bands=["B4", "B3", "B2", "B8"], guided=None
    )
    with rasterio.open(LANDSAT_PRE / "l8_B8.tif") as pan:
        pan_grid = pan.transform
    with rasterio.open(out) as dst:
        assert dst.transform == pan_grid * rasterio.Affine.scale(1 / 4)
        assert (dst.width, dst.height) == (384 * 4, 384 * 4)
        assert dst.descriptions == ("B4", "B3", "B2", "B8")
        assert dst.tags()["GEOSR_MASKED"].startswith("BQA")
        assert dst.tags(4)["COMMON_NAME"] == "pan"


def test_resolution_of_the_finest_band_runs_the_aligner_only(model: Path, tmp_path: Path) -> None:
    out = geosr.upscale(
        L2A, tmp_path / "aligned.tif", model=model, bands=RGBN, resolution=10, mask=None
    )
    with (
        rasterio.open(out) as dst,
        rasterio.open(L2A_IMG / "R10m" / "T32TMT_20190530T103031_B04_10m.jp2") as red,
    ):
        assert dst.transform == red.transform and dst.width == 192
        assert np.array_equal(dst.read(1), red.read(1))  # a 10 m band passes as it is
        assert dst.tags()["GEOSR_SCALE"] == "1" and dst.nodata is None
        nir = dst.read(4).astype(float)
    with rasterio.open(L2A_IMG / "R20m" / "T32TMT_20190530T103031_B8A_20m.jp2") as src:
        native = src.read(1).astype(float)
    blocks = nir.reshape(96, 2, 96, 2).mean(axis=(1, 3))
    assert np.corrcoef(blocks[4:-4, 10:-4].ravel(), native[4:-4, 10:-4].ravel())[0, 1] > 0.99
    with pytest.raises(geosr.ConfigError, match="resolution 7 is not one geosr makes") as exc:
        geosr.upscale(L2A, tmp_path / "bad.tif", model=model, bands=RGBN, resolution=7)
    assert "2.5" in _one_line(exc) and not (tmp_path / "bad.tif").exists()


def test_bands_by_name_on_a_plain_raster(model: Path, tmp_path: Path) -> None:
    stack = TEST_DATA / "landsat8_lc80200392015216" / "LC08_020039_20150804_B2B3B4B5_30m.tif"
    out = geosr.upscale(stack, tmp_path / "rgb.tif", model=model, bands=["B4", "b3", 1])
    with rasterio.open(out) as dst, rasterio.open(stack) as src:
        # "B4" names the band described "B4 red"
        assert dst.descriptions == ("B4 red", "B3 green", "B2 blue")
        assert dst.descriptions == tuple(src.descriptions[i] for i in (2, 1, 0))
    with pytest.raises(geosr.InputError, match="has no band 'B8'") as exc:
        geosr.upscale(stack, tmp_path / "nope.tif", model=model, bands=["B8"])
    assert "B2 blue, B3 green, B4 red, B5 nir" in _one_line(exc)


def test_cli_band_files_on_several_grids(model: Path, tmp_path: Path) -> None:
    """The issue's example: Sentinel-2 band files at 10 and 20 m as one --stack."""
    files = [
        L2A_IMG / "R10m" / "T32TMT_20190530T103031_B02_10m.jp2",
        L2A_IMG / "R20m" / "T32TMT_20190530T103031_B8A_20m.jp2",
        L2A_IMG / "R20m" / "T32TMT_20190530T103031_B11_20m.jp2",
    ]
    done = _geosr(
        "upscale", "--stack", *map(str, files), "-o", "out.tif", "--model", str(model), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    with rasterio.open(tmp_path / "out.tif") as dst:
        assert dst.descriptions == ("B02", "B8A", "B11")
        assert dst.res == (2.5, 2.5)
        assert dst.tags()["GEOSR_ALIGNER"] == "cubic"
        # the files sit in their SAFE: its metadata gives wavelengths, scale and offset
        assert dst.tags(3)["CENTRAL_WAVELENGTH_UM"] == "1.6137"
        assert dst.scales == (1e-4,) * 3 and dst.offsets == (-0.1,) * 3


def test_cli_product_with_stac_item(model: Path, tmp_path: Path) -> None:
    done = _geosr(
        "upscale", str(C2L2), "--bands", "B4,B3,B2", "--model", str(model), "--stac", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    out = C2L2.parent / f"{C2L2.name}_x4.tif"  # beside the product
    item = out.with_suffix(".json")
    try:
        import pystac

        parsed = pystac.Item.from_file(str(item))
        assert parsed.properties["proj:code"] == "EPSG:32616"
        assert [b["name"] for b in parsed.assets["data"].extra_fields["eo:bands"]] == [
            "B4",
            "B3",
            "B2",
        ]
        assert parsed.assets["data"].extra_fields["raster:bands"][0]["scale"] == 2.75e-05
    finally:
        out.unlink(missing_ok=True)
        item.unlink(missing_ok=True)


# --- bad products -------------------------------------------------------------------------------


def _refused(tmp_path: Path, *args: str) -> str:
    done = _geosr("upscale", *args, "-o", "out.tif", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("geosr: error: "), done.stderr
    assert "Traceback" not in done.stderr
    assert not any(p.name.startswith(("out", ".out")) for p in tmp_path.iterdir())
    return lines[0]


def test_bad_products_get_one_line_and_write_nothing(tmp_path: Path) -> None:
    # a missing band file (the real L1C product lacks B8A), unless the bands it has are asked for
    assert "lacks" in _refused(tmp_path, str(L1C)) and "B8A" in _refused(tmp_path, str(L1C))
    # corrupt metadata
    broken = tmp_path / "broken" / L2A.name
    shutil.copytree(L2A, broken)
    text = (broken / "MTD_MSIL2A.xml").read_text()
    (broken / "MTD_MSIL2A.xml").write_text(text[: len(text) // 2])
    assert "not readable product metadata" in _refused(tmp_path, str(broken))
    # an unknown product type
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "notes.txt").write_text("no product here")
    assert "is a folder that holds no product geosr reads" in _refused(tmp_path, str(folder))
    # bands whose footprints differ: a 20 m band of another place
    other = tmp_path / "other_B8A.tif"
    with rasterio.open(L2A_IMG / "R20m" / "T32TMT_20190530T103031_B8A_20m.jp2") as src:
        profile = src.profile | {
            "driver": "GTiff",
            "transform": src.transform * rasterio.Affine.translation(40, 0),
        }
        with rasterio.open(other, "w", **profile) as dst:
            dst.write(src.read())
    message = _refused(
        tmp_path,
        "--stack",
        str(L2A_IMG / "R10m" / "T32TMT_20190530T103031_B02_10m.jp2"),
        str(other),
    )
    assert "must cover one footprint" in message
    # a band name that is not there
    assert "has no band 'B13'" in _refused(tmp_path, str(L2A), "--bands", "B04,B13")
    # band names given to a product that names its own
    assert "names its own" in _refused(tmp_path, str(L2A), "--band-names", "a,b,c")
    # a cloud mask asked of a product without one
    assert "no cloud mask band" in _refused(
        tmp_path, str(L1C), "--bands", "B04", "--mask", "clouds"
    )


def _masked_red(tmp_path: Path) -> Path:
    """l8_B4 with an internal mask over its top-left 48 x 64 pixels."""
    red = tmp_path / "l8_B4.tif"
    with rasterio.open(LANDSAT_PRE / "l8_B4.tif") as src:
        profile = src.profile | {"driver": "GTiff"}
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(red, "w", **profile) as dst:
            dst.write(src.read())
            valid = np.full((src.height, src.width), 255, np.uint8)
            valid[:48, :64] = 0
            dst.write_mask(valid)
    return red


def test_one_masked_band_file_masks_a_stack_on_one_grid(model: Path, tmp_path: Path) -> None:
    out = geosr.upscale([_masked_red(tmp_path), LANDSAT_PRE / "l8_B3.tif"], model=model)
    with rasterio.open(out) as dst:
        mask = dst.dataset_mask() > 0
    expected = np.ones((192, 192), bool)
    expected[:48, :64] = False
    assert np.array_equal(mask, np.repeat(np.repeat(expected, 4, 0), 4, 1))


def test_band_files_masks_reach_the_output_on_several_grids(model: Path, tmp_path: Path) -> None:
    """A band file's internal mask, on a coarser grid than the finest, masks the output."""
    red = _masked_red(tmp_path)
    pan = shutil.copy(LANDSAT_PRE / "l8_B8.tif", tmp_path)  # outside its product: no nodata
    out = geosr.upscale([red, pan], tmp_path / "out.tif", model=model)
    with rasterio.open(out) as dst:
        mask = dst.dataset_mask() > 0
    # 30 m -> 15 m (pan, offset by half a pan pixel) -> x4: 8 output pixels a 30 m pixel
    assert not mask[8 : 47 * 8, 8 : 63 * 8].any()
    assert mask[50 * 8 :, :].all() and mask[:, 66 * 8 :].all()


def test_open_dataarray_and_the_accessor_match_the_file_face(model: Path, tmp_path: Path) -> None:
    data = geosr.open_dataarray(L2A, bands=RGBN, chunk_size=64)
    assert list(data.band.values) == RGBN
    assert data.attrs["band_common_name"] == ("red", "green", "blue", "nir08")
    assert data.attrs["GEOSR_MASK"] == "clouds" and data.rio.nodata == 0
    lazy = data.data.dask  # nothing is read before asked
    assert any(key[0].startswith("geosr-read") for key in lazy if isinstance(key, tuple))
    out = data.geosr.upscale(model=model).geosr.to_raster(tmp_path / "lazy.tif")
    ref = geosr.upscale(L2A, tmp_path / "ref.tif", model=model, bands=RGBN, chunk_size=64)
    with rasterio.open(out) as a, rasterio.open(ref) as b:
        valid = b.dataset_mask() > 0
        assert a.descriptions == b.descriptions and a.transform == b.transform
        lazy_pixels, file_pixels = a.read()[:, valid], b.read()[:, valid]
        assert np.array_equal(lazy_pixels[:3], file_pixels[:3])
        # B8A, guided to 10 m: the file face takes the SR model's statistics from a decimated
        # read of the product (which cannot run the guided net), the lazy face from the array
        diff = np.abs(lazy_pixels[3].astype(int) - file_pixels[3].astype(int))
        assert diff.max() <= (0 if "s2-guided" not in geosr.bundled_models() else 32)
        assert diff.mean() < 2
        assert (a.read()[:, ~valid] == 0).all()  # masked pixels are nodata


# --- quality rules and metadata layouts ---------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "masked", "clear"),
    [
        # SCL classes: no data, saturated, shadow, cloud medium/high, cirrus; not vegetation,
        # bare soil, water, unclassified, dark area or snow
        ("SCL_CLOUDS", [0, 1, 3, 8, 9, 10], [2, 4, 5, 6, 7, 11]),
        # QA_PIXEL: fill, dilated cloud, cirrus, cloud, shadow bits; cloud confidence >= medium
        ("QA_PIXEL_CLOUDS", [1, 2, 4, 8, 16, 2 << 8, 3 << 8], [0, 1 << 6, 1 << 7, 1 << 8, 1 << 5]),
        # pre-collection BQA: fill, dropped frame; cloud confidence >= medium; cirrus high
        (
            "BQA_PRE_CLOUDS",
            [1, 2, 2 << 14, 3 << 14, 3 << 12],
            [0, 1 << 14, 2 << 12, 3 << 4, 3 << 10],
        ),
        # Collection 1 BQA: fill, cloud; saturation; cloud conf >= medium; shadow, cirrus high
        (
            "BQA_C1_CLOUDS",
            [1, 16, 1 << 2, 2 << 5, 3 << 7, 3 << 11],
            [0, 2, 1 << 5, 2 << 7, 2 << 11],
        ),
    ],
)
def test_quality_rules_decode_the_published_layouts(rule: str, masked: list, clear: list) -> None:
    from geosr.products import landsat, sentinel2

    decode = getattr(sentinel2, rule, None) or getattr(landsat, rule)
    values = np.array(masked + clear, np.uint16)
    expected = np.array([True] * len(masked) + [False] * len(clear))
    assert np.array_equal(decode.masked(values), expected)


def _mtl_variant(tmp_path: Path, replace: dict[str, str], qa_name: str) -> Path:
    """The C2 L2 test product with its MTL rewritten into another layout."""
    folder = tmp_path / "variant"
    shutil.copytree(C2L2, folder)
    mtl = folder / f"{C2L2.name}_MTL.txt"
    text = mtl.read_text()
    for old, new in replace.items():
        text = text.replace(old, new)
    mtl.write_text(text)
    (folder / f"{C2L2.name}_QA_PIXEL.TIF").rename(folder / qa_name)
    return folder


def test_landsat_collection_2_level_1_and_collection_1_layouts(tmp_path: Path) -> None:
    level1 = _mtl_variant(
        tmp_path / "l1",
        {"GROUP = LEVEL2_SURFACE_REFLECTANCE_PARAMETERS": "GROUP = UNUSED", "_SR_B": "_B"},
        f"{C2L2.name}_QA_PIXEL.TIF",
    )
    for file in level1.glob("*_SR_B*.TIF"):
        file.rename(file.with_name(file.name.replace("_SR_B", "_B")))
    product = open_product(level1)
    assert product.kind == "Landsat Collection 2 Level-1"
    assert product.band("B2").scale == 2e-05 and product.band("B2").quantity == "TOA reflectance"
    c1 = _mtl_variant(
        tmp_path / "c1",
        {
            "GROUP = LANDSAT_METADATA_FILE": "GROUP = L1_METADATA_FILE",
            "END_GROUP = LANDSAT_METADATA_FILE": "END_GROUP = L1_METADATA_FILE",
            "FILE_NAME_QUALITY_L1_PIXEL": "FILE_NAME_BAND_QUALITY",
        },
        f"{C2L2.name}_QA_PIXEL.TIF",
    )
    product = open_product(c1)
    assert product.kind == "Landsat Collection 1 Level-1"
    assert [q.name for q in product.quality] == ["BQA"]
    assert product.quality[0].rule.name.startswith("BQA fill, saturated")


def test_landsat_band_file_missing_is_named(tmp_path: Path) -> None:
    folder = tmp_path / C2L2.name
    shutil.copytree(C2L2, folder)
    (folder / f"{C2L2.name}_SR_B5.TIF").unlink()
    with pytest.raises(geosr.InputNotFoundError, match="lacks .*_SR_B5.TIF \\(band B5\\)") as exc:
        open_product(folder)
    _one_line(exc)


# --- the full shared products -------------------------------------------------------------------


@pytest.mark.slow
def test_full_products_from_the_shared_data(
    shared_scenes: Path, model: Path, tmp_path: Path
) -> None:
    """The real T55HFA SAFE .zip (aligner only: 50 m grid, 12 bands), the real T33UUU band
    files on their native 10/20/60 m grids (upscaled), and the real Landsat folder with its
    pan band and pre-collection MTL."""
    safe = shared_scenes / "s2_l1c_t55hfa_20201011" / f"{L1C.stem}.zip"
    present = [n for n in open_product(safe).names if n != "B8A"]
    out = geosr.upscale(
        safe, tmp_path / "t55hfa.tif", bands=present, resolution=50, chunk_size=1024
    )
    with rasterio.open(out) as dst:
        assert (dst.width, dst.height, dst.count) == (2196, 2196, 12)
        assert dst.res == (50.0, 50.0) and dst.descriptions[0] == "B01"
    files = sorted((shared_scenes / "s2_l1c_t33uuu_20170216" / "IMG_DATA").glob("*_B*.jp2"))
    chosen = [f for f in files if f.stem.endswith(("B04", "B8A", "B09"))]
    out = geosr.upscale(chosen, tmp_path / "t33uuu.tif", model=model)
    with rasterio.open(out) as dst, rasterio.open(chosen[0]) as red:
        assert dst.transform == red.transform * rasterio.Affine.scale(1 / 4)
        assert dst.descriptions == ("B04", "B09", "B8A")
        assert dst.tags(2)["NATIVE_RESOLUTION"] == "60"
    landsat = shared_scenes / "landsat8_lc80200392015216" / "original"
    out = geosr.upscale(
        landsat, tmp_path / "l8.tif", bands=["B4", "B8"], resolution=15, guided=None
    )
    with rasterio.open(out) as dst, rasterio.open(landsat / "l8_B8.tif") as pan:
        assert dst.transform == pan.transform and dst.shape == pan.shape
        assert np.array_equal(
            dst.read(2)[dst.dataset_mask() > 0], pan.read(1)[dst.dataset_mask() > 0]
        )


def test_bands_by_common_name() -> None:
    product = open_product(L2A)
    assert [b.name for b in product.select(["red", "NIR08", "B02"])] == ["B04", "B8A", "B02"]
    with pytest.raises(geosr.InputError, match="3 bands of .* are 'rededge' \\(B05, B06, B07\\)"):
        product.select(["rededge"])
