"""Where rasters come from: GDAL dataset names for local files, URLs and cloud objects, band
stacks of single-band files, and the GDAL settings remote reads get.

Dataset names stay strings end to end (``pathlib.Path`` would turn ``https://host`` into
``https:/host``); only local files are checked for existence. Credentials come from GDAL's
own environment and configuration (``AWS_*``, ``GS_*``, ``AZURE_*``, ``GDAL_HTTP_*``), and
names shown in messages and logs lose their query strings and user information, where signed
URLs keep their tokens.
"""

from __future__ import annotations

import contextlib
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.dtypes import dtype_rev, typename_fwd
from rasterio.env import get_gdal_config

from geosr.errors import InputError

#: URL schemes and the GDAL virtual file system that reads them.
URL_SCHEMES = {
    "http": "/vsicurl/",
    "https": "/vsicurl/",
    "ftp": "/vsicurl/",
    "s3": "/vsis3/",
    "gs": "/vsigs/",
    "az": "/vsiaz/",
}

#: GDAL configuration for remote inputs, applied only where neither the environment nor an
#: enclosing ``rasterio.Env`` sets the option: no directory listing of the remote folder at
#: open (GDAL would list it to find sidecars), a read cache per handle, and retries, so a
#: transient error hours into a large scene does not lose the run.
REMOTE_DEFAULTS = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "VSI_CACHE": "TRUE",
    "GDAL_HTTP_MAX_RETRY": "3",
    "GDAL_HTTP_RETRY_DELAY": "1",
}

_CONNECTION_STRING = re.compile(r"^[A-Za-z][A-Za-z0-9_]+:")  # NETCDF:f.nc:var; not C:\
# a query runs from the first "?" after a URL's or /vsi name's start (its path may hold spaces,
# not a quote or a line end) to the next whitespace or quote: the rest of a message stays
_QUERY = re.compile(r"((?:://|/vsi[a-z0-9_]+)[^?'\"\r\n]*)\?[^\s'\"]+", re.IGNORECASE)
# userinfo runs to the LAST "@" before the host ends, so a password holding "@" goes whole
_USERINFO = re.compile(r"://[^/\s'\"]*@")


def dataset_name(source: str | os.PathLike[str]) -> str:
    """The GDAL name of a raster: a local path (``~`` expanded), or a URL as a virtual file
    system name (``https://`` -> ``/vsicurl/https://``, ``s3://b/k`` -> ``/vsis3/b/k``,
    ``gs://`` -> ``/vsigs/``, ``az://`` -> ``/vsiaz/``); ``/vsi...`` names, ``.vrt`` files and
    other GDAL names pass as they are."""
    if isinstance(source, os.PathLike):
        return str(Path(source).expanduser())
    text = str(source)
    scheme, sep, rest = text.partition("://")
    prefix = URL_SCHEMES.get(scheme.lower()) if sep else None
    if prefix == "/vsicurl/":
        return prefix + text
    if prefix is not None:
        return prefix + rest
    if sep and scheme.lower() == "file":
        return os.path.expanduser(rest)
    if is_local(text) or Path(text).expanduser().exists():
        return os.path.expanduser(text)
    return text


def dataset_names(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str]:
    """The GDAL names of an input: one raster, or the single-band rasters of a stack.

    Raises:
        InputError: an empty sequence, or an item that is not a path or URL.
    """
    items = [source] if isinstance(source, str | os.PathLike) else list(source)
    if not items:
        raise InputError("no input given; pass a raster, a URL or a list of single-band rasters")
    for item in items:
        if not isinstance(item, str | os.PathLike):
            raise InputError(
                f"inputs are paths or URLs of rasters, not {type(item).__name__}; pass a path, "
                "a URL or a list of them"
            )
    return [dataset_name(item) for item in items]


def is_local(name: str) -> bool:
    """Whether ``name`` is a plain file path (not a /vsi name, URL, GDAL connection string or
    inline VRT), which the file system can check."""
    if name.startswith("/vsi") or name.lstrip().startswith("<") or "://" in name:
        return False
    return not _CONNECTION_STRING.match(name) or Path(name).exists()


def redact(text: str) -> str:
    """``text`` with URL query strings and user information removed (signed URLs carry
    their tokens there), for messages and logs.

    ``text`` is a whole message: a URL or /vsi name in it may hold spaces in its path, its
    query ends at whitespace or a quote, and the words around it stay.
    """

    def drop_userinfo(match: re.Match[str]) -> str:
        # a "?" before the "@" starts a query holding an "@": keep the "?" so the query goes too
        return "://?" if "?" in match.group() else "://"

    return _QUERY.sub(r"\1?…", _USERINFO.sub(drop_userinfo, text))


def name_stem(name: str) -> str:
    """File name stem of a path, /vsi name or URL, without query string: ``scene`` for
    ``/vsicurl/https://host/a/scene.tif?sig=...``."""
    path = urlsplit(name).path if "://" in name and not name.startswith("/vsi") else name
    path = path.split("?", 1)[0]
    return PurePosixPath(path.replace("\\", "/")).stem or "raster"


