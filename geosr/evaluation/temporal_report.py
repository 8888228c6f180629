"""What ``geosr evaluate --temporal`` reports: each method's change on the stable pixels
(:class:`TemporalMethod`), the report (:class:`TemporalReport`: the text table, the JSON),
and its HTML page and PNG figure (crops of both dates, their outputs and change maps, the
ratio against strength)."""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from geosr.evaluation.temporal_grid import _Grid
from geosr.figures import new_figure, png_bytes, write_atomic

if TYPE_CHECKING:
    from matplotlib.axes import Axes

#: LR side of the crop the figure shows
_CROP = 64


@dataclass
class TemporalMethod:
    """One method's change on the stable pixels, in DN, and its ratio to bicubic's."""

    name: str
    strength: float | None
    tta: bool
    change: dict[str, float]
    overall: float
    ratio: float = math.nan
    ratio_bands: dict[str, float] = field(default_factory=dict)
    passed: bool = True


@dataclass
class TemporalReport:
    a: str
    b: str
    model: str
    scale: int
    limit: float
    offset: tuple[int, int]  # B's first pixel on A's grid: (row, column)
    window: tuple[int, int, int, int]  # the common footprint on A's grid: row, col, h, w
    bounds: tuple[float, float, float, float]
    band_names: list[str]
    valid_pixels: int
    stable_threshold: float
    stable_radius: int
    stable_fraction: float | None
    stable_pixels: int
    input_change: dict[str, float]  # mean |A - B| over the stable pixels, per band
    bicubic: TemporalMethod
    methods: list[TemporalMethod]
    figure_png: bytes | None = None

    @property
    def passed(self) -> bool:
        return all(m.passed for m in self.methods)

    @property
    def worst_ratio(self) -> float:
        return max(m.ratio for m in self.methods)

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in vars(self).items() if k not in ("figure_png", "bicubic", "methods")}
        out["stable_share"] = self.stable_pixels / max(self.valid_pixels, 1)
        out["bicubic"] = vars(self.bicubic)
        out["methods"] = [vars(m) for m in self.methods]
        out["passed"] = self.passed
        out["worst_ratio"] = self.worst_ratio
        return out

    def table(self) -> str:
        """The report as plain text (what the CLI prints)."""
        rows, cols = self.window[2], self.window[3]
        how = (
            f"the {self.stable_fraction:.0%} least changed"
            if self.stable_fraction is not None
            else "given threshold"
        )
        lines = [
            f"temporal stability: {self.a} vs {self.b} ({self.model}, x{self.scale})",
            f"common footprint {cols} x {rows} pixels (B offset {self.offset[0]}, "
            f"{self.offset[1]} pixels on A's grid), {self.valid_pixels} valid on both dates",
            f"stable: {self.stable_pixels} input pixels "
            f"({self.stable_pixels / max(self.valid_pixels, 1):.1%}) changed by at most "
            f"{self.stable_threshold:g} DN in every band within {self.stable_radius} pixel(s) "
            f"({how}); their mean input change "
            + ", ".join(f"{b} {v:.2f}" for b, v in self.input_change.items())
            + " DN",
            f"mean |X(A) - X(B)| in DN on their {self.stable_pixels * self.scale**2} fine pixels:",
        ]
        head = f"  {'method':<22}" + "".join(f"{b:>9}" for b in self.band_names)
        lines.append(head + f"{'all':>9}{'ratio':>8}  max band ratio")
        for m in [self.bicubic, *self.methods]:
            cells = "".join(f"{m.change[b]:>9.3f}" for b in self.band_names)
            verdict = ""
            if m is not self.bicubic:
                worst = max(m.ratio_bands.values())
                mark = "ok" if m.passed else f"ABOVE {self.limit:g}"
                verdict = f"{m.ratio:>8.3f}  {worst:.3f}  {mark}"
            lines.append(f"  {m.name:<22}{cells}{m.overall:>9.3f}{verdict}")
        lines.append(
            f"{'passed' if self.passed else 'FAILED'}: the model's change is at most "
            f"{self.limit:g}x bicubic's at "
            + ("every strength" if self.passed else "not every strength")
            + f" (worst {self.worst_ratio:.3f})"
        )
        return "\n".join(lines)


