"""``geosr evaluate``: a model against bicubic and Lanczos on held-out scenes.

Each HR scene is degraded to LR the way training does it (or an LR/HR pair is given), the LR
raster is written as a real GeoTIFF and super-resolved through :func:`geosr.upscale`, the
very pipeline users run, and every method is scored against the HR reference on valid pixels:
PSNR, SSIM, SAM, ERGAS, UIQI, high-frequency energy (mean gradient magnitude, compared with
the reference's), and LR consistency (the output degraded back to LR against the LR input).
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from rasterio.windows import Window
from torch import nn

from geosr.checkpoint import model_meta
from geosr.data.dataset import validation_cut
from geosr.data.degradations import DegradationConfig
from geosr.errors import ConfigError, InputError
from geosr.figures import write_atomic
from geosr.metrics import all_metrics, bicubic_upsample, lanczos_upsample, mean_gradient_magnitude
from geosr.pipeline import resolve_model, upscale, valid_mask
from geosr.raster import open_info, open_raster

log = logging.getLogger(__name__)

#: Degradations evaluated by default: how a sensor integrates a pixel, and the usual one.
DEFAULT_DEGRADATIONS = ("box", "bicubic")
#: Largest HR crop side evaluated per scene (centre crop), to bound time and memory.
DEFAULT_MAX_SIZE = 1024
METHODS = ("model", "bicubic", "lanczos")
COLUMNS = ("psnr", "ssim", "sam", "ergas", "uiqi", "gradient_ratio", "lr_psnr")


@dataclass
class SceneResult:
    """Scores of every method on one scene and degradation."""

    scene: str
    degradation: str
    size: tuple[int, int]
    metrics: dict[str, dict[str, float]]
    panels: dict[str, np.ndarray] = field(default_factory=dict, repr=False)


@dataclass
class EvaluationReport:
    """All results plus their means; ``table()`` is what ``geosr evaluate`` prints."""

    model: str
    scale: int
    results: list[SceneResult]

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """Mean of each metric by degradation and method (NaN-aware)."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for degradation in dict.fromkeys(r.degradation for r in self.results):
            rows = [r for r in self.results if r.degradation == degradation]
            out[degradation] = {
                method: {
                    column: _nanmean([r.metrics[method].get(column, math.nan) for r in rows])
                    for column in COLUMNS
                }
                for method in METHODS
            }
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; undefined values (SAM of one band) are None."""
        return _finite_or_none(
            {
                "model": self.model,
                "scale": self.scale,
                "summary": self.summary(),
                "scenes": [
                    {
                        "scene": r.scene,
                        "degradation": r.degradation,
                        "size": list(r.size),
                        "metrics": r.metrics,
                    }
                    for r in self.results
                ],
            }
        )

    def table(self) -> str:
        header = f"{'degradation':<11} {'method':<8} " + " ".join(f"{c:>14}" for c in COLUMNS)
        lines = [header, "-" * len(header)]
        for degradation, methods in self.summary().items():
            for method, values in methods.items():
                cells = " ".join(f"{_fmt(values[c]):>14}" for c in COLUMNS)
                lines.append(f"{degradation:<11} {method:<8} {cells}")
        lines.append(
            "psnr/ssim/uiqi: higher is better; sam (rad), ergas: lower; gradient_ratio: high-frequency "
            "energy / reference's (1 is ideal); lr_psnr: output degraded back vs LR input"
        )
        return "\n".join(lines)


def evaluate(
    scenes: Iterable[str | os.PathLike[str]] = (),
    model: str | os.PathLike[str] | nn.Module = "default",
    *,
    scale: int | None = None,
    pairs: Sequence[tuple[str | os.PathLike[str], str | os.PathLike[str]]] = (),
    degradations: Sequence[str] = DEFAULT_DEGRADATIONS,
    max_size: int = DEFAULT_MAX_SIZE,
    holdout: float | None = None,
    patch: int = 96,
    bands: Sequence[int] | None = None,
    chunk_size: int | None = None,
    device: str = "auto",
    consistency: bool = True,
    json_path: str | os.PathLike[str] | None = None,
    figure: str | os.PathLike[str] | None = None,
    html_path: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvaluationReport:
    """Score ``model`` against bicubic and Lanczos on HR ``scenes`` (degraded as in training)
    and on explicit ``(lr, hr)`` ``pairs``; optionally write JSON, a PNG figure and HTML.

    ``holdout=f`` scores only the bottom strip of each scene that ``geosr-train
    --val-fraction f --patch patch`` held out from training (same rule), so the numbers are
    on pixels the model never saw. Otherwise a centre crop of at most ``max_size`` is used.
    """
    net = resolve_model(model)
    meta = model_meta(net)
    if scale is not None and int(scale) != meta.scale:
        raise ConfigError(
            f"the model upscales x{meta.scale}, not x{scale}; pass --scale {meta.scale} or another model"
        )
    scenes = [Path(s) for s in scenes]
    if not scenes and not pairs:
        raise InputError("nothing to evaluate: pass HR scenes (or --pair LR HR)")
    for kind in degradations:
        DegradationConfig(kind=kind)  # validates the name
    for path in (json_path, figure, html_path):
        if path is not None and not Path(path).parent.is_dir():
            raise ConfigError(f"folder of {path} does not exist; create it first")
    total = len(scenes) * len(degradations) + len(pairs)
    results: list[SceneResult] = []
    with tempfile.TemporaryDirectory(prefix="geosr-evaluate-") as tmp:
        work = Path(tmp)
        for path in scenes:
            hr, profile, nodata = _read_hr(path, meta.scale, max_size, bands, holdout, patch)
            for kind in degradations:
                lr = _degrade(hr, nodata, meta.scale, kind, profile["dtype"])
                results.append(
                    _score(
                        path.name,
                        kind,
                        lr,
                        hr,
                        profile,
                        nodata,
                        net,
                        work,
                        chunk_size,
                        device,
                        consistency,
                    )
                )
                if progress:
                    progress(len(results), total)
        for lr_path, hr_path in pairs:
            lr, hr, profile, nodata = _read_pair(Path(lr_path), Path(hr_path), meta.scale, bands)
            results.append(
                _score(
                    Path(hr_path).name,
                    "pair",
                    lr,
                    hr,
                    profile,
                    nodata,
                    net,
                    work,
                    chunk_size,
                    device,
                    consistency,
                )
            )
            if progress:
                progress(len(results), total)
    label = Path(model).name if isinstance(model, str | os.PathLike) else (meta.name or "model")
    report = EvaluationReport(model=label, scale=meta.scale, results=results)
    if json_path is not None:
        write_atomic(
            Path(json_path), json.dumps(report.to_dict(), indent=2, default=_json_default).encode()
        )
    png = _figure(results) if (figure is not None or html_path is not None) else None
    if figure is not None and png is not None:
        write_atomic(Path(figure), png)
    if html_path is not None:
        write_atomic(Path(html_path), _html(report, png).encode())
    return report


# --- data ------------------------------------------------------------------------------------------


def _read_hr(
    path: Path,
    scale: int,
    max_size: int,
    bands: Sequence[int] | None,
    holdout: float | None,
    patch: int,
) -> tuple[np.ndarray, dict, float | None]:
    info = open_info(path, bands)
    top, rows = 0, info.height
    if holdout is not None:
        cut = validation_cut(info.height, holdout, patch)
        if cut is None:
            raise InputError(
                f"{path} has no held-out strip at --holdout {holdout} --patch {patch} (too short); "
                "it was used for training only"
            )
        top, rows = cut, info.height - cut
    height = min(rows, max_size) // scale * scale
    width = min(info.width, max_size) // scale * scale
    if height < 4 * scale or width < 4 * scale:
        raise InputError(
            f"{path} is too small to evaluate at x{scale}; it needs at least {4 * scale} pixels per side"
        )
    window = Window((info.width - width) // 2, top + (rows - height) // 2, width, height)
    with open_raster(path) as src:
        hr = src.read(list(info.selected), window=window)
        transform = src.window_transform(window)
    profile = {
        "crs": info.crs,
        "transform": transform,
        "dtype": info.dtype,
        "count": len(info.selected),
    }
    return hr, profile, info.nodata


def _read_pair(lr_path: Path, hr_path: Path, scale: int, bands: Sequence[int] | None):
    lr_info, hr_info = open_info(lr_path, bands), open_info(hr_path, bands)
    if (hr_info.width, hr_info.height) != (lr_info.width * scale, lr_info.height * scale):
        raise InputError(
            f"{hr_path} is {hr_info.width}x{hr_info.height} but {lr_path} x{scale} is "
            f"{lr_info.width * scale}x{lr_info.height * scale}; the HR grid must be exactly the LR grid x{scale}"
        )
    if len(lr_info.selected) != len(hr_info.selected):
        raise InputError(
            f"{lr_path} and {hr_path} have different band counts; select matching bands"
        )
    with open_raster(lr_path) as src:
        lr = src.read(list(lr_info.selected))
    with open_raster(hr_path) as src:
        hr = src.read(list(hr_info.selected))
    profile = {
        "crs": hr_info.crs,
        "transform": hr_info.transform,
        "dtype": lr_info.dtype,
        "count": len(lr_info.selected),
    }
    return lr, hr, profile, hr_info.nodata


def _degrade(hr: np.ndarray, nodata: float | None, scale: int, kind: str, dtype: str) -> np.ndarray:
    """LR in the scene's own dtype, as a real lower-resolution sensor would deliver it; an LR
    pixel whose footprint touches nodata is nodata."""
    valid = valid_mask(hr, nodata).all(axis=0)
    filled = np.where(valid, hr, 0).astype(np.float64)
    if not valid.all():
        fill = np.array([b[valid].mean() if valid.any() else 0.0 for b in filled])
        filled = np.where(valid, filled, fill[:, None, None])
    lr = (
        DegradationConfig(kind=kind)
        .apply_numpy(filled.astype(np.float32), scale, kind)
        .astype(np.float64)
    )
    _, h, w = lr.shape
    lr_valid = valid.reshape(h, scale, w, scale).all(axis=(1, 3))
    target = np.dtype(dtype)
    if target.kind in "ui":
        info = np.iinfo(target)
        lr = np.clip(np.rint(lr), info.min, info.max)
    lr = lr.astype(target)
    if nodata is not None:
        lr[:, ~lr_valid] = nodata
    elif target.kind == "f":
        lr[:, ~lr_valid] = np.nan
    return lr


def _score(
    name: str,
    kind: str,
    lr: np.ndarray,
    hr: np.ndarray,
    profile: dict,
    nodata: float | None,
    net: nn.Module,
    work: Path,
    chunk_size: int | None,
    device: str,
    consistency: bool,
) -> SceneResult:
    scale = model_meta(net).scale
    lr_path, sr_path = work / f"{kind}_lr.tif", work / f"{kind}_sr.tif"
    bands, h, w = lr.shape
    with open_raster(
        lr_path,
        "w",
        driver="GTiff",
        width=w,
        height=h,
        count=bands,
        dtype=lr.dtype,
        crs=profile["crs"],
        transform=profile["transform"] @ Affine.scale(scale),
        nodata=nodata,
    ) as dst:
        dst.write(lr)
    upscale(
        lr_path,
        sr_path,
        model=net,
        chunk_size=chunk_size,
        device=device,
        consistency=consistency,
        overwrite=True,
    )
    with open_raster(sr_path) as src:
        sr = src.read().astype(np.float64)
    lr_f = lr.astype(np.float64)
    lr_valid = valid_mask(lr, nodata).all(axis=0)
    valid = np.repeat(np.repeat(lr_valid, scale, axis=0), scale, axis=1) & valid_mask(
        hr, nodata
    ).all(axis=0)
    if valid.sum() < 64:
        raise InputError(
            f"{name}: fewer than 64 valid pixels to evaluate; choose a scene with data"
        )
    hr_f = hr.astype(np.float64)
    filled_lr = np.where(
        lr_valid, lr_f, np.nanmean(np.where(lr_valid, lr_f, np.nan), axis=(1, 2), keepdims=True)
    )
    outputs = {
        "model": sr,
        "bicubic": bicubic_upsample(filled_lr, scale),
        "lanczos": lanczos_upsample(filled_lr, scale),
    }
    span = np.array([np.ptp(b[valid]) or 1.0 for b in hr_f])
    hr_gradient = float(mean_gradient_magnitude(hr_f, valid))
    metrics: dict[str, dict[str, float]] = {}
    degradation = DegradationConfig(kind=kind if kind != "pair" else "box")
    for method, pred in outputs.items():
        values = all_metrics(pred, hr_f, span, scale, valid)
        values["gradient_ratio"] = (
            float(mean_gradient_magnitude(pred, valid)) / hr_gradient if hr_gradient else math.nan
        )
        back = degradation.apply_numpy(
            np.where(valid, pred, hr_f).astype(np.float32), scale, degradation.kind
        )
        lr_span = np.array([np.ptp(b[lr_valid]) or 1.0 for b in lr_f])
        mse = ((back - lr_f) ** 2)[:, lr_valid].mean(axis=1)
        values["lr_psnr"] = float(np.mean(10 * np.log10(lr_span**2 / np.maximum(mse, 1e-12))))
        metrics[method] = values
    panels = {
        "LR": np.repeat(np.repeat(filled_lr, scale, 1), scale, 2),
        "bicubic": outputs["bicubic"],
        "model": sr,
        "HR": hr_f,
    }
    return SceneResult(
        scene=name,
        degradation=kind,
        size=(hr.shape[1], hr.shape[2]),
        metrics=metrics,
        panels=panels,
    )


# --- output ------------------------------------------------------------------------------------------


def _display_bands(count: int) -> list[int]:
    # three-band files here are usually RGB; longer stacks are in band-number order (B, G, R, ...)
    if count == 3:
        return [0, 1, 2]
    return [2, 1, 0] if count > 3 else [0]


def _figure(results: Sequence[SceneResult]) -> bytes | None:
    if not results:
        return None
    from geosr.figures import new_figure, png_bytes

    shown = results[: min(len(results), 4)]
    fig = new_figure(12, 3.2 * len(shown))
    axes = fig.subplots(len(shown), 4, squeeze=False)
    for row, result in enumerate(shown):
        hr = result.panels["HR"]
        crop = min(hr.shape[1], hr.shape[2], 256)
        y0, x0 = (hr.shape[1] - crop) // 2, (hr.shape[2] - crop) // 2
        bands = _display_bands(hr.shape[0])
        ref = hr[bands, y0 : y0 + crop, x0 : x0 + crop]
        low, high = np.nanpercentile(ref, 2), np.nanpercentile(ref, 98)
        for col, name in enumerate(("LR", "bicubic", "model", "HR")):
            image = result.panels[name][bands, y0 : y0 + crop, x0 : x0 + crop]
            image = np.clip((image - low) / max(high - low, 1e-12), 0, 1)
            ax = axes[row][col]
            ax.imshow(
                image.transpose(1, 2, 0) if image.shape[0] == 3 else image[0],
                cmap="gray",
                interpolation="nearest",
            )
            psnr = result.metrics.get(name, {}).get("psnr")
            title = f"{name}" + (f" {psnr:.2f} dB" if psnr is not None else "")
            ax.set_title(
                title if row else f"{result.scene} ({result.degradation})\n{title}", fontsize=9
            )
            ax.axis("off")
    fig.tight_layout()
    return png_bytes(fig, dpi=90)


def _html(report: EvaluationReport, png: bytes | None) -> str:
    rows = []
    for degradation, methods in report.summary().items():
        for method, values in methods.items():
            cells = "".join(f"<td>{_fmt(values[c])}</td>" for c in COLUMNS)
            rows.append(f"<tr><td>{html.escape(degradation)}</td><td>{method}</td>{cells}</tr>")
    head = "".join(f"<th>{c}</th>" for c in COLUMNS)
    image = (
        f'<img alt="LR, bicubic, model and HR crops" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        if png
        else ""
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>geosr evaluation</title>"
        "<style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:right}</style></head><body>"
        f"<h1>geosr evaluation: {html.escape(report.model)} (x{report.scale})</h1>"
        f"<table><tr><th>degradation</th><th>method</th>{head}</tr>{''.join(rows)}</table>"
        "<p>psnr/ssim/uiqi: higher is better; sam (radians) and ergas: lower is better; gradient_ratio: "
        "high-frequency energy relative to the reference (1 is ideal); lr_psnr: output degraded back "
        f"to LR against the LR input.</p>{image}</body></html>"
    )


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def _fmt(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4f}"


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, float | np.floating) and not math.isfinite(value):
        return None
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot serialise {type(value).__name__}")
