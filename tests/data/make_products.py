"""Write the small test products in this folder from crops of the shared scenes.

    python tests/data/make_products.py [SHARED_DATA]

- ``s2_l1c_t55hfa/<product>.SAFE``: the real L1C SAFE .zip's metadata file as it is and a
  crop of each of its band files (lossless JPEG 2000, real band grids). Like the real
  product, it lacks the B8A file its metadata names.
- ``s2_l2a_t32tmt/<product>.SAFE``: an L2A product of processing baseline 04.00 made from a
  crop of the real T32TMT L2A stack: 10 m bands as they are, 20 m bands at their real 20 m
  pixels (the stack copied each into 2x2 blocks), every DN + 1000 with ``BOA_ADD_OFFSET =
  -1000`` in the metadata (baseline 04.00's encoding, so reflectance is unchanged), a strip
  of nodata fill, and an SCL band derived from the bands by the rule in :func:`scl`
  (ESA's classification is not in the stack).
- ``landsat8_c2l2/<product>``: a Collection 2 Level-2 folder made from the pre-collection
  crop in ``landsat8_lc80200392015216/original``: SR bands are its TOA reflectance re-encoded
  with Collection 2's surface reflectance scale and offset, QA_PIXEL carries its BQA's fill,
  cloud and cirrus flags in Collection 2 bits, and the MTL is written in Collection 2 layout.

See PROVENANCE.md for the sources and licences.
"""

from __future__ import annotations

import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
from tests.datasets import shared_data_folder  # noqa: E402

L1C_ZIP = "s2_l1c_t55hfa_20201011/S2B_MSIL1C_20201011T000249_N0209_R030_T55HFA_20201011T011446.zip"
L1C_SAFE = "S2B_MSIL1C_20201011T000249_N0209_R030_T55HFA_20201011T011446.SAFE"
#: 10 m pixels of the L1C crop (its 20 and 60 m bands: the same footprint)
L1C_WINDOW = Window(960, 1152, 192, 192)
L2A_STACK = "s2_l2a_t32tmt_20190530/20190530_T32TMT_MSIL2A_S2A_pixel_division_10m.tiff"
L2A_SAFE = "S2A_MSIL2A_20190530T103031_N0400_R108_T32TMT_20190530T103031.SAFE"
L2A_GRANULE = "GRANULE/L2A_T32TMT_A020476_20190530T103031"
L2A_WINDOW = Window(300, 200, 192, 192)  # even offsets: the stack's 2x2 blocks line up
L2A_TEN = ("B02", "B03", "B04", "B08")
L2A_TWENTY = ("B02", "B05", "B06", "B07", "B8A", "B11", "B12")  # B02 at 20 m too, as ESA ships
C2_ID = "LC08_L2SP_020039_20150804_20200908_02_T1"

JP2 = {
    "driver": "JP2OpenJPEG",
    "quality": 100,
    "reversible": "YES",
    "blockxsize": 64,
    "blockysize": 64,
}


def write_jp2(path: Path, data: np.ndarray, crs, transform) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {"count": 1, "dtype": "uint16", "width": data.shape[1], "height": data.shape[0]}
    with rasterio.open(path, "w", crs=crs, transform=transform, **profile, **JP2) as dst:
        dst.write(data, 1)
    for extra in path.parent.glob(path.name + ".aux.xml"):
        extra.unlink()


def make_l1c(shared: Path) -> None:
    out = HERE / "s2_l1c_t55hfa" / L1C_SAFE
    shutil.rmtree(out.parent, ignore_errors=True)
    with zipfile.ZipFile(shared / L1C_ZIP) as archive:
        (out).mkdir(parents=True)
        (out / "MTD_MSIL1C.xml").write_bytes(archive.read(f"{L1C_SAFE}/MTD_MSIL1C.xml"))
        members = [m for m in archive.namelist() if m.endswith(".jp2") and "_TCI" not in m]
    for member in members:
        with rasterio.open(f"/vsizip/{shared / L1C_ZIP}/{member}") as src:
            ratio = round(src.transform.a / 50)  # 1, 2 or 6: the band's grid over the 10 m one
            w = L1C_WINDOW
            window = Window(
                w.col_off // ratio, w.row_off // ratio, w.width // ratio, w.height // ratio
            )
            data = src.read(1, window=window)
            write_jp2(
                out / member.removeprefix(f"{L1C_SAFE}/"),
                data,
                src.crs,
                src.window_transform(window),
            )


