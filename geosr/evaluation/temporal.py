"""``geosr evaluate --temporal A B``: is the output stable where the input did not change?

Two rasters of one place on two dates are upscaled as a user would upscale them: each whole
file through :func:`geosr.upscale` (per-scene normalisation, chunking, the consistency
projection), at each strength asked for, and by bicubic upsampling (rounded to the input's
data type, as a resampled file would be). On the fine pixels of the input pixels that barely
changed, the output's date-to-date change is compared with bicubic's:

- **common footprint**: the two rasters must share CRS and pixel size, and their grids must
  be offset by whole pixels (B is then shifted onto A's grid, no resampling); a grid offset
  by a fraction of a pixel is refused with the ``gdalwarp`` command that puts B on A's grid.
  Only pixels valid on both dates count.
- **barely changed** (*stable*) input pixels: those whose largest absolute change over the
  bands, in DN, is at most the threshold in the pixel and in its neighbours within
  ``radius`` pixels (default 1: the 3 x 3 neighbourhood, since an upscaler, bicubic too,
  draws each fine pixel from its neighbours as well). The threshold is ``stable_threshold``
  DN when given, else the data's own: the ``stable_fraction`` quantile (default 0.05, the 5 %
  of pixels that changed least) of that neighbourhood change. Raw DNs, no radiometric
  matching between the dates: the two inputs as given.
- **change**: the mean absolute difference ``|X(A) - X(B)|`` in DN over the stable fine
  pixels, per band and over all bands, for X = the model at each strength and X = bicubic;
  the **ratio** is the model's over bicubic's. The requirement of issue #22 is a ratio of at
  most 1.2 at every strength (``limit``).

The report is a text table, a JSON file and an HTML page or PNG figure with crops of A, B,
their outputs and the change maps, and the ratio against strength.

The steps live beside this module: :mod:`~geosr.evaluation.temporal_grid` (the common
footprint) and :mod:`~geosr.evaluation.temporal_report` (what is kept, the table, JSON, HTML
and figure).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.windows import Window
from scipy.ndimage import maximum_filter
from torch import nn

from geosr.checkpoint import model_meta
from geosr.engine import upscale
from geosr.errors import ConfigError, InputError
from geosr.evaluation.baselines import ModelVariant, model_variants
from geosr.evaluation.temporal_grid import _common_grid, _Grid
from geosr.evaluation.temporal_report import (
    TemporalMethod,
    TemporalReport,
    _figure,
    _write_reports,
)
from geosr.raster import open_raster
from geosr.sources import redact

log = logging.getLogger(__name__)

#: the requirement of issue #22: the model's change at most this times bicubic's
DEFAULT_LIMIT = 1.2
#: strengths scored by default for a model with a strength dial
DEFAULT_STRENGTHS = (0.0, 0.25, 0.5, 1.0)
#: share of pixels taken as stable when no threshold in DN is given
DEFAULT_STABLE_FRACTION = 0.05


def evaluate_temporal(
    a: str | os.PathLike[str],
    b: str | os.PathLike[str],
    model: str | os.PathLike[str] | nn.Module = "srgan",
    *,
    strengths: Sequence[float] | None = None,
    tta: bool = False,
    preserve_spectra: bool = False,
    stable_threshold: float | None = None,
    stable_fraction: float = DEFAULT_STABLE_FRACTION,
    stable_radius: int = 1,
    limit: float = DEFAULT_LIMIT,
    chunk_size: int | None = None,
    device: str = "auto",
    consistency: bool = True,
    json_path: Path | None = None,
    figure: Path | None = None,
    html_path: Path | None = None,
    work_dir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TemporalReport:
    """Compare the date-to-date change of ``model``'s outputs with bicubic's on the pixels of
    ``a`` and ``b`` (two dates of one place) that barely changed (see the module docstring).

    Args:
        strengths: for a model with a strength dial; default 0, 0.25, 0.5 and 1 (a model
            without a dial runs once).
        tta: score each strength with the x8 self-ensemble too.
        preserve_spectra: score each strength above 0 keeping strength 0's band ratios too.
        stable_threshold: largest change in DN of a stable pixel; default the
            ``stable_fraction`` quantile of the changes.
        stable_radius: neighbours, in pixels, that must be stable too (0: the pixel alone).
        work_dir: where the upscaled files go (and are reused from, by name: the source's
            stem and the method); default a temporary folder removed afterwards.
    """
    _check_stable(stable_threshold, stable_fraction, stable_radius)
    a, b = str(a), str(b)
    grid = _common_grid(a, b)
    variants = _variants(model, strengths, tta, preserve_spectra)
    scale = model_meta(variants[0].net).scale
    dates = _read_dates(grid, scale, stable_threshold, stable_fraction, stable_radius)
    bic = (grid.bicubic(a, grid.window_a, scale), grid.bicubic(b, grid.window_b, scale))
    report = _new_report(grid, dates, _model_name(model, variants[0].net), scale, limit, bic)
    run = _Run(chunk_size, device, consistency, work_dir, progress)
    outputs = _score_methods(report, grid, variants, dates.fine, run)
    if figure is not None or html_path is not None:
        report.figure_png = _figure(
            report, grid, dates.lr_a, dates.lr_b, dates.stable, bic, outputs
        )
    _write_reports(report, json_path, figure, html_path)
    return report


@dataclass
class _Dates:
    """The two dates on the common footprint (float64), where both are valid, the stable
    input pixels and their fine pixels, and how they were found: the threshold, the radius,
    and the fraction (None: the threshold was given)."""

    lr_a: np.ndarray
    lr_b: np.ndarray
    valid: np.ndarray
    stable: np.ndarray
    fine: np.ndarray
    threshold: float
    radius: int
    fraction: float | None


@dataclass(frozen=True)
class _Run:
    """How the model runs on each date, where its outputs go, and where progress goes."""

    chunk_size: int | None
    device: str
    consistency: bool
    work_dir: Path | None
    progress: Callable[[int, int], None] | None


def _check_stable(threshold: float | None, fraction: float, radius: int) -> None:
    """Refuse a negative threshold, a fraction outside (0, 1] and a negative radius."""
    if threshold is not None and not threshold >= 0:
        raise ConfigError(f"the stable threshold is in DN, 0 or more; got {threshold}")
    if not 0 < fraction <= 1:
        raise ConfigError(f"the stable fraction is a share from 0 to 1; got {fraction}")
    if radius < 0:
        raise ConfigError(f"the stable radius is 0 or more pixels; got {radius}")


def _read_dates(
    grid: _Grid, scale: int, threshold: float | None, fraction: float, radius: int
) -> _Dates:
    """Both dates read and their stable pixels found (:func:`_stable_pixels`)."""
    lr_a, lr_b, valid = grid.read()
    stable, found = _stable_pixels(lr_a, lr_b, valid, threshold, fraction, radius)
    fine = np.repeat(np.repeat(stable, scale, axis=0), scale, axis=1)
    share = None if threshold is not None else fraction
    return _Dates(lr_a, lr_b, valid, stable, fine, float(found), radius, share)


def _new_report(
    grid: _Grid,
    dates: _Dates,
    model: str,
    scale: int,
    limit: float,
    bic: tuple[np.ndarray, np.ndarray],
) -> TemporalReport:
    """The report before the model's methods are scored: the footprint, the stable pixels
    and bicubic's change."""
    names = grid.band_names
    stable = dates.stable
    return TemporalReport(
        a=redact(grid.a),
        b=redact(grid.b),
        model=model,
        scale=scale,
        limit=limit,
        offset=grid.offset,
        window=(
            grid.window_a.row_off,
            grid.window_a.col_off,
            grid.window_a.height,
            grid.window_a.width,
        ),
        bounds=grid.bounds,
        band_names=names,
        valid_pixels=int(dates.valid.sum()),
        stable_threshold=dates.threshold,
        stable_radius=dates.radius,
        stable_fraction=dates.fraction,
        stable_pixels=int(stable.sum()),
        input_change={
            n: float(np.abs(dates.lr_a[i] - dates.lr_b[i])[stable].mean())
            for i, n in enumerate(names)
        },
        bicubic=_change("bicubic", None, False, *bic, dates.fine, names),
        methods=[],
    )


