"""Which bands an evaluation figure draws as red, green and blue.

One rule for every figure (``geosr evaluate``, ``--temporal``, ``--guided``), each band read
on its own, first match wins:

1. **band names**: a ``COMMON_NAME`` band tag (STAC ``eo:common_name``: ``red``, ``green``,
   ``blue``; any other, ``nir`` say, makes the band no colour); a colour word in the band's
   description or ``BAND_NAME`` tag (``"B4 red"``, ``"Blue"``; not ``"red edge"``); a
   Sentinel-2 band name (``B02``, ``B03``, ``B04``); a Landsat band name (``B2``, ``B3``,
   ``B4`` of Landsat 8/9; ``B1``, ``B2``, ``B3`` of Landsat 4-7) where a Landsat scene name
   (``LC08_...``, ``LE07_...``, ``l8_...``, ``L7_...``) in the description or the file name
   says which Landsat: a bare ``B3`` is green on one and red on the other, so it alone picks
   nothing;
2. **wavelengths**: a centre wavelength (a ``CENTRAL_WAVELENGTH_UM`` or ``WAVELENGTH`` band
   tag, or one given, e.g. a product's) in 0.45-0.52 um (blue), 0.52-0.60 um (green) or
   0.62-0.70 um (red), for a band at most 0.15 um wide (a panchromatic band is no colour).

The first band of each colour is drawn in it. Where those give no red, green and blue band,
the **colour interpretation** (GDAL's, e.g. a GeoTIFF with ``PHOTOMETRIC=RGB``) does; names
come first since GDAL marks any 3-band byte GeoTIFF RGB, a B02-B03-B04 stack too. Otherwise
bands 1-2-3 are drawn as RGB (band 1 in grey for fewer than 3 bands), and the figure says so
(:attr:`DisplayBands.caption`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rasterio.enums import ColorInterp

from geosr.products.bands import band_name_in, sensor_table

if TYPE_CHECKING:
    from geosr.raster import RasterInfo

#: the colours in display order
RGB = ("red", "green", "blue")
#: centre wavelength windows of the visible colours, micrometres: [low, high)
WAVELENGTHS = {"blue": (0.45, 0.52), "green": (0.52, 0.60), "red": (0.62, 0.70)}
#: widest band (full width at half maximum, um) still taken for a colour
MAX_WIDTH = 0.15
#: where no band names/wavelengths or colour interpretation are there at all
NO_METADATA = "no band names/colour interpretation"
#: what tells Landsat 8/9's band numbers from Landsat 4-7's
LANDSAT_HINT = "LC08_..., LE07_... in the file or band name"

_COLOURS = {"red": ColorInterp.red, "green": ColorInterp.green, "blue": ColorInterp.blue}
_COLOUR_WORD = re.compile(r"(?<![a-z])(red|green|blue)(?![a-z])(?![\s_\-]*edge)", re.IGNORECASE)
_BAND_TOKEN = re.compile(r"(?<![a-z0-9])(b(?:8a|\d{1,2}))(?![a-z0-9])", re.IGNORECASE)


@dataclass(frozen=True)
class DisplayBands:
    """The bands a figure draws: ``indices`` (0-based, into the bands it is given) of red,
    green and blue, or of one band drawn in grey; ``source``: what they were chosen by
    (``"band names"``, ``"wavelengths"``, ``"colour interpretation"``), None on a fallback,
    then with ``reason``; ``numbers`` and ``names``: the bands' numbers (1-based, in the file)
    and names, for captions."""

    indices: tuple[int, ...]
    source: str | None = None
    reason: str | None = None
    numbers: tuple[int, ...] = ()
    names: tuple[str | None, ...] = ()

    @property
    def fallback(self) -> bool:
        return self.source is None

    @property
    def caption(self) -> str:
        """What a figure says about its colours, e.g. ``"RGB: bands 3-2-1 (B04, B03, B02;
        by band names)"`` or ``"bands 1-2-3 shown as RGB: no band names/colour
        interpretation"``."""
        numbers = "-".join(str(n) for n in self.numbers or (i + 1 for i in self.indices))
        named = [n for n in self.names if n]
        names = ", ".join(named) if named and len(named) == len(self.names) else ""
        if not self.fallback:
            return f"RGB: bands {numbers} ({names + '; ' if names else ''}by {self.source})"
        which = f"bands {numbers}" if len(self.indices) == 3 else f"band {numbers}"
        which += f" ({names})" if names else ""
        shown = f"{which} shown as RGB" if len(self.indices) == 3 else f"{which} shown in grey"
        return f"{shown}: {self.reason}" if self.reason else shown


