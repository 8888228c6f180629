"""Write the small test rasters in this folder as lossless crops of the shared scenes.

    python tests/data/make_crops.py [SHARED_DATA]

SHARED_DATA defaults to the folder the tests use (GEOSR_SHARED_DATA, else ../shared/data).
Each crop keeps its source's dtype, values, CRS, nodata, band descriptions, colour
interpretation and tags; its transform is the source's window transform. Files keep their
source's relative path, so a test can swap the crop folder for the full one.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import rasterio
from rasterio.windows import Window

HERE = Path(__file__).resolve().parent
L8 = "landsat8_lc80200392015216"
NAIP_DATES = ("20090818", "20100629", "20120731", "20140720", "20150926", "20190904")

#: relative path -> window of the source (col_off, row_off, width, height)
CROPS: dict[str, Window] = {
    # the bottom rows are the rows the bundled models held out of training
    f"{L8}/LC08_020039_20150804_B2B3B4B5_30m.tif": Window(0, 219, 384, 384),
    **{
        f"{L8}/original/l8_B{band}.tif": Window(0, 219, 192, 192)
        for band in ("1", "2", "3", "4", "5", "6", "7", "9", "10", "11", "QA")
    },
    # the 15 m pan band on the same footprint as the 30 m band files
    f"{L8}/original/l8_B8.tif": Window(0, 438, 384, 384),
    # the scene's left edge: about a fifth of the crop is nodata fill
    "landsat8_lc81070352015122_150m/LC81070352015122LGN00_B2B3B4_150m.tif": Window(
        96, 240, 320, 320
    ),
    "landsat7_olinda/L7_ETMs.tif": Window(93, 96, 256, 256),
    # the scene's rotated footprint: fill on the left and in the top-left corner
    "landsat7_rgb_byte/RGB.byte.tif": Window(0, 160, 480, 320),
    **{
        f"naip_nd_m4709963/m_4709963_se_14_1_{date}.tif": Window(100, 100, 256, 256)
        for date in NAIP_DATES
    },
}
COPIES = (f"{L8}/original/l8_MTL.txt",)


def write_crop(source: Path, destination: Path, window: Window) -> None:
    with rasterio.open(source) as src:
        profile = src.profile.copy()
        profile.update(
            driver="GTiff",
            width=int(window.width),
            height=int(window.height),
            transform=src.window_transform(window),
            compress="deflate",
            predictor=2,
        )
        if src.profile.get("tiled"):
            profile.update(blockxsize=128, blockysize=128)
        else:
            profile.pop("blockxsize", None)
            profile.pop("blockysize", None)
        data = src.read(window=window)
        destination.parent.mkdir(parents=True, exist_ok=True)
        with rasterio.open(destination, "w", **profile) as dst:
            dst.write(data)
            dst.colorinterp = src.colorinterp
            dst.update_tags(**src.tags())
            for index, text in enumerate(src.descriptions, start=1):
                if text:
                    dst.set_band_description(index, text)
    with rasterio.open(destination) as check:
        assert (check.read() == data).all(), destination


def main(shared: Path) -> None:
    for relative, window in CROPS.items():
        write_crop(shared / relative, HERE / relative, window)
    for relative in COPIES:
        shutil.copyfile(shared / relative, HERE / relative)
    total = sum(p.stat().st_size for p in HERE.rglob("*") if p.is_file())
    print(f"wrote {len(CROPS)} crops, {total / 1e6:.1f} MB in {HERE}")


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parents[1]))
    from tests.datasets import shared_data_folder

    main(Path(sys.argv[1]) if len(sys.argv) > 1 else shared_data_folder(required=True))