def _score_methods(
    report: TemporalReport,
    grid: _Grid,
    variants: Sequence[ModelVariant],
    fine: np.ndarray,
    run: _Run,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Upscale both dates with each method, add its change to ``report``, and return the
    outputs (on the common footprint's fine grid) by method."""
    outputs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    total = 2 * len(variants)
    with tempfile.TemporaryDirectory(prefix="geosr-temporal-") as scratch:
        folder = Path(run.work_dir) if run.work_dir is not None else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for i, variant in enumerate(variants):
            pair = []
            for j, (source, window) in enumerate(
                ((grid.a, grid.window_a), (grid.b, grid.window_b))
            ):
                log.info("upscaling %s (%s)", redact(source), variant.name)
                path = _upscaled(
                    source, variant, folder, run.chunk_size, run.device, run.consistency
                )
                pair.append(_read_fine(path, window, report.scale))
                if run.progress is not None:
                    run.progress(2 * i + j + 1, total)
            report.methods.append(_method(report, variant, pair[0], pair[1], fine))
            outputs[variant.name] = (pair[0], pair[1])
    return outputs


def _method(
    report: TemporalReport,
    variant: ModelVariant,
    sr_a: np.ndarray,
    sr_b: np.ndarray,
    fine: np.ndarray,
) -> TemporalMethod:
    """One method's change, its ratio to bicubic's (overall and per band) and the verdict."""
    names = report.band_names
    method = _change(variant.name, _strength(variant), variant.tta, sr_a, sr_b, fine, names)
    method.ratio = method.overall / max(report.bicubic.overall, 1e-12)
    method.ratio_bands = {n: method.change[n] / max(report.bicubic.change[n], 1e-12) for n in names}
    method.passed = method.ratio <= report.limit
    return method


# --- measurement ---------------------------------------------------------------------------------


def _stable_pixels(
    a: np.ndarray,
    b: np.ndarray,
    valid: np.ndarray,
    threshold: float | None,
    fraction: float,
    radius: int,
) -> tuple[np.ndarray, float]:
    change = np.abs(a - b).max(axis=0)
    change[~valid] = np.inf  # a pixel beside nodata is not known to be stable
    if radius > 0:
        change = maximum_filter(change, size=2 * radius + 1, mode="nearest")
    if threshold is None:
        known = change[np.isfinite(change)]
        if known.size == 0:
            raise InputError(
                "no pixel is valid on both dates with valid neighbours; pass rasters with more "
                "overlap or --stable-radius 0"
            )
        threshold = float(np.quantile(known, fraction, method="lower"))
    stable = change <= threshold
    if not stable.any():
        raise InputError(
            f"no pixel changed by at most {threshold:g} DN between the dates; raise "
            "--stable-threshold or leave it out (the least changed 5% then count)"
        )
    return stable, threshold


def _change(
    name: str,
    strength: float | None,
    tta: bool,
    x_a: np.ndarray,
    x_b: np.ndarray,
    fine: np.ndarray,
    names: list[str],
) -> TemporalMethod:
    diff = np.abs(x_a[:, fine] - x_b[:, fine])
    per_band = {n: float(diff[i].mean()) for i, n in enumerate(names)}
    return TemporalMethod(name, strength, tta, per_band, float(diff.mean()))


def _variants(
    model: str | os.PathLike[str] | nn.Module,
    strengths: Sequence[float] | None,
    tta: bool,
    preserve_spectra: bool,
) -> list[ModelVariant]:
    if strengths is None:
        plain = model_variants(model, None, tta, preserve_spectra)
        if getattr(plain[0].net, "endpoints", None) is not None:
            return model_variants(model, DEFAULT_STRENGTHS, tta, preserve_spectra)
        return plain
    return model_variants(model, strengths, tta, preserve_spectra)


def _strength(variant: ModelVariant) -> float | None:
    if getattr(variant.net, "endpoints", None) is None:
        return None
    return float(variant.net.strength)


def _model_name(model: Any, net: nn.Module) -> str:
    if isinstance(model, str | os.PathLike):
        return str(model)
    return model_meta(net).name or "model"


def _upscaled(
    source: str,
    variant: ModelVariant,
    folder: Path,
    chunk_size: int | None,
    device: str,
    consistency: bool,
) -> Path:
    stem = Path(source).stem or "input"
    meta = model_meta(variant.net)
    label = variant.name.replace(" ", "_").replace("+", "")
    path = folder / f"{stem}_{meta.name or 'model'}_{label}{'' if consistency else '_free'}.tif"
    if path.exists():
        return path
    upscale(
        source,
        path,
        model=variant.net,
        chunk_size=chunk_size,
        device=device,
        consistency=consistency,
        tta=variant.tta,
        preserve_spectra=variant.preserve_spectra,
        progress=False,
    )
    return path


def _read_fine(path: Path, window: Window, scale: int) -> np.ndarray:
    fine = Window(
        window.col_off * scale,
        window.row_off * scale,
        window.width * scale,
        window.height * scale,
    )
    with open_raster(path) as src:
        return src.read(window=fine).astype(np.float64)
