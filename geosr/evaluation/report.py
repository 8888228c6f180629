"""``geosr evaluate``'s reports: the JSON, the PNG figure of centre crops, and the HTML page
(table, PSNR against texture, zoomed textured crops, centre crops). Every image draws the
bands :mod:`geosr.evaluation.rgb` picks as red, green and blue, and says which."""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from geosr.evaluation.baselines import SPECTRA_SUFFIX, TTA_SUFFIX
from geosr.evaluation.results import (
    COLUMNS,
    LEGEND,
    MAX_CROP_RESULTS,
    EvaluationReport,
    SceneResult,
    _cell,
    _json_default,
)
from geosr.evaluation.rgb import DisplayBands, display_bands
from geosr.figures import write_atomic

if TYPE_CHECKING:
    from matplotlib.axes import Axes

#: line style of each variant family in the PSNR-against-texture plot
_LINE_STYLES = {"": "-", TTA_SUFFIX: "--", SPECTRA_SUFFIX: ":", SPECTRA_SUFFIX + TTA_SUFFIX: "-."}


def _write_reports(
    report: EvaluationReport,
    json_path: str | os.PathLike[str] | None,
    figure: str | os.PathLike[str] | None,
    html_path: str | os.PathLike[str] | None,
) -> None:
    if json_path is not None:
        text = json.dumps(report.to_dict(), indent=2, default=_json_default)
        write_atomic(Path(json_path), text.encode())
    png = _figure(report.results) if (figure is not None or html_path is not None) else None
    if figure is not None and png is not None:
        write_atomic(Path(figure), png)
    if html_path is not None:
        write_atomic(Path(html_path), _html(report, png).encode())


def _display(result: SceneResult, count: int) -> DisplayBands:
    """The bands a result's images draw: those picked for its scene, else bands 1-2-3 (band 1
    in grey under 3 bands), with the caption saying so."""
    return result.display or display_bands(count=count)


def _stretch(reference: np.ndarray) -> tuple[float, float]:
    """The 2-98% percentiles of the displayed HR bands: one stretch for every method."""
    return float(np.nanpercentile(reference, 2)), float(np.nanpercentile(reference, 98))


def _show(ax: Axes, image: np.ndarray, low: float, high: float) -> None:
    image = np.clip((image - low) / max(high - low, 1e-12), 0, 1)
    ax.imshow(
        image.transpose(1, 2, 0) if image.shape[0] == 3 else image[0],
        cmap="gray",
        interpolation="nearest",
    )
    ax.set_xticks([])
    ax.set_yticks([])


def _title(result: SceneResult, name: str) -> str:
    psnr = result.metrics.get(name, {}).get("psnr")
    return name + (f" {psnr:.2f} dB" if psnr is not None else "")


def _figure(results: Sequence[SceneResult]) -> bytes | None:
    """The PNG figure: the centre crop of LR, bicubic, the model's methods and HR, for the
    first four results; each row says which bands it draws as RGB."""
    if not results:
        return None
    from geosr.figures import new_figure, png_bytes

    shown = results[: min(len(results), 4)]
    names = list(shown[0].panels)
    fig = new_figure(3 * len(names), 3.5 * len(shown))
    axes = fig.subplots(len(shown), len(names), squeeze=False)
    for row, result in enumerate(shown):
        display = _display(result, result.panels["HR"].shape[0])
        bands = list(display.indices)
        low, high = _stretch(result.panels["HR"][bands])
        for col, name in enumerate(names):
            ax = axes[row][col]
            _show(ax, result.panels[name][bands], low, high)
            title = _title(result, name)
            if col == 0:  # the scene once per row: repeated, long names overlap
                title = f"{result.scene} ({result.degradation})\n{display.caption}\n{title}"
            ax.set_title(title, fontsize=9, loc="left" if col == 0 else "center")
            ax.axis("off")
    fig.tight_layout()
    return png_bytes(fig, dpi=90)


def _crops_figure(result: SceneResult) -> bytes | None:
    """The result's textured crops, one row each: LR, bicubic, the model's methods, HR, all
    with the HR crop's stretch. Titles give the whole-scene PSNR; the figure's title, the
    bands drawn as RGB."""
    if not result.crops:
        return None
    from geosr.figures import new_figure, png_bytes

    names = list(result.crops[0].images)
    fig = new_figure(2.0 * len(names), 2.1 * len(result.crops) + 0.3)
    axes = fig.subplots(len(result.crops), len(names), squeeze=False)
    display = _display(result, result.crops[0].images["HR"].shape[0])
    bands = list(display.indices)
    for row, crop in enumerate(result.crops):
        low, high = _stretch(crop.images["HR"][bands])
        for col, name in enumerate(names):
            ax = axes[row][col]
            _show(ax, crop.images[name][bands], low, high)
            if row == 0:
                ax.set_title(_title(result, name), fontsize=8)
            if col == 0:
                ax.set_ylabel(f"row {crop.row}, col {crop.col}", fontsize=7)
    fig.suptitle(display.caption, fontsize=8)
    fig.tight_layout()
    return png_bytes(fig, dpi=90)


