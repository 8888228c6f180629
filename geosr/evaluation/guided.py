"""``geosr evaluate --guided``: a guided model scored by Wald's protocol on held-out rows.

Each product is degraded by each stage's ratio as training degrades it
(:mod:`geosr.data.wald`); the held-out rows at the bottom (the fraction the model was
trained without, by default) are restored by the model, by bicubic upsampling and by a
classical baseline, and every band is scored against the product's real band:

- **high-pass injection** (every product): the guides' detail, weighted by a band-wise
  regression of the target on the low-passed guides, added to the bicubic upsampling of the
  target (a GLP/HPF-style fusion with regression gains, Aiazzi et al. 2006/2007);
- **GDAL's pansharpening** (products with a single guide, Landsat's pan band): GDAL's
  weighted Brovey (``VRTPansharpenedDataset``), on physical values (reflectance), with the
  guide weighted by the bands whose centre wavelength lies in its range.

Metrics (per band: PSNR, SSIM, RMSE and RMSE relative to bicubic; per stage: SAM, ERGAS and
consistency, the largest difference between a fine block's mean and its coarse pixel after
rounding) are computed on physical values where the product gives a scale, else on DNs.
PSNR and SSIM take the band's p1-p99 span as their range. The HTML report holds the tables
and crops of the most textured held-out area of each stage.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import math
import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
import torch.nn.functional as F
from affine import Affine

from geosr.aligner import model_name, resolve_guided
from geosr.checkpoint import load_guided
from geosr.consistency import project_block_means
from geosr.data.wald import WaldScene, load_scene, open_training_product
from geosr.errors import InputError, ModelError
from geosr.evaluation.rgb import DisplayBands, display_bands
from geosr.figures import new_figure
from geosr.metrics import ergas, psnr, sam, ssim
from geosr.models.guided import GuidedModel, guide_detail
from geosr.mtf import mtf_sigma

log = logging.getLogger(__name__)

#: "model" is what geosr writes (the consistency projection on); "model_unprojected" the same
#: net without it (consistency=False)
#: "consistent_bound" is the real band itself projected onto the degraded input: no output
#: that averages back to its input can score better (Wald's degradation is a Gaussian MTF,
#: not a block mean)
METHODS = (
    "model",
    "model_unprojected",
    "bicubic",
    "injection",
    "gdal_pansharpen",
    "consistent_bound",
)


@dataclass
class StageResult:
    """Scores of one stage of one product; ``bands`` maps method -> band -> metric -> value."""

    product: str
    stage: str
    ratio: int
    band_names: list[str]
    bands: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    overall: dict[str, dict[str, float]] = field(default_factory=dict)
    pixels: int = 0
    crops: bytes | None = None

    def rmse_ratio(self, method: str = "model") -> float:
        """Mean over bands of the method's RMSE over bicubic's."""
        return float(np.mean([self.bands[method][b]["rmse_vs_bicubic"] for b in self.band_names]))


@dataclass
class GuidedReport:
    model: str
    holdout: float
    stages: list[StageResult]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "holdout": self.holdout,
            "stages": [{k: v for k, v in vars(s).items() if k != "crops"} for s in self.stages],
        }

    def table(self) -> str:
        """Per-band tables as plain text (what the CLI prints)."""
        lines = []
        for s in self.stages:
            methods = [m for m in METHODS if m in s.bands]
            lines.append(
                f"{s.product} - stage {s.stage} (x{s.ratio}), {s.pixels} held-out fine pixels"
            )
            head = f"  {'band':<6}" + "".join(f"{m + ' PSNR':>24}" for m in methods)
            lines.append(head + "   RMSE/bicubic: " + " ".join(methods))
            for band in s.band_names:
                row = f"  {band:<6}" + "".join(
                    f"{s.bands[m][band]['psnr']:>24.2f}" for m in methods
                )
                ratios = " ".join(f"{s.bands[m][band]['rmse_vs_bicubic']:.3f}" for m in methods)
                lines.append(f"{row}   {ratios}")
            for m in methods:
                o = s.overall[m]
                lines.append(
                    f"  {m:<18} SAM {o['sam']:.5f} rad  ERGAS {o['ergas']:.3f}  "
                    f"RMSE/bicubic {o['rmse_vs_bicubic']:.3f}  consistency {o['consistency']:.3f}"
                )
        return "\n".join(lines)


def evaluate_guided(
    products: Sequence[str],
    model: str | os.PathLike[str] | GuidedModel = "auto",
    *,
    holdout: float | None = None,
    json_path: Path | None = None,
    html_path: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> GuidedReport:
    """Score a guided model on ``products`` by Wald's protocol (see the module docstring).

    Args:
        products: Sentinel-2 SAFE folders or ``.zip``, Landsat folders, STAC items, or
            folders of band files on several grids.
        model: ``"auto"`` (the bundled model that fits each product), a name or a file.
        holdout: fraction of rows at the bottom of each product to score; default the
            model's own held-out fraction (rows it never trained on).
    """
    if not products:
        raise InputError("no products to evaluate; pass Sentinel-2 or Landsat products")
    results: list[StageResult] = []
    names = []
    for done, source in enumerate(products):
        product = open_training_product(source)
        if product is None:
            raise InputError(
                f"{source} is not a product (Sentinel-2 SAFE, Landsat folder or MTL, STAC "
                "item, folder of band files on several grids); guided evaluation needs one"
            )
        net = (
            resolve_guided(model, product)
            if isinstance(model, str) and model == "auto"
            else (model if isinstance(model, GuidedModel) else load_guided(model))
        )
        if net is None:
            raise ModelError(f"no bundled guided model fits {product.label}; pass one with --model")
        names.append(model_name(net))
        fraction = net.meta.holdout if holdout is None else holdout
        for stage, config in net.meta.stages.items():
            scene = load_scene(source, stage, config, fraction, net.meta.mtf)
            if scene is None:
                continue
            results.append(_score_stage(scene, stage, net, product.label))
        if progress is not None:
            progress(done + 1, len(products))
    report = GuidedReport(
        ", ".join(dict.fromkeys(names)),
        holdout if holdout is not None else float("nan"),
        results,
    )
    if json_path is not None:
        Path(json_path).write_text(json.dumps(report.to_dict(), indent=2, default=float))
    if html_path is not None:
        Path(html_path).write_text(_html(report), encoding="utf-8")
    return report


def _score_stage(scene: WaldScene, stage: str, model: GuidedModel, label: str) -> StageResult:
    r, y = scene.ratio, scene.split
    lr = scene.lr_targets[:, y:]
    guides = scene.lr_guides[:, y * r :]
    truth = scene.targets[:, y * r :]
    present = scene.present
    inputs = (
        torch.from_numpy(lr)[None],
        torch.from_numpy(guides)[None],
        torch.from_numpy(present.astype(np.float32))[None],
        torch.from_numpy(scene.gains)[None],
    )
    with torch.inference_mode():
        free = model(stage, *inputs, project=False)
        out = project_block_means(free.clone(), inputs[0] * inputs[2][:, :, None, None], r)
    cubic = _bicubic(lr, r)
    preds = {
        "model": out[0].numpy(),
        "model_unprojected": free[0].numpy(),
        "bicubic": cubic,
        "injection": injection(lr, guides, r, scene),
        "consistent_bound": project_block_means(
            torch.from_numpy(truth.copy()), inputs[0][0] * inputs[2][0, :, None, None], r
        ).numpy(),
    }
    t = len(present)
    to_units = _units(scene)
    if len(scene.guide_names) == 1:
        preds["gdal_pansharpen"] = gdal_pansharpen(
            to_units(lr, "targets"), to_units(guides, "guides"), r, scene.wavelengths
        )
        preds["gdal_pansharpen"] = _from_units(scene, preds["gdal_pansharpen"])
    keep = np.flatnonzero(present)
    names = [scene.target_names[i] for i in keep]
    reference = to_units(truth, "targets")[keep]
    ranges = (scene.scales[:t] * np.abs(scene.unit_scales[:t]))[keep]
    result = StageResult(label, stage, r, names, pixels=int(reference[0].size))
    errors_bicubic = None
    for method, pred in preds.items():
        values = to_units(pred, "targets")[keep]
        rmse = np.sqrt(((values - reference) ** 2).reshape(len(keep), -1).mean(axis=1))
        if method == "bicubic":
            errors_bicubic = rmse
        result.bands[method] = {
            name: {
                "psnr": float(psnr(values[i], reference[i], ranges[i])),
                "ssim": float(ssim(values[i], reference[i], ranges[i])),
                "rmse": float(rmse[i]),
            }
            for i, name in enumerate(names)
        }
        dn = pred[keep] * scene.scales[:t][keep, None, None] + scene.offsets[:t][keep, None, None]
        lr_dn = lr[keep] * scene.scales[:t][keep, None, None] + scene.offsets[:t][keep, None, None]
        result.overall[method] = {
            "sam": float(sam(values, reference)),
            "ergas": float(ergas(values, reference, r)),
            "consistency": _consistency(np.rint(dn), lr_dn, r),
        }
    assert errors_bicubic is not None
    for method in result.bands:
        for name in names:
            band = result.bands[method][name]
            band["rmse_vs_bicubic"] = band["rmse"] / max(
                result.bands["bicubic"][name]["rmse"], 1e-12
            )
        result.overall[method]["rmse_vs_bicubic"] = result.rmse_ratio(method)
    shown = {m: to_units(p, "targets")[keep] for m, p in preds.items()}
    wavelengths = [scene.wavelengths[i] for i in keep]
    result.crops = _crops(reference, shown, display_bands(names, wavelengths=wavelengths), stage)
    return result


def _bicubic(lr: np.ndarray, ratio: int) -> np.ndarray:
    tensor = torch.from_numpy(np.ascontiguousarray(lr))[None]
    return F.interpolate(tensor, scale_factor=ratio, mode="bicubic", align_corners=False)[0].numpy()


def injection(lr: np.ndarray, guides: np.ndarray, ratio: int, scene: WaldScene) -> np.ndarray:
    """High-pass injection with regression gains: bicubic(target) plus the guides' detail
    (each guide minus its MTF low-pass) weighted by the scene's regression of the target on
    the low-passed guides (:func:`~geosr.models.guided.injection_gains`): the starting
    point of the guided net, without the net."""
    detail = guide_detail(torch.from_numpy(guides)[None], ratio, mtf_sigma(ratio, scene.mtf))[0]
    injected = torch.einsum("tg,ghw->thw", torch.from_numpy(scene.gains), detail).numpy()
    return _bicubic(lr, ratio) + injected


def gdal_pansharpen(
    lr: np.ndarray, pan: np.ndarray, ratio: int, wavelengths: Sequence[float | None]
) -> np.ndarray:
    """GDAL's pansharpening (weighted Brovey) of ``lr`` (T, h, w) with ``pan`` (1, h*r, w*r),
    both in physical units; weights 1 for bands inside the pan band's 0.50-0.68 um range."""
    inside = [w is not None and 0.50 <= w <= 0.68 for w in wavelengths]
    weights = [1.0 / max(sum(inside), 1) if flag else 0.0 for flag in inside]
    if not any(weights):
        weights = [1.0 / len(wavelengths)] * len(wavelengths)
    with tempfile.TemporaryDirectory(prefix="geosr-pansharpen-") as folder:
        ms_path, pan_path = Path(folder) / "ms.tif", Path(folder) / "pan.tif"
        fine = Affine(1.0, 0, 0, 0, -1.0, float(pan.shape[1]))
        _write(ms_path, lr, fine * Affine.scale(ratio))
        _write(pan_path, pan[:1], fine)
        root = ET.Element("VRTDataset", subClass="VRTPansharpenedDataset")
        options = ET.SubElement(root, "PansharpeningOptions")
        ET.SubElement(options, "AlgorithmOptions").append(
            _text("Weights", ",".join(map(repr, weights)))
        )
        ET.SubElement(options, "Resampling").text = "Cubic"
        panchro = ET.SubElement(options, "PanchroBand")
        panchro.append(_text("SourceFilename", str(pan_path), relativeToVRT="0"))
        panchro.append(_text("SourceBand", "1"))
        for band in range(len(lr)):
            spectral = ET.SubElement(options, "SpectralBand", dstBand=str(band + 1))
            spectral.append(_text("SourceFilename", str(ms_path), relativeToVRT="0"))
            spectral.append(_text("SourceBand", str(band + 1)))
        with rasterio.open(ET.tostring(root, encoding="unicode")) as src:
            return src.read().astype(np.float32)