def scl(bands: dict[str, np.ndarray]) -> np.ndarray:
    """A scene classification from 20 m reflectances (not ESA's): cloud high (9) where blue
    > 0.30, medium (8) where blue > 0.20, thin cirrus (10) where blue > 0.14 and SWIR 1.6 >
    0.25, water (6) where NIR < green, vegetation (4) where NDVI > 0.4, else not vegetated (5)."""
    blue, green, red = bands["B02"], bands["B03"], bands["B04"]
    nir, swir = bands["B8A"], bands["B11"]
    ndvi = (nir - red) / np.maximum(nir + red, 1e-6)
    out = np.full(blue.shape, 5, np.uint16)
    out[ndvi > 0.4] = 4
    out[nir < green] = 6
    out[(blue > 0.14) & (swir > 0.25)] = 10
    out[blue > 0.20] = 8
    out[blue > 0.30] = 9
    return out


def make_l2a(
    shared: Path,
    out: Path = HERE / "s2_l2a_t32tmt" / L2A_SAFE,
    window: Window = L2A_WINDOW,
    fill_strip: bool = True,
) -> None:
    """The L2A product from ``window`` of the stack (even offsets, and rows on one side of
    its pairing shift at row 550) into ``out``."""
    shutil.rmtree(out.parent, ignore_errors=True)
    with rasterio.open(shared / L2A_STACK) as src:
        data = src.read(window=window).astype(np.int32)
        names = src.descriptions
        crs, transform = src.crs, src.window_transform(window)
    stem = "T32TMT_20190530T103031"
    encoded = {name: data[i] + 1000 for i, name in enumerate(names)}  # baseline 04.00 DNs
    fill = np.zeros(data.shape[1:], bool)
    if fill_strip:
        fill[:, :12] = True  # a strip of fill on the left (10 m pixels; 6 at 20 m)
    files = []
    for name in L2A_TEN:
        band = np.where(fill, 0, encoded[name]).astype(np.uint16)
        relative = f"{L2A_GRANULE}/IMG_DATA/R10m/{stem}_{name}_10m"
        write_jp2(out / f"{relative}.jp2", band, crs, transform)
        files.append(relative)
    twenty = transform * rasterio.Affine.scale(2)
    reflectance = {}
    for name in (*L2A_TWENTY, "B03", "B04"):
        band = np.where(fill[::2, ::2], 0, encoded[name][::2, ::2]).astype(np.uint16)
        reflectance[name] = (band.astype(float) - 1000) / 10000
        if name in L2A_TWENTY:
            relative = f"{L2A_GRANULE}/IMG_DATA/R20m/{stem}_{name}_20m"
            write_jp2(out / f"{relative}.jp2", band, crs, twenty)
            files.append(relative)
    classes = np.where(fill[::2, ::2], 0, scl(reflectance)).astype(np.uint16)
    relative = f"{L2A_GRANULE}/IMG_DATA/R20m/{stem}_SCL_20m"
    write_jp2(out / f"{relative}.jp2", classes, crs, twenty)
    files.append(relative)
    (out / "MTD_MSIL2A.xml").write_text(l2a_metadata(files), encoding="utf-8")


