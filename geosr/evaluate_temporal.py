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
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rasterio.enums import ColorInterp
from rasterio.errors import NodataShadowWarning
from rasterio.windows import Window
from scipy.ndimage import maximum_filter
from torch import nn

from geosr.checkpoint import model_meta
from geosr.errors import ConfigError, InputError
from geosr.evaluate import ModelVariant, model_variants
from geosr.figures import new_figure, png_bytes, write_atomic
from geosr.metrics import bicubic_upsample
from geosr.pipeline import upscale
from geosr.raster import open_raster
from geosr.sources import redact

if TYPE_CHECKING:
    from matplotlib.axes import Axes

log = logging.getLogger(__name__)

#: the requirement of issue #22: the model's change at most this times bicubic's
DEFAULT_LIMIT = 1.2
#: strengths scored by default for a model with a strength dial
DEFAULT_STRENGTHS = (0.0, 0.25, 0.5, 1.0)
#: share of pixels taken as stable when no threshold in DN is given
DEFAULT_STABLE_FRACTION = 0.05
#: largest grid offset, in pixels, still taken as a whole number of pixels
_GRID_TOLERANCE = 1e-3
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
    if stable_threshold is not None and not stable_threshold >= 0:
        raise ConfigError(f"the stable threshold is in DN, 0 or more; got {stable_threshold}")
    if not 0 < stable_fraction <= 1:
        raise ConfigError(f"the stable fraction is a share from 0 to 1; got {stable_fraction}")
    if stable_radius < 0:
        raise ConfigError(f"the stable radius is 0 or more pixels; got {stable_radius}")
    a, b = str(a), str(b)
    grid = _common_grid(a, b)
    variants = _variants(model, strengths, tta, preserve_spectra)
    scale = model_meta(variants[0].net).scale
    lr_a, lr_b, valid = grid.read()
    stable, threshold = _stable_pixels(
        lr_a, lr_b, valid, stable_threshold, stable_fraction, stable_radius
    )
    fine = np.repeat(np.repeat(stable, scale, axis=0), scale, axis=1)
    names = grid.band_names
    bic = (grid.bicubic(a, grid.window_a, scale), grid.bicubic(b, grid.window_b, scale))
    bicubic = _change("bicubic", None, False, *bic, fine, names)
    report = TemporalReport(
        a=redact(a),
        b=redact(b),
        model=_model_name(model, variants[0].net),
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
        valid_pixels=int(valid.sum()),
        stable_threshold=float(threshold),
        stable_radius=stable_radius,
        stable_fraction=None if stable_threshold is not None else stable_fraction,
        stable_pixels=int(stable.sum()),
        input_change={
            n: float(np.abs(lr_a[i] - lr_b[i])[stable].mean()) for i, n in enumerate(names)
        },
        bicubic=bicubic,
        methods=[],
    )
    outputs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    total = 2 * len(variants)
    with tempfile.TemporaryDirectory(prefix="geosr-temporal-") as scratch:
        folder = Path(work_dir) if work_dir is not None else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for i, variant in enumerate(variants):
            pair = []
            for j, (source, window) in enumerate(((a, grid.window_a), (b, grid.window_b))):
                log.info("upscaling %s (%s)", redact(source), variant.name)
                path = _upscaled(source, variant, folder, chunk_size, device, consistency)
                pair.append(_read_fine(path, window, scale))
                if progress is not None:
                    progress(2 * i + j + 1, total)
            method = _change(variant.name, _strength(variant), variant.tta, *pair, fine, names)
            method.ratio = method.overall / max(bicubic.overall, 1e-12)
            method.ratio_bands = {
                n: method.change[n] / max(bicubic.change[n], 1e-12) for n in names
            }
            method.passed = method.ratio <= limit
            report.methods.append(method)
            outputs[variant.name] = (pair[0], pair[1])
    if figure is not None or html_path is not None:
        report.figure_png = _figure(report, grid, lr_a, lr_b, stable, bic, outputs)
    _write_reports(report, json_path, figure, html_path)
    return report


# --- grids ---------------------------------------------------------------------------------------


