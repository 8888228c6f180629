"""What the bands of known sensors are: name, STAC ``eo:common_name``, centre wavelength and
full width at half maximum (micrometres), and native pixel size (metres); and how band names
are recognised in file names.

Sentinel-2 values are the MSI's nominal ones (a product's ``MTD_MSIL*.xml`` gives its own
unit's centres, which readers prefer); Landsat values are USGS's band designations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class BandSpec:
    name: str
    common_name: str | None
    wavelength: float | None  # centre, µm
    fwhm: float | None  # µm
    resolution: float  # native pixel size, m
    kind: str = "reflective"  # reflective, panchromatic, thermal


def _table(rows: list[tuple]) -> dict[str, BandSpec]:
    return {row[0]: BandSpec(*row) for row in rows}


SENTINEL2 = _table(
    [
        ("B01", "coastal", 0.443, 0.020, 60),
        ("B02", "blue", 0.490, 0.065, 10),
        ("B03", "green", 0.560, 0.035, 10),
        ("B04", "red", 0.665, 0.030, 10),
        ("B05", "rededge", 0.705, 0.015, 20),
        ("B06", "rededge", 0.740, 0.015, 20),
        ("B07", "rededge", 0.783, 0.020, 20),
        ("B08", "nir", 0.842, 0.115, 10),
        ("B8A", "nir08", 0.865, 0.020, 20),
        ("B09", "nir09", 0.945, 0.020, 60),
        ("B10", "cirrus", 1.375, 0.030, 60),
        ("B11", "swir16", 1.610, 0.090, 20),
        ("B12", "swir22", 2.190, 0.180, 20),
    ]
)

#: Landsat 8 and 9 OLI/TIRS.
LANDSAT_OLI = _table(
    [
        ("B1", "coastal", 0.443, 0.016, 30),
        ("B2", "blue", 0.482, 0.060, 30),
        ("B3", "green", 0.561, 0.057, 30),
        ("B4", "red", 0.655, 0.037, 30),
        ("B5", "nir08", 0.865, 0.028, 30),
        ("B6", "swir16", 1.609, 0.085, 30),
        ("B7", "swir22", 2.201, 0.187, 30),
        ("B8", "pan", 0.590, 0.172, 15, "panchromatic"),
        ("B9", "cirrus", 1.373, 0.020, 30),
        ("B10", "lwir11", 10.895, 0.590, 30, "thermal"),
        ("B11", "lwir12", 12.005, 1.010, 30, "thermal"),
    ]
)

#: Landsat 7 ETM+ (B6 comes as B6_VCID_1 and B6_VCID_2 in Level-1 products).
LANDSAT_ETM = _table(
    [
        ("B1", "blue", 0.485, 0.070, 30),
        ("B2", "green", 0.560, 0.080, 30),
        ("B3", "red", 0.660, 0.060, 30),
        ("B4", "nir08", 0.835, 0.130, 30),
        ("B5", "swir16", 1.650, 0.200, 30),
        ("B6", "lwir", 11.450, 2.100, 30, "thermal"),
        ("B6_VCID_1", "lwir", 11.450, 2.100, 30, "thermal"),
        ("B6_VCID_2", "lwir", 11.450, 2.100, 30, "thermal"),
        ("B7", "swir22", 2.220, 0.260, 30),
        ("B8", "pan", 0.710, 0.380, 15, "panchromatic"),
    ]
)

#: Landsat 4 and 5 TM.
LANDSAT_TM = _table(
    [
        ("B1", "blue", 0.485, 0.070, 30),
        ("B2", "green", 0.560, 0.080, 30),
        ("B3", "red", 0.660, 0.060, 30),
        ("B4", "nir08", 0.830, 0.140, 30),
        ("B5", "swir16", 1.650, 0.200, 30),
        ("B6", "lwir", 11.450, 2.100, 30, "thermal"),
        ("B7", "swir22", 2.215, 0.270, 30),
    ]
)


def landsat_table(spacecraft: str) -> dict[str, BandSpec]:
    """The band table of a Landsat spacecraft (``LANDSAT_8``, ``LC08``, ``L7`` ...)."""
    digits = re.sub(r"\D", "", spacecraft)
    number = int(digits[-1]) if digits else 8
    return {7: LANDSAT_ETM, 4: LANDSAT_TM, 5: LANDSAT_TM}.get(number, LANDSAT_OLI)


# A band name at the end of a file name: T33UUU_20170216T102101_B8A.jp2, ..._B04_10m.jp2,
# LC08_..._B4.TIF, l8_B10.tif, ..._SR_B5.TIF; not inside a word (the "B" of "BQA" is no band).
_BAND_IN_NAME = re.compile(r"(?:^|[_\-.])(B(?:8A|\d{1,2}))(?:_\d{2}m)?$", re.IGNORECASE)
_SENTINEL2_NAME = re.compile(r"(?:^|_)T\d{2}[A-Z]{3}_|S2[ABC]_|MSIL[12]", re.IGNORECASE)
_LANDSAT_NAME = re.compile(r"^(L[COTEM]0?\d|l\d)[_\d]", re.IGNORECASE)


def band_name_in(stem: str) -> str | None:
    """The band name a file name ends with (``B8A``, ``B04``, ``B4``), upper-case, or None."""
    match = _BAND_IN_NAME.search(stem)
    return match.group(1).upper() if match else None


def sensor_table(stem: str, name: str) -> dict[str, BandSpec] | None:
    """The band table a file name points to: Sentinel-2 tile names and two-digit band
    numbers (``B04``, ``B8A``), Landsat scene names (``LC08_...``, ``l8_...``); else None."""
    if _SENTINEL2_NAME.search(stem) or (name in SENTINEL2 and len(name) == 3):
        return SENTINEL2
    match = _LANDSAT_NAME.match(stem)
    if match:
        return landsat_table(match.group(1))
    return None
