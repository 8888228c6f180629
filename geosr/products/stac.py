"""STAC Items in and out.

In: a STAC Item (JSON file, http(s) URL, or ``pystac.Item``) is a product whose bands are
its single-band raster assets, named by ``eo:bands``' name (else the asset key) and
selectable by common name too (``"red"``, ``"nir08"``); ``raster:bands`` give scale, offset,
nodata (``"nan"`` too) and unit. Remote assets (COGs) are read by range, as every remote
raster is. ``SCL`` and ``qa_pixel`` assets are cloud masks.

Out: :func:`write_stac_item` describes an output GeoTIFF or Zarr store as a STAC Item with
the projection, eo and raster extensions, written with pystac beside the output; it is
valid against the STAC 1.1.0 schemas (tests/test_stac.py checks it offline).
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import math
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import rasterio.warp
from rasterio.crs import CRS
from rasterio.enums import WktVersion

from geosr.errors import InputError, InputNotFoundError, OutputError, OutputExistsError
from geosr.products.bands import SENTINEL2, landsat_table
from geosr.products.headers import product_band, read_header
from geosr.products.landsat import QA_PIXEL_CLOUDS
from geosr.products.model import Product, QualityBand
from geosr.products.sentinel2 import SCL_CLOUDS
from geosr.raster_info import RasterInfo
from geosr.sources import dataset_name, is_local, redact
from geosr.version import __version__

#: Asset roles that are never bands.
_NOT_BANDS = {"thumbnail", "overview", "metadata", "visual", "snow-ice", "cloud", "water-mask"}
#: Quality assets by key (lower case) and the rule that reads them.
_QUALITY = {"scl": ("SCL", SCL_CLOUDS), "qa_pixel": ("QA_PIXEL", QA_PIXEL_CLOUDS)}


def load_item(source: Any) -> Any:
    """A ``pystac.Item`` from an Item, a JSON file or an http(s) URL.

    Raises:
        InputNotFoundError: a local file that does not exist, or a URL its server does not
            have (HTTP 404 or 410).
        InputError: not a STAC Item, or unreadable.
    """
    import pystac

    if isinstance(source, pystac.Item):
        return source
    text = os.fspath(source)
    name = dataset_name(text)
    local = is_local(name)
    label = text if local else redact(text)
    data = _read_json(text.removeprefix("/vsicurl/"), name, label)
    try:
        item = pystac.read_dict(data, href=str(Path(name).resolve()) if local else text)
    except (pystac.STACError, pystac.STACTypeError, KeyError, TypeError, ValueError) as exc:
        raise InputError(
            f"{label} is not a STAC Item ({type(exc).__name__}: {_one_line(exc)}); pass an "
            "Item's JSON (a Collection or Catalog holds several scenes: pick one Item)"
        ) from None
    if not isinstance(item, pystac.Item):
        raise InputError(
            f"{label} is a STAC {type(item).__name__}, not an Item; pass one Item's JSON"
        )
    return item


def _read_json(text: str, name: str, label: str) -> Any:
    """The JSON of a local file or an http(s) URL. Read here rather than by pystac, whose
    errors and debug log quote the URL whole, query string (a signed URL's token) included.
    """
    if is_local(name):
        path = Path(name)
        if not path.exists():
            raise InputNotFoundError(f"input {label} does not exist; check the path")
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read {label} ({exc.strerror}); check the path") from None
    elif urlsplit(text).scheme.lower() in ("http", "https"):
        raw = _http_get(text, label)
    else:
        raise InputError(
            f"cannot read the STAC Item {label}: geosr reads Items from a file or an http(s) "
            "URL; download it first"
        )
    try:
        data = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise InputError(
            f"{label} is not JSON ({_one_line(exc)}); pass a STAC Item's JSON"
        ) from None
    if not isinstance(data, dict):
        raise InputError(f"{label} is a JSON {type(data).__name__}, not a STAC Item; pass one Item")
    return data


#: Seconds to wait for the server of a STAC Item (GDAL waits as long for raster assets).
_HTTP_TIMEOUT = 30


def _http_get(url: str, label: str) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": f"geosr/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code in (404, 410):
            raise InputNotFoundError(
                f"input {label} does not exist (HTTP {exc.code}); check the URL"
            ) from None
        raise InputError(
            f"cannot read {label} (HTTP {exc.code} {_one_line(exc.reason)}); check the URL and "
            "its credentials or signature"
        ) from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise InputError(
            f"cannot read {label} ({_one_line(reason)}); check the URL and the network"
        ) from None


def _one_line(reason: Any) -> str:
    """An error's text for a one-line message: redacted, on one line."""
    return redact(" ".join(str(reason).split()))


def read_stac(source: Any) -> Product:
    """The product a STAC Item describes.

    Raises:
        InputError: as :func:`load_item`, or an Item without single-band raster assets.
    """
    item = load_item(source)
    platform = str(item.properties.get("platform") or "")
    table = SENTINEL2 if platform.lower().startswith("sentinel-2") else {}
    if platform.lower().startswith("landsat"):
        table = landsat_table(platform)
    bands, quality = [], []
    for key, asset in item.assets.items():
        roles = set(asset.roles or ())
        if roles & _NOT_BANDS or not _is_raster(asset.media_type, asset.href):
            continue
        href = asset.get_absolute_href() or asset.href
        name, label = dataset_name(href), redact(href)
        if key.lower() in _QUALITY:
            quality_name, rule = _QUALITY[key.lower()]
            grid = read_header(name, label)["grid"]
            quality.append(QualityBand(quality_name, name, label, grid, rule))
            continue
        eo = _first(asset.extra_fields.get("eo:bands")) or _first(asset.extra_fields.get("bands"))
        band_name = str(eo.get("name") or key) if eo else key
        header = read_header(name, label)
        if header["count"] != 1:
            continue  # multi-band assets (previews, stacks) are no band of their own
        raster = _first(asset.extra_fields.get("raster:bands")) or eo or {}
        spec = table.get(band_name.upper()) or table.get(key.upper())
        bands.append(
            product_band(
                band_name,
                name,
                label,
                spec,
                header=header,
                common_name=(eo or {}).get("common_name") or (eo or {}).get("eo:common_name"),
                wavelength=(eo or {}).get("center_wavelength")
                or (eo or {}).get("eo:center_wavelength"),
                fwhm=(eo or {}).get("full_width_half_max")
                or (eo or {}).get("eo:full_width_half_max"),
                scale=raster.get("scale", raster.get("raster:scale")),
                offset=raster.get("offset", raster.get("raster:offset")),
                nodata=_nodata(raster.get("nodata"), key, item.id),
                unit=raster.get("unit"),
            )
        )
    if not bands:
        raise InputError(
            f"STAC Item {item.id} has no single-band raster assets (GeoTIFF or JPEG 2000 "
            "with one band each); geosr needs one asset per band"
        )
    self_href = item.get_self_href()
    local = self_href is not None and is_local(dataset_name(self_href))
    when = item.datetime or item.common_metadata.start_datetime
    tags = {
        "PRODUCT_ID": item.id,
        "DATETIME": when.isoformat() if when else "",
        "SPACECRAFT": platform,
    }
    cloud = item.properties.get("eo:cloud_cover")
    if cloud is not None:
        tags["CLOUD_COVER"] = str(cloud)
    return Product(
        kind="STAC item",
        label=f"STAC Item {item.id}",
        stem=item.id,
        bands=tuple(bands),
        quality=tuple(quality),
        folder=Path(self_href).parent if local else None,
        tags={k: v for k, v in tags.items() if v},
        item_id=item.id,
        datetime=when.isoformat() if when else None,
        platform=platform or None,
    )


def asset_names(source: Any) -> list[str]:
    """GDAL names of an Item's assets (for the remote-read settings around a run)."""
    item = load_item(source)
    return [dataset_name(a.get_absolute_href() or a.href) for a in item.assets.values()]


def _nodata(value: Any, key: str, item_id: str) -> float | None:
    """A ``raster:bands`` nodata: a number, or STAC's ``"nan"``, ``"inf"`` or ``"-inf"``."""
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(
            f"asset {key} of STAC Item {item_id} has nodata {value!r}, which is neither a number "
            'nor "nan", "inf" or "-inf"; fix the Item\'s raster:bands'
        ) from None


def _first(value: Any) -> dict[str, Any] | None:
    return (
        value[0]
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict)
        else None
    )


