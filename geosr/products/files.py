"""A product made of single-band files on several grids that cover one footprint, such as
Sentinel-2 band files at 10, 20 and 60 m, or Landsat bands with their 15 m pan band.

Each file's band is named by ``band_names=``, else by the file's band description, else by
the band name its file name ends with (``..._B8A.jp2``, ``..._B4.TIF``), else by its file
name. Sentinel-2 and Landsat names bring their wavelengths from the band tables; files that
sit in a SAFE or Landsat product folder bring that product's band metadata (scale and
offset to reflectance, wavelength), read from its metadata file.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from geosr.errors import InputError
from geosr.products.bands import band_name_in, sensor_table
from geosr.products.headers import product_band, read_header
from geosr.products.landsat import find_mtl, read_landsat
from geosr.products.model import Product, ProductBand
from geosr.products.sentinel2 import find_metadata, read_safe
from geosr.sources import is_local, name_stem

log = logging.getLogger(__name__)


def read_band_files(
    names: Sequence[str],
    labels: Sequence[str],
    band_names: Sequence[str] | None = None,
    headers: Sequence[dict[str, Any]] | None = None,
) -> Product:
    """The product made of the single-band rasters ``names`` (GDAL names), in order;
    ``headers`` are their :func:`read_header`, when the caller has read them already.

    Raises:
        InputError: a file with more than one band, ``band_names`` of another length, or two
            files with the same band name.
    """
    if band_names is not None and len(band_names) != len(names):
        raise InputError(
            f"{len(band_names)} band names for {len(names)} files; pass one name per file"
        )
    bands: list[ProductBand] = []
    for position, (name, label) in enumerate(zip(names, labels, strict=True)):
        header = headers[position] if headers is not None else read_header(name, label)
        if header["count"] != 1:
            raise InputError(
                f"{label} has {header['count']} bands but a stack takes single-band rasters; "
                "pass it alone (with bands=[...] to select) or one file per band"
            )
        stem = name_stem(name)
        from_name = band_name_in(stem)
        band_name = (
            band_names[position].strip()
            if band_names is not None
            else (header["description"] or from_name or stem)
        )
        table = sensor_table(stem, band_name.upper()) or {}
        spec = table.get(band_name.upper())
        if spec is not None:
            band_name = spec.name
        bands.append(product_band(band_name, name, label, spec, header=header))
    products: dict[Path, Product | None] = {}
    bands = [_from_product(band, products) for band in bands]
    seen = [band.name.upper() for band in bands]
    twice = sorted({n for n in seen if seen.count(n) > 1})
    if twice:
        raise InputError(
            f"two files hold band {', '.join(twice)}; name each file's band with band_names= "
            "(--band-names)"
        )
    first = names[0]
    stem = f"{name_stem(first)}_bands"
    more = f" and {len(names) - 1} more" if len(names) > 1 else ""
    return Product(
        kind="band files",
        label=f"band files {labels[0]}{more}",
        stem=stem,
        bands=tuple(bands),
        folder=Path(first).parent if is_local(first) else None,
    )


def _from_product(band: ProductBand, read: dict[Path, Product | None]) -> ProductBand:
    """``band`` with its product's metadata (scale, offset, wavelength ...) when its
    file lies in a SAFE or Landsat product folder, found by its metadata file; ``read``
    holds the products read so far, so files of one product read it once."""
    if not is_local(band.file):
        return band
    path = Path(band.file).resolve()
    folder = next((f for f in list(path.parents)[:6] if find_metadata(f) or find_mtl(f)), None)
    if folder is None:
        return band
    if folder not in read:
        try:
            read[folder] = read_safe(folder) if find_metadata(folder) else read_landsat(folder)
        except InputError as exc:  # the files were asked for, not their product: read them as files
            log.warning("band metadata of files in %s not taken from it: %s", folder, exc)
            read[folder] = None
    product = read[folder]
    for known in product.bands if product else ():
        if Path(known.file).resolve() == path:
            # nodata stays the file's own: it must agree with the other files given
            return dataclasses.replace(known, label=band.label, nodata=band.nodata)
    return band
