"""The input contract: the training domain a model card records, and a scene checked against it.

A model only knows the rasters it was trained on. Its card (``geosr info``) records their
domain as a :class:`TrainingDomain` (:mod:`geosr.training_domain`, importable from here
too): sensors, ground sample distance in metres, what the values are (DN, or TOA/BOA
reflectance with the scale from stored value to reflectance), dtypes, band names and value
percentiles. Before any work, :func:`geosr.upscale` describes the scene
(:class:`SceneDescription`, from the decimated sample its statistics read anyway) and
:func:`check_domain` names what lies outside that domain; :func:`enforce` turns the findings
into one :class:`~geosr.errors.DomainWarning` per call, or, with ``strict=True``, a
:class:`~geosr.errors.DomainError` before anything is written.

The rules, loose on purpose so that warnings stay rare on scenes like the training ones:

- **pixel size**: outside ``[smallest / 2, largest * 2]`` of the training scenes' pixel sizes
  (:data:`GSD_TOLERANCE`): a network learns texture at the scales it saw. Geographic pixels
  are converted to metres at the scene's centre; a scene without a geotransform is not judged.
- **dtype**: one no training scene had.
- **reflectance against DN**: a float scene whose values (p99) stay at or below
  :data:`UNIT_RANGE_MAX` looks like reflectance in 0-1; a model that only saw larger values
  (DN, or reflectance stored as scaled integers) warns, and the other way round. What is
  compared is the stored values, which the network sees: Sentinel-2 or Landsat reflectance
  stored as scaled integers (0-10000) is as close to DN as the training scenes are.
- **value range**: a scene p99 above :data:`VALUE_TOLERANCE` times the highest training p99, or
  below the lowest training p99 divided by it.
- **band names**: only for a multiband model (one network per band set): named bands that
  differ from the training bands. A band-shared model takes any band, so names are not judged,
  nor are sensors (recorded for the reader).

Percentiles are pooled per scene over its bands (p1: the lowest band's, p50: the median band's,
p99: the highest band's), nodata and non-finite values left out; the domain keeps each one's
range over the training scenes.
"""

from __future__ import annotations

import logging
import math
import os
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from geosr.errors import DomainError, DomainWarning
from geosr.training_domain import TrainingDomain, _num, _range

if TYPE_CHECKING:
    import xarray as xr
    from affine import Affine
    from rasterio.crs import CRS

    from geosr.model_card import ModelMeta
    from geosr.raster_info import RasterInfo

log = logging.getLogger(__name__)

#: A scene pixel this many times smaller than the smallest training pixel, or larger than the
#: largest, is outside the domain.
GSD_TOLERANCE = 2.0
#: A scene p99 this many times above the highest training p99, or below the lowest, is outside.
VALUE_TOLERANCE = 4.0
#: Float values whose p99 is at most this look like reflectance (0-1, up to 2 for bright snow
#: or specular glint).
UNIT_RANGE_MAX = 2.0
#: Pixels per band read for a training scene's percentiles (bounded memory).
DOMAIN_SAMPLE_PIXELS = 250_000
#: Pixels per band of an in-memory or lazy array sampled for a scene's description.
SCENE_SAMPLE_PIXELS = 250_000
PERCENTILES = (1.0, 50.0, 99.0)
_METRES_PER_DEGREE = 111_320.0

# file-name patterns of the sensors geosr's data comes from (a scene's SPACECRAFT tag wins)
_SENSOR_PATTERNS = (
    (re.compile(r"^m_\d{7}_"), "NAIP (aerial)"),
    (re.compile(r"^(LC09|LC9)", re.I), "Landsat 9 OLI-2"),
    (re.compile(r"^(LC08|LC8|l8_)", re.I), "Landsat 8 OLI"),
    (re.compile(r"^(LE07|LE7|L7_)", re.I), "Landsat 7 ETM+"),
    (re.compile(r"^(LT05|LT5)", re.I), "Landsat 5 TM"),
    (re.compile(r"^(S2[ABC]_|T\d{2}[A-Z]{3}_)"), "Sentinel-2 MSI"),
)