def _texture_figure(report: EvaluationReport) -> bytes | None:
    """PSNR against texture (gradient ratio; HF power ratio), one line per degradation
    through the model's methods (the strengths, in order), bicubic as an open square and the
    HR's texture (1) as a dotted line."""
    summary = report.summary()
    if not summary:
        return None
    from geosr.figures import new_figure, png_bytes

    fig = new_figure(11, 4.2)
    axes = fig.subplots(1, 2, squeeze=False)[0]
    panels = (
        ("gradient_ratio", "gradient ratio (mean gradient magnitude / HR's)"),
        ("hf_power_ratio", "HF power ratio (power above half Nyquist / HR's)"),
    )
    for ax, (column, label) in zip(axes, panels, strict=True):
        for index, (degradation, methods) in enumerate(summary.items()):
            _texture_lines(ax, report.model_methods, methods, column, degradation, f"C{index}")
        ax.axvline(1.0, color="0.4", linestyle=":", label="HR texture")
        ax.set_xlabel(label, fontsize=9)
        ax.set_ylabel("PSNR (dB)", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return png_bytes(fig, dpi=90)


def _variant_suffix(method: str) -> str:
    """The variant family of a model method: ``""``, ``" +tta"``, ``" +spectra"``..."""
    tta = TTA_SUFFIX if method.endswith(TTA_SUFFIX) else ""
    spectra = SPECTRA_SUFFIX if method.removesuffix(tta).endswith(SPECTRA_SUFFIX) else ""
    return spectra + tta


def _texture_lines(
    ax: Axes,
    model_methods: Sequence[str],
    methods: dict[str, dict[str, float]],
    column: str,
    degradation: str,
    colour: str,
) -> None:
    for suffix, style in _LINE_STYLES.items():
        names = [m for m in model_methods if _variant_suffix(m) == suffix]
        if not names:
            continue
        xs = [methods[m][column] for m in names]
        ys = [methods[m]["psnr"] for m in names]
        label = f"{degradation} degradation{suffix}"
        ax.plot(xs, ys, style, marker="o", color=colour, label=label)
        for name, x, y in zip(names, xs, ys, strict=True):
            text = name.removesuffix(suffix).removeprefix("strength ")
            ax.annotate(text, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    if "bicubic" in methods:
        bicubic = methods["bicubic"]
        ax.plot(
            [bicubic[column]],
            [bicubic["psnr"]],
            marker="s",
            linestyle="none",
            markerfacecolor="none",
            color=colour,
            label=f"bicubic upsampling ({degradation} degradation)",
        )


def _img(png: bytes | None, alt: str) -> str:
    if not png:
        return ""
    data = base64.b64encode(png).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _html_table(report: EvaluationReport) -> str:
    rows = []
    for degradation, methods in report.summary().items():
        for method, values in methods.items():
            cells = "".join(f"<td>{_cell(c, values[c])}</td>" for c in COLUMNS)
            rows.append(
                f"<tr><td>{html.escape(degradation)}</td><td>{html.escape(method)}</td>{cells}</tr>"
            )
    head = "".join(f"<th>{c}</th>" for c in COLUMNS)
    return f"<table><tr><th>degradation</th><th>method</th>{head}</tr>{''.join(rows)}</table>"


def _html_crops(report: EvaluationReport) -> str:
    results = [r for r in report.results if r.crops]
    if not results:
        return ""
    parts = [
        "<h2>Textured crops</h2><p>The windows of each scene with the most HR texture (mean "
        "gradient magnitude), zoomed; one stretch per crop (2-98% of the HR crop); LR is shown "
        "nearest-upsampled; dB: whole-scene PSNR.</p>"
    ]
    for result in results[:MAX_CROP_RESULTS]:
        caption = f"{result.scene} ({result.degradation})"
        names = ", ".join(result.crops[0].images)
        parts.append(f"<h3>{html.escape(caption)}</h3>")
        parts.append(_img(_crops_figure(result), f"crops of {caption}: {names}"))
    if len(results) > MAX_CROP_RESULTS:
        parts.append(f"<p>Crops of the first {MAX_CROP_RESULTS} of {len(results)} results.</p>")
    return "".join(parts)


def _html(report: EvaluationReport, png: bytes | None) -> str:
    texture = _img(_texture_figure(report), "PSNR against texture across strength")
    figure = _img(png, "centre crops: LR, bicubic, " + ", ".join(report.model_methods) + ", HR")
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>geosr evaluation</title>"
        "<style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:right}</style></head><body>"
        f"<h1>geosr evaluation: {html.escape(report.model)} (x{report.scale})</h1>"
        f"{_html_table(report)}<p>{html.escape(LEGEND)}</p>"
        "<h2>Fidelity against texture</h2><p>PSNR against the output's texture relative to the "
        "HR's, one line per degradation through the model's methods; bicubic: open square; "
        f"dotted: the HR's own texture.</p>{texture}"
        f"{_html_crops(report)}<h2>Centre crops</h2>{figure}</body></html>"
    )