def _write_reports(
    report: TemporalReport, json_path: Path | None, figure: Path | None, html_path: Path | None
) -> None:
    if json_path is not None:
        text = json.dumps(report.to_dict(), indent=2, default=_json_default)
        write_atomic(Path(json_path), text.encode())
    if figure is not None and report.figure_png is not None:
        write_atomic(Path(figure), report.figure_png)
    if html_path is not None:
        write_atomic(Path(html_path), _html(report).encode("utf-8"))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _best_crop(stable: np.ndarray, side: int) -> tuple[int, int]:
    """Top-left LR pixel of the ``side`` square holding the most stable pixels."""
    table = np.pad(stable.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    h, w = stable.shape
    sums = (
        table[side:, side:]
        - table[: h - side + 1, side:]
        - table[side:, : w - side + 1]
        + table[: h - side + 1, : w - side + 1]
    )
    row, col = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(row), int(col)


def _figure(
    report: TemporalReport,
    grid: _Grid,
    lr_a: np.ndarray,
    lr_b: np.ndarray,
    stable: np.ndarray,
    bicubic: tuple[np.ndarray, np.ndarray],
    outputs: dict[str, tuple[np.ndarray, np.ndarray]],
) -> bytes | None:
    """Crops of A and B, their change, bicubic's and each method's outputs and change (grey:
    pixels that are not stable), and the ratio against strength; the title says which bands
    are drawn as RGB."""
    try:
        fig = new_figure(15.0, 3.1 * (1 + len(outputs)))
    except ImportError:  # pragma: no cover
        return None
    s = report.scale
    side = min(_CROP, *stable.shape)
    row, col = _best_crop(stable, side)
    lr = (slice(row, row + side), slice(col, col + side))
    hr = (slice(row * s, (row + side) * s), slice(col * s, (col + side) * s))
    keep = np.repeat(np.repeat(stable[lr], s, 0), s, 1)
    bands = list(grid.display.indices)
    both = np.concatenate([lr_a[bands][:, lr[0], lr[1]], lr_b[bands][:, lr[0], lr[1]]], axis=2)
    low, high = np.percentile(both, (2, 98), axis=(1, 2))

    def rgb(image: np.ndarray) -> np.ndarray:
        picked = (image[bands] - low[:, None, None]) / np.maximum(high - low, 1e-9)[:, None, None]
        return np.clip(np.moveaxis(picked, 0, -1), 0, 1).squeeze()

    def nearest(image: np.ndarray) -> np.ndarray:
        return np.repeat(np.repeat(image[:, lr[0], lr[1]], s, 1), s, 2)

    def delta(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.abs(x[:, hr[0], hr[1]] - y[:, hr[0], hr[1]]).max(axis=0)

    bic_delta = delta(*bicubic)
    deltas = {name: delta(*pair) for name, pair in outputs.items()}
    top = np.percentile(np.concatenate([d[keep] for d in [bic_delta, *deltas.values()]]), 99)
    top = max(float(top), 1.0)
    rows = 1 + len(outputs)
    axes = fig.subplots(rows, 5, squeeze=False)
    _image(axes[0][0], rgb(nearest(lr_a)), f"A (input, {side} x {side} px)")
    _image(axes[0][1], rgb(nearest(lr_b)), "B (input)")
    input_delta = np.abs(nearest(lr_a) - nearest(lr_b)).max(axis=0)
    _change_map(
        axes[0][2], input_delta, keep, top, f"|A - B| (stable <= {report.stable_threshold:g} DN)"
    )
    _change_map(
        axes[0][3], bic_delta, keep, top, f"|bicubic(A) - bicubic(B)|: {report.bicubic.overall:.2f}"
    )
    _ratio_plot(axes[0][4], report)
    for i, (name, (sr_a, sr_b)) in enumerate(outputs.items(), start=1):
        method = report.methods[i - 1]
        _image(axes[i][0], rgb(sr_a[:, hr[0], hr[1]]), f"{name}: SR(A)")
        _image(axes[i][1], rgb(sr_b[:, hr[0], hr[1]]), f"{name}: SR(B)")
        _change_map(axes[i][2], deltas[name], keep, top, f"|SR(A) - SR(B)|: {method.overall:.2f}")
        excess = np.ma.masked_array(deltas[name] - bic_delta, ~keep)
        axes[i][3].imshow(
            excess, cmap="RdBu_r", vmin=-top / 2, vmax=top / 2, interpolation="nearest"
        )
        axes[i][3].set_title(f"|dSR| - |dbicubic| (ratio {method.ratio:.3f})", fontsize=8)
        axes[i][3].axis("off")
        axes[i][4].axis("off")
    fig.suptitle(
        f"{Path(report.a).name} vs {Path(report.b).name}: change on stable pixels (grey: "
        f"changed input), max over bands, DN 0-{top:.0f}\n{grid.display.caption}",
        fontsize=10,
    )
    fig.tight_layout()
    return png_bytes(fig, 80)


def _image(ax: Axes, image: np.ndarray, title: str) -> None:
    ax.imshow(image, cmap="gray", interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def _change_map(ax: Axes, change: np.ndarray, keep: np.ndarray, top: float, title: str) -> None:
    import matplotlib

    cmap = matplotlib.colormaps["magma"].copy()
    cmap.set_bad("0.8")
    ax.imshow(
        np.ma.masked_array(change, ~keep), cmap=cmap, vmin=0, vmax=top, interpolation="nearest"
    )
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def _ratio_plot(ax: Axes, report: TemporalReport) -> None:
    families: dict[str, list[TemporalMethod]] = {}
    for m in report.methods:  # "strength 0.5 +spectra +tta" -> family "+spectra +tta"
        suffix = m.name.split(" ", 2)[2] if m.strength is not None and m.name.count(" ") > 1 else ""
        families.setdefault(suffix, []).append(m)
    for suffix, methods in families.items():
        xs = [m.strength if m.strength is not None else 0.0 for m in methods]
        ax.plot(xs, [m.ratio for m in methods], "o-", label=f"model {suffix}".strip())
    ax.axhline(1.0, color="0.5", lw=1, label="bicubic")
    ax.axhline(report.limit, color="r", lw=1, ls=":", label=f"limit {report.limit:g}")
    ax.set_xlabel("strength", fontsize=8)
    ax.set_ylabel("|dSR| / |dbicubic|", fontsize=8)
    ax.set_title("change ratio on stable pixels", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)


def _html(report: TemporalReport) -> str:
    names = report.band_names
    parts = [
        "<!doctype html><meta charset='utf-8'><title>geosr temporal stability</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee}"
        ".bad{color:#a00;font-weight:bold}</style>",
        f"<h1>Stability across dates: {html.escape(report.model)}</h1>",
        f"<p>{html.escape(report.a)} vs {html.escape(report.b)}: common footprint "
        f"{report.window[3]} x {report.window[2]} pixels. Stable pixels: "
        f"{report.stable_pixels} ({report.stable_pixels / max(report.valid_pixels, 1):.1%}), "
        f"whose change is at most {report.stable_threshold:g} DN in every band within "
        f"{report.stable_radius} pixel(s). Mean |X(A) - X(B)| in DN on their fine pixels; "
        f"ratio: the model's over bicubic's (limit {report.limit:g}).</p>",
        "<table><tr><th>method</th>"
        + "".join(f"<th>{html.escape(n)}</th>" for n in names)
        + "<th>all</th><th>ratio</th></tr>",
    ]
    for m in [report.bicubic, *report.methods]:
        cells = "".join(f"<td>{m.change[n]:.3f}</td>" for n in names)
        ratio = "" if m is report.bicubic else f"{m.ratio:.3f}"
        klass = "" if m.passed else " class=bad"
        parts.append(
            f"<tr><td>{html.escape(m.name)}</td>{cells}<td>{m.overall:.3f}</td>"
            f"<td{klass}>{ratio}</td></tr>"
        )
    parts.append("</table>")
    if report.figure_png:
        data = base64.b64encode(report.figure_png).decode()
        parts.append(f"<img alt='crops and change maps' src='data:image/png;base64,{data}'>")
    return "\n".join(parts)
