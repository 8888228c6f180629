"""The guided aligner: a product's coarse bands brought to its finest grid by a guided model
(:mod:`geosr.models.guided`), with the product's sharper bands as guides.

Each guided band is a lazy dask array read block by block like any band: a block of the
fine grid reads its coarse window with a halo of the net's receptive radius (coarse pixels)
and its guides' window with that halo times the ratio (their own pixels), mirrored where the
window leaves the product, so a chunked result equals the whole one. Normalisation uses
statistics of the whole product, never of a block. After the net, the consistency projection
runs again on raster values with the dtype's limits, so clipping and rounding keep every
fine block within half a DN of its coarse pixel. Bands no stage covers stay with the cubic
aligner (:mod:`geosr.products.vrt`).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
import rasterio
import torch
from rasterio.windows import Window

from geosr.checkpoint import bundled_models, is_guided, load_guided
from geosr.errors import InputError, ModelError
from geosr.models.guided import GuidedModel, injection_gains
from geosr.products import Product
from geosr.products.guided import StageBands, nested_grid, stage_bands
from geosr.products.model import Grid
from geosr.products.vrt import aligned_vrt, common_dtype
from geosr.raster import QualitySource

log = logging.getLogger(__name__)

#: Bundled guided models ``guided="auto"`` tries, in order; the first whose stages fit wins.
AUTO_MODELS = ("s2-guided", "landsat-pan")


def resolve_guided(guided: Any, product: Product | None) -> GuidedModel | None:
    """The guided model to use for ``product``: ``"auto"`` (a bundled one whose bands the
    product has, else none), ``None``/``"none"`` (cubic only), a name or file, or a model."""
    if product is None or guided is None or guided == "none":
        return None
    if isinstance(guided, GuidedModel):
        return guided
    if guided != "auto":
        if not isinstance(guided, str | os.PathLike):
            raise ModelError(
                f"guided={guided!r} is not a guided model; pass 'auto', None, a bundled name "
                "(s2-guided, landsat-pan) or a .safetensors file"
            )
        return load_guided(guided)
    for name in AUTO_MODELS:
        if name not in bundled_models() or not is_guided(name):
            continue
        model = load_guided(name)
        try:
            if guided_stages(product, model):
                return model
        except InputError as exc:
            log.info("guided model %s does not fit %s: %s", name, product.label, exc)
    return None


def guided_stages(product: Product, model: GuidedModel) -> list[StageBands]:
    """The stages of ``model`` that ``product`` has targets for, on one fine grid.

    Raises:
        InputError: a missing guide, a guide on another footprint, a ratio the model does not
            do (:func:`~geosr.products.guided.stage_bands`), or stages on different grids.
    """
    name = model_name(model)
    stages = []
    for stage, config in model.meta.stages.items():
        bands = stage_bands(product, stage, config, name)
        if bands is not None:
            stages.append(bands)
    for other in stages[1:]:
        if not other.fine.same_as(stages[0].fine):
            raise InputError(
                f"the stages of guided model {name} reach different grids in {product.label}; "
                "its guides must lie on one grid"
            )
    return stages


def model_name(model: GuidedModel) -> str:
    return model.meta.name or "(unnamed guided model)"


def guided_label(
    model: GuidedModel,
    stages: Sequence[StageBands],
    selected: Sequence[str],
    cubic: Sequence[str],
) -> str:
    """The GEOSR_ALIGNER tag: which of the ``selected`` bands the guided model made, from
    which guides, and which stayed cubic."""
    parts = []
    for s in stages:
        made = [b.name for b in s.targets if b is not None and b.name in selected]
        if made:
            guides = " ".join(g.name for g in s.guides)
            parts.append(f"{' '.join(made)} x{s.ratio} guided by {guides}")
    text = f"guided {model_name(model)} ({'; '.join(parts)})"
    return text + (f"; cubic: {' '.join(cubic)}" if cubic else "")


def output_grid(stages: Sequence[StageBands]) -> Grid:
    return stages[0].fine


def chunk_multiple(stages: Sequence[StageBands]) -> int:
    """Fine chunks must be whole coarse pixels of every stage."""
    return math.lcm(*(s.ratio for s in stages))


def guided_arrays(
    stages: Sequence[StageBands],
    model: GuidedModel,
    chunk: int,
    device: torch.device,
    label: str,
    consistency: bool = True,
    quality: Sequence[QualitySource] = (),
) -> dict[str, da.Array]:
    """Each present target of ``stages`` as a lazy (y, x) array on the fine grid, in its own
    dtype, chunked ``chunk`` (a multiple of every ratio); ``consistency``: every fine block
    averages to its coarse pixel (the projection). Pixels the ``quality`` bands (on the fine
    grid) mask reach neither the net nor the statistics, like nodata."""
    arrays: dict[str, da.Array] = {}
    for bands in stages:
        reader = GuidedReader(bands, model, device, label, consistency, quality)
        blocks = da.from_array(
            reader,
            chunks=(len(reader.names), chunk, chunk),
            lock=False,
            asarray=True,
            fancy=False,
            name=f"geosr-guided-{reader.token(chunk)}",
        )
        for i, name in enumerate(reader.names):
            arrays[name] = blocks[i]
    return arrays


@dataclass
class _Stats:
    offset: np.ndarray
    scale: np.ndarray


class GuidedReader:
    """Array-like (targets, y, x) on the fine grid whose windows run the guided net; what
    :func:`dask.array.from_array` reads from. Picklable: workers get the VRTs and the net."""

    def __init__(
        self,
        bands: StageBands,
        model: GuidedModel,
        device: torch.device,
        label: str,
        consistency: bool = True,
        quality: Sequence[QualitySource] = (),
    ) -> None:
        from geosr.engine.radiometry import output_limits
        from geosr.engine.stats import scene_statistics
        from geosr.raster import decimated_shape

        self.ratio = bands.ratio
        self.consistency = consistency
        self.quality = tuple(quality)
        self.net = model.stages[bands.stage]
        self.device = device
        self.label = label
        self.present = np.array(bands.present)
        targets = [b for b in bands.targets if b is not None]
        self.names = [b.name for b in targets]
        self.dtype = np.dtype(common_dtype(targets))
        nodatas = {b.nodata for b in targets}
        self.nodata = targets[0].nodata if len(nodatas) == 1 else None
        self.limits = output_limits(self.dtype, self.nodata)
        self.coarse_vrt = aligned_vrt(targets, bands.coarse, dtype="float32", nodata=None, tags={})
        self.guide_vrt = aligned_vrt(
            bands.guides, bands.fine, dtype="float32", nodata=None, tags={}
        )
        self.guide_nodata = [g.nodata for g in bands.guides]
        self.target_nodata = [b.nodata for b in targets]
        self.coarse = (bands.coarse.height, bands.coarse.width)
        self.shape = (
            len(targets),
            bands.coarse.height * self.ratio,
            bands.coarse.width * self.ratio,
        )
        self.ndim = 3
        self.halo = self.net.receptive_radius()
        percentiles = model.meta.normalization.percentiles
        stats = []
        for vrt, nodata_values, grid in (
            (self.coarse_vrt, self.target_nodata, bands.coarse),
            (self.guide_vrt, self.guide_nodata, bands.fine),
        ):
            with rasterio.open(vrt) as src:
                shape = decimated_shape(grid.height, grid.width, 1_000_000)
                sample = src.read(out_shape=(src.count, *shape))
            clear = self._clear_sample(shape)
            per_band = [
                scene_statistics(sample[i : i + 1], nodata, percentiles, clear)
                for i, nodata in enumerate(nodata_values)
            ]
            stats.append(
                _Stats(
                    np.array([s.offset[0] for s in per_band], np.float32),
                    np.array([s.scale[0] for s in per_band], np.float32),
                )
            )
        self.target_stats, self.guide_stats = stats
        self.gains = self._scene_gains()

    def _clear_sample(self, shape: tuple[int, int]) -> np.ndarray | None:
        """Where the quality bands mask nothing, decimated to ``shape`` (nearest)."""
        clear = None
        for source in self.quality:
            with rasterio.open(source.name) as src:
                flags = src.read(1, out_shape=shape)
            ok = ~source.rule.masked(flags)
            clear = ok if clear is None else clear & ok
        return clear

    def _masked(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Fine pixels of a (mirrored) window that the quality bands mask."""
        shape = (self.shape[1], self.shape[2])
        masked = np.zeros((y1 - y0, x1 - x0), bool)
        for source in self.quality:
            flags = _read_mirrored(source.name, y0, y1, x0, x1, shape)[0]
            masked |= source.rule.masked(flags)
        return masked

    def _scene_gains(self) -> np.ndarray:
        """:func:`~geosr.models.guided.injection_gains` of the product, fitted on up to four
        windows of 256 coarse pixels spread over it (side by side, as one image)."""
        h, w = self.coarse
        side_y, side_x = min(h, 256), min(w, 256)
        starts_y = sorted({0, (h - side_y) // 3, 2 * (h - side_y) // 3, h - side_y})[:2]
        starts_x = sorted({(w - side_x) // 3, 2 * (w - side_x) // 3})
        coarse, guides = [], []
        r = self.ratio
        for y in starts_y:
            for x in starts_x:
                c = _read_mirrored(self.coarse_vrt, y, y + side_y, x, x + side_x, self.coarse)
                g = _read_mirrored(
                    self.guide_vrt, y * r, (y + side_y) * r, x * r, (x + side_x) * r, (h * r, w * r)
                )
                masked = self._masked(y * r, (y + side_y) * r, x * r, (x + side_x) * r)
                bad_c = _invalid(c, self.target_nodata)
                bad_g = _invalid(g, self.guide_nodata) | masked[None]
                blocks = bad_g.any(axis=0).reshape(side_y, r, side_x, r).any(axis=(1, 3))
                valid = ~bad_c.any(axis=0) & ~blocks
                c = _normalise(c, self.target_stats, bad_c)
                c[:, ~valid] = np.nan
                coarse.append(c)
                guides.append(_normalise(g, self.guide_stats, bad_g))
        c = np.concatenate(coarse, axis=2)
        g = np.concatenate(guides, axis=2)
        valid = torch.from_numpy(np.isfinite(c).all(axis=0))
        gains = injection_gains(
            torch.from_numpy(np.nan_to_num(c)), torch.from_numpy(g), r, self.net.config.mtf, valid
        )
        full = np.zeros((len(self.present), g.shape[0]), np.float32)
        full[self.present] = gains.numpy()
        return full

    def token(self, chunk: int) -> str:
        digest = hashlib.sha1()
        for key, value in sorted(self.net.state_dict().items()):
            digest.update(key.encode())
            digest.update(value.detach().cpu().numpy().tobytes())
        digest.update(self.coarse_vrt.encode())
        digest.update(self.guide_vrt.encode())
        digest.update(f"{chunk}".encode())
        return digest.hexdigest()[:24]

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        bands, rows, cols = key
        r = self.ratio
        y0, y1 = rows.start or 0, rows.stop if rows.stop is not None else self.shape[1]
        x0, x1 = cols.start or 0, cols.stop if cols.stop is not None else self.shape[2]
        if y0 % r or x0 % r or (y1 % r and y1 != self.shape[1]) or (x1 % r and x1 != self.shape[2]):
            raise InputError(f"guided blocks must be whole coarse pixels, got rows {y0}:{y1}")
        block = self._block(y0 // r, -(-y1 // r), x0 // r, -(-x1 // r))
        return block[bands, : y1 - y0, : x1 - x0]

    def _block(self, cy0: int, cy1: int, cx0: int, cx1: int) -> np.ndarray:
        from geosr.engine.radiometry import project_consistent

        r, halo = self.ratio, self.halo
        coarse = _read_mirrored(
            self.coarse_vrt, cy0 - halo, cy1 + halo, cx0 - halo, cx1 + halo, self.coarse
        )
        guides = _read_mirrored(
            self.guide_vrt,
            (cy0 - halo) * r,
            (cy1 + halo) * r,
            (cx0 - halo) * r,
            (cx1 + halo) * r,
            (self.coarse[0] * r, self.coarse[1] * r),
        )
        invalid_coarse = _invalid(coarse, self.target_nodata)
        invalid_guides = _invalid(guides, self.guide_nodata)
        if self.quality:
            masked = self._masked(
                (cy0 - halo) * r, (cy1 + halo) * r, (cx0 - halo) * r, (cx1 + halo) * r
            )
            invalid_guides |= masked[None]
            h, w = coarse.shape[1:]
            invalid_coarse |= masked.reshape(h, r, w, r).any(axis=(1, 3))[None]
        coarse_n = _normalise(coarse, self.target_stats, invalid_coarse)
        guides_n = _normalise(guides, self.guide_stats, invalid_guides)
        full = np.zeros((len(self.present), *coarse_n.shape[1:]), np.float32)
        full[self.present] = coarse_n
        with torch.inference_mode():
            net = self.net.to(self.device)
            out = net(
                torch.from_numpy(full)[None].to(self.device),
                torch.from_numpy(guides_n)[None].to(self.device),
                torch.from_numpy(self.present.astype(np.float32))[None].to(self.device),
                torch.from_numpy(self.gains)[None].to(self.device),
                project=False,
            )[0][torch.from_numpy(self.present)]
        stats = self.target_stats
        out = (
            out.cpu() * torch.from_numpy(stats.scale)[:, None, None]
            + torch.from_numpy(stats.offset)[:, None, None]
        )
        # the core: without the halo, projected again on raster values within the limits
        core = out[:, halo * r : out.shape[1] - halo * r, halo * r : out.shape[2] - halo * r]
        lr = torch.from_numpy(
            coarse[:, halo : coarse.shape[1] - halo, halo : coarse.shape[2] - halo]
        )
        if self.consistency:
            core = project_consistent(core.contiguous(), lr.contiguous(), r, *self.limits)
        values = core.numpy()
        if self.dtype.kind != "f":
            values = np.clip(values, *self.limits)
        bad = np.repeat(np.repeat(invalid_coarse, r, axis=1), r, axis=2)[
            :, halo * r : -halo * r or None, halo * r : -halo * r or None
        ]
        bad = (
            bad
            | invalid_guides.any(axis=0)[
                None, halo * r : -halo * r or None, halo * r : -halo * r or None
            ]
        )
        if self.dtype.kind != "f":
            values = np.rint(values)
        fill = self.nodata if self.nodata is not None else (np.nan if self.dtype.kind == "f" else 0)
        values[bad] = fill
        return values.astype(self.dtype)


def _read_mirrored(
    vrt: str, y0: int, y1: int, x0: int, x1: int, shape: tuple[int, int]
) -> np.ndarray:
    """Window rows y0:y1, cols x0:x1 of a VRT, mirrored (symmetric) where it leaves it."""
    height, width = shape
    ry0, ry1, rx0, rx1 = max(y0, 0), min(y1, height), max(x0, 0), min(x1, width)
    with rasterio.open(vrt) as src:
        data = src.read(window=Window(rx0, ry0, rx1 - rx0, ry1 - ry0)).astype(np.float32)
    pad = ((0, 0), (ry0 - y0, y1 - ry1), (rx0 - x0, x1 - rx1))
    if any(p for pair in pad for p in pair):
        data = _symmetric_pad(data, pad)
    return data


def _symmetric_pad(data: np.ndarray, pad: tuple[tuple[int, int], ...]) -> np.ndarray:
    # np.pad's symmetric mode mirrors at most the array's size per call: repeat for thin windows
    while any(p for pair in pad for p in pair):
        step = tuple((min(a, s), min(b, s)) for (a, b), s in zip(pad, data.shape, strict=True))
        data = np.pad(data, step, mode="symmetric")
        pad = tuple((a - sa, b - sb) for (a, b), (sa, sb) in zip(pad, step, strict=True))
    return data


def _invalid(data: np.ndarray, nodata: Sequence[float | None]) -> np.ndarray:
    bad = ~np.isfinite(data)
    for i, value in enumerate(nodata):
        if value is not None and not math.isnan(value):
            bad[i] |= data[i] == value
    return bad


def _normalise(data: np.ndarray, stats: _Stats, invalid: np.ndarray) -> np.ndarray:
    out = (data - stats.offset[:, None, None]) / stats.scale[:, None, None]
    out[invalid] = 0.0
    return out.astype(np.float32)


__all__ = [
    "AUTO_MODELS",
    "GuidedReader",
    "chunk_multiple",
    "guided_arrays",
    "guided_label",
    "guided_stages",
    "nested_grid",
    "output_grid",
    "resolve_guided",
]
