"""What geosr knows about a source raster (:class:`RasterInfo`, read once when it is opened),
the quality bands that mask it, and ``rasterio.open`` in geosr's words.

Lowest of the raster modules: :mod:`geosr.raster` opens and validates inputs,
:mod:`geosr.raster_read` reads them lazily, :mod:`geosr.raster_output` writes outputs.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rasterio
from affine import Affine
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.enums import ColorInterp
from rasterio.rpc import RPC

from geosr.sources import is_local

#: dtypes geosr reads and writes (GDAL's real-valued types).
SUPPORTED_DTYPES = (
    "uint8",
    "int8",
    "uint16",
    "int16",
    "uint32",
    "int32",
    "int64",
    "uint64",
    "float32",
    "float64",
)

#: What ``geosr.upscale`` takes as input: one raster, or single-band rasters to stack.
Source = str | os.PathLike[str]
Sources = Source | Sequence[Source]


@dataclass(frozen=True)
class QualitySource:
    """A quality band on a raster's grid and the rule saying which of its values are masked
    (any picklable object with ``masked(values) -> bool array``, such as a product's
    :class:`geosr.products.model.QualityRule`)."""

    name: str = field(repr=False)  # GDAL dataset name (a VRT on the raster's grid)
    rule: Any


@dataclass(frozen=True)
class RasterInfo:
    """What geosr needs to know about a source raster, read once when it is opened."""

    name: str = field(repr=False)  # GDAL dataset name; for a stack, VRT XML naming its files
    label: str  # the input as messages name it: query strings and user information removed
    width: int
    height: int
    count: int
    dtype: str
    crs: CRS | None
    transform: Affine
    nodata: float | None
    descriptions: tuple[str | None, ...]
    colorinterp: tuple[ColorInterp, ...]
    tags: dict[str, str]
    band_tags: tuple[dict[str, str], ...]
    units: tuple[str | None, ...]
    scales: tuple[float, ...]
    offsets: tuple[float, ...]
    block_shape: tuple[int, int]
    files: tuple[str, ...] = field(default=(), repr=False)  # the input's dataset names
    stem: str = "raster"  # output names start with it
    alpha: int | None = None  # 1-based number of the alpha band, if any
    mask: bool = False  # a per-dataset mask (internal or .msk sidecar) hides pixels
    gcps: tuple[GroundControlPoint, ...] = ()
    gcp_crs: CRS | None = None
    rpcs: RPC | None = None
    bands: tuple[int, ...] = field(default=())  # 1-based band indexes selected for processing
    quality: tuple[QualitySource, ...] = ()  # cloud and fill flags that mask pixels too

    @property
    def has_transform(self) -> bool:
        return self.crs is not None and not self.transform.is_identity

    @property
    def georeferenced(self) -> bool:
        return self.has_transform or bool(self.gcps) or self.rpcs is not None

    @property
    def selected(self) -> tuple[int, ...]:
        return self.bands or tuple(range(1, self.count + 1))

    @property
    def network_bands(self) -> tuple[int, ...]:
        """The selected bands a network super-resolves: all but the alpha band."""
        return tuple(b for b in self.selected if b != self.alpha)

    @property
    def local_files(self) -> tuple[Path, ...]:
        return tuple(Path(name) for name in self.files if is_local(name))

    def band_names(self) -> list[str]:
        return [self.descriptions[b - 1] or f"band {b}" for b in self.selected]


def open_raster(path: str | os.PathLike[str], mode: str = "r", **kwargs: Any) -> Any:
    """``rasterio.open`` without rasterio's own not-georeferenced warning (geosr warns once, in
    its own words, when the input is opened)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        return rasterio.open(path, mode, **kwargs)


def _gdal_reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # a stack is opened as VRT XML, which GDAL quotes whole: name it, don't print it
    return _VRT_XML.sub("<stack VRT>", text).rstrip(".")


_VRT_XML = re.compile(r"<VRTDataset.*?</VRTDataset>", re.DOTALL)
