"""``geosr evaluate``: a model against bicubic and Lanczos on held-out scenes.

Each HR scene is degraded to LR the way training does it (or an LR/HR pair is given), the LR
raster is written as a real GeoTIFF and super-resolved through :func:`geosr.upscale`, the
very pipeline users run, and every method is scored against the HR reference on valid pixels:
PSNR, SSIM, SAM, ERGAS, UIQI, texture (mean gradient magnitude and power above half Nyquist,
each compared with the reference's), LR consistency (the output degraded back to LR against
the LR input), opensr-test's correctness scores (improvement, omission, hallucination:
:mod:`geosr.correctness`) and the wall time of the upscaling.

A model with a strength dial (``srgan``) can be scored at several strengths, each also with
the x8 self-ensemble; the HTML report then shows where each strength sits between fidelity
(PSNR) and texture, and zoomed crops of the most textured areas side by side.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from affine import Affine
from rasterio.windows import Window
from torch import nn

from geosr.checkpoint import model_meta
from geosr.correctness import SCORES, CorrectnessReference
from geosr.data.dataset import validation_cut
from geosr.data.degradations import DegradationConfig
from geosr.errors import ConfigError, InputError
from geosr.figures import write_atomic
from geosr.metrics import (
    all_metrics,
    bicubic_upsample,
    high_frequency_power_ratio,
    lanczos_upsample,
    mean_gradient_magnitude,
)
from geosr.pipeline import keeps_spectra, resolve_model, upscale, valid_mask
from geosr.raster import RasterInfo, open_info, open_raster
from geosr.sources import dataset_name, is_local, remote_env

if TYPE_CHECKING:
    from matplotlib.axes import Axes

log = logging.getLogger(__name__)

#: Degradations evaluated by default: how a sensor integrates a pixel, and the usual one.
DEFAULT_DEGRADATIONS = ("box", "bicubic")
#: Largest HR crop side evaluated per scene (centre crop), to bound time and memory.
DEFAULT_MAX_SIZE = 1024
#: The model's method name when no strengths are asked for.
MODEL_METHOD = "model"
#: Appended to a model method's name when it runs with the x8 self-ensemble.
TTA_SUFFIX = " +tta"
SPECTRA_SUFFIX = " +spectra"
#: line style of each variant family in the PSNR-against-texture plot
_LINE_STYLES = {"": "-", TTA_SUFFIX: "--", SPECTRA_SUFFIX: ":", SPECTRA_SUFFIX + TTA_SUFFIX: "-."}
#: The classical baselines, scored after the model's methods.
BASELINES = ("bicubic", "lanczos")
COLUMNS = (
    "psnr",
    "ssim",
    "sam",
    "ergas",
    "uiqi",
    "gradient_ratio",
    "hf_power_ratio",
    "lr_psnr",
    "lr_error",
    *SCORES,
    "seconds",
)
#: Side of the centre crop drawn in the PNG figure (HR pixels, at most).
FIGURE_CROP = 256
#: Zoomed crops per scene in the HTML report, their side (HR pixels, at most), and how many
#: scene/degradation results get them (the rest are in the table only).
CROPS_PER_SCENE = 3
CROP_SIZE = 64
MAX_CROP_RESULTS = 12
LEGEND = (
    "psnr/ssim/uiqi: higher is better; sam (radians) and ergas: lower is better; "
    "gradient_ratio and hf_power_ratio: texture relative to the reference (mean gradient "
    "magnitude; spectral power above half Nyquist), 1 is ideal, below is blur, above invented "
    "texture or noise; lr_psnr: output degraded back to LR against the LR input; lr_error: "
    "largest difference (DN) between an output block's mean and its input pixel, blocks "
    "clipped at the data type's limits left out; improvement/omission/hallucination: "
    "opensr-test's correctness scores (over the pixels that change most between LR and HR, "
    "the mean soft membership of: the output moved towards the HR, stayed at the LR, or went "
    "away from both; they sum to 1; improvement: higher is better); seconds: wall time of "
    "the upscaling."
)

#: A square window on the HR grid: top row, left column, side.
Square = tuple[int, int, int]


@dataclass(frozen=True)
class ModelVariant:
    """One way of running the model: its method name, the network (at its strength),
    whether it runs with the x8 self-ensemble and whether it keeps strength 0's band ratios."""

    name: str
    net: nn.Module
    tta: bool = False
    preserve_spectra: bool = False