def l2a_metadata(files: list[str]) -> str:
    """MTD_MSIL2A.xml in the layout of processing baseline 04.00 (the elements geosr reads
    and their context)."""
    central = {
        "B1": 442.7,
        "B2": 492.7,
        "B3": 559.8,
        "B4": 664.6,
        "B5": 704.1,
        "B6": 740.5,
        "B7": 782.8,
        "B8": 832.8,
        "B8A": 864.7,
        "B9": 945.1,
        "B10": 1373.5,
        "B11": 1613.7,
        "B12": 2202.4,
    }
    spectral = "\n".join(
        f'        <Spectral_Information bandId="{i}" physicalBand="{b}">\n'
        f"          <RESOLUTION>{60 if b in ('B1', 'B9', 'B10') else 10 if b in ('B2', 'B3', 'B4', 'B8') else 20}</RESOLUTION>\n"
        f'          <Wavelength><CENTRAL unit="nm">{c}</CENTRAL></Wavelength>\n'
        "        </Spectral_Information>"
        for i, (b, c) in enumerate(central.items())
    )
    offsets = "\n".join(
        f'          <BOA_ADD_OFFSET band_id="{i}">-1000</BOA_ADD_OFFSET>' for i in range(13)
    )
    images = "\n".join(f"              <IMAGE_FILE>{f}</IMAGE_FILE>" for f in files)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-2A_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd">
  <n1:General_Info>
    <Product_Info>
      <PRODUCT_START_TIME>2019-05-30T10:30:31.024Z</PRODUCT_START_TIME>
      <PRODUCT_STOP_TIME>2019-05-30T10:30:31.024Z</PRODUCT_STOP_TIME>
      <PRODUCT_URI>{L2A_SAFE}</PRODUCT_URI>
      <PROCESSING_LEVEL>Level-2A</PROCESSING_LEVEL>
      <PRODUCT_TYPE>S2MSI2A</PRODUCT_TYPE>
      <PROCESSING_BASELINE>04.00</PROCESSING_BASELINE>
      <Datatake datatakeIdentifier="GS2A_20190530T103031_020476_N04.00">
        <SPACECRAFT_NAME>Sentinel-2A</SPACECRAFT_NAME>
        <SENSING_ORBIT_NUMBER>108</SENSING_ORBIT_NUMBER>
      </Datatake>
      <Product_Organisation>
        <Granule_List>
          <Granule granuleIdentifier="S2A_OPER_MSI_L2A_TL_T32TMT_N04.00" imageFormat="JPEG2000">
{images}
          </Granule>
        </Granule_List>
      </Product_Organisation>
    </Product_Info>
    <Product_Image_Characteristics>
      <Special_Values><SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT><SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX></Special_Values>
      <Special_Values><SPECIAL_VALUE_TEXT>SATURATED</SPECIAL_VALUE_TEXT><SPECIAL_VALUE_INDEX>65535</SPECIAL_VALUE_INDEX></Special_Values>
      <QUANTIFICATION_VALUES_LIST>
        <BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>
        <AOT_QUANTIFICATION_VALUE unit="none">1000.0</AOT_QUANTIFICATION_VALUE>
        <WVP_QUANTIFICATION_VALUE unit="cm">1000.0</WVP_QUANTIFICATION_VALUE>
      </QUANTIFICATION_VALUES_LIST>
      <BOA_ADD_OFFSET_VALUES_LIST>
{offsets}
      </BOA_ADD_OFFSET_VALUES_LIST>
      <Spectral_Information_List>
{spectral}
      </Spectral_Information_List>
    </Product_Image_Characteristics>
  </n1:General_Info>
  <n1:Quality_Indicators_Info>
    <Cloud_Coverage_Assessment>12.5</Cloud_Coverage_Assessment>
  </n1:Quality_Indicators_Info>