def _is_raster(media_type: str | None, href: str) -> bool:
    if media_type:
        return media_type.startswith(("image/tiff", "image/jp2", "image/vnd.stac.geotiff"))
    return href.lower().split("?", 1)[0].endswith((".tif", ".tiff", ".jp2"))


# --- out ----------------------------------------------------------------------------------------


def stac_item_path(output: Path, overwrite: bool = True, inputs: Sequence[Path] = ()) -> Path:
    """Where the STAC Item of an output goes: ``scene_x4.tif`` -> ``scene_x4.json``.

    Raises:
        OutputError: it would replace one of ``inputs`` (a STAC Item read as the input).
        OutputExistsError: it exists and ``overwrite`` is not set.
    """
    path = output.with_suffix(".json")
    if path.exists() and any(p.exists() and p.resolve() == path.resolve() for p in inputs):
        raise OutputError(
            f"the STAC Item of output {output} would be {path}, the input Item; geosr never "
            "overwrites its input, choose another output name"
        )
    if path.exists() and not overwrite:
        raise OutputExistsError(
            f"{path} already exists; pass overwrite=True (--overwrite) to replace it"
        )
    return path


def write_stac_item(
    output: Path,
    info: RasterInfo,
    product: Product | None,
    scale: int,
    model_label: str,
    *,
    cog: bool = False,
    overwrite: bool = False,
) -> Path:
    """A STAC Item describing ``output`` (the upscaled ``info`` at ``scale``), written beside
    it with pystac: footprint, datetime (the product's, else now), projection (code or WKT2,
    shape, transform, bbox), eo bands (names, common names, wavelengths) and raster bands
    (nodata, data type, scale, offset, unit, resolution); the asset's media type says COG
    only when ``cog`` made one. Returns its path.

    Raises:
        OutputExistsError: the Item's file exists and ``overwrite`` is not set.
    """
    import pystac
    from pystac.extensions.eo import EOExtension
    from pystac.extensions.raster import RasterExtension

    path = stac_item_path(output, overwrite)
    transform = info.transform * rasterio.Affine.scale(1 / scale)
    shape = (info.height * scale, info.width * scale)
    geometry, bbox, bounds = _footprint(info, transform, shape)
    now = dt.datetime.now(dt.timezone.utc)
    when = _parse_time(product.datetime if product else info.tags.get("DATETIME")) or now
    properties = {"created": now.isoformat(), "geosr:model": model_label, "geosr:scale": scale}
    if product and product.platform:
        properties["platform"] = product.platform
    item = pystac.Item(
        id=output.stem,
        geometry=geometry,
        bbox=bbox,
        datetime=when,
        properties=properties,
    )
    if output.suffix.lower() not in (".tif", ".tiff"):
        media = "application/vnd+zarr"
    else:
        media = pystac.MediaType.COG if cog else pystac.MediaType.GEOTIFF
    asset = pystac.Asset(href=f"./{output.name}", media_type=media, roles=["data"])
    item.add_asset("data", asset)
    _add_projection(item, info, transform, shape, bounds)
    eo_bands, raster_bands = _band_metadata(info, transform)
    EOExtension.ext(asset, add_if_missing=True).bands = eo_bands
    RasterExtension.ext(asset, add_if_missing=True).bands = raster_bands
    item.set_self_href(str(path.resolve()))
    item.make_asset_hrefs_relative()
    tmp = path.with_name(f".{path.name}.geosr-tmp")
    tmp.write_text(json.dumps(item.to_dict(include_self_link=False), indent=2), encoding="utf-8")
    os.replace(tmp, path)
    return path


