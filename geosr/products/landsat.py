"""Landsat products: a folder with an MTL metadata file and its band files, Collection 2
(Level-1 and Level-2), Collection 1 and pre-collection (``L1_METADATA_FILE``) alike; or the
MTL file itself.

Band files are found by the names the MTL gives, else by their band suffix (``*_B4.TIF``:
folders renamed on download keep it). Radiometry comes from the MTL: Level-1 reflective
bands carry ``REFLECTANCE_MULT_BAND_n``/``REFLECTANCE_ADD_BAND_n`` (TOA reflectance),
Level-2 surface reflectance and temperature their own multipliers; each becomes the band's
scale and offset. The quality band is the cloud mask: ``QA_PIXEL`` (Collection 2, with
``QA_RADSAT`` for saturation) or ``BQA`` (Collection 1 and pre-collection bit layouts).
"""

from __future__ import annotations

import re
from pathlib import Path

from geosr.errors import InputError, InputNotFoundError
from geosr.products.bands import landsat_table
from geosr.products.headers import product_band, quality_band
from geosr.products.model import Product, QualityRule

#: Collection 2 QA_PIXEL: fill (bit 0), dilated cloud (1), cirrus (2), cloud (3), cloud
#: shadow (4); cloud confidence (bits 8-9) medium or high.
QA_PIXEL_CLOUDS = QualityRule(
    "QA_PIXEL fill, cloud, dilated cloud, cirrus, cloud shadow", bits=0b11111, fields=((8, 2, 2),)
)
#: Collection 2 QA_RADSAT: saturation of bands 1-11 (bits 0-10), terrain occlusion (11).
QA_RADSAT_SATURATED = QualityRule("QA_RADSAT saturated", bits=0x0FFF)
#: Collection 1 BQA: fill (0), cloud (4); saturation (2-3) any; cloud confidence (5-6)
#: medium or high; cloud shadow (7-8) and cirrus (11-12) confidence high.
BQA_C1_CLOUDS = QualityRule(
    "BQA fill, saturated, cloud, cloud shadow, cirrus",
    bits=0b10001,
    fields=((2, 2, 1), (5, 2, 2), (7, 2, 3), (11, 2, 3)),
)
#: Pre-collection BQA: designated fill (0), dropped frame (1); cloud confidence (14-15)
#: medium or high; cirrus confidence (12-13) high. It has no shadow or saturation bits.
BQA_PRE_CLOUDS = QualityRule(
    "BQA fill, dropped frame, cloud, cirrus", bits=0b11, fields=((14, 2, 2), (12, 2, 3))
)

_MTL = re.compile(r"^(?:.*_)?MTL\.txt$", re.IGNORECASE)
_LINE = re.compile(r'^\s*([A-Z0-9_]+)\s*=\s*"?(.*?)"?\s*$')


def find_mtl(path: Path) -> Path | None:
    """The MTL file of a Landsat product folder, or ``path`` itself if it is one."""
    if path.is_file():
        return path if _MTL.match(path.name) else None
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.is_file() and _MTL.match(p.name))
        return found[0] if found else None
    return None


def parse_mtl(path: Path) -> dict[str, dict[str, str]]:
    """An MTL file as {group: {key: value}} (innermost group; top-level keys under "").

    Raises:
        InputError: not an MTL file (no GROUP structure) or unreadable.
    """
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read {path} ({exc.strerror}); check the file") from None
    groups: dict[str, dict[str, str]] = {"": {}}
    stack = [""]
    for line in lines:
        match = _LINE.match(line)
        if not match:
            continue
        key, value = match.groups()
        if key == "GROUP":
            stack.append(value)
            groups.setdefault(value, {})
        elif key == "END_GROUP":
            if len(stack) > 1:
                stack.pop()
        else:
            groups[stack[-1]][key] = value
    if len(groups) < 3 or not any("FILE_NAME_BAND_" in k for g in groups.values() for k in g):
        raise InputError(
            f"{path} is not a Landsat MTL metadata file (no band file names in it); pass the "
            "product folder with its original *_MTL.txt"
        )
    return groups


