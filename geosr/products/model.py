"""The product model: a satellite product's bands, each on its own grid, with what each
band means (name, centre wavelength, scale and offset to physical units, nodata), and the
quality bands that say where clouds, shadows and fill are.

Readers (:mod:`geosr.products.sentinel2`, :mod:`~geosr.products.landsat`,
:mod:`~geosr.products.stac`, :mod:`~geosr.products.files`) build a :class:`Product`; the
engine reads the bands it selects through one VRT on the finest selected grid
(:mod:`geosr.products.vrt`). Nothing here reads pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from affine import Affine
from rasterio.crs import CRS

from geosr.errors import InputError
from geosr.options import get as get_option

#: Mask modes: ``"clouds"`` masks fill, saturated, cloud (medium and high confidence), thin
#: cirrus and cloud-shadow pixels from the product's quality band (``SCL``, ``QA_PIXEL``,
#: ``BQA``); ``"nodata"`` only the fill; ``None`` nothing. ``"auto"``: clouds where the
#: product has a quality band, else nodata.
MASK_MODES = tuple(get_option("mask").api_value(mode) for mode in get_option("mask").choices)


@dataclass(frozen=True)
class Grid:
    """A raster grid: size, CRS and transform."""

    width: int
    height: int
    crs: CRS | None
    transform: Affine

    @property
    def resolution(self) -> float:
        """Pixel side in CRS units (the larger of x and y, for non-square pixels)."""
        return max(
            math.hypot(self.transform.a, self.transform.d),
            math.hypot(self.transform.b, self.transform.e),
        )

    def same_as(self, other: Grid) -> bool:
        """Whether ``other`` is this grid (size and transform, to float rounding)."""
        return (self.width, self.height) == (other.width, other.height) and (
            self.transform.almost_equals(other.transform)
        )

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) of a north-up grid."""
        left, top = self.transform.c, self.transform.f
        right, bottom = self.transform * (self.width, self.height)
        return min(left, right), min(top, bottom), max(left, right), max(top, bottom)


@dataclass(frozen=True)
class ProductBand:
    """One band of a product: where its pixels are and what they mean.

    Physical value = ``DN * scale + offset`` (GDAL's convention), e.g. Sentinel-2 L2A of
    processing baseline 04.00: ``scale = 1e-4``, ``offset = -0.1`` (``BOA_ADD_OFFSET = -1000``
    over ``QUANTIFICATION_VALUE = 10000``)."""

    name: str  # B04, B8A, B4 ...
    file: str  # GDAL dataset name
    label: str  # the file as messages name it
    grid: Grid
    dtype: str
    index: int = 1  # band number in the file
    nodata: float | None = None
    scale: float = 1.0
    offset: float = 0.0
    unit: str | None = None  # of the physical value
    quantity: str | None = None  # e.g. "TOA reflectance"
    wavelength: float | None = None  # centre, micrometres
    fwhm: float | None = None  # full width at half maximum, micrometres
    common_name: str | None = None  # STAC eo:common_name: blue, red, nir08 ...
    block: tuple[int, int] = (256, 256)
    mask: bool = False  # the file has a per-dataset mask (internal or .msk)


@dataclass(frozen=True)
class QualityRule:
    """Which values of a quality band are masked: class values (Sentinel-2 ``SCL``), set
    bits, or bit fields at or above a level (Landsat confidence pairs). Picklable, so dask
    workers apply it to the windows they read."""

    name: str  # what the mask says, for logs and tags
    classes: tuple[int, ...] = ()
    bits: int = 0
    fields: tuple[tuple[int, int, int], ...] = ()  # (shift, width, lowest masked level)

    def masked(self, values: np.ndarray) -> np.ndarray:
        """True where ``values`` mark a pixel to mask."""
        values = values.astype(np.int64, copy=False)
        out = np.isin(values, self.classes) if self.classes else np.zeros(values.shape, bool)
        if self.bits:
            out |= (values & self.bits) != 0
        for shift, width, level in self.fields:
            out |= ((values >> shift) & ((1 << width) - 1)) >= level
        return out


@dataclass(frozen=True)
class QualityBand:
    """A band of quality flags and the rule that reads them."""

    name: str  # SCL, QA_PIXEL, BQA ...
    file: str
    label: str
    grid: Grid
    rule: QualityRule
    index: int = 1