def _footprint(
    info: RasterInfo, transform: rasterio.Affine, shape: tuple[int, int]
) -> tuple[dict[str, Any] | None, list[float] | None, tuple[float, ...] | None]:
    """The output's footprint in WGS 84 (GeoJSON), its bbox, and its bounds in its own CRS.
    Without a CRS and geotransform (GCPs or RPCs only, or none) the Item has no footprint
    (null geometry, no bbox), as STAC prescribes."""
    if not info.has_transform:
        return None, None, None
    bounds = rasterio.transform.array_bounds(*shape, transform)
    geometry = rasterio.warp.transform_geom(info.crs, "EPSG:4326", _box(*bounds))
    lons = [x for x, _ in geometry["coordinates"][0]]
    lats = [y for _, y in geometry["coordinates"][0]]
    return geometry, [min(lons), min(lats), max(lons), max(lats)], bounds


def _add_projection(
    item: Any,
    info: RasterInfo,
    transform: rasterio.Affine,
    shape: tuple[int, int],
    bounds: tuple[float, ...] | None,
) -> None:
    """The projection extension: proj:code (an authority code, else WKT2; null without a
    geotransform), shape, and the transform and bbox of a gridded output."""
    from pystac.extensions.projection import ProjectionExtension

    gridded = info.has_transform
    projection = ProjectionExtension.ext(item, add_if_missing=True)
    projection.code = _crs_code(info.crs) if gridded else None
    if gridded and projection.code is None:
        projection.wkt2 = info.crs.to_wkt(version=WktVersion.WKT2_2019)
    projection.shape = list(shape)
    if gridded:
        projection.transform = list(transform)[:6]
        projection.bbox = list(bounds)