@dataclass
class _Grid:
    window_a: Window
    window_b: Window
    offset: tuple[int, int]
    bounds: tuple[float, float, float, float]
    band_names: list[str]
    display: list[int]
    a: str
    b: str

    def read(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A's and B's footprint (bands, h, w) in float64 and where both are valid."""
        arrays, masks = [], []
        for source, window in ((self.a, self.window_a), (self.b, self.window_b)):
            with open_raster(source) as src:
                arrays.append(src.read(window=window).astype(np.float64))
                with warnings.catch_warnings():  # a nodata value and an alpha-like 4th band
                    warnings.simplefilter("ignore", NodataShadowWarning)
                    masks.append(src.dataset_mask(window=window) > 0)
        valid = masks[0] & masks[1]
        if not valid.any():
            raise InputError(
                f"{redact(self.a)} and {redact(self.b)} have no pixel valid on both dates in "
                "their common footprint; pass two rasters of the same place"
            )
        return arrays[0], arrays[1], valid

    def bicubic(self, source: str, window: Window, scale: int) -> np.ndarray:
        """Bicubic upsampling of the whole file, cut to ``window`` (read with a 2-pixel margin,
        edge pixels replicated at the file's edges as the whole-file upsampling does), rounded
        and clipped to the file's data type as a resampled file would be."""
        margin = 2
        with open_raster(source) as src:
            top, left = max(window.row_off - margin, 0), max(window.col_off - margin, 0)
            bottom = min(window.row_off + window.height + margin, src.height)
            right = min(window.col_off + window.width + margin, src.width)
            data = src.read(window=Window(left, top, right - left, bottom - top))
            dtype = np.dtype(src.dtypes[0])
        pads = (
            (0, 0),
            (margin - (window.row_off - top), margin - (bottom - window.row_off - window.height)),
            (margin - (window.col_off - left), margin - (right - window.col_off - window.width)),
        )
        padded = np.pad(data.astype(np.float64), pads, mode="edge")
        up = bicubic_upsample(padded, scale)
        cut = margin * scale
        up = up[:, cut : up.shape[1] - cut, cut : up.shape[2] - cut]
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            up = np.clip(np.rint(up), info.min, info.max)
        return up


def _common_grid(a: str, b: str) -> _Grid:
    """The two rasters' common footprint on A's grid, B's grid shifted by whole pixels."""
    with open_raster(a) as sa, open_raster(b) as sb:
        ta, tb = sa.transform, sb.transform
        name_a, name_b = redact(a), redact(b)
        if sa.crs is None or sb.crs is None:
            raise InputError(
                f"{name_a if sa.crs is None else name_b} has no CRS; temporal evaluation "
                "needs two georeferenced rasters of the same place"
            )
        if sa.crs != sb.crs:
            raise InputError(
                f"{name_a} and {name_b} are in different CRS ({sa.crs.to_string()} and "
                f"{sb.crs.to_string()}); reproject B onto A's grid first, e.g. " + _warp_hint(sa, b)
            )
        if ta.b or ta.d or tb.b or tb.d:
            raise InputError(
                f"{name_a if ta.b or ta.d else name_b} has a rotated grid; warp it north-up "
                "onto the other's grid first, e.g. " + _warp_hint(sa, b)
            )
        if not (math.isclose(ta.a, tb.a, rel_tol=1e-6) and math.isclose(ta.e, tb.e, rel_tol=1e-6)):
            raise InputError(
                f"{name_a} and {name_b} have different pixel sizes ({ta.a:g} x {-ta.e:g} and "
                f"{tb.a:g} x {-tb.e:g}); resample B onto A's grid first, e.g. " + _warp_hint(sa, b)
            )
        if sa.count != sb.count:
            raise InputError(
                f"{name_a} has {sa.count} bands and {name_b} {sb.count}; pass two rasters "
                "with the same bands"
            )
        col, row = (tb.c - ta.c) / ta.a, (tb.f - ta.f) / ta.e
        if abs(col - round(col)) > _GRID_TOLERANCE or abs(row - round(row)) > _GRID_TOLERANCE:
            raise InputError(
                f"the grid of {name_b} is offset from {name_a}'s by {col:+.3f} columns and "
                f"{row:+.3f} rows (x {tb.c - ta.c:+.12g}, y {tb.f - ta.f:+.12g} in CRS units), "
                "not whole pixels, so their pixels do not cover the same ground; "
                "resample B onto A's grid first, e.g. " + _warp_hint(sa, b)
            )
        col0, row0 = round(col), round(row)
        top, left = max(0, row0), max(0, col0)
        bottom, right = min(sa.height, row0 + sb.height), min(sa.width, col0 + sb.width)
        if bottom <= top or right <= left:
            raise InputError(f"{name_a} and {name_b} do not overlap; pass two rasters of one place")
        window_a = Window(left, top, right - left, bottom - top)
        window_b = Window(left - col0, top - row0, right - left, bottom - top)
        west, north = ta * (left, top)
        east, south = ta * (right, bottom)
        names = [d or f"band {i + 1}" for i, d in enumerate(sa.descriptions)]
        return _Grid(
            window_a,
            window_b,
            (row0, col0),
            (west, min(south, north), east, max(south, north)),
            names,
            _display_bands(sa.colorinterp),
            a,
            b,
        )


def _warp_hint(src: Any, b: str) -> str:
    left, bottom, right, top = src.bounds
    crs = src.crs.to_string() if src.crs is not None else "EPSG:...."
    return (
        f"gdalwarp -t_srs {crs} -tr {src.transform.a:.12g} {-src.transform.e:.12g} "
        f"-te {left:.12g} {bottom:.12g} {right:.12g} {top:.12g} -r cubic {b} B_on_A.tif, "
        "and pass B_on_A.tif"
    )


def _display_bands(colorinterp: Sequence[ColorInterp]) -> list[int]:
    order = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
    if all(c in colorinterp for c in order):
        return [list(colorinterp).index(c) for c in order]
    count = len(colorinterp)
    return [0, 1, 2] if count >= 3 else [0]


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


# --- reports -------------------------------------------------------------------------------------


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
    pixels that are not stable), and the ratio against strength."""
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
    bands = grid.display
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
        f"changed input), max over bands, DN 0-{top:.0f}",
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