</n1:Level-2A_User_Product>
"""


def make_c2l2() -> None:
    source = HERE / "landsat8_lc80200392015216" / "original"
    out = HERE / "landsat8_c2l2" / C2_ID
    shutil.rmtree(out.parent, ignore_errors=True)
    out.mkdir(parents=True)
    lines = []
    for number in range(1, 8):
        with rasterio.open(source / f"l8_B{number}.tif") as src:
            dn = src.read(1).astype(float)
            profile = src.profile
        toa = dn * 2e-5 - 0.1
        sr = np.where(dn == 0, 0, np.clip(np.round((toa + 0.2) / 2.75e-5), 1, 65535)).astype(
            np.uint16
        )
        name = f"{C2_ID}_SR_B{number}.TIF"
        with rasterio.open(
            out / name, "w", **{**profile, "compress": "deflate", "predictor": 2}
        ) as dst:
            dst.write(sr, 1)
        lines.append((number, name))
    with rasterio.open(source / "l8_BQA.tif") as src:
        bqa = src.read(1).astype(np.int64)
        profile = src.profile
    cloud_conf = (bqa >> 14) & 3
    cirrus = ((bqa >> 12) & 3) == 3
    qa = (
        (bqa & 1)
        | (np.where(cloud_conf >= 2, 1 << 3, 0))
        | (cloud_conf << 8)
        | np.where(cirrus, 1 << 2, 0)
    )
    qa |= np.where(qa == 0, 1 << 6, 0)  # clear
    with rasterio.open(
        out / f"{C2_ID}_QA_PIXEL.TIF", "w", **{**profile, "compress": "deflate"}
    ) as dst:
        dst.write(qa.astype(np.uint16), 1)
    files = "\n".join(f'    FILE_NAME_BAND_{n} = "{name}"' for n, name in lines)
    mult = "\n".join(f"    REFLECTANCE_MULT_BAND_{n} = 2.75E-05" for n, _ in lines)
    add = "\n".join(f"    REFLECTANCE_ADD_BAND_{n} = -0.200000" for n, _ in lines)
    (out / f"{C2_ID}_MTL.txt").write_text(
        f"""GROUP = LANDSAT_METADATA_FILE
  GROUP = PRODUCT_CONTENTS
    ORIGIN = "Image courtesy of the U.S. Geological Survey"
    LANDSAT_PRODUCT_ID = "{C2_ID}"
    PROCESSING_LEVEL = "L2SP"
    COLLECTION_NUMBER = 02
    COLLECTION_CATEGORY = "T1"
{files}
    FILE_NAME_QUALITY_L1_PIXEL = "{C2_ID}_QA_PIXEL.TIF"
    FILE_NAME_METADATA_ODL = "{C2_ID}_MTL.txt"
  END_GROUP = PRODUCT_CONTENTS
  GROUP = IMAGE_ATTRIBUTES
    SPACECRAFT_ID = "LANDSAT_8"
    SENSOR_ID = "OLI_TIRS"
    WRS_PATH = 20
    WRS_ROW = 39
    DATE_ACQUIRED = 2015-08-04
    SCENE_CENTER_TIME = "16:19:21.7917421Z"
    CLOUD_COVER = 11.08
  END_GROUP = IMAGE_ATTRIBUTES
  GROUP = LEVEL2_SURFACE_REFLECTANCE_PARAMETERS
{mult}
{add}
  END_GROUP = LEVEL2_SURFACE_REFLECTANCE_PARAMETERS
  GROUP = LEVEL1_RADIOMETRIC_RESCALING
{mult.replace("2.75E-05", "2.0000E-05")}
{add.replace("-0.200000", "-0.100000")}
  END_GROUP = LEVEL1_RADIOMETRIC_RESCALING
END_GROUP = LANDSAT_METADATA_FILE
END
""",
        encoding="utf-8",
    )


def main() -> None:
    shared = Path(sys.argv[1]) if len(sys.argv) > 1 else shared_data_folder(required=True)
    make_l1c(shared)
    make_l2a(shared)
    make_c2l2()
    for folder in ("s2_l1c_t55hfa", "s2_l2a_t32tmt", "landsat8_c2l2"):
        size = sum(p.stat().st_size for p in (HERE / folder).rglob("*") if p.is_file())
        print(f"{folder}: {size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