@dataclass(frozen=True)
class SceneDescription:
    """What :func:`check_domain` compares with a training domain."""

    label: str
    gsd_m: float | None
    dtype: str
    band_names: tuple[str | None, ...] = ()
    p1: float | None = None
    p50: float | None = None
    p99: float | None = None
    values: str = "DN"
    value_scale: float = 1.0
    crs_units: str | None = None
    sensor: str | None = None


# --- describing rasters ---------------------------------------------------------------------


def pixel_size_m(crs: CRS | None, transform: Affine, width: int, height: int) -> float | None:
    """The geometric mean of a pixel's sides in metres; None without a CRS or geotransform."""
    if crs is None or transform is None or transform.is_identity:
        return None
    px = math.hypot(transform.a, transform.d)
    py = math.hypot(transform.b, transform.e)
    if crs.is_geographic:
        _, lat = transform * (width / 2, height / 2)
        lat = max(-89.0, min(89.0, float(lat)))
        mx = px * _METRES_PER_DEGREE * math.cos(math.radians(lat))
        my = py * _METRES_PER_DEGREE
    else:
        try:
            factor = float(crs.linear_units_factor[1])
        except Exception:  # a CRS without linear units (rare engineering CRSs)
            factor = 1.0
        mx, my = px * factor, py * factor
    size = math.sqrt(mx * my)
    return size if size > 0 and math.isfinite(size) else None


def crs_units(crs: CRS | None) -> str | None:
    if crs is None:
        return None
    if crs.is_geographic:
        return "degree"
    try:
        return str(crs.linear_units_factor[0])
    except Exception:
        return None


def pooled_percentiles(
    sample: np.ndarray, nodata: float | None = None
) -> tuple[float, float, float] | None:
    """p1 of the lowest band, median of the bands' p50, p99 of the highest band of a
    (bands, ...) sample, nodata and non-finite values left out; None when nothing is valid."""
    lows, mids, highs = [], [], []
    for band in sample:
        values = np.asarray(band).reshape(-1)
        keep = np.isfinite(values) if values.dtype.kind == "f" else np.ones(values.shape, bool)
        if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
            keep &= values != nodata
        values = values[keep]
        if values.size == 0:
            continue
        low, mid, high = np.percentile(values.astype(np.float64), PERCENTILES)
        lows.append(low)
        mids.append(mid)
        highs.append(high)
    if not lows:
        return None
    return float(min(lows)), float(np.median(mids)), float(max(highs))


def value_kind(
    dtype: str,
    p99: float | None,
    scales: Sequence[float] = (),
    quantities: Sequence[str | None] = (),
) -> tuple[str, float]:
    """What stored values are: ``("TOA reflectance" | "BOA reflectance", scale)`` when the
    metadata says so (a product's bands) or floats stay within 0-:data:`UNIT_RANGE_MAX`,
    else ``("DN", 1.0)``."""
    said = " ".join(q.lower() for q in quantities if q)
    if "surface reflectance" in said or "boa" in said:
        word = "BOA reflectance"
    elif "reflectance" in said:
        word = "TOA reflectance"
    else:
        word = None
    if np.dtype(dtype).kind == "f" and p99 is not None and p99 <= UNIT_RANGE_MAX:
        return word or "reflectance", 1.0
    if word is not None:
        scale = float(scales[0]) if scales and len(set(scales)) == 1 else 1.0
        return word, scale
    return "DN", 1.0


def sensor_of(name: str, tags: Mapping[str, str] | None = None) -> str | None:
    """The sensor a scene comes from, by its SPACECRAFT tag or its file name; None if unknown."""
    spacecraft = (tags or {}).get("SPACECRAFT") or ""
    if spacecraft.lower().startswith("sentinel-2"):
        return "Sentinel-2 MSI"
    if spacecraft.lower().startswith("landsat"):
        return spacecraft.replace("_", " ").title()
    base = Path(str(name)).name
    for pattern, sensor in _SENSOR_PATTERNS:
        if pattern.search(base):
            return sensor
    return None


