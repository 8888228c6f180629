"""The common footprint of the two dates ``geosr evaluate --temporal`` compares: same CRS and
pixel size, grids offset by whole pixels (B shifted onto A's grid, no resampling), and what
a user is told to run where they are not."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from rasterio.errors import NodataShadowWarning
from rasterio.windows import Window

from geosr.errors import InputError
from geosr.evaluation.rgb import DisplayBands, dataset_display_bands
from geosr.metrics import bicubic_upsample
from geosr.raster import open_raster
from geosr.sources import redact

#: largest grid offset, in pixels, still taken as a whole number of pixels
_GRID_TOLERANCE = 1e-3


@dataclass
class _Grid:
    window_a: Window
    window_b: Window
    offset: tuple[int, int]
    bounds: tuple[float, float, float, float]
    band_names: list[str]
    display: DisplayBands  # the bands the figure draws as RGB
    a: str
    b: str

    def read(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A's and B's footprint (bands, h, w) in float64 and where both are valid."""
        arrays, masks = [], []
        for source, window in ((self.a, self.window_a), (self.b, self.window_b)):
            with open_raster(source) as src:
                arrays.append(src.read(window=window).astype(np.float64))
                with warnings.catch_warnings():  # a nodata value and an alpha-like 4th band
                    warnings.simplefilter("ignore", NodataShadowWarning)
                    masks.append(src.dataset_mask(window=window) > 0)
        valid = masks[0] & masks[1]
        if not valid.any():
            raise InputError(
                f"{redact(self.a)} and {redact(self.b)} have no pixel valid on both dates in "
                "their common footprint; pass two rasters of the same place"
            )
        return arrays[0], arrays[1], valid

    def bicubic(self, source: str, window: Window, scale: int) -> np.ndarray:
        """Bicubic upsampling of the whole file, cut to ``window`` (read with a 2-pixel margin,
        edge pixels replicated at the file's edges as the whole-file upsampling does), rounded
        and clipped to the file's data type as a resampled file would be."""
        margin = 2
        with open_raster(source) as src:
            top, left = max(window.row_off - margin, 0), max(window.col_off - margin, 0)
            bottom = min(window.row_off + window.height + margin, src.height)
            right = min(window.col_off + window.width + margin, src.width)
            data = src.read(window=Window(left, top, right - left, bottom - top))
            dtype = np.dtype(src.dtypes[0])
        pads = (
            (0, 0),
            (margin - (window.row_off - top), margin - (bottom - window.row_off - window.height)),
            (margin - (window.col_off - left), margin - (right - window.col_off - window.width)),
        )
        padded = np.pad(data.astype(np.float64), pads, mode="edge")
        up = bicubic_upsample(padded, scale)
        cut = margin * scale
        up = up[:, cut : up.shape[1] - cut, cut : up.shape[2] - cut]
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            up = np.clip(np.rint(up), info.min, info.max)
        return up


def _common_grid(a: str, b: str) -> _Grid:
    """The two rasters' common footprint on A's grid, B's grid shifted by whole pixels."""
    with open_raster(a) as sa, open_raster(b) as sb:
        ta, tb = sa.transform, sb.transform
        name_a, name_b = redact(a), redact(b)
        if sa.crs is None or sb.crs is None:
            raise InputError(
                f"{name_a if sa.crs is None else name_b} has no CRS; temporal evaluation "
                "needs two georeferenced rasters of the same place"
            )
        if sa.crs != sb.crs:
            raise InputError(
                f"{name_a} and {name_b} are in different CRS ({sa.crs.to_string()} and "
                f"{sb.crs.to_string()}); reproject B onto A's grid first, e.g. " + _warp_hint(sa, b)
            )
        if ta.b or ta.d or tb.b or tb.d:
            raise InputError(
                f"{name_a if ta.b or ta.d else name_b} has a rotated grid; warp it north-up "
                "onto the other's grid first, e.g. " + _warp_hint(sa, b)
            )
        if not (math.isclose(ta.a, tb.a, rel_tol=1e-6) and math.isclose(ta.e, tb.e, rel_tol=1e-6)):
            raise InputError(
                f"{name_a} and {name_b} have different pixel sizes ({ta.a:g} x {-ta.e:g} and "
                f"{tb.a:g} x {-tb.e:g}); resample B onto A's grid first, e.g. " + _warp_hint(sa, b)
            )
        if sa.count != sb.count:
            raise InputError(
                f"{name_a} has {sa.count} bands and {name_b} {sb.count}; pass two rasters "
                "with the same bands"
            )
        col, row = (tb.c - ta.c) / ta.a, (tb.f - ta.f) / ta.e
        if abs(col - round(col)) > _GRID_TOLERANCE or abs(row - round(row)) > _GRID_TOLERANCE:
            raise InputError(
                f"the grid of {name_b} is offset from {name_a}'s by {col:+.3f} columns and "
                f"{row:+.3f} rows (x {tb.c - ta.c:+.12g}, y {tb.f - ta.f:+.12g} in CRS units), "
                "not whole pixels, so their pixels do not cover the same ground; "
                "resample B onto A's grid first, e.g. " + _warp_hint(sa, b)
            )
        col0, row0 = round(col), round(row)
        top, left = max(0, row0), max(0, col0)
        bottom, right = min(sa.height, row0 + sb.height), min(sa.width, col0 + sb.width)
        if bottom <= top or right <= left:
            raise InputError(f"{name_a} and {name_b} do not overlap; pass two rasters of one place")
        window_a = Window(left, top, right - left, bottom - top)
        window_b = Window(left - col0, top - row0, right - left, bottom - top)
        west, north = ta * (left, top)
        east, south = ta * (right, bottom)
        names = [d or f"band {i + 1}" for i, d in enumerate(sa.descriptions)]
        return _Grid(
            window_a,
            window_b,
            (row0, col0),
            (west, min(south, north), east, max(south, north)),
            names,
            dataset_display_bands(sa),
            a,
            b,
        )


def _warp_hint(src: Any, b: str) -> str:
    left, bottom, right, top = src.bounds
    crs = src.crs.to_string() if src.crs is not None else "EPSG:...."
    return (
        f"gdalwarp -t_srs {crs} -tr {src.transform.a:.12g} {-src.transform.e:.12g} "
        f"-te {left:.12g} {bottom:.12g} {right:.12g} {top:.12g} -r cubic {b} B_on_A.tif, "
        "and pass B_on_A.tif"
    )