@contextlib.contextmanager
def remote_env(names: Sequence[str]) -> Iterator[None]:
    """GDAL settings for remote reads (:data:`REMOTE_DEFAULTS`) while any of ``names`` is not
    a local file; the caller's own settings win. One place, around a whole run: rasterio
    applies them process-wide, to every thread that reads."""
    options = {}
    if any(not is_local(name) for name in names):
        options = {k: v for k, v in REMOTE_DEFAULTS.items() if get_gdal_config(k) is None}
    if not options:
        yield
        return
    with rasterio.Env(**options):
        yield


# --- band stacks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StackMember:
    """One single-band raster of a stack, as its header describes it."""

    name: str
    label: str
    width: int
    height: int
    dtype: str
    crs: CRS | None
    transform: Affine
    nodata: float | None
    block: tuple[int, int]
    unit: str | None
    scale: float
    offset: float
    mask: bool = False  # a per-dataset mask (internal or .msk sidecar) hides pixels


def check_same_grid(members: Sequence[StackMember]) -> None:
    """Raise a one-line InputError naming the first member whose grid differs from the first.

    Raises:
        InputError: a different CRS, transform, size, data type or nodata value.
    """
    first = members[0]
    for member in members[1:]:
        for what, a, b in (
            ("size", f"{first.width}x{first.height}", f"{member.width}x{member.height}"),
            ("CRS", first.crs, member.crs),
            ("transform", tuple(first.transform)[:6], tuple(member.transform)[:6]),
            ("data type", first.dtype, member.dtype),
            ("nodata", first.nodata, member.nodata),
        ):
            if a != b and not (what == "nodata" and _both_nan(a, b)):
                raise InputError(
                    f"{member.label} is not on the grid of {first.label}: its {what} is {b}, "
                    f"not {a}; stack only rasters on one grid (resample with gdalwarp first)"
                )


def _both_nan(a: object, b: object) -> bool:
    return isinstance(a, float) and isinstance(b, float) and a != a and b != b


def vrt_root(width: int, height: int, crs: CRS | None, transform: Affine) -> ET.Element:
    """The ``VRTDataset`` element of an in-memory VRT on a grid: size, SRS, geotransform."""
    root = ET.Element("VRTDataset", rasterXSize=str(width), rasterYSize=str(height))
    if crs is not None:
        ET.SubElement(root, "SRS").text = crs.to_wkt()
    ET.SubElement(root, "GeoTransform").text = ", ".join(repr(v) for v in transform.to_gdal())
    return root


def stack_vrt(members: Sequence[StackMember]) -> str:
    """An in-memory VRT (its XML, which GDAL opens as a dataset name) stacking the members in
    order, band *i* from member *i*, each band described by its member's file name stem.

    Members' per-dataset masks (internal or ``.msk``) become the VRT's own per-dataset mask,
    valid only where every masked member is valid, so the stack reads as a masked raster does.
    """
    first = members[0]
    root = vrt_root(first.width, first.height, first.crs, first.transform)
    gdal_type = typename_fwd[dtype_rev[first.dtype]]
    for index, member in enumerate(members, start=1):
        band = ET.SubElement(root, "VRTRasterBand", dataType=gdal_type, band=str(index))
        ET.SubElement(band, "Description").text = name_stem(member.label)
        if member.nodata is not None:
            ET.SubElement(band, "NoDataValue").text = repr(float(member.nodata))
        if member.unit:
            ET.SubElement(band, "UnitType").text = member.unit
        ET.SubElement(band, "Offset").text = repr(member.offset)
        ET.SubElement(band, "Scale").text = repr(member.scale)
        _simple_source(band, member, "1", gdal_type)
    masked = [member for member in members if member.mask]
    if masked:
        band = mask_band(root, len(masked))
        for member in masked:
            _simple_source(band, member, "mask,1", "Byte")
    return ET.tostring(root, encoding="unicode")


def mask_band(root: ET.Element, sources: int) -> ET.Element:
    """A VRT's per-dataset mask band, for ``sources`` masks to be added to it: valid only
    where every one is. The product of GDAL masks (0 masked, 1-255 valid), saturated to Byte,
    is 0 where any is 0: "mul" is a pixel function since GDAL 2.2 ("min" only since 3.8);
    it needs two sources or more, so one mask is taken as it is."""
    band = ET.SubElement(ET.SubElement(root, "MaskBand"), "VRTRasterBand", dataType="Byte")
    if sources > 1:
        band.set("subClass", "VRTDerivedRasterBand")
        ET.SubElement(band, "PixelFunctionType").text = "mul"
    return band


def _simple_source(band: ET.Element, member: StackMember, source_band: str, gdal_type: str) -> None:
    """Add band ``source_band`` of ``member`` (``1``, or ``mask,1`` for its mask) to ``band``,
    pixel for pixel."""
    source = ET.SubElement(band, "SimpleSource")
    ET.SubElement(source, "SourceFilename", relativeToVRT="0").text = member.name
    ET.SubElement(source, "SourceBand").text = source_band
    # the properties spare GDAL opening every member (a request each, when remote) at once
    ET.SubElement(
        source,
        "SourceProperties",
        RasterXSize=str(member.width),
        RasterYSize=str(member.height),
        DataType=gdal_type,
        BlockXSize=str(member.block[1]),
        BlockYSize=str(member.block[0]),
    )
    window = {"xOff": "0", "yOff": "0", "xSize": str(member.width), "ySize": str(member.height)}
    ET.SubElement(source, "SrcRect", window)
    ET.SubElement(source, "DstRect", window)