def describe_raster(info: RasterInfo, sample: np.ndarray | None) -> SceneDescription:
    """A file or product opened by geosr (:class:`~geosr.raster.RasterInfo`), with a decimated
    ``sample`` of its selected or network bands (:func:`~geosr.raster.read_sample`; None:
    values not judged)."""
    bands = info.network_bands
    if sample is not None and len(sample) != len(bands):  # the selected bands: leave out alpha
        sample = sample[[info.selected.index(b) for b in bands]]
    percentiles = None if sample is None else pooled_percentiles(sample, info.nodata)
    p1, p50, p99 = percentiles if percentiles else (None, None, None)
    quantities = [info.band_tags[b - 1].get("QUANTITY") for b in bands]
    scales = [info.scales[b - 1] for b in bands]
    kind, scale = value_kind(info.dtype, p99, scales, quantities)
    return SceneDescription(
        label=info.label,
        gsd_m=pixel_size_m(info.crs, info.transform, info.width, info.height)
        if info.has_transform
        else None,
        dtype=str(info.dtype),
        band_names=tuple(info.descriptions[b - 1] or None for b in bands),
        p1=p1,
        p50=p50,
        p99=p99,
        values=kind,
        value_scale=scale,
        crs_units=crs_units(info.crs),
        sensor=sensor_of(info.label, info.tags),
    )


def describe_dataarray(data: xr.DataArray, alpha: int | None = None) -> SceneDescription:
    """A DataArray (``band, y, x``, ``y, x`` or a cube, whose first slice is sampled). An
    in-memory array is sampled at once; of a lazy one only its centre chunk is read."""
    while data.ndim > 3:
        data = data.isel({data.dims[0]: 0})
    if data.ndim == 2:
        data = data.expand_dims("band")
    try:
        crs = data.rio.crs
        transform = data.rio.transform() if crs is not None else None
    except Exception:  # no usable x/y coordinates: not georeferenced
        crs, transform = None, None
    height, width = data.shape[-2:]
    gsd = None if transform is None else pixel_size_m(crs, transform, width, height)
    array = data.data
    if alpha is not None and 1 <= alpha <= data.shape[0]:
        keep = [i for i in range(data.shape[0]) if i != alpha - 1]
        array = array[keep]
    sample = _array_sample(array)
    nodata = data.rio.nodata
    percentiles = pooled_percentiles(sample, nodata) if sample is not None else None
    p1, p50, p99 = percentiles if percentiles else (None, None, None)
    dtype = str(np.dtype(data.dtype))
    kind, scale = value_kind(dtype, p99)
    names: tuple[str | None, ...] = ()
    long_name = data.attrs.get("long_name")
    if isinstance(long_name, list | tuple) and len(long_name) == data.shape[0]:
        names = tuple(str(n) if n else None for n in long_name)
    elif "band" in data.coords and data.coords["band"].dtype.kind in "OUS":
        names = tuple(str(n) for n in data.coords["band"].values)
    return SceneDescription(
        label="the DataArray",
        gsd_m=gsd,
        dtype=dtype,
        band_names=names,
        p1=p1,
        p50=p50,
        p99=p99,
        values=kind,
        value_scale=scale,
        crs_units=crs_units(crs),
    )


