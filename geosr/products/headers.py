"""Band and quality descriptions from raster headers (no pixels are read)."""

from __future__ import annotations

from typing import Any

from rasterio.enums import MaskFlags
from rasterio.errors import RasterioIOError

from geosr.errors import InputError
from geosr.products.bands import BandSpec
from geosr.products.model import Grid, ProductBand, QualityBand, QualityRule
from geosr.raster import check_exists, open_error, open_raster


def read_header(name: str, label: str, index: int = 1) -> dict[str, Any]:
    """Grid, data type, nodata, block shape, description, scale, offset and unit of band
    ``index`` of a raster.

    Raises:
        InputNotFoundError: a local file that does not exist.
        NotARasterError: GDAL cannot read it.
        InputError: it has no band ``index``.
    """
    check_exists(name, label)
    try:
        with open_raster(name) as src:
            if not 1 <= index <= src.count:
                raise InputError(f"{label} has no band {index}; it has {src.count}")
            return {
                "grid": Grid(src.width, src.height, src.crs, src.transform),
                "dtype": src.dtypes[index - 1],
                "nodata": src.nodata,
                "block": tuple(src.block_shapes[index - 1]),
                "description": src.descriptions[index - 1],
                "count": src.count,
                "scale": src.scales[index - 1],
                "offset": src.offsets[index - 1],
                "unit": src.units[index - 1] or None,
                "mask": MaskFlags.per_dataset in src.mask_flag_enums[index - 1],
            }
    except RasterioIOError as exc:
        raise open_error(name, label, exc) from None


def product_band(
    name: str,
    file: str,
    label: str,
    spec: BandSpec | None = None,
    *,
    index: int = 1,
    header: dict[str, Any] | None = None,
    **meta: Any,
) -> ProductBand:
    """A :class:`ProductBand` from a file's header, the band table's ``spec`` and ``meta``
    (``scale``, ``offset``, ``nodata``, ``quantity``, ``wavelength`` ...), which win."""
    header = header or read_header(file, label, index)
    values: dict[str, Any] = {
        "nodata": header["nodata"],
        "scale": header["scale"],
        "offset": header["offset"],
        "unit": header["unit"],
    }
    if spec is not None:
        values.update(wavelength=spec.wavelength, fwhm=spec.fwhm, common_name=spec.common_name)
    values.update({k: v for k, v in meta.items() if v is not None})
    return ProductBand(
        name=name,
        file=file,
        label=label,
        grid=header["grid"],
        dtype=header["dtype"],
        index=index,
        block=header["block"],
        mask=header["mask"],
        **values,
    )


def quality_band(name: str, file: str, label: str, rule: QualityRule) -> QualityBand:
    header = read_header(file, label)
    return QualityBand(name=name, file=file, label=label, grid=header["grid"], rule=rule)
