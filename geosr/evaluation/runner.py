"""``geosr evaluate``: a model against bicubic and Lanczos on held-out scenes.

Each HR scene is degraded to LR the way training does it (or an LR/HR pair is given), the LR
raster is written as a real GeoTIFF and super-resolved through :func:`geosr.upscale`, the
very pipeline users run, and every method is scored against the HR reference on valid pixels:
PSNR, SSIM, SAM, ERGAS, UIQI, texture (mean gradient magnitude and power above half Nyquist,
each compared with the reference's), LR consistency (the output degraded back to LR against
the LR input), opensr-test's correctness scores (improvement, omission, hallucination:
:mod:`geosr.evaluation.correctness`) and the wall time of the upscaling.

A model with a strength dial (``srgan``) can be scored at several strengths, each also with
the x8 self-ensemble; the HTML report then shows where each strength sits between fidelity
(PSNR) and texture, and zoomed crops of the most textured areas side by side.

The steps live beside this module: :mod:`~geosr.evaluation.inputs` (scenes read, LR
synthesised), :mod:`~geosr.evaluation.baselines` (the methods run),
:mod:`~geosr.evaluation.scoring` (the scores and windows of one scene),
:mod:`~geosr.evaluation.results` (what is kept) and :mod:`~geosr.evaluation.report` (JSON,
PNG, HTML).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from geosr.checkpoint import model_meta
from geosr.data.degradations import DegradationConfig
from geosr.errors import ConfigError, InputError
from geosr.evaluation.baselines import ModelVariant, _RunOptions, _warm_up, model_variants
from geosr.evaluation.inputs import _degrade, _read_hr, _read_pair, _scene_name
from geosr.evaluation.report import _write_reports
from geosr.evaluation.results import EvaluationReport, SceneResult
from geosr.evaluation.rgb import info_display_bands
from geosr.evaluation.scoring import _score
from geosr.raster import RasterInfo
from geosr.sources import dataset_name, remote_env

if TYPE_CHECKING:
    from geosr.checkpoint import ModelMeta

#: Degradations evaluated by default: how a sensor integrates a pixel, and the usual one.
DEFAULT_DEGRADATIONS = ("box", "bicubic")
#: Largest HR crop side evaluated per scene (centre crop), to bound time and memory.
DEFAULT_MAX_SIZE = 1024


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
    scenes = list(scenes)  # kept as given: Path() would turn https:// into https:/
    _check_arguments(meta.scale, scale, scenes, pairs, degradations, (json_path, figure, html_path))
    total = len(scenes) * len(degradations) + len(pairs)
    job = _Job(variants, meta.scale, _RunOptions(chunk_size, device, consistency), progress, total)
    crop = _CropOptions(max_size, bands, holdout, patch)
    results = _score_all(scenes, pairs, degradations, crop, job)
    report = _report(model, meta, variants, strengths, tta, preserve_spectra, results)
    _write_reports(report, json_path, figure, html_path)
    return report


@dataclass(frozen=True)
class _Job:
    """What every scene is scored with: the model's methods, the scale, how the model runs,
    and where progress goes (results done, of ``total``)."""

    variants: Sequence[ModelVariant]
    scale: int
    options: _RunOptions
    progress: Callable[[int, int], None] | None
    total: int


@dataclass(frozen=True)
class _CropOptions:
    """Which part of each HR scene is scored (:func:`~geosr.evaluation.inputs._read_hr`)."""

    max_size: int
    bands: Sequence[int] | None
    holdout: float | None
    patch: int


def _check_arguments(
    model_scale: int,
    scale: int | None,
    scenes: Sequence[Any],
    pairs: Sequence[Any],
    degradations: Sequence[str],
    paths: Sequence[str | os.PathLike[str] | None],
) -> None:
    """Refuse a scale the model does not have, nothing to evaluate, an unknown degradation and
    a report in a folder that does not exist, before any work."""
    if scale is not None and int(scale) != model_scale:
        raise ConfigError(
            f"the model upscales x{model_scale}, not x{scale}; pass --scale {model_scale} or another model"
        )
    if not scenes and not pairs:
        raise InputError("nothing to evaluate: pass HR scenes (or --pair LR HR)")
    for kind in degradations:
        DegradationConfig(kind=kind)  # validates the name
    for path in paths:
        if path is not None and not Path(path).parent.is_dir():
            raise ConfigError(f"folder of {path} does not exist; create it first")


def _score_all(
    scenes: Sequence[str | os.PathLike[str]],
    pairs: Sequence[tuple[str | os.PathLike[str], str | os.PathLike[str]]],
    degradations: Sequence[str],
    crop: _CropOptions,
    job: _Job,
) -> list[SceneResult]:
    """Every scene under every degradation, then every pair, in a scratch folder and with
    the GDAL settings of remote sources."""
    results: list[SceneResult] = []
    sources = [*scenes, *(source for pair in pairs for source in pair)]
    with (
        tempfile.TemporaryDirectory(prefix="geosr-evaluate-") as tmp,
        remote_env([dataset_name(source) for source in sources]),
    ):
        work = Path(tmp)
        for scene in scenes:
            hr, profile, info = _read_hr(
                scene, job.scale, crop.max_size, crop.bands, crop.holdout, crop.patch
            )
            for kind in degradations:
                lr = _degrade(hr, info.nodata, job.scale, kind, profile["dtype"])
                _score_one(results, job, work, kind, (lr, hr, profile, info))
        for lr_source, hr_source in pairs:
            lr, hr, profile, info = _read_pair(lr_source, hr_source, job.scale, crop.bands)
            _score_one(results, job, work, "pair", (lr, hr, profile, info))
    return results


def _score_one(
    results: list[SceneResult],
    job: _Job,
    work: Path,
    kind: str,
    scene: tuple[np.ndarray, np.ndarray, dict, RasterInfo],
) -> None:
    """Score one scene under one degradation (``kind``; ``"pair"``: as given) into
    ``results``, with the bands its figures draw as RGB; the model warms up before the first."""
    lr, hr, profile, info = scene
    if not results:
        _warm_up(lr, profile, info.nodata, job.variants[0], work, job.options)
    result = _score(
        _scene_name(info), kind, lr, hr, profile, info.nodata, job.variants, work, job.options
    )
    result.display = info_display_bands(info)
    results.append(result)
    if job.progress:
        job.progress(len(results), job.total)


def _report(
    model: str | os.PathLike[str] | nn.Module,
    meta: ModelMeta,
    variants: Sequence[ModelVariant],
    strengths: Sequence[float] | None,
    tta: bool,
    preserve_spectra: bool,
    results: list[SceneResult],
) -> EvaluationReport:
    """The report: the model named by its file (or its own name), and the strengths run."""
    label = Path(model).name if isinstance(model, str | os.PathLike) else (meta.name or "model")
    plain = [v for v in variants if not (v.tta or v.preserve_spectra)]
    applied = None if strengths is None else tuple(v.net.strength for v in plain)
    return EvaluationReport(
        model=label,
        scale=meta.scale,
        results=results,
        strengths=applied,
        tta=tta,
        preserve_spectra=preserve_spectra,
    )
