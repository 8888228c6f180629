"""Training pairs for guided super-resolution by Wald's protocol.

No finer reference exists for a product's coarse bands, so the whole product is degraded by
the ratio, guides and targets alike: the sensor's MTF as a Gaussian whose gain at the
degraded grid's Nyquist frequency is ``mtf`` (:func:`geosr.data.degradations.gaussian`),
then decimation. The net learns to restore the targets from their degraded versions with
the degraded guides, and the real targets are the reference. Scale invariance (what holds
from 40 to 20 m holds from 20 to 10 m) is the protocol's assumption (Wald et al. 1997;
DSen2, Lanaras et al. 2018).

The bottom ``holdout`` of each product's rows never reaches training: validation and
``geosr evaluate --guided`` score those rows.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from geosr.data.degradations import gaussian, mtf_sigma
from geosr.errors import ConfigError, InputError
from geosr.models.guided import GuidedConfig, injection_gains
from geosr.products import Product, open_product
from geosr.products.guided import StageBands, read_band, stage_bands
from geosr.products.landsat import find_mtl
from geosr.products.sentinel2 import find_metadata
from geosr.raster import DEFAULT_STATS_PIXELS

log = logging.getLogger(__name__)

PERCENTILES = (1.0, 99.0)
RASTER_SUFFIXES = {".jp2", ".tif", ".tiff"}


@dataclass
class WaldScene:
    """One product's bands for one stage, normalised, with their degraded versions.

    ``targets`` (T, h, w) on the coarse grid and ``guides`` (G, h*r, w*r) on the nested
    grid are the reference; ``lr_targets`` (T, h/r, w/r) and ``lr_guides`` (G, h, w) are
    the degraded inputs. ``present`` (T,) marks the targets the product has; ``split`` is the
    first held-out row of ``lr_targets``.
    """

    name: str
    ratio: int
    targets: np.ndarray
    guides: np.ndarray
    lr_targets: np.ndarray
    lr_guides: np.ndarray
    present: np.ndarray
    offsets: np.ndarray  # per band, targets then guides: x_norm = (x - offset) / scale
    scales: np.ndarray
    split: int
    mtf: float
    target_names: list[str]
    guide_names: list[str]
    unit_scales: np.ndarray  # per band, targets then guides: physical = DN * scale + offset
    unit_offsets: np.ndarray
    wavelengths: list[float | None]  # of the targets, micrometres
    gains: np.ndarray  # (T, G): injection_gains of the degraded scene

    @property
    def lr_shape(self) -> tuple[int, int]:
        return self.lr_targets.shape[-2], self.lr_targets.shape[-1]


def degrade(array: np.ndarray, ratio: int, mtf: float) -> np.ndarray:
    """(C, H, W) -> (C, H/r, W/r): the Gaussian MTF of gain ``mtf`` at the degraded grid's
    Nyquist frequency, then decimation (kept pixel-area aligned)."""
    tensor = torch.from_numpy(np.ascontiguousarray(array, np.float32))[None]
    return gaussian(tensor, ratio, sigma=mtf_sigma(ratio, mtf))[0].numpy()


def load_scene(
    source: str, stage: str, config: GuidedConfig, holdout: float, mtf: float
) -> WaldScene | None:
    """``source``'s bands for ``stage``, degraded; None when it has none of the stage's
    targets (a product may serve one stage and not another)."""
    product = open_training_product(source)
    if product is None:
        raise InputError(
            f"{source} is not a product (Sentinel-2 SAFE, Landsat folder or MTL, STAC item); "
            "guided training learns from a product's bands on several grids"
        )
    bands = stage_bands(product, stage, config, "in training")
    if bands is None:
        log.info("%s has none of %s; not used for stage %s", product.label, config.targets, stage)
        return None
    return _scene(product.label, bands, holdout, mtf)


def _statistics(band: np.ndarray, nodata: float | None) -> tuple[float, float]:
    """(offset, scale) of one band as inference computes them (a decimated read's robust
    percentiles, :func:`geosr.engine.stats.scene_statistics`)."""
    from geosr.engine.stats import scene_statistics
    from geosr.raster import decimated_shape

    rows, cols = decimated_shape(*band.shape, DEFAULT_STATS_PIXELS)
    pick_rows = ((np.arange(rows) + 0.5) * (band.shape[0] / rows)).astype(np.int64)
    pick_cols = ((np.arange(cols) + 0.5) * (band.shape[1] / cols)).astype(np.int64)
    stats = scene_statistics(band[pick_rows][:, pick_cols][None], nodata, PERCENTILES)
    return float(stats.offset[0]), float(stats.scale[0])


def open_training_product(source: str) -> Product | None:
    """A product, or a folder of single-band files on several grids (a SAFE's IMG_DATA)."""
    path = Path(source)
    if path.is_dir() and find_metadata(path) is None and find_mtl(path) is None:
        files = sorted(str(p) for p in path.iterdir() if p.suffix.lower() in RASTER_SUFFIXES)
        return open_product(files) if files else None
    return open_product(source)


def _scene(name: str, bands: StageBands, holdout: float, mtf: float) -> WaldScene:
    r = bands.ratio
    h = bands.coarse.height // r * r
    w = bands.coarse.width // r * r
    if h < 8 * r or w < 8 * r:
        raise InputError(f"{name} is too small for guided training at ratio {r}")
    targets, stats = [], []
    for band in bands.targets:
        if band is None:
            targets.append(np.zeros((h, w), np.float32))
            stats.append((0.0, 1.0))
            continue
        data = read_band(band, bands.coarse)[:h, :w]
        stats.append(_statistics(data, band.nodata))
        targets.append(data)
    guides = []
    for band in bands.guides:
        data = read_band(band, bands.fine)[: h * r, : w * r]
        stats.append(_statistics(data, band.nodata))
        guides.append(data)
    offsets = np.array([s[0] for s in stats], np.float32)
    scales = np.array([s[1] for s in stats], np.float32)
    t = len(targets)
    target_array = (np.stack(targets) - offsets[:t, None, None]) / scales[:t, None, None]
    guide_array = (np.stack(guides) - offsets[t:, None, None]) / scales[t:, None, None]
    present = np.array(bands.present)
    target_array[~present] = 0.0
    every = [*bands.targets, *bands.guides]
    lr_targets = degrade(target_array, r, mtf)
    lr_guides = degrade(guide_array, r, mtf)
    gains = injection_gains(torch.from_numpy(lr_targets), torch.from_numpy(lr_guides), r, mtf)
    lr_rows = h // r
    split = min(lr_rows - 1, max(1, round(lr_rows * (1 - holdout))))
    return WaldScene(
        name=name,
        ratio=r,
        targets=target_array.astype(np.float32),
        guides=guide_array.astype(np.float32),
        lr_targets=lr_targets,
        lr_guides=lr_guides,
        present=present,
        offsets=offsets,
        scales=scales,
        split=split,
        mtf=mtf,
        target_names=list(bands.config.targets),
        guide_names=list(bands.config.guides),
        unit_scales=np.array([b.scale if b else 1.0 for b in every], np.float32),
        unit_offsets=np.array([b.offset if b else 0.0 for b in every], np.float32),
        wavelengths=[b.wavelength if b else None for b in bands.targets],
        gains=gains.numpy().astype(np.float32),
    )


@dataclass
class GuidedBatch:
    """Degraded inputs and references of a batch: ``lr`` (N, T, p/r, p/r), ``guides``
    (N, G, p, p), ``hr`` (N, T, p, p), ``present`` (N, T): 1 where the band is an input,
    ``gains`` (N, T, G): the scene's injection gains."""

    lr: torch.Tensor
    guides: torch.Tensor
    hr: torch.Tensor
    present: torch.Tensor
    gains: torch.Tensor


class WaldSampler:
    """Random training patches from the rows above each scene's held-out strip: flips and
    quarter turns, and each present target dropped from the inputs with ``drop`` chance
    (never all of them), so a product lacking a band still gets the rest restored."""

    def __init__(
        self, scenes: Sequence[WaldScene], patch: int, seed: int = 0, drop: float = 0.1
    ) -> None:
        if not scenes:
            raise ConfigError("no product has the bands of this stage; check --data")
        self.scenes = list(scenes)
        self.ratio = scenes[0].ratio
        if patch % self.ratio:
            raise ConfigError(f"--patch {patch} must be a multiple of the ratio {self.ratio}")
        self.patch = patch
        self.lr_patch = patch // self.ratio
        for scene in self.scenes:
            if scene.split < self.lr_patch or scene.lr_shape[1] < self.lr_patch:
                raise ConfigError(
                    f"{scene.name}: its training rows are smaller than --patch {patch}; "
                    "use a smaller --patch"
                )
        weights = np.array([s.split * s.lr_shape[1] for s in self.scenes], np.float64)
        self.weights = weights / weights.sum()
        self.rng = np.random.default_rng(seed)
        self.drop = drop
        self.draws = 0

    def state_dict(self) -> dict[str, object]:
        return {"rng": self.rng.bit_generator.state, "draws": self.draws}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.draws = int(state["draws"])  # type: ignore[arg-type]

    def batch(self, size: int) -> GuidedBatch:
        parts = [self._sample() for _ in range(size)]
        self.draws += 1
        return GuidedBatch(*(torch.from_numpy(np.stack(p)) for p in zip(*parts, strict=True)))

    def _sample(self) -> tuple[np.ndarray, ...]:
        rng, r, p = self.rng, self.ratio, self.lr_patch
        scene = self.scenes[int(rng.choice(len(self.scenes), p=self.weights))]
        y = int(rng.integers(0, scene.split - p + 1))
        x = int(rng.integers(0, scene.lr_shape[1] - p + 1))
        lr = scene.lr_targets[:, y : y + p, x : x + p]
        guides = scene.lr_guides[:, y * r : (y + p) * r, x * r : (x + p) * r]
        hr = scene.targets[:, y * r : (y + p) * r, x * r : (x + p) * r]
        present = scene.present.astype(np.float32)
        keep = rng.random(len(present)) >= self.drop
        if (present * keep).any():
            present = present * keep
        turns, flip = int(rng.integers(4)), bool(rng.integers(2))
        arrays = [_augment(a, turns, flip) for a in (lr, guides, hr)]
        return (*arrays, present, scene.gains)


def _augment(array: np.ndarray, turns: int, flip: bool) -> np.ndarray:
    out = np.rot90(array, turns, axes=(1, 2))
    if flip:
        out = out[:, :, ::-1]
    return np.ascontiguousarray(out, np.float32)


def held_out(scene: WaldScene) -> GuidedBatch:
    """The held-out strip of a scene as one sample (its width cut to a multiple of 8)."""
    r, y = scene.ratio, scene.split
    w = scene.lr_shape[1]
    return GuidedBatch(
        torch.from_numpy(scene.lr_targets[None, :, y:, :w]),
        torch.from_numpy(scene.lr_guides[None, :, y * r :, : w * r]),
        torch.from_numpy(scene.targets[None, :, y * r :, : w * r]),
        torch.from_numpy(scene.present[None].astype(np.float32)),
        torch.from_numpy(scene.gains[None]),
    )