@dataclass
class Crop:
    """A zoomed window of a scene on the HR grid (``row``, ``col``: top-left; ``size`` pixels
    a side) and every displayed method's pixels in it: LR (nearest-upsampled), bicubic, the
    model's methods and HR."""

    row: int
    col: int
    size: int
    images: dict[str, np.ndarray] = field(default_factory=dict, repr=False)


@dataclass
class SceneResult:
    """Scores of every method on one scene and degradation.

    ``panels`` holds the centre crop (at most ``FIGURE_CROP`` pixels a side) of LR
    (nearest-upsampled), bicubic, each model method and HR, as the PNG figure draws them;
    ``crops`` the most textured windows shown zoomed in the HTML report.
    """

    scene: str
    degradation: str
    size: tuple[int, int]
    metrics: dict[str, dict[str, float]]
    panels: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    crops: list[Crop] = field(default_factory=list, repr=False)


@dataclass
class EvaluationReport:
    """All results plus their means; ``table()`` is what ``geosr evaluate`` prints."""

    model: str
    scale: int
    results: list[SceneResult]
    strengths: tuple[float, ...] | None = None
    tta: bool = False
    preserve_spectra: bool = False

    @property
    def methods(self) -> list[str]:
        """Every scored method: the model's, in the order they ran, then the baselines."""
        seen = dict.fromkeys(m for r in self.results for m in r.metrics)
        return [m for m in seen if m not in BASELINES] + [m for m in BASELINES if m in seen]

    @property
    def model_methods(self) -> list[str]:
        return [m for m in self.methods if m not in BASELINES]

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """Mean of each metric by degradation and method (NaN-aware)."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        methods = self.methods
        for degradation in dict.fromkeys(r.degradation for r in self.results):
            rows = [r for r in self.results if r.degradation == degradation]
            out[degradation] = {
                method: {
                    column: _nanmean(
                        [r.metrics.get(method, {}).get(column, math.nan) for r in rows]
                    )
                    for column in COLUMNS
                }
                for method in methods
            }
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; undefined values (SAM of one band) are None."""
        return _finite_or_none(
            {
                "model": self.model,
                "scale": self.scale,
                "strengths": None if self.strengths is None else list(self.strengths),
                "tta": self.tta,
                "preserve_spectra": self.preserve_spectra,
                "methods": self.methods,
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
        """The means as text: the metrics, then opensr-test's correctness scores (a block of
        their own, so lines stay short), then a one-line legend."""
        width = max([len("method"), *(len(m) for m in self.methods)])
        summary = self.summary()
        lines: list[str] = []
        for columns in (tuple(c for c in COLUMNS if c not in SCORES), SCORES):
            cells = {c: max(len(c), 8) for c in columns}
            header = f"{'degradation':<11} {'method':<{width}} " + " ".join(
                f"{c:>{cells[c]}}" for c in columns
            )
            lines += ["", header] if lines else [header]
            lines.append("-" * len(header))
            for degradation, methods in summary.items():
                for method, values in methods.items():
                    row = " ".join(f"{_cell(c, values[c]):>{cells[c]}}" for c in columns)
                    lines.append(f"{degradation:<11} {method:<{width}} {row}")
        lines.append(
            "psnr/ssim/uiqi: higher is better; sam (rad), ergas: lower; gradient_ratio, "
            "hf_power_ratio: texture / reference's (1 is ideal); lr_psnr: output degraded back "
            "vs LR input; improvement (higher)/omission/hallucination (lower): opensr-test "
            "correctness; seconds: upscaling time"
        )
        return "\n".join(lines)


def model_variants(
    model: str | os.PathLike[str] | nn.Module,
    strengths: Sequence[float] | None = None,
    tta: bool = False,
    preserve_spectra: bool = False,
) -> list[ModelVariant]:
    """The model's methods: ``"model"`` at its own strength, or ``"strength S"`` for each of
    ``strengths`` (increasing, duplicates dropped); with ``preserve_spectra`` each strength
    above 0 is followed by its ``" +spectra"`` twin (strength 0's band ratios kept), and with
    ``tta`` each method by its ``" +tta"`` twin. A strength, or ``preserve_spectra``, for a
    model without a dial is a :class:`~geosr.errors.ModelError`."""
    if strengths is None:
        runs = [(MODEL_METHOD, resolve_model(model))]
    else:
        if len(strengths) == 0:
            raise ConfigError("no strength given; pass strengths from 0 to 1, or none at all")
        nets = sorted((resolve_model(model, s) for s in strengths), key=lambda n: n.strength)
        runs = list({f"strength {n.strength:g}": n for n in nets}.items())
    variants = []
    for name, net in runs:
        for spectra in (False, True) if keeps_spectra(net, preserve_spectra) else (False,):
            label = name + (SPECTRA_SUFFIX if spectra else "")
            variants.append(ModelVariant(label, net, preserve_spectra=spectra))
            if tta:
                variants.append(ModelVariant(label + TTA_SUFFIX, net, True, spectra))
    return variants


@dataclass(frozen=True)
class _RunOptions:
    chunk_size: int | None
    device: str
    consistency: bool


def evaluate(
    scenes: Iterable[str | os.PathLike[str]] = (),
    model: str | os.PathLike[str] | nn.Module = "default",
    *,
    scale: int | None = None,
    strengths: Sequence[float] | None = None,
    tta: bool = False,
    preserve_spectra: bool = False,
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

    Scenes and pairs are any raster :func:`geosr.upscale` reads: local files, URLs
    (``https://``, ``s3://``...) or GDAL names. Messages, logs and the reports name remote
    ones without their query strings or user information.

    ``holdout=f`` scores only the bottom strip of each scene that ``geosr-train
    --val-fraction f --patch patch`` held out from training (same rule), so the numbers are
    on pixels the model never saw. Otherwise a centre crop of at most ``max_size`` is used.

    The model is one method, ``"model"``; with ``strengths`` (a model with a strength dial
    only) it runs once per strength instead, as methods ``"strength 0"``, ``"strength 0.5"``
    and so on; ``preserve_spectra=True`` adds each strength above 0 keeping strength 0's band
    ratios (``"strength 1 +spectra"``) and ``tta=True`` each method with the x8 self-ensemble
    (``"model +tta"``). Column
    ``seconds`` is the wall time of each method's upscaling, after one tiny warm-up run.
    """
    variants = model_variants(model, strengths, tta, preserve_spectra)
    meta = model_meta(variants[0].net)
    if scale is not None and int(scale) != meta.scale:
        raise ConfigError(
            f"the model upscales x{meta.scale}, not x{scale}; pass --scale {meta.scale} or another model"
        )
    scenes = list(scenes)  # kept as given: Path() would turn https:// into https:/
    if not scenes and not pairs:
        raise InputError("nothing to evaluate: pass HR scenes (or --pair LR HR)")
    for kind in degradations:
        DegradationConfig(kind=kind)  # validates the name
    for path in (json_path, figure, html_path):
        if path is not None and not Path(path).parent.is_dir():
            raise ConfigError(f"folder of {path} does not exist; create it first")
    options = _RunOptions(chunk_size, device, consistency)
    total = len(scenes) * len(degradations) + len(pairs)
    results: list[SceneResult] = []
    sources = [*scenes, *(source for pair in pairs for source in pair)]
    with (
        tempfile.TemporaryDirectory(prefix="geosr-evaluate-") as tmp,
        remote_env([dataset_name(source) for source in sources]),
    ):
        work = Path(tmp)
        for scene in scenes:
            hr, profile, info = _read_hr(scene, meta.scale, max_size, bands, holdout, patch)
            nodata, name = info.nodata, _scene_name(info)
            for kind in degradations:
                lr = _degrade(hr, nodata, meta.scale, kind, profile["dtype"])
                if not results:
                    _warm_up(lr, profile, nodata, variants[0], work, options)
                results.append(_score(name, kind, lr, hr, profile, nodata, variants, work, options))
                if progress:
                    progress(len(results), total)
        for lr_source, hr_source in pairs:
            lr, hr, profile, info = _read_pair(lr_source, hr_source, meta.scale, bands)
            nodata, name = info.nodata, _scene_name(info)
            if not results:
                _warm_up(lr, profile, nodata, variants[0], work, options)
            results.append(_score(name, "pair", lr, hr, profile, nodata, variants, work, options))
            if progress:
                progress(len(results), total)
    label = Path(model).name if isinstance(model, str | os.PathLike) else (meta.name or "model")
    plain = [v for v in variants if not (v.tta or v.preserve_spectra)]
    applied = None if strengths is None else tuple(v.net.strength for v in plain)
    report = EvaluationReport(
        model=label,
        scale=meta.scale,
        results=results,
        strengths=applied,
        tta=tta,
        preserve_spectra=preserve_spectra,
    )
    _write_reports(report, json_path, figure, html_path)
    return report


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


# --- data ------------------------------------------------------------------------------------------


def _scene_name(info: RasterInfo) -> str:
    """How the reports name a scene: a local file by its file name, a remote one by its
    label (the URL without query string or user information)."""
    return Path(info.name).name if is_local(info.name) else info.label


def _read_hr(
    source: str | os.PathLike[str],
    scale: int,
    max_size: int,
    bands: Sequence[int] | None,
    holdout: float | None,
    patch: int,
) -> tuple[np.ndarray, dict, RasterInfo]:
    """The HR crop evaluated, its profile, and the scene as :func:`open_info` describes it."""
    info = open_info(source, bands)
    top, rows = 0, info.height
    if holdout is not None:
        cut = validation_cut(info.height, holdout, patch)
        if cut is None:
            raise InputError(
                f"{info.label} has no held-out strip at --holdout {holdout} --patch {patch} (too short); "
                "it was used for training only"
            )
        top, rows = cut, info.height - cut
    height = min(rows, max_size) // scale * scale
    width = min(info.width, max_size) // scale * scale
    if height < 4 * scale or width < 4 * scale:
        raise InputError(
            f"{info.label} is too small to evaluate at x{scale}; it needs at least {4 * scale} pixels per side"
        )
    window = Window((info.width - width) // 2, top + (rows - height) // 2, width, height)
    with open_raster(info.name) as src:
        hr = src.read(list(info.selected), window=window)
        transform = src.window_transform(window)
    profile = {
        "crs": info.crs,
        "transform": transform,
        "dtype": info.dtype,
        "count": len(info.selected),
    }
    return hr, profile, info


def _read_pair(
    lr_source: str | os.PathLike[str],
    hr_source: str | os.PathLike[str],
    scale: int,
    bands: Sequence[int] | None,
) -> tuple[np.ndarray, np.ndarray, dict, RasterInfo]:
    """LR and HR, the profile of the LR written for the model, and the HR's description."""
    lr_info, hr_info = open_info(lr_source, bands), open_info(hr_source, bands)
    if (hr_info.width, hr_info.height) != (lr_info.width * scale, lr_info.height * scale):
        raise InputError(
            f"{hr_info.label} is {hr_info.width}x{hr_info.height} but {lr_info.label} x{scale} "
            f"is {lr_info.width * scale}x{lr_info.height * scale}; the HR grid must be exactly "
            f"the LR grid x{scale}"
        )
    if len(lr_info.selected) != len(hr_info.selected):
        raise InputError(
            f"{lr_info.label} and {hr_info.label} have different band counts; select matching bands"
        )
    with open_raster(lr_info.name) as src:
        lr = src.read(list(lr_info.selected))
    with open_raster(hr_info.name) as src:
        hr = src.read(list(hr_info.selected))
    profile = {
        "crs": hr_info.crs,
        "transform": hr_info.transform,
        "dtype": lr_info.dtype,
        "count": len(lr_info.selected),
    }
    return lr, hr, profile, hr_info


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


@dataclass
class _Reference:
    """One scene's HR reference and LR input as float64, with their valid masks."""

    hr: np.ndarray
    valid: np.ndarray  # HR grid
    lr: np.ndarray
    lr_valid: np.ndarray
    filled_lr: np.ndarray  # invalid LR pixels replaced by the band's valid mean
    span: np.ndarray  # per-band value range of the valid HR pixels (PSNR/SSIM data range)
    gradient: float  # the reference's mean gradient magnitude
    limits: tuple[float, float]  # the data type's range: outputs there may be clipped


def _reference(
    name: str, lr: np.ndarray, hr: np.ndarray, nodata: float | None, scale: int
) -> _Reference:
    lr_f, hr_f = lr.astype(np.float64), hr.astype(np.float64)
    lr_valid = valid_mask(lr, nodata).all(axis=0)
    valid = np.repeat(np.repeat(lr_valid, scale, axis=0), scale, axis=1) & valid_mask(
        hr, nodata
    ).all(axis=0)
    if valid.sum() < 64:
        raise InputError(
            f"{name}: fewer than 64 valid pixels to evaluate; choose a scene with data"
        )
    filled_lr = np.where(
        lr_valid, lr_f, np.nanmean(np.where(lr_valid, lr_f, np.nan), axis=(1, 2), keepdims=True)
    )
    return _Reference(
        hr=hr_f,
        valid=valid,
        lr=lr_f,
        lr_valid=lr_valid,
        filled_lr=filled_lr,
        span=np.array([np.ptp(b[valid]) or 1.0 for b in hr_f]),
        gradient=float(mean_gradient_magnitude(hr_f, valid)),
        limits=_dtype_limits(lr.dtype),
    )


def _dtype_limits(dtype: np.dtype) -> tuple[float, float]:
    if np.dtype(dtype).kind in "ui":
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    return -math.inf, math.inf


def _score(
    name: str,
    kind: str,
    lr: np.ndarray,
    hr: np.ndarray,
    profile: dict,
    nodata: float | None,
    variants: Sequence[ModelVariant],
    work: Path,
    options: _RunOptions,
) -> SceneResult:
    """Every method's scores on one scene and degradation, and the windows the reports show;
    each full-size output is dropped once scored and cut."""
    scale = model_meta(variants[0].net).scale
    ref = _reference(name, lr, hr, nodata, scale)
    lr_path = _write_lr(work / f"{kind}_lr.tif", lr, profile, nodata, scale)
    degradation = DegradationConfig(kind=kind if kind != "pair" else "box")
    windows = [_centre_square(ref.valid.shape, FIGURE_CROP)]
    windows += _textured_squares(ref, CROP_SIZE, CROPS_PER_SCENE, scale)
    cuts = {"LR": _cut(np.repeat(np.repeat(ref.filled_lr, scale, 1), scale, 2), windows)}
    correct = _correctness_reference(name, ref, scale)
    metrics: dict[str, dict[str, float]] = {}
    for variant in variants:
        pred, seconds = _run_model(lr_path, work / f"{kind}_sr.tif", variant, options)
        metrics[variant.name] = _method_metrics(pred, seconds, ref, scale, degradation, correct)
        cuts[variant.name] = _cut(pred, windows)
    for method, upsample in zip(BASELINES, (bicubic_upsample, lanczos_upsample), strict=True):
        start = time.perf_counter()
        pred = upsample(ref.filled_lr, scale)
        seconds = time.perf_counter() - start
        metrics[method] = _method_metrics(pred, seconds, ref, scale, degradation, correct)
        cuts[method] = _cut(pred, windows)
    cuts["HR"] = _cut(ref.hr, windows)
    shown = ["LR", "bicubic", *(v.name for v in variants), "HR"]
    log.debug(
        "%s (%s): %s",
        name,
        kind,
        ", ".join(f"{m} {v['psnr']:.2f} dB in {v['seconds']:.2f} s" for m, v in metrics.items()),
    )
    return SceneResult(
        scene=name,
        degradation=kind,
        size=(hr.shape[1], hr.shape[2]),
        metrics=metrics,
        panels={n: cuts[n][0] for n in shown},
        crops=[
            Crop(row, col, size, {n: cuts[n][i] for n in shown})
            for i, (row, col, size) in enumerate(windows[1:], start=1)
        ],
    )


def _write_lr(path: Path, lr: np.ndarray, profile: dict, nodata: float | None, scale: int) -> Path:
    """The LR input as a GeoTIFF whose bands are all data: MINISBLACK, since GDAL would make
    a 4-band byte file RGBA and the pipeline carry its 4th band (NAIP's NIR) as alpha."""
    bands, h, w = lr.shape
    with open_raster(
        path,
        "w",
        driver="GTiff",
        photometric="MINISBLACK",
        width=w,
        height=h,
        count=bands,
        dtype=lr.dtype,
        crs=profile["crs"],
        transform=profile["transform"] @ Affine.scale(scale),
        nodata=nodata,
    ) as dst:
        dst.write(lr)
    return path


def _warm_up(
    lr: np.ndarray,
    profile: dict,
    nodata: float | None,
    variant: ModelVariant,
    work: Path,
    options: _RunOptions,
) -> None:
    """One tiny upscale (the LR's centre 16x16 pixels) before the timed ones, so the first
    method timed does not also pay the one-off start-up (imports, thread pools, kernel
    set-up: about 0.3 s on a CPU)."""
    side = min(16, lr.shape[1], lr.shape[2])
    row, col = (lr.shape[1] - side) // 2, (lr.shape[2] - side) // 2
    tile = lr[:, row : row + side, col : col + side]
    scale = model_meta(variant.net).scale
    path = _write_lr(work / "warm_up_lr.tif", tile, profile, nodata, scale)
    _run_model(path, work / "warm_up_sr.tif", variant, options)


def _run_model(
    lr_path: Path, sr_path: Path, variant: ModelVariant, options: _RunOptions
) -> tuple[np.ndarray, float]:
    """The variant's output through :func:`geosr.upscale`, and the wall time of that call."""
    start = time.perf_counter()
    upscale(
        lr_path,
        sr_path,
        model=variant.net,
        chunk_size=options.chunk_size,
        device=options.device,
        consistency=options.consistency,
        overwrite=True,
        tta=variant.tta,
        preserve_spectra=variant.preserve_spectra,
    )
    seconds = time.perf_counter() - start
    with open_raster(sr_path) as src:
        return src.read().astype(np.float64), seconds


def _method_metrics(
    pred: np.ndarray,
    seconds: float,
    ref: _Reference,
    scale: int,
    degradation: DegradationConfig,
    correct: CorrectnessReference | None = None,
) -> dict[str, float]:
    values = all_metrics(pred, ref.hr, ref.span, scale, ref.valid)
    values["gradient_ratio"] = (
        float(mean_gradient_magnitude(pred, ref.valid)) / ref.gradient if ref.gradient else math.nan
    )
    values["hf_power_ratio"] = float(high_frequency_power_ratio(pred, ref.hr, ref.valid))
    values["lr_psnr"] = _lr_psnr(pred, ref, scale, degradation)
    values["lr_error"] = _lr_error(pred, ref, scale)
    if correct is not None:
        values.update(correct.scores(pred))
    else:
        values.update(dict.fromkeys(SCORES, math.nan))
    values["seconds"] = seconds
    return values


def _correctness_reference(name: str, ref: _Reference, scale: int) -> CorrectnessReference | None:
    """opensr-test's correctness set-up for one scene (border cut, LR upsampled, threshold),
    shared by its methods; None (scores n/a) where the scene is too small for the border."""
    try:
        return CorrectnessReference.from_arrays(ref.filled_lr, ref.hr, scale, ref.valid)
    except InputError as err:
        log.debug("%s: no correctness scores: %s", name, err)
        return None


def _lr_psnr(
    pred: np.ndarray, ref: _Reference, scale: int, degradation: DegradationConfig
) -> float:
    """PSNR of ``pred`` degraded back to LR against the LR input: radiometric consistency."""
    back = degradation.apply_numpy(
        np.where(ref.valid, pred, ref.hr).astype(np.float32), scale, degradation.kind
    )
    lr_span = np.array([np.ptp(b[ref.lr_valid]) or 1.0 for b in ref.lr])
    mse = ((back - ref.lr) ** 2)[:, ref.lr_valid].mean(axis=1)
    return float(np.mean(10 * np.log10(lr_span**2 / np.maximum(mse, 1e-12))))


def _lr_error(pred: np.ndarray, ref: _Reference, scale: int) -> float:
    """Largest |mean of an output block - its LR input pixel| (DN) over valid LR pixels, as the
    radiometric projection promises (within 1 DN after rounding), leaving out blocks with a
    value at the data type's limits, where clipping may break it."""
    b, h, w = pred.shape
    blocks = pred.reshape(b, h // scale, scale, w // scale, scale)
    means = blocks.mean(axis=(2, 4))
    low, high = ref.limits
    unclipped = ~((blocks <= low) | (blocks >= high)).any(axis=(0, 2, 4))
    keep = ref.lr_valid & unclipped
    if not keep.any():
        return math.nan
    return float(np.abs(means - ref.lr)[:, keep].max())


# --- windows shown -----------------------------------------------------------------------------


def _centre_square(shape: tuple[int, int], size: int) -> Square:
    side = min(shape[0], shape[1], size)
    return (shape[0] - side) // 2, (shape[1] - side) // 2, side


def _cut(image: np.ndarray, windows: Sequence[Square]) -> list[np.ndarray]:
    return [image[:, r : r + s, c : c + s].copy() for r, c, s in windows]


def _textured_squares(ref: _Reference, size: int, count: int, scale: int) -> list[Square]:
    """Up to ``count`` non-overlapping squares of at most ``size`` pixels (a third of the scene
    side at most, whole LR pixels) where the HR has the most texture: the highest mean
    gradient magnitude (each band relative to its range) over valid gradients, on a
    half-overlapping grid of candidates at least 90% valid. Best first."""
    h, w = ref.valid.shape
    side = min(size, h // 3, w // 3) // scale * scale
    if side < 8:
        return []
    gradient, ok = _gradient_map(ref)
    step = max(side // 2 // scale, 1) * scale
    rows, cols = _starts(h, side, step), _starts(w, side, step)
    total = _window_sums(np.where(ok, gradient, 0.0), rows, cols, side)
    counted = _window_sums(ok.astype(np.float64), rows, cols, side)
    score = np.where(counted >= 0.9 * side * side, total / np.maximum(counted, 1), -np.inf)
    chosen: list[Square] = []
    for flat in np.argsort(-score, axis=None, kind="stable"):
        i, j = np.unravel_index(flat, score.shape)
        if len(chosen) == count or not np.isfinite(score[i, j]):
            break
        r, c = int(rows[i]), int(cols[j])
        if all(abs(r - r2) >= side or abs(c - c2) >= side for r2, c2, _ in chosen):
            chosen.append((r, c, side))
    return chosen


def _gradient_map(ref: _Reference) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) forward-difference gradient magnitude of the HR, mean over bands each relative
    to its range, and where it is defined (its three pixels valid; never on the last row or
    column)."""
    gx = np.diff(ref.hr, axis=2)[:, :-1, :]
    gy = np.diff(ref.hr, axis=1)[:, :, :-1]
    gradient = np.zeros(ref.valid.shape)
    gradient[:-1, :-1] = (np.sqrt(gx**2 + gy**2) / ref.span[:, None, None]).mean(axis=0)
    ok = np.zeros(ref.valid.shape, dtype=bool)
    ok[:-1, :-1] = ref.valid[:-1, :-1] & ref.valid[:-1, 1:] & ref.valid[1:, :-1]
    return gradient, ok


def _starts(length: int, side: int, step: int) -> np.ndarray:
    """Window starts every ``step`` pixels, plus one flush with the far edge."""
    return np.unique(np.r_[np.arange(0, length - side + 1, step), length - side])


def _window_sums(image: np.ndarray, rows: np.ndarray, cols: np.ndarray, side: int) -> np.ndarray:
    """Sums of ``image`` over the ``side`` squares at ``rows`` x ``cols`` (summed-area table)."""
    table = np.pad(image.cumsum(axis=0).cumsum(axis=1), ((1, 0), (1, 0)))
    r, c = rows[:, None], cols[None, :]
    return table[r + side, c + side] - table[r, c + side] - table[r + side, c] + table[r, c]


# --- output ------------------------------------------------------------------------------------------


def _display_bands(count: int) -> list[int]:
    # three-band files here are usually RGB; longer stacks are in band-number order (B, G, R, ...)
    if count == 3:
        return [0, 1, 2]
    return [2, 1, 0] if count > 3 else [0]


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
    first four results."""
    if not results:
        return None
    from geosr.figures import new_figure, png_bytes

    shown = results[: min(len(results), 4)]
    names = list(shown[0].panels)
    fig = new_figure(3 * len(names), 3.5 * len(shown))
    axes = fig.subplots(len(shown), len(names), squeeze=False)
    for row, result in enumerate(shown):
        bands = _display_bands(result.panels["HR"].shape[0])
        low, high = _stretch(result.panels["HR"][bands])
        for col, name in enumerate(names):
            ax = axes[row][col]
            _show(ax, result.panels[name][bands], low, high)
            title = _title(result, name)
            if col == 0:  # the scene once per row: repeated, long names overlap
                title = f"{result.scene} ({result.degradation})\n{title}"
            ax.set_title(title, fontsize=9, loc="left" if col == 0 else "center")
            ax.axis("off")
    fig.tight_layout()
    return png_bytes(fig, dpi=90)


def _crops_figure(result: SceneResult) -> bytes | None:
    """The result's textured crops, one row each: LR, bicubic, the model's methods, HR, all
    with the HR crop's stretch. Titles give the whole-scene PSNR."""
    if not result.crops:
        return None
    from geosr.figures import new_figure, png_bytes

    names = list(result.crops[0].images)
    fig = new_figure(2.0 * len(names), 2.1 * len(result.crops) + 0.3)
    axes = fig.subplots(len(result.crops), len(names), squeeze=False)
    for row, crop in enumerate(result.crops):
        bands = _display_bands(crop.images["HR"].shape[0])
        low, high = _stretch(crop.images["HR"][bands])
        for col, name in enumerate(names):
            ax = axes[row][col]
            _show(ax, crop.images[name][bands], low, high)
            if row == 0:
                ax.set_title(_title(result, name), fontsize=8)
            if col == 0:
                ax.set_ylabel(f"row {crop.row}, col {crop.col}", fontsize=7)
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


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def _fmt(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4f}"


def _cell(column: str, value: float) -> str:
    if column == "seconds" and value is not None and math.isfinite(value):
        return f"{value:.2f}"
    return _fmt(value)


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
