"""Which bands evaluation figures draw as red, green and blue, on the real scenes in tests/data:
by band names (Sentinel-2, Landsat 8 and Landsat 7 names, colour words, common-name tags), by
wavelengths, by colour interpretation, and bands 1-2-3 with a note where nothing says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import ColorInterp

from geosr.evaluate import evaluate
from geosr.evaluate_temporal import _common_grid
from geosr.evaluation.rgb import (
    NO_METADATA,
    DisplayBands,
    dataset_display_bands,
    display_bands,
    info_display_bands,
)
from geosr.products import open_product, open_source
from geosr.raster import open_info
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

S2_L2A = (
    DATA / "s2_l2a_t32tmt" / "S2A_MSIL2A_20190530T103031_N0400_R108_T32TMT_20190530T103031.SAFE"
)
S2_TEN = sorted(S2_L2A.glob("GRANULE/*/IMG_DATA/R10m/*_B0[2348]_10m.jp2"))  # B02 B03 B04 B08
LANDSAT8_C2 = DATA / "landsat8_c2l2" / "LC08_L2SP_020039_20150804_20200908_02_T1"
NAIP = NAIP_DIR / "m_4709963_se_14_1_20100629.tif"
FALLBACK = "bands 1-2-3 shown as RGB: no band names/colour interpretation"


def stack(files: list[Path], destination: Path, **per_band: list) -> Path:
    """The single-band ``files`` (real band files on one grid) as one GeoTIFF, band ``i`` with
    ``descriptions[i]`` and ``tags[i]`` where given."""
    with rasterio.open(files[0]) as first:
        profile = first.profile.copy()
    profile.update(driver="GTiff", count=len(files), photometric="MINISBLACK")
    with rasterio.open(destination, "w", **profile) as dst:
        for number, file in enumerate(files, start=1):
            with rasterio.open(file) as src:
                dst.write(src.read(1), number)
            if per_band.get("descriptions"):
                dst.set_band_description(number, per_band["descriptions"][number - 1])
            if per_band.get("tags"):
                dst.update_tags(number, **per_band["tags"][number - 1])
    return destination


def shown(source: Path) -> DisplayBands:
    with rasterio.open(source) as src:
        return dataset_display_bands(src)


# --- band names --------------------------------------------------------------------------------


def test_sentinel2_product_b02_b03_b04_b08_is_drawn_b04_b03_b02() -> None:
    info, _ = open_source(S2_L2A, ["B02", "B03", "B04", "B08"])
    display = info_display_bands(info)
    assert display.indices == (2, 1, 0)  # red B04, green B03, blue B02
    assert display.names == ("B04", "B03", "B02") and display.source == "band names"
    assert display.caption == "RGB: bands 3-2-1 (B04, B03, B02; by band names)"


def test_sentinel2_stack_named_by_descriptions_only(tmp_path: Path) -> None:
    assert [p.name.split("_")[2] for p in S2_TEN] == ["B02", "B03", "B04", "B08"]
    path = stack(S2_TEN, tmp_path / "ten.tif", descriptions=["B02", "B03", "B04", "B08"])
    display = shown(path)
    assert display.indices == (2, 1, 0) and display.source == "band names"
    # the same bands stacked from their files: the descriptions are the file names
    assert info_display_bands(open_info([str(p) for p in S2_TEN])).indices == (2, 1, 0)


def test_sentinel2_stack_by_wavelength_tags(tmp_path: Path) -> None:
    centres = ["0.4927", "0.5598", "0.6646", "0.8328"]  # T32TMT's MTD_MSIL2A.xml, micrometres
    tags = [{"CENTRAL_WAVELENGTH_UM": c} for c in centres]
    display = shown(stack(S2_TEN, tmp_path / "unnamed.tif", tags=tags))
    assert display.indices == (2, 1, 0) and display.source == "wavelengths"
    nanometres = [{"WAVELENGTH": str(float(c) * 1000)} for c in centres]  # ENVI-style
    assert shown(stack(S2_TEN, tmp_path / "nm.tif", tags=nanometres)).indices == (2, 1, 0)


def test_landsat8_stacks_with_colour_words_in_their_descriptions() -> None:
    for path in (LANDSAT8, LANDSAT8_150M):  # "B2 blue", "B3 green", "B4 red" (, "B5 nir")
        display = shown(path)
        assert display.indices == (2, 1, 0), path.name
        assert display.caption == "RGB: bands 3-2-1 (B4 red, B3 green, B2 blue; by band names)"


def test_landsat8_band_numbers_placed_by_the_scene_name() -> None:
    files = [str(LANDSAT8_ORIGINAL / f"l8_B{n}.tif") for n in (2, 3, 4, 5)]
    display = info_display_bands(open_info(files))  # descriptions l8_B2 ... l8_B5
    assert display.indices == (2, 1, 0) and display.names == ("l8_B4", "l8_B3", "l8_B2")


def test_landsat8_collection2_product_b1_to_b7() -> None:
    info, _ = open_source(LANDSAT8_C2)
    assert info.descriptions[:4] == ("B1", "B2", "B3", "B4")
    display = info_display_bands(info)
    assert display.indices == (3, 2, 1)  # B4, B3, B2: B1 is the coastal band
    assert display.numbers == (4, 3, 2)


def test_landsat7_band_numbers_are_one_lower(tmp_path: Path) -> None:
    names = ["B1", "B2", "B3", "B4", "B5", "B7"]  # L7_ETMs.tif's bands (tests/data/PROVENANCE.md)
    named = write_crop(LANDSAT7_OLINDA, tmp_path / "L7_ETMs.tif")
    with rasterio.open(named, "r+") as dst:
        for number, name in enumerate(names, start=1):
            dst.set_band_description(number, name)
    display = shown(named)  # the file name says Landsat 7: B3 is red there, not green
    assert display.indices == (2, 1, 0) and display.names == ("B3", "B2", "B1")
    # the same names in a file whose name says no Landsat: B3 could be red or green
    anonymous = named.rename(tmp_path / "olinda.tif")
    display = shown(anonymous)
    assert display.fallback and display.indices == (0, 1, 2)
    assert "Landsat band names without a Landsat scene name" in display.caption


def test_names_win_over_a_colour_interpretation_that_disagrees(tmp_path: Path) -> None:
    path = write_crop(LANDSAT8_150M, tmp_path / "b2b3b4.tif")  # B2 blue, B3 green, B4 red
    with rasterio.open(path, "r+") as dst:
        dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
    with rasterio.open(path) as src:
        assert src.colorinterp[0] == ColorInterp.red  # as GDAL marks 3-band byte files
    assert shown(path).indices == (2, 1, 0)


def test_a_band_selection_is_indexed_within_it() -> None:
    display = info_display_bands(open_info(LANDSAT8, [4, 3, 2, 1]))  # B5, B4, B3, B2
    assert display.indices == (1, 2, 3) and display.numbers == (3, 2, 1)


# --- colour interpretation ---------------------------------------------------------------------


def test_rgb_byte_by_colour_interpretation() -> None:
    display = shown(RGB_BYTE)
    assert display.indices == (0, 1, 2) and display.source == "colour interpretation"
    assert display.caption == "RGB: bands 1-2-3 (by colour interpretation)"


def test_naip_rgbn_by_colour_interpretation(tmp_path: Path) -> None:
    path = write_crop(NAIP, tmp_path / "naip_rgb.tif", photometric="RGB")
    with rasterio.open(path, "r+") as dst:
        dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.gray]
    display = shown(path)
    assert display.indices == (0, 1, 2) and display.source == "colour interpretation"


# --- fallback ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [NAIP, LANDSAT7_OLINDA])
def test_files_without_names_fall_back_to_bands_1_2_3_with_a_note(path: Path) -> None:
    with rasterio.open(path) as src:  # the committed crops: no descriptions, grey/undefined
        assert not any(src.descriptions) and ColorInterp.red not in src.colorinterp
    display = shown(path)
    assert display.fallback and display.indices == (0, 1, 2) and display.reason == NO_METADATA
    assert display.caption == FALLBACK
    assert info_display_bands(open_info(path)).caption == FALLBACK


def test_one_or_two_bands_are_drawn_in_grey() -> None:
    path = LANDSAT8_ORIGINAL / "l8_B8.tif"  # the panchromatic band alone
    display = info_display_bands(open_info(path))
    assert display.indices == (0,) and display.caption == "band 1 shown in grey: a single band"
    two = display_bands(["B01", "B09"])
    assert two.indices == (0,) and "fewer than 3 bands" in two.caption


def test_guided_stage_targets_by_name_or_wavelength() -> None:
    landsat = open_product(LANDSAT8_C2)
    assert landsat is not None
    targets = [b for b in landsat.bands if b.name in ("B1", "B2", "B3", "B4", "B5", "B6", "B7")]
    display = display_bands([b.name for b in targets], wavelengths=[b.wavelength for b in targets])
    assert display.indices == (3, 2, 1) and display.source == "wavelengths"  # bare B4: no sensor
    sentinel = open_product(S2_L2A)
    assert sentinel is not None
    twenty = [b for b in sentinel.bands if b.name in ("B05", "B06", "B07", "B8A", "B11", "B12")]
    display = display_bands([b.name for b in twenty], wavelengths=[b.wavelength for b in twenty])
    assert display.fallback and display.indices == (0, 1, 2)
    assert display.caption.startswith("bands 1-2-3 (B05, B06, B07) shown as RGB: no red, green")


# --- the figures use it --------------------------------------------------------------------------


def test_evaluate_draws_sentinel2_b04_b03_b02(model_factory, tmp_path: Path) -> None:
    scene = stack(S2_TEN, tmp_path / "s2.tif", descriptions=["B02", "B03", "B04", "B08"])
    report = evaluate(
        [scene, NAIP],
        model_factory(bands=None, scale=2),
        max_size=64,
        degradations=["box"],
        figure=tmp_path / "f.png",
        html_path=tmp_path / "r.html",
    )
    s2, naip = report.results
    assert s2.display is not None and s2.display.indices == (2, 1, 0)
    assert naip.display is not None and naip.display.caption == FALLBACK
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.array_equal(s2.panels["HR"][2], s2.panels["HR"][list(s2.display.indices)][0])


def test_temporal_grid_picks_the_display_bands(tmp_path: Path) -> None:
    other = NAIP_DIR / "m_4709963_se_14_1_20120731.tif"  # on 2010's grid
    assert _common_grid(str(NAIP), str(other)).display.caption == FALLBACK
    copy = write_crop(LANDSAT8, tmp_path / "LC08_copy.tif")
    assert _common_grid(str(LANDSAT8), str(copy)).display.indices == (2, 1, 0)
