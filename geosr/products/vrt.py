"""The aligner of this release: selected bands of a product on one grid, as an in-memory VRT.

Every band is placed on the finest selected band's grid; a coarser band is resampled there
by GDAL's cubic convolution over the exact (fractional) source window of the target grid,
so grids that nest (Sentinel-2's 10/20/60 m) and grids offset by half a pixel (a Landsat
pan band) both land right. GDAL resamples each window a reader asks for with the kernel's
context around it, so a windowed read equals the whole read: chunked inference stays
seamless. Quality bands go to the same grid by nearest neighbour (flags are not numbers).
The VRT is XML text, which GDAL opens as a dataset name and dask ships to any worker.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

import numpy as np
from rasterio.dtypes import dtype_rev, typename_fwd

from geosr.products.model import Grid, ProductBand, QualityBand
from geosr.sources import mask_band, vrt_root

#: The aligner this module implements, as the GEOSR_ALIGNER tag names it.
ALIGNER = "cubic"


def band_tags(band: ProductBand) -> dict[str, str]:
    """Band metadata carried to outputs (GeoTIFF band tags, Zarr attributes)."""
    tags = {
        "BAND_NAME": band.name,
        "COMMON_NAME": band.common_name,
        "CENTRAL_WAVELENGTH_UM": _number(band.wavelength),
        "FWHM_UM": _number(band.fwhm),
        "QUANTITY": band.quantity,
        "NATIVE_RESOLUTION": _number(band.grid.resolution),
    }
    return {k: v for k, v in tags.items() if v}


def aligned_vrt(
    bands: Sequence[ProductBand],
    grid: Grid,
    *,
    dtype: str,
    nodata: float | None,
    tags: dict[str, str],
) -> str:
    """VRT XML of ``bands`` on ``grid``, in order, as ``dtype`` with ``nodata``; each band
    described by its name, with its scale, offset, unit and :func:`band_tags`."""
    root = _dataset(grid)
    _metadata(root, tags)
    gdal_type = typename_fwd[dtype_rev[dtype]]
    for number, band in enumerate(bands, start=1):
        element = ET.SubElement(root, "VRTRasterBand", dataType=gdal_type, band=str(number))
        ET.SubElement(element, "Description").text = band.name
        _metadata(element, band_tags(band))
        if nodata is not None:
            ET.SubElement(element, "NoDataValue").text = repr(float(nodata))
        if band.unit:
            ET.SubElement(element, "UnitType").text = band.unit
        ET.SubElement(element, "Offset").text = repr(float(band.offset))
        ET.SubElement(element, "Scale").text = repr(float(band.scale))
        _source(element, band.file, str(band.index), band.grid, grid, "cubic")
    masked = [band for band in bands if band.mask]
    if masked:
        # as geosr.sources.stack_vrt: the product of the files' masks, 0 where any is 0
        element = mask_band(root, len(masked))
        for band in masked:
            _source(element, band.file, f"mask,{band.index}", band.grid, grid, "nearest")
    return ET.tostring(root, encoding="unicode")


def quality_vrt(band: QualityBand, grid: Grid) -> str:
    """VRT XML of a quality band on ``grid`` by nearest neighbour, in its own data type."""
    root = _dataset(grid)
    element = ET.SubElement(root, "VRTRasterBand", dataType="UInt16", band="1")
    _source(element, band.file, str(band.index), band.grid, grid, "nearest")
    return ET.tostring(root, encoding="unicode")


def needs_resampling(bands: Sequence[ProductBand], grid: Grid) -> bool:
    """Whether any band is not on ``grid`` already."""
    return any(not band.grid.same_as(grid) for band in bands)


def common_dtype(bands: Sequence[ProductBand]) -> str:
    """The data type that holds every band's values."""
    return np.result_type(*[np.dtype(band.dtype) for band in bands]).name


def _dataset(grid: Grid) -> ET.Element:
    return vrt_root(grid.width, grid.height, grid.crs, grid.transform)


def _metadata(element: ET.Element, tags: dict[str, str]) -> None:
    if not tags:
        return
    metadata = ET.SubElement(element, "Metadata")
    for key, value in tags.items():
        ET.SubElement(metadata, "MDI", key=key).text = str(value)


def _source(
    element: ET.Element, file: str, source_band: str, source: Grid, target: Grid, resampling: str
) -> None:
    """A source placing ``file``'s band ``source_band`` (``1``, or ``mask,1`` for its mask),
    on ``source``, over the whole ``target``: its source rectangle is the target grid's
    footprint in source pixels."""
    same = source.same_as(target)
    attributes = {} if same else {"resampling": resampling}
    simple = ET.SubElement(element, "SimpleSource", attributes)
    ET.SubElement(simple, "SourceFilename", relativeToVRT="0").text = file
    ET.SubElement(simple, "SourceBand").text = source_band
    if same:
        x0, y0, x1, y1 = 0.0, 0.0, float(source.width), float(source.height)
    else:
        to_source = ~source.transform * target.transform
        x0, y0 = to_source * (0, 0)
        x1, y1 = to_source * (target.width, target.height)
    ET.SubElement(
        simple, "SrcRect", xOff=repr(x0), yOff=repr(y0), xSize=repr(x1 - x0), ySize=repr(y1 - y0)
    )
    ET.SubElement(
        simple, "DstRect", xOff="0", yOff="0", xSize=str(target.width), ySize=str(target.height)
    )


def _number(value: float | None) -> str | None:
    return None if value is None else f"{value:g}"