def _text(tag: str, text: str, **attributes: str) -> ET.Element:
    element = ET.Element(tag, attributes)
    element.text = text
    return element


def _write(path: Path, data: np.ndarray, transform: Affine) -> None:
    profile = {
        "driver": "GTiff",
        "count": len(data),
        "height": data.shape[1],
        "width": data.shape[2],
        "dtype": "float32",
        "transform": transform,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data.astype(np.float32))


def _units(scene: WaldScene) -> Callable[[np.ndarray, str], np.ndarray]:
    """Normalised values -> physical values (DN x scale + offset; DNs without a scale)."""
    t = len(scene.present)

    def convert(values: np.ndarray, which: str) -> np.ndarray:
        part = slice(0, t) if which == "targets" else slice(t, None)
        dn = values * scene.scales[part, None, None] + scene.offsets[part, None, None]
        return dn * scene.unit_scales[part, None, None] + scene.unit_offsets[part, None, None]

    return convert


def _from_units(scene: WaldScene, values: np.ndarray) -> np.ndarray:
    t = len(scene.present)
    dn = (values - scene.unit_offsets[:t, None, None]) / scene.unit_scales[:t, None, None]
    return (dn - scene.offsets[:t, None, None]) / scene.scales[:t, None, None]


def _consistency(pred: np.ndarray, lr: np.ndarray, ratio: int) -> float:
    t, h, w = lr.shape
    means = pred.reshape(t, h, ratio, w, ratio).mean(axis=(2, 4))
    return float(np.abs(means - lr).max())