def read_landsat(path: Path) -> Product:
    """The Landsat product in folder ``path`` (or of MTL file ``path``).

    Raises:
        InputError: the MTL is unreadable, or a band file it names is missing.
    """
    mtl = find_mtl(path)
    if mtl is None:
        raise InputError(f"{path} holds no Landsat *_MTL.txt metadata file")
    folder = mtl.parent
    groups = parse_mtl(mtl)
    flat = {k: v for group in groups.values() for k, v in group.items()}
    collection2 = "LANDSAT_METADATA_FILE" in groups
    level2 = (
        any(k.startswith("FILE_NAME_BAND_ST_") for k in flat)
        or "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS" in groups
    )
    spacecraft = flat.get("SPACECRAFT_ID", "LANDSAT_8")
    table = landsat_table(spacecraft)
    files = _band_files(flat)
    # a Level-2 MTL also keeps the Level-1 rescaling: the surface parameters win
    rescaling = {
        **flat,
        **groups.get("LEVEL2_SURFACE_REFLECTANCE_PARAMETERS", {}),
        **groups.get("LEVEL2_SURFACE_TEMPERATURE_PARAMETERS", {}),
    }
    bands = []
    for name, spec in table.items():
        if name not in files:
            continue
        file = _resolve(folder, files[name], name, mtl)
        scale, offset, quantity, unit = _radiometry(rescaling, name, level2)
        bands.append(
            product_band(
                name,
                str(file),
                str(file),
                spec,
                nodata=0.0,
                scale=scale,
                offset=offset,
                quantity=quantity,
                unit=unit,
            )
        )
    if not bands:
        raise InputError(f"{mtl} names no band files this reader knows; check the product")
    quality = _quality(folder, flat, collection2, mtl)
    product_id = flat.get("LANDSAT_PRODUCT_ID") or flat.get("LANDSAT_SCENE_ID") or folder.name
    date, time = flat.get("DATE_ACQUIRED"), flat.get("SCENE_CENTER_TIME", "")
    when = f"{date}T{time[:15].rstrip('Z')}Z" if date and time else date
    if collection2:
        kind = f"Landsat Collection 2 Level-{2 if level2 else 1}"
    elif flat.get("COLLECTION_NUMBER"):
        kind = "Landsat Collection 1 Level-1"
    else:
        kind = "Landsat pre-collection Level-1"
    tags = {
        "PRODUCT_ID": product_id,
        "PRODUCT_TYPE": flat.get("DATA_TYPE") or flat.get("PROCESSING_LEVEL", ""),
        "SPACECRAFT": spacecraft,
        "DATETIME": when or "",
        "CLOUD_COVER": flat.get("CLOUD_COVER", ""),
    }
    return Product(
        kind=kind,
        label=str(path),
        stem=product_id,
        bands=tuple(bands),
        default_bands=tuple(b.name for b in bands if table[b.name].kind == "reflective"),
        quality=quality,
        folder=folder.parent,
        tags={k: v for k, v in tags.items() if v},
        item_id=product_id,
        datetime=when,
        platform=spacecraft.lower().replace("_", "-"),
    )


def _band_files(flat: dict[str, str]) -> dict[str, str]:
    """Band name (B1 ... B11, B6_VCID_1) -> file name, from FILE_NAME_BAND_* keys."""
    files = {}
    for key, value in flat.items():
        match = re.fullmatch(r"FILE_NAME_BAND_(?:ST_)?(B?\d+(?:_VCID_\d)?)", key)
        if match:
            name = match.group(1)
            files[name if name.startswith("B") else f"B{name}"] = value
    return files


def _resolve(folder: Path, file_name: str, band: str, mtl: Path) -> Path:
    """The band file in ``folder``: the MTL's name, case-insensitively, else the one file
    ending in ``_<band>.TIF``."""
    exact = folder / file_name
    if exact.exists():
        return exact
    suffix = re.compile(rf"(?:^|_){re.escape(band)}\.tiff?$", re.IGNORECASE)
    candidates = [
        p for p in folder.iterdir() if p.name.lower() == file_name.lower() or suffix.search(p.name)
    ]
    if len(candidates) == 1:
        return candidates[0]
    raise InputNotFoundError(
        f"{folder} lacks {file_name} (band {band}), which {mtl.name} names; "
        "re-download the product or keep its band files beside the MTL"
    )


def _radiometry(
    flat: dict[str, str], name: str, level2: bool
) -> tuple[float, float, str | None, str | None]:
    """(scale, offset, quantity, unit) of a band from the MTL's rescaling keys."""
    number = name[1:]
    candidates = [
        (
            "REFLECTANCE_MULT_BAND_",
            "REFLECTANCE_ADD_BAND_",
            "surface reflectance" if level2 else "TOA reflectance",
            None,
        ),
        ("TEMPERATURE_MULT_BAND_ST_B", "TEMPERATURE_ADD_BAND_ST_B", "surface temperature", "K"),
        ("RADIANCE_MULT_BAND_", "RADIANCE_ADD_BAND_", "TOA radiance", "W/(m2 sr um)"),
    ]
    for mult_key, add_key, quantity, unit in candidates:
        mult, add = flat.get(mult_key + number), flat.get(add_key + number)
        if mult is not None and add is not None:
            try:
                return float(mult), float(add), quantity, unit
            except ValueError:
                raise InputError(
                    f"{mult_key}{number} = {mult!r} in the MTL is not a number; re-download the product"
                ) from None
    return 1.0, 0.0, None, None


def _quality(folder: Path, flat: dict[str, str], collection2: bool, mtl: Path) -> tuple:
    if collection2:
        named = [
            (
                "QA_PIXEL",
                flat.get("FILE_NAME_QUALITY_L1_PIXEL") or flat.get("FILE_NAME_QUALITY_L2_PIXEL"),
                QA_PIXEL_CLOUDS,
            ),
            (
                "QA_RADSAT",
                flat.get("FILE_NAME_QUALITY_L1_RADIOMETRIC_SATURATION")
                or flat.get("FILE_NAME_QUALITY_L2_RADIOMETRIC_SATURATION"),
                QA_RADSAT_SATURATED,
            ),
        ]
    else:
        rule = BQA_C1_CLOUDS if flat.get("COLLECTION_NUMBER") else BQA_PRE_CLOUDS
        named = [("BQA", flat.get("FILE_NAME_BAND_QUALITY"), rule)]
    out = []
    for name, file_name, rule in named:
        if file_name:
            file = _resolve(folder, file_name, name, mtl)
            out.append(quality_band(name, str(file), str(file), rule))
    return tuple(out)
