"""The training domain a model card records: what its training scenes were (sensors, pixel
sizes, what the values are, dtypes, band names, value percentiles).

:mod:`geosr.contract` derives a domain from scenes and checks inputs against it; the model
metadata (:mod:`geosr.model_meta`) stores it. See :mod:`geosr.contract` for the rules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class TrainingDomain:
    """What a model's training scenes were, as its card records it.

    Attributes:
        sensors: the sensors they came from (for the reader; not judged).
        gsd_m: the smallest and largest pixel size, in metres.
        values: ``"DN"``, ``"TOA reflectance"`` or ``"BOA reflectance"`` (several, comma
            separated, for a mix).
        value_scale: stored value times this is the quantity (1 for DN and for float
            reflectance; 1e-4 for Sentinel-2's scaled integers).
        dtypes: the scenes' data types.
        band_names: the bands' names, as the scenes describe them (in order of appearance).
        p1, p50, p99: the range over the training scenes of each scene's pooled percentile
            of its stored values (see the module's notes).
        crs_units: the linear units of the scenes' CRSs (``metre``, ``degree``, ...).
        scenes: how many scenes.
    """

    sensors: tuple[str, ...] = ()
    gsd_m: tuple[float, float] | None = None
    values: str = "DN"
    value_scale: float = 1.0
    dtypes: tuple[str, ...] = ()
    band_names: tuple[str, ...] = ()
    p1: tuple[float, float] | None = None
    p50: tuple[float, float] | None = None
    p99: tuple[float, float] | None = None
    crs_units: tuple[str, ...] = ()
    scenes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingDomain:
        """From JSON; keys this geosr does not know are left out (a newer card still loads).

        Raises:
            ValueError, TypeError: malformed values (the loader words them).
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"the training domain must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {k: v for k, v in data.items() if k in known}
        for key in ("sensors", "dtypes", "band_names", "crs_units"):
            if values.get(key) is not None:
                values[key] = tuple(str(v) for v in values[key])
        for key in ("gsd_m", "p1", "p50", "p99"):
            if values.get(key) is not None:
                low, high = (float(v) for v in values[key])
                values[key] = (low, high)
        if "value_scale" in values:
            values["value_scale"] = float(values["value_scale"])
        if "scenes" in values:
            values["scenes"] = int(values["scenes"])
        if "values" in values:
            values["values"] = str(values["values"])
        return cls(**values)

    def summary_lines(self) -> list[str]:
        """The card's "training domain" lines, as ``geosr info`` prints them."""
        lines = []
        if self.sensors:
            lines.append(f"sensors:       {', '.join(self.sensors)}")
        if self.gsd_m:
            lines.append(f"pixel size:    {_range(self.gsd_m)} m")
        scale = f" (scale {self.value_scale:g})" if self.value_scale != 1 else ""
        lines.append(f"values:        {self.values}{scale}")
        if self.p1 and self.p50 and self.p99:
            lines.append(
                f"percentiles:   p1 {_range(self.p1)}, p50 {_range(self.p50)}, "
                f"p99 {_range(self.p99)} (ranges over the scenes)"
            )
        if self.dtypes:
            lines.append(f"dtypes:        {', '.join(self.dtypes)}")
        if self.band_names:
            lines.append(f"band names:    {', '.join(self.band_names)}")
        if self.crs_units:
            lines.append(f"CRS units:     {', '.join(self.crs_units)}")
        if self.scenes:
            lines.append(f"scenes:        {self.scenes}")
        return lines


def _num(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def _range(pair: Sequence[float]) -> str:
    low, high = pair
    return _num(low) if _num(low) == _num(high) else f"{_num(low)}\u2013{_num(high)}"
