"""Satellite products as geosr inputs: Sentinel-2 SAFE (L1C, L2A; folder, ``.zip`` or
metadata file), Landsat (Collection 2 Level-1/Level-2, Collection 1, pre-collection: folder
or MTL file), STAC Items (JSON file, URL or ``pystac.Item``) and lists of single-band files
on several grids.

:func:`open_product` recognises a product; :func:`product_info` turns the bands selected
from it into the :class:`~geosr.raster.RasterInfo` the engine reads: one VRT on the finest
selected grid (the aligner, :mod:`geosr.products.vrt`), band names as descriptions, scale and
offset to physical units, wavelengths as band tags, and quality bands as masks.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from geosr.errors import ConfigError, InputError, NotARasterError
from geosr.options import validate as validate_option
from geosr.products.files import read_band_files
from geosr.products.headers import read_header
from geosr.products.landsat import find_mtl, read_landsat
from geosr.products.model import (
    MASK_MODES,
    Grid,
    Product,
    ProductBand,
    QualityBand,
    QualityRule,
    check_footprints,
    finest_grid,
)
from geosr.products.sentinel2 import find_metadata, read_safe
from geosr.products.vrt import ALIGNER, aligned_vrt, common_dtype, needs_resampling, quality_vrt
from geosr.raster import (
    QualitySource,
    RasterInfo,
    Sources,
    open_dataset_info,
    open_info,
    select_bands,
)
from geosr.sources import dataset_name, dataset_names, is_local, redact

__all__ = [
    "MASK_MODES",
    "Grid",
    "Product",
    "ProductBand",
    "QualityBand",
    "QualityRule",
    "check_mask_mode",
    "is_stac_item",
    "open_product",
    "open_source",
    "product_info",
    "product_output_path",
    "remote_names",
]


def open_product(source: Any, band_names: Sequence[str] | None = None) -> Product | None:
    """The product ``source`` is, or None for a plain raster (or single-grid band stack).

    ``source`` is a SAFE folder, ``.zip`` or ``MTD_MSIL*.xml``; a Landsat folder or
    ``*_MTL.txt``; a STAC Item as a ``.json`` file, URL or ``pystac.Item``; or a list of
    single-band rasters, which is a product when their grids differ.

    Raises:
        InputError: a folder or ``.zip`` that holds no product geosr reads, or a bad product.
    """
    if is_stac_item(source):
        from geosr.products.stac import read_stac

        return read_stac(source)
    if not isinstance(source, str | os.PathLike):
        return _band_files(list(source), band_names)
    name = dataset_name(source)
    if _stac_name(source):
        from geosr.products.stac import read_stac

        return read_stac(source)
    if not is_local(name):
        return None
    path = Path(name)
    if find_metadata(path) is not None:
        return read_safe(path)
    if find_mtl(path) is not None:
        return read_landsat(path)
    if path.is_dir():
        raise NotARasterError(
            f"input {path} is a folder that holds no product geosr reads (no MTD_MSIL1C.xml or "
            "MTD_MSIL2A.xml of a Sentinel-2 SAFE, no *_MTL.txt of Landsat); pass a raster file "
            "or a product"
        )
    if path.suffix.lower() == ".zip" and path.exists():
        raise InputError(
            f"{path} is a .zip that holds no Sentinel-2 SAFE product; for a raster inside it "
            f"pass /vsizip/{path}/<path inside>"
        )
    return None


def open_source(
    source: Sources | Any,
    bands: Sequence[int | str] | None = None,
    *,
    band_names: Sequence[str] | None = None,
    mask: str | None = "auto",
) -> tuple[RasterInfo, Product | None]:
    """Any input geosr takes, opened and described: a product (:func:`product_info` of its
    bands), or a raster or single-grid band stack (:func:`geosr.raster.open_info`), whose
    bands may be selected by description as well as by number; with the product, if any.

    Raises:
        InputError: as :func:`open_product`, :func:`product_info` and ``open_info`` do.
    """
    mode = check_mask_mode(mask)
    if not isinstance(source, str | os.PathLike) and not is_stac_item(source):
        source = list(source)  # read more than once: an iterator would be spent
    product = open_product(source, band_names)
    if product is not None:
        if band_names is not None and product.kind != "band files":
            raise ConfigError(
                f"band_names= (--band-names) names the bands of rasters, but {product.label} "
                f"names its own ({', '.join(product.names)}); leave it out"
            )
        return product_info(product, bands, mode), product
    info = open_info(source)
    if band_names is not None:
        if len(band_names) != info.count:
            raise InputError(
                f"{len(band_names)} band names for {info.label}, which has {info.count} bands; "
                "pass one name per band"
            )
        info = dataclasses.replace(info, descriptions=tuple(str(n) for n in band_names))
    if bands:
        info = select_bands(info, [_band_number(info, b) for b in bands])
    if mode == "clouds":
        raise InputError(
            f"{info.label} is a raster without a cloud mask band (SCL, QA_PIXEL or BQA); "
            "use mask='nodata' (--mask nodata), or pass the product it comes from"
        )
    if mode is None:
        info = dataclasses.replace(info, nodata=None, mask=False)
    return info, None


def _band_number(info: RasterInfo, band: int | str) -> int:
    """A band's 1-based number, given as a number or as its description, or the first word of
    one (``"B4"`` for ``"B4 red"``), case-insensitively."""
    if not isinstance(band, str) or band.strip().isdigit():
        return int(band)
    wanted = band.strip().upper()
    texts = [(d or "").strip().upper() for d in info.descriptions]
    for matches in (
        [n for n, text in enumerate(texts, 1) if text == wanted],
        [n for n, text in enumerate(texts, 1) if re.split(r"[\s_\-]+", text)[0] == wanted],
    ):
        if len(matches) == 1:
            return matches[0]
    named = [d for d in info.descriptions if d]
    listed = f"its bands are {', '.join(named)}" if named else "its bands have no names"
    raise InputError(
        f"{info.label} has no band {band!r} ({listed}); select by number, or name the bands "
        "with band_names= (--band-names)"
    )


def is_stac_item(source: Any) -> bool:
    """Whether ``source`` is a ``pystac.Item`` (pystac is imported only when one is given)."""
    return type(source).__name__ == "Item" and type(source).__module__.startswith("pystac")


def remote_names(source: Any) -> list[str]:
    """The GDAL names an input reads from, for :func:`geosr.sources.remote_env`: a local
    STAC Item's assets (a remote Item's are taken to be remote, unread), else the input's
    own names."""
    if is_stac_item(source) or (_stac_name(source) and is_local(dataset_name(source))):
        from geosr.products.stac import asset_names

        return asset_names(source)
    return dataset_names(source)


def input_files(source: Any) -> list[Path]:
    """The local files an input names itself (a product's folder or metadata file, a STAC
    Item's JSON), which no output may replace; its band files are in ``RasterInfo.files``."""
    if is_stac_item(source):
        href = source.get_self_href()
        return [Path(href)] if href and is_local(dataset_name(href)) else []
    names = (
        dataset_names(source)
        if not isinstance(source, str | os.PathLike)
        else [dataset_name(source)]
    )
    return [Path(n) for n in names if is_local(n)]


def _stac_name(source: Any) -> bool:
    """Whether ``source`` names a STAC Item: a ``.json`` file or URL, or a STAC API item URL
    (``.../collections/<id>/items/<id>``)."""
    if not isinstance(source, str | os.PathLike):
        return False
    path = dataset_name(source).split("?", 1)[0]
    return path.lower().endswith(".json") or ("://" in os.fspath(source) and "/items/" in path)


def product_output_path(product: Product, scale: int) -> Path:
    """Default output of a product: ``<product id>_x<scale>.tif`` beside a local product,
    else in the current folder; ``<product id>_aligned.tif`` for the aligner alone."""
    suffix = f"_x{scale}" if scale > 1 else "_aligned"
    return (product.folder or Path.cwd()) / f"{product.stem}{suffix}.tif"


def _band_files(sources: list[Any], band_names: Sequence[str] | None) -> Product | None:
    names = dataset_names(sources)
    labels = [
        n if is_local(n) else redact(os.fspath(s)) for s, n in zip(sources, names, strict=True)
    ]
    headers = [read_header(name, label) for name, label in zip(names, labels, strict=True)]
    grids = {
        (h["grid"].width, h["grid"].height, tuple(h["grid"].transform)[:6], h["grid"].crs)
        for h in headers
    }
    if len(grids) == 1:
        return None  # one grid: the band stack of geosr.raster
    return read_band_files(names, labels, band_names, headers)


def check_mask_mode(mask: Any) -> str | None:
    """``mask`` checked against :data:`MASK_MODES` (its declaration in :mod:`geosr.options`)."""
    return validate_option("mask", mask)


def product_info(
    product: Product,
    bands: Sequence[int | str] | None = None,
    mask: str | None = "auto",
    *,
    grid: Grid | None = None,
    aligner: str | None = None,
) -> RasterInfo:
    """The bands selected from ``product`` as one raster on the finest selected grid, or on
    ``grid`` (a guided model's fine grid); ``aligner`` names what aligns them (the
    ``GEOSR_ALIGNER`` tag; default: cubic where a band needs resampling).

    Raises:
        InputError: an unknown band, bands that do not share a footprint or a nodata value,
            or ``mask="clouds"`` on a product without a quality band.
    """
    mode = check_mask_mode(mask)
    if mode == "auto":
        mode = "clouds" if product.quality else "nodata"
    if mode == "clouds" and not product.quality:
        raise InputError(
            f"{product.label} has no cloud mask band (SCL, QA_PIXEL or BQA); "
            "use mask='nodata' (--mask nodata) or mask=None"
        )
    selected = product.select(bands)
    quality = product.quality if mode == "clouds" else ()
    check_footprints(product.label, [*selected, *quality])
    grid = grid or finest_grid(selected)
    nodata = None if mode is None else _common_nodata(product, selected)
    if aligner is None:
        aligner = ALIGNER if needs_resampling(selected, grid) else "none"
    tags = {
        **product.tags,
        "GEOSR_PRODUCT": product.kind,
        "GEOSR_ALIGNER": aligner,
        "GEOSR_MASK": str(mode) if mode is None else mode,
    }
    if quality:
        tags["GEOSR_MASKED"] = "; ".join(q.rule.name for q in quality)
    dtype = common_dtype(selected)
    vrt = aligned_vrt(selected, grid, dtype=dtype, nodata=nodata, tags=tags)
    sources = [product.label, *(b.file for b in selected), *(q.file for q in quality)]
    files = tuple(dict.fromkeys(f for f in sources if not is_local(f) or Path(f).exists()))
    info = open_dataset_info(vrt, product.label, files, product.stem)
    return dataclasses.replace(
        info, quality=tuple(QualitySource(quality_vrt(q, grid), q.rule) for q in quality)
    )


def _common_nodata(product: Product, bands: Sequence[ProductBand]) -> float | None:
    values = {"nan" if b.nodata is not None and math.isnan(b.nodata) else b.nodata for b in bands}
    if len(values) > 1:
        listed = ", ".join(f"{b.name}: {b.nodata}" for b in bands)
        raise InputError(
            f"the bands of {product.label} have different nodata values ({listed}); "
            "select bands that share one, or set one with gdal_edit.py -a_nodata"
        )
    return bands[0].nodata