@dataclass(frozen=True)
class Product:
    """A satellite product: its bands on their own grids, quality bands and metadata."""

    kind: str  # "Sentinel-2 L2A", "Landsat Collection 2 Level-1", "STAC item", "band files" ...
    label: str  # the product as messages name it
    stem: str  # output file names start with it
    bands: tuple[ProductBand, ...]
    default_bands: tuple[str, ...] = ()  # what is processed when no bands are selected
    quality: tuple[QualityBand, ...] = ()
    folder: Path | None = None  # default outputs go here (beside a local product)
    tags: dict[str, str] = field(default_factory=dict)  # carried to the outputs
    missing: dict[str, str] = field(default_factory=dict)  # band name -> file its metadata names
    item_id: str | None = None
    datetime: str | None = None  # ISO 8601, UTC
    platform: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(band.name for band in self.bands)

    def band(self, name: str) -> ProductBand:
        """The band called ``name``, or else the one band whose STAC common name it is
        (``"red"``, ``"nir08"``); case-insensitive."""
        wanted = name.strip().upper()
        for band in self.bands:
            if band.name.upper() == wanted:
                return band
        common = [b for b in self.bands if (b.common_name or "").upper() == wanted]
        if len(common) == 1:
            return common[0]
        if common:
            raise InputError(
                f"{len(common)} bands of {self.label} are {name!r} "
                f"({', '.join(b.name for b in common)}); select one by its band name"
            )
        raise InputError(
            f"{self.label} has no band {name!r}; its bands are {', '.join(self.names)}"
        )

    def select(self, bands: Sequence[int | str] | None = None) -> tuple[ProductBand, ...]:
        """The bands to process: names (``["B04", "B03", "B02"]``) or 1-based numbers in
        :attr:`names` order; by default :attr:`default_bands`, else all.

        Raises:
            InputError: a name or number the product does not have, or a band given twice.
        """
        if not bands:
            self._check_present(self.default_bands + tuple(self.missing))
            return tuple(self.band(n) for n in self.default_bands) or self.bands
        self._check_present([b for b in bands if isinstance(b, str)])
        chosen = []
        for item in bands:
            if isinstance(item, str) and not item.strip().isdigit():
                chosen.append(self.band(item))
                continue
            number = int(item)
            if not 1 <= number <= len(self.bands):
                raise InputError(
                    f"band {number} does not exist in {self.label}, which has {len(self.bands)} "
                    f"bands numbered 1 to {len(self.bands)} ({', '.join(self.names)}); "
                    "select by number or by name"
                )
            chosen.append(self.bands[number - 1])
        names = [band.name for band in chosen]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise InputError(f"band {', '.join(twice)} is selected twice; select each band once")
        return tuple(chosen)

    def _check_present(self, names: Sequence[str]) -> None:
        wanted = {n.strip().upper() for n in names}
        for name, file in self.missing.items():
            if name.upper() in wanted:
                present = ", ".join(self.names)
                raise InputError(
                    f"{self.label} lacks {file} (band {name}), which its metadata names; "
                    f"re-download the product, or select bands it has ({present})"
                )


def finest_grid(bands: Sequence[ProductBand]) -> Grid:
    """The grid of the band with the smallest pixels (the first of those, in order)."""
    return min(bands, key=lambda band: band.grid.resolution).grid


def check_footprints(label: str, bands: Sequence[ProductBand | QualityBand]) -> None:
    """Refuse bands that do not cover one footprint in one CRS.

    Bounds may differ by less than half the coarser band's pixel (a Landsat pan band's grid
    is offset by half a pan pixel from the multispectral grid); anything more means another
    place or another tile.

    Raises:
        InputError: a band in another CRS, rotated, or with other bounds.
    """
    first = bands[0]
    for band in bands:
        if band.grid.transform.b or band.grid.transform.d:
            raise InputError(
                f"{band.label} is a rotated grid; geosr aligns bands of products on north-up "
                "grids only (warp it north-up with gdalwarp first)"
            )
        if band.grid.crs != first.grid.crs:
            raise InputError(
                f"{band.label} is in {band.grid.crs} but {first.label} in {first.grid.crs}; "
                "the bands of a product must share one CRS (reproject with gdalwarp first)"
            )
        tolerance = max(band.grid.resolution, first.grid.resolution) / 2
        shift = max(abs(a - b) for a, b in zip(band.grid.bounds, first.grid.bounds, strict=True))
        if shift > tolerance:
            raise InputError(
                f"{band.label} covers {_bounds_text(band.grid)} but {first.label} covers "
                f"{_bounds_text(first.grid)}; the bands of a product must cover one footprint "
                "(crop them to a common extent first)"
            )


def _bounds_text(grid: Grid) -> str:
    return "(" + ", ".join(f"{v:.2f}" for v in grid.bounds) + ")"