def display_bands(
    names: Sequence[str | None] = (),
    *,
    count: int | None = None,
    band_tags: Sequence[Mapping[str, str]] = (),
    wavelengths: Sequence[float | None] = (),
    colorinterp: Sequence[ColorInterp] = (),
    stem: str = "",
    numbers: Sequence[int] | None = None,
) -> DisplayBands:
    """The bands to draw as red, green and blue (see the module docstring for the rules).

    Args:
        names: each band's description or name (None where it has none).
        count: the number of bands; default the longest of the sequences given.
        band_tags: each band's tags (``COMMON_NAME``, ``BAND_NAME``,
            ``CENTRAL_WAVELENGTH_UM``...).
        wavelengths: each band's centre wavelength in micrometres, where known.
        colorinterp: each band's colour interpretation.
        stem: the file name (without suffix), which may say which Landsat the names are of.
        numbers: each band's number in its file (1-based), for the caption; default 1, 2...
    """
    count = count or max(len(names), len(band_tags), len(wavelengths), len(colorinterp), 1)
    numbers = tuple(numbers) if numbers is not None else tuple(range(1, count + 1))
    found: dict[str, tuple[int, str]] = {}
    known = False
    for index in range(count):
        tags = _upper(band_tags[index] if index < len(band_tags) else {})
        name = names[index] if index < len(names) else None
        wavelength = wavelengths[index] if index < len(wavelengths) else None
        known = known or bool(name or wavelength is not None or _described(tags))
        colour, source = _band_colour(name, tags, wavelength, stem)
        if colour is not None and colour not in found:
            found[colour] = (index, source)
    shown = [_label(names, index) for index in range(count)]
    if all(colour in found for colour in RGB):
        indices = tuple(found[colour][0] for colour in RGB)
        sources = ", ".join(dict.fromkeys(found[colour][1] for colour in RGB))
        return _choice(indices, sources, None, numbers, shown)
    interp = list(colorinterp)
    if all(_COLOURS[colour] in interp for colour in RGB):
        indices = tuple(interp.index(_COLOURS[colour]) for colour in RGB)
        return _choice(indices, "colour interpretation", None, numbers, shown)
    if count < 3:
        reason = "a single band" if count == 1 else "fewer than 3 bands"
        return _choice((0,), None, reason, numbers, shown)
    return _choice((0, 1, 2), None, _reason(names, found, known, stem), numbers, shown)


def _reason(names: Sequence[str | None], found: Mapping[str, Any], known: bool, stem: str) -> str:
    """Why bands 1-2-3 are drawn: nothing tells the colours, Landsat band numbers nothing
    places, or the colours missing."""
    if not known:
        return NO_METADATA
    if any(_bare_landsat(name, stem) for name in names if name):
        return f"Landsat band names without a Landsat scene name to say which ({LANDSAT_HINT})"
    missing = [colour for colour in RGB if colour not in found]
    which = ", ".join(missing[:-1]) + " or " + missing[-1] if len(missing) > 1 else missing[0]
    return f"no {which} band in the band names, wavelengths or colour interpretation"


def info_display_bands(info: RasterInfo) -> DisplayBands:
    """:func:`display_bands` of the bands selected from a raster (:func:`geosr.raster.open_info`,
    :func:`geosr.products.product_info`), indices into the selected bands."""
    selected = list(info.selected)
    return display_bands(
        [_pick(info.descriptions, b) for b in selected],
        count=len(selected),
        band_tags=[_pick(info.band_tags, b) or {} for b in selected],
        colorinterp=[_pick(info.colorinterp, b) or ColorInterp.undefined for b in selected],
        stem=info.stem,
        numbers=selected,
    )