def _band_metadata(info: RasterInfo, transform: rasterio.Affine) -> tuple[list[Any], list[Any]]:
    """The eo and raster extensions' bands of the selected bands."""
    from pystac.extensions.eo import Band
    from pystac.extensions.raster import RasterBand

    eo_bands = []
    raster_bands = []
    for index in [b - 1 for b in info.selected]:
        tags = info.band_tags[index]
        eo_band = Band.create(name=info.descriptions[index] or f"band {index + 1}")
        if tags.get("COMMON_NAME"):
            eo_band.common_name = tags["COMMON_NAME"]
        if tags.get("CENTRAL_WAVELENGTH_UM"):
            eo_band.center_wavelength = float(tags["CENTRAL_WAVELENGTH_UM"])
        if tags.get("FWHM_UM"):
            eo_band.full_width_half_max = float(tags["FWHM_UM"])
        eo_bands.append(eo_band)
        raster_bands.append(
            RasterBand.create(
                nodata=_stac_nodata(info.nodata),
                data_type=info.dtype,
                scale=info.scales[index],
                offset=info.offsets[index],
                unit=info.units[index] or None,
                spatial_resolution=abs(transform.a),
            )
        )
    return eo_bands, raster_bands


def _crs_code(crs: CRS) -> str | None:
    """``EPSG:32632`` (or another authority's code), or None for a CRS without one."""
    authority = crs.to_authority()
    return ":".join(authority) if authority else None


def _stac_nodata(value: float | None) -> float | str | None:
    """Nodata as STAC writes it: NaN and infinities are the strings ``"nan"``, ``"inf"``,
    ``"-inf"`` (JSON has no such numbers)."""
    if value is None or math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def _box(left: float, bottom: float, right: float, top: float) -> dict[str, Any]:
    ring = [[left, bottom], [right, bottom], [right, top], [left, top], [left, bottom]]
    return {"type": "Polygon", "coordinates": [ring]}


def _parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
