"""Sentinel-2 SAFE products, L1C and L2A: a ``.SAFE`` folder, its ``.zip``, or its
``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml``.

The product metadata file names every band file; each band is read on its native grid
(10, 20 or 60 m: the finest an L2A product holds of it). Radiometry: DN = reflectance x
``QUANTIFICATION_VALUE`` - offset, where processing baseline 04.00 and later (January 2022
on) add ``RADIO_ADD_OFFSET`` (L1C) or ``BOA_ADD_OFFSET`` (L2A), -1000 DN. geosr keeps the
DNs as they are and records ``scale = 1 / QUANTIFICATION_VALUE`` and ``offset = ADD_OFFSET
/ QUANTIFICATION_VALUE`` on each band (reflectance = DN x scale + offset, GDAL's and STAC's
convention), so the output keeps the input's dtype and any reader gets reflectance back.
L2A's scene classification (``SCL``, 20 m) is the cloud mask.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path, PurePosixPath

from geosr.errors import InputError
from geosr.products.bands import SENTINEL2
from geosr.products.headers import product_band, quality_band
from geosr.products.model import Product, QualityRule

#: SCL classes masked by ``mask="clouds"``: no data (0), saturated or defective (1), cloud
#: shadow (3), cloud medium (8) and high probability (9), thin cirrus (10).
SCL_CLOUDS = QualityRule(
    "SCL no data, saturated, cloud shadow, cloud, thin cirrus", classes=(0, 1, 3, 8, 9, 10)
)

_METADATA = re.compile(r"^MTD_MSIL(1C|2A)\.xml$", re.IGNORECASE)
_FILE_BAND = re.compile(r"_(B\d{2}|B8A|SCL|TCI|AOT|WVP)(?:_(\d{2})m)?$", re.IGNORECASE)


def find_metadata(path: Path) -> tuple[str, str] | None:
    """The product metadata of a SAFE product as (GDAL name of its folder, metadata file
    name), or None if ``path`` is no Sentinel-2 product."""
    if path.is_file() and _METADATA.match(path.name):
        return str(path.parent), path.name
    if path.is_dir():
        for child in sorted(path.iterdir()):
            if _METADATA.match(child.name):
                return str(path), child.name
        return None
    if path.suffix.lower() == ".zip" and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                parts = PurePosixPath(member).parts
                if len(parts) <= 2 and _METADATA.match(parts[-1]):
                    folder = "/".join(parts[:-1])
                    return f"/vsizip/{path.resolve()}" + (f"/{folder}" if folder else ""), parts[-1]
    return None


def read_safe(path: Path) -> Product:
    """The product at ``path``: a SAFE folder, its ``.zip`` or its metadata file.

    Raises:
        InputError: the metadata is unreadable or names no band files; a band file is missing.
    """
    found = find_metadata(path)
    if found is None:
        raise InputError(
            f"{path} is not a Sentinel-2 SAFE product (no MTD_MSIL1C.xml or MTD_MSIL2A.xml)"
        )
    root_name, metadata_name = found
    root = _parse(path, root_name, metadata_name)
    level = "L2A" if "2A" in metadata_name.upper() else "L1C"
    quantification = _number(
        root, "BOA_QUANTIFICATION_VALUE" if level == "L2A" else "QUANTIFICATION_VALUE", 10000.0
    )
    offsets = _offsets(root, "BOA_ADD_OFFSET" if level == "L2A" else "RADIO_ADD_OFFSET")
    wavelengths = _wavelengths(root)
    nodata = _special_value(root, "NODATA", 0.0)
    files = _native_files(root)
    if not any(name in SENTINEL2 for name in files):
        raise InputError(
            f"{path} names no band files in {metadata_name}; the product metadata is incomplete"
        )
    bands = []
    missing = {}
    for name, spec in SENTINEL2.items():
        if name not in files:
            continue
        located = _member(root_name, files[name], path)
        if located is None:
            missing[name] = files[name]
            continue
        file, label = located
        offset = offsets.get(name, 0.0)
        bands.append(
            product_band(
                name,
                file,
                label,
                spec,
                nodata=nodata,
                scale=1.0 / quantification,
                offset=offset / quantification,
                quantity="TOA reflectance" if level == "L1C" else "surface reflectance",
                wavelength=wavelengths.get(name, spec.wavelength),
            )
        )
    quality = ()
    located = _member(root_name, files["SCL"], path) if "SCL" in files else None
    if located is not None:
        quality = (quality_band("SCL", *located, SCL_CLOUDS),)
    product_uri = _text(root, "PRODUCT_URI") or path.name
    stem = re.sub(r"\.(SAFE|zip)$", "", product_uri, flags=re.IGNORECASE)
    started = _text(root, "PRODUCT_START_TIME")
    tags = {
        "PRODUCT_ID": stem,
        "PRODUCT_TYPE": _text(root, "PRODUCT_TYPE") or f"S2MSI{level[1:]}",
        "PROCESSING_BASELINE": _text(root, "PROCESSING_BASELINE") or "",
        "SPACECRAFT": _text(root, "SPACECRAFT_NAME") or "",
        "DATETIME": started or "",
        "CLOUD_COVER": _text(root, "Cloud_Coverage_Assessment") or "",
    }
    return Product(
        kind=f"Sentinel-2 {level}",
        label=str(path),
        stem=stem,
        bands=tuple(bands),
        default_bands=tuple(b.name for b in bands),
        quality=quality,
        missing=missing,
        folder=(
            path.parent if path.is_dir() or path.suffix.lower() == ".zip" else path.parent.parent
        ),
        tags={k: v for k, v in tags.items() if v},
        item_id=stem,
        datetime=started,
        platform=(_text(root, "SPACECRAFT_NAME") or "").lower() or None,
    )


def _parse(path: Path, root_name: str, metadata_name: str) -> ET.Element:
    try:
        if root_name.startswith("/vsizip/"):
            inner = root_name.removeprefix(f"/vsizip/{path.resolve()}").strip("/")
            with zipfile.ZipFile(path) as archive:
                text = archive.read(f"{inner}/{metadata_name}" if inner else metadata_name)
        else:
            text = (Path(root_name) / metadata_name).read_bytes()
        return ET.fromstring(text)
    except (ET.ParseError, KeyError, OSError, zipfile.BadZipFile) as exc:
        raise InputError(
            f"{metadata_name} of {path} is not readable product metadata ({exc}); re-download the product"
        ) from None


def _native_files(root: ET.Element) -> dict[str, str]:
    """Band name -> relative path (with extension) of its finest file."""
    best: dict[str, tuple[int, str]] = {}
    for element in root.iter("IMAGE_FILE"):
        relative = (element.text or "").strip()
        match = _FILE_BAND.search(relative)
        if not match:
            continue
        name = match.group(1).upper()
        resolution = int(match.group(2) or 0)
        if name not in best or resolution < best[name][0]:
            best[name] = (resolution, relative)
    return {name: relative + ".jp2" for name, (_, relative) in best.items()}


def _member(root_name: str, relative: str, product: Path) -> tuple[str, str] | None:
    """GDAL name and label of a file of the product; None if it is missing."""
    if root_name.startswith("/vsizip/"):
        with zipfile.ZipFile(product) as archive:
            inner = root_name.removeprefix(f"/vsizip/{product.resolve()}").strip("/")
            member = f"{inner}/{relative}" if inner else relative
            if member not in set(archive.namelist()):
                return None
        return f"{root_name}/{relative}", f"{product}:{relative}"
    file = Path(root_name) / relative
    return (str(file), str(file)) if file.exists() else None


def _text(root: ET.Element, tag: str) -> str | None:
    element = next(root.iter(tag), None)
    return element.text.strip() if element is not None and element.text else None


def _number(root: ET.Element, tag: str, default: float) -> float:
    text = _text(root, tag)
    try:
        return float(text) if text else default
    except ValueError:
        raise InputError(
            f"{tag} in the product metadata is {text!r}, not a number; re-download the product"
        ) from None


def _band_names(root: ET.Element) -> dict[str, str]:
    """bandId -> band name (B01 ... B8A) from Spectral_Information."""
    names = {}
    for info in root.iter("Spectral_Information"):
        physical = info.get("physicalBand", "")
        names[info.get("bandId", "")] = _two_digits(physical)
    return names or {str(i): name for i, name in enumerate(SENTINEL2)}


def _two_digits(name: str) -> str:
    match = re.fullmatch(r"B(\d)", name.upper())
    return f"B0{match.group(1)}" if match else name.upper()


def _offsets(root: ET.Element, tag: str) -> dict[str, float]:
    names = _band_names(root)
    offsets = {}
    for element in root.iter(tag):
        name = names.get(element.get("band_id", ""))
        if name:
            offsets[name] = float((element.text or "0").strip())
    return offsets


def _wavelengths(root: ET.Element) -> dict[str, float]:
    """Band name -> centre wavelength in µm, as the product's metadata gives it."""
    out = {}
    for info in root.iter("Spectral_Information"):
        central = next(info.iter("CENTRAL"), None)
        if central is not None and central.text:
            out[_two_digits(info.get("physicalBand", ""))] = round(float(central.text) / 1000, 4)
    return out


def _special_value(root: ET.Element, text: str, default: float) -> float:
    for special in root.iter("Special_Values"):
        if (_text(special, "SPECIAL_VALUE_TEXT") or "").upper() == text:
            return float(_text(special, "SPECIAL_VALUE_INDEX") or default)
    return default