def _crops(
    reference: np.ndarray, preds: dict[str, np.ndarray], display: DisplayBands, stage: str
) -> bytes | None:
    """PNG: the most textured 96 x 96 held-out window of the first band, per method, in the
    bands ``display`` picks (red, green and blue where the stage restores them), each band
    stretched to its 1-99% in the reference; the title says which bands are drawn."""
    try:
        fig = new_figure(2.6 * (1 + len(preds)), 2.9)
    except ImportError:  # pragma: no cover
        return None
    band = reference[0]
    side = min(96, *band.shape)
    gy, gx = np.gradient(band)
    energy = np.hypot(gy, gx)
    best, where = -1.0, (0, 0)
    for y in range(0, band.shape[0] - side + 1, max(1, side // 4)):
        for x in range(0, band.shape[1] - side + 1, max(1, side // 4)):
            value = float(energy[y : y + side, x : x + side].mean())
            if value > best:
                best, where = value, (y, x)
    y, x = where
    bands = list(display.indices)
    low, high = np.percentile(reference[bands, y : y + side, x : x + side], (1, 99), axis=(1, 2))
    span = np.maximum(high - low, 1e-12)[:, None, None]
    panels = [("reference", reference), *preds.items()]
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, image) in zip(axes, panels, strict=True):
        crop = np.clip((image[bands, y : y + side, x : x + side] - low[:, None, None]) / span, 0, 1)
        ax.imshow(
            np.moveaxis(crop, 0, -1) if len(bands) == 3 else crop[0], cmap="gray", vmin=0, vmax=1
        )
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.suptitle(f"stage {stage}: {display.caption}", fontsize=10)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return buffer.getvalue()


def _html(report: GuidedReport) -> str:
    parts = [
        "<!doctype html><meta charset='utf-8'><title>geosr guided evaluation</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee}"
        ".best{font-weight:bold;color:#064}</style>",
        f"<h1>Guided super-resolution: {html.escape(report.model)}</h1>",
        "<p>Wald's protocol on held-out rows: each product degraded by the stage's ratio "
        "(Gaussian MTF, decimation), restored, and scored against its real bands.</p>",
    ]
    for s in report.stages:
        methods = [m for m in METHODS if m in s.bands]
        parts.append(
            f"<h2>{html.escape(s.product)}: stage {html.escape(s.stage)} (x{s.ratio})</h2>"
        )
        head = "".join(
            f"<th>{m} PSNR</th><th>{m} SSIM</th><th>{m} RMSE/bicubic</th>" for m in methods
        )
        parts.append(f"<table><tr><th>band</th>{head}</tr>")
        for band in s.band_names:
            best = min(methods, key=lambda m: s.bands[m][band]["rmse"])
            cells = "".join(
                f"<td{' class=best' if m == best else ''}>{s.bands[m][band]['psnr']:.2f}</td>"
                f"<td>{s.bands[m][band]['ssim']:.4f}</td>"
                f"<td>{s.bands[m][band]['rmse_vs_bicubic']:.3f}</td>"
                for m in methods
            )
            parts.append(f"<tr><td>{band}</td>{cells}</tr>")
        parts.append(
            "</table><table><tr><th>method</th><th>SAM (rad)</th><th>ERGAS</th>"
            "<th>RMSE/bicubic</th><th>consistency (DN)</th></tr>"
        )
        for m in methods:
            o = s.overall[m]
            parts.append(
                f"<tr><td>{m}</td><td>{o['sam']:.5f}</td><td>{o['ergas']:.3f}</td>"
                f"<td>{o['rmse_vs_bicubic']:.3f}</td><td>{o['consistency']:.3f}</td></tr>"
            )
        parts.append("</table>")
        if s.crops:
            data = base64.b64encode(s.crops).decode()
            parts.append(
                f"<img alt='crops of stage {html.escape(s.stage)}' src='data:image/png;base64,{data}'>"
            )
    return "\n".join(parts)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