def dataset_display_bands(dataset: Any, stem: str | None = None) -> DisplayBands:
    """:func:`display_bands` of an open rasterio dataset's bands; ``stem`` defaults to its file
    name's."""
    return display_bands(
        list(dataset.descriptions),
        count=dataset.count,
        band_tags=[dataset.tags(band) for band in range(1, dataset.count + 1)],
        colorinterp=list(dataset.colorinterp),
        stem=Path(str(dataset.name)).stem if stem is None else stem,
    )


def _band_colour(
    name: str | None, tags: dict[str, str], wavelength: float | None, stem: str
) -> tuple[str | None, str]:
    """One band's colour (or None) and what told it."""
    common = tags.get("COMMON_NAME") or tags.get("EO:COMMON_NAME")
    if common:
        return (common.strip().lower() if common.strip().lower() in RGB else None), "band names"
    for text in (name, tags.get("BAND_NAME")):
        colour = _name_colour(text, stem) if text else None
        if colour is not None:
            return colour, "band names"
    centre = wavelength if wavelength is not None else _tag_wavelength(tags)
    width = _number(tags.get("FWHM_UM"))
    if centre is not None and (width is None or width <= MAX_WIDTH):
        for colour, (low, high) in WAVELENGTHS.items():
            if low <= centre < high:
                return colour, "wavelengths"
    return None, ""


def _name_colour(text: str, stem: str) -> str | None:
    """The colour a band's name says: a colour word, or a Sentinel-2/Landsat band name."""
    word = _COLOUR_WORD.search(text)
    if word:
        return word.group(1).lower()
    token = _band_token(text)
    if token is None:
        return None
    table = sensor_table(text, token) or sensor_table(stem, token)
    spec = table.get(token) if table else None
    if spec is None or spec.common_name not in RGB:
        return None
    return spec.common_name


def _bare_landsat(text: str, stem: str) -> bool:
    """Whether a band name is a Landsat band number (``B3``) no scene name places."""
    token = _band_token(text)
    if token is None or len(token) > 3 or not token[1:].isdigit():
        return False
    return (sensor_table(text, token) or sensor_table(stem, token)) is None


def _band_token(text: str) -> str | None:
    """The band name in a band's name, upper-case: ``B04`` in ``T32TMT_..._B04_10m``, ``B4``
    in ``SR_B4`` or ``"B4 red"``."""
    token = band_name_in(text) or next(iter(_BAND_TOKEN.findall(text)), None)
    return token.upper() if token else None


def _tag_wavelength(tags: dict[str, str]) -> float | None:
    """A centre wavelength in micrometres from band tags (nanometres converted)."""
    value = _number(tags.get("CENTRAL_WAVELENGTH_UM"))
    if value is not None:
        return value
    value = _number(tags.get("WAVELENGTH"))
    if value is None:
        return None
    units = tags.get("WAVELENGTH_UNITS", "").lower()
    return value / 1000 if units.startswith("nan") or value > 100 else value


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def _upper(tags: Mapping[str, str]) -> dict[str, str]:
    return {str(key).upper(): value for key, value in tags.items()}


def _described(tags: dict[str, str]) -> bool:
    keys = ("COMMON_NAME", "EO:COMMON_NAME", "BAND_NAME", "CENTRAL_WAVELENGTH_UM", "WAVELENGTH")
    return any(tags.get(key) for key in keys)


def _pick(values: Sequence[Any], band: int) -> Any:
    return values[band - 1] if 0 < band <= len(values) else None


def _label(names: Sequence[str | None], index: int) -> str | None:
    """A band's name as a caption gives it: whole when short, else its band name."""
    name = names[index] if index < len(names) else None
    return name if not name or len(name) <= 16 else _band_token(name)


def _choice(
    indices: tuple[int, ...],
    source: str | None,
    reason: str | None,
    numbers: tuple[int, ...],
    names: list[str | None],
) -> DisplayBands:
    return DisplayBands(
        indices,
        source,
        reason,
        tuple(numbers[i] for i in indices if i < len(numbers)),
        tuple(names[i] for i in indices if i < len(names)),
    )