def _array_sample(array: Any) -> np.ndarray | None:
    """A decimated (bands, y, x) sample: all of an in-memory array (thinned), the centre chunk
    of a dask array (one chunk read ahead of the computation)."""
    import dask.array as da

    if np.dtype(array.dtype).kind not in "uif":
        return None
    if isinstance(array, da.Array):
        ny, nx = array.numblocks[-2:]
        array = array.blocks[..., ny // 2, nx // 2]
    _, height, width = array.shape
    step = max(1, math.ceil(math.sqrt(height * width / SCENE_SAMPLE_PIXELS)))
    picked = array[:, ::step, ::step]
    if isinstance(picked, da.Array):
        picked = picked.compute(scheduler="threads")
    return np.asarray(picked)


# --- training domains ----------------------------------------------------------------------


def describe_scene_file(
    path: str | os.PathLike[str],
    nodata: float | None = None,
    max_pixels: int = DOMAIN_SAMPLE_PIXELS,
) -> SceneDescription:
    """A raster file described from a decimated read (at most ``max_pixels`` per band)."""
    from geosr.raster_info import open_raster
    from geosr.raster_read import read_decimated

    with open_raster(os.fspath(path)) as src:
        indexes = list(range(1, src.count + 1))
        sample = read_decimated(src, indexes, max_pixels)[0]
        fill = src.nodata if nodata is None else nodata
        percentiles = pooled_percentiles(sample, fill)
        p1, p50, p99 = percentiles if percentiles else (None, None, None)
        tags = src.tags()
        quantities = [src.tags(i).get("QUANTITY") for i in indexes]
        dtype = str(src.dtypes[0])
        kind, scale = value_kind(dtype, p99, list(src.scales or ()), quantities)
        georeferenced = src.crs is not None and not src.transform.is_identity
        return SceneDescription(
            label=Path(os.fspath(path)).name,
            gsd_m=pixel_size_m(src.crs, src.transform, src.width, src.height)
            if georeferenced
            else None,
            dtype=dtype,
            band_names=tuple(d or None for d in src.descriptions),
            p1=p1,
            p50=p50,
            p99=p99,
            values=kind,
            value_scale=scale,
            crs_units=crs_units(src.crs),
            sensor=sensor_of(os.fspath(path), tags),
        )


def domain_from_scenes(
    paths: Iterable[str | os.PathLike[str]],
    sensors: Sequence[str] | None = None,
    nodata: float | None = None,
    max_pixels: int = DOMAIN_SAMPLE_PIXELS,
) -> TrainingDomain:
    """The training domain of raster files, from a decimated read of each (bounded memory).

    Args:
        paths: the training scenes.
        sensors: the sensors to record; default: recognised from the scenes' tags and file
            names (NAIP, Landsat, Sentinel-2), unknown ones left out.
        nodata: a nodata value for scenes that declare none (as training's ``nodata``).
    """
    scenes = [describe_scene_file(p, nodata, max_pixels) for p in paths]
    if not scenes:
        raise ValueError("a training domain needs at least one scene")
    return domain_from_descriptions(scenes, sensors)


def domain_from_descriptions(
    scenes: Sequence[SceneDescription], sensors: Sequence[str] | None = None
) -> TrainingDomain:
    """The domain that spans ``scenes``."""
    gsds = [s.gsd_m for s in scenes if s.gsd_m is not None]
    kinds = sorted({s.values for s in scenes})
    scales = {s.value_scale for s in scenes}
    names: list[str] = []
    for scene in scenes:
        for name in scene.band_names:
            if name and name not in names:
                names.append(name)

    def span(key: str) -> tuple[float, float] | None:
        values = [getattr(s, key) for s in scenes if getattr(s, key) is not None]
        return (float(min(values)), float(max(values))) if values else None

    if sensors is None:
        sensors = []
        for scene in scenes:
            if scene.sensor and scene.sensor not in sensors:
                sensors.append(scene.sensor)
    return TrainingDomain(
        sensors=tuple(sensors),
        gsd_m=(float(min(gsds)), float(max(gsds))) if gsds else None,
        values=", ".join(kinds),
        value_scale=scales.pop() if len(scales) == 1 else 1.0,
        dtypes=tuple(
            sorted(
                {s.dtype for s in scenes}, key=lambda d: (np.dtype(d).kind, np.dtype(d).itemsize)
            )
        ),
        band_names=tuple(names),
        p1=span("p1"),
        p50=span("p50"),
        p99=span("p99"),
        crs_units=tuple(sorted({s.crs_units for s in scenes if s.crs_units})),
        scenes=len(scenes),
    )


# --- the check -----------------------------------------------------------------------------


def check_domain(
    domain: TrainingDomain, scene: SceneDescription, band_shared: bool = True
) -> list[str]:
    """One short phrase per way ``scene`` lies outside ``domain`` (empty: inside); the rules
    are the module's."""
    found = []
    if scene.gsd_m is not None and domain.gsd_m is not None:
        low, high = domain.gsd_m
        if not low / GSD_TOLERANCE <= scene.gsd_m <= high * GSD_TOLERANCE:
            found.append(
                f"scene pixel {_num(scene.gsd_m)} m; this model saw {_range(domain.gsd_m)} m inputs"
            )
    if domain.dtypes and scene.dtype not in domain.dtypes:
        found.append(f"dtype {scene.dtype}; this model saw {', '.join(domain.dtypes)}")
    found += _value_findings(domain, scene)
    given = [n for n in scene.band_names if n]
    if (
        not band_shared
        and domain.band_names
        and given
        and len(given) == len(scene.band_names)
        and [_band_key(n) for n in given] != [_band_key(n) for n in domain.band_names]
    ):
        found.append(
            f"bands {', '.join(given)}; this model was trained on {', '.join(domain.band_names)}"
        )
    return found


def _value_findings(domain: TrainingDomain, scene: SceneDescription) -> list[str]:
    if scene.p99 is None or domain.p99 is None or domain.p1 is None:
        return []
    seen = f"{domain.values} {_range((domain.p1[0], domain.p99[1]))}"
    shown = _range((scene.p1 if scene.p1 is not None else scene.p99, scene.p99))
    unit_scene = np.dtype(scene.dtype).kind == "f" and scene.p99 <= UNIT_RANGE_MAX
    unit_domain = domain.p99[1] <= UNIT_RANGE_MAX
    counts_domain = domain.p99[0] > UNIT_RANGE_MAX
    if unit_scene and counts_domain:
        return [f"values {shown} look like reflectance; this model saw {seen}"]
    if unit_domain and scene.p99 > UNIT_RANGE_MAX:
        kind = scene.values if scene.values != "reflectance" else "DN"
        what = "DN" if kind == "DN" else f"{kind} stored as scaled integers"
        return [f"values {shown} look like {what}; this model saw {seen}"]
    low, high = domain.p99
    if scene.p99 > high * VALUE_TOLERANCE:
        return [f"values reach {_num(scene.p99)} (p99); this model saw {seen}"]
    if scene.p99 < low / VALUE_TOLERANCE:
        return [
            f"values reach only {_num(scene.p99)} (p99); this model's scenes reached "
            f"{_range(domain.p99)} ({domain.values})"
        ]
    return []


def domain_message(name: str, scene: SceneDescription, findings: Sequence[str]) -> str:
    """The one line that names every finding (numbered when there are several)."""
    if len(findings) == 1:
        listed = findings[0]
    else:
        listed = " ".join(f"({i}) {finding}" for i, finding in enumerate(findings, 1))
    return f"{scene.label} is outside what {name} was trained on: {listed}"


def enforce(
    meta: ModelMeta,
    describe: Callable[[], SceneDescription],
    strict: bool | None,
    stacklevel: int = 3,
) -> list[str]:
    """Check a scene against ``meta``'s domain: one :class:`DomainWarning` naming every
    finding, or with ``strict`` a :class:`DomainError`. ``describe`` is only called when the
    model records a domain; ``strict=None`` skips the check (a caller already made it).
    Returns the findings."""
    domain = getattr(meta, "domain", None)
    if strict is None or domain is None:
        return []
    scene = describe()
    findings = check_domain(domain, scene, meta.band_shared)
    log.debug(
        "input contract: %s: pixel %s m, %s, values %s-%s (%s)",
        scene.label,
        "?" if scene.gsd_m is None else _num(scene.gsd_m),
        scene.dtype,
        scene.p1,
        scene.p99,
        scene.values,
    )
    if not findings:
        return []
    message = domain_message(meta.name or "this model", scene, findings)
    if strict:
        raise DomainError(
            f"{message}; refused (strict): pass strict=False (drop --strict) to proceed with "
            "a warning, or use a model trained on such data"
        )
    warnings.warn(
        f"{message}; the result may be unreliable (strict=True, --strict, refuses such inputs)",
        DomainWarning,
        stacklevel=stacklevel,
    )
    return findings


def _band_key(name: str) -> str:
    """``B04``, ``b4``, ``B4 red`` -> ``b4``: names compared loosely."""
    first = name.strip().lower().split()[0] if name.strip() else ""
    return re.sub(r"^b0*(\d)", r"b\1", first)


__all__ = [
    "GSD_TOLERANCE",
    "UNIT_RANGE_MAX",
    "VALUE_TOLERANCE",
    "SceneDescription",
    "TrainingDomain",
    "check_domain",
    "describe_dataarray",
    "describe_raster",
    "describe_scene_file",
    "domain_from_scenes",
    "enforce",
    "pixel_size_m",
]
