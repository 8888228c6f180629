"""Training data, assembled: :func:`prepare_data` finds and checks the scenes, computes their
normalisation and splits off validation (a bottom strip of each scene, or separate scenes).

The patches, their reproducible and resumable sampling and the batch stream are
:mod:`geosr.data.patches`; their names are importable from here too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from geosr.data.patches import (
    VALIDATION_SEED,
    BatchStream,
    DataConfig,
    Draw,
    PatchSample,
    Region,
    TrainPatches,
    ValidationPatches,
    _Catalog,
    _offset_scale,
    _validation_draws,
    collate_samples,
    d4_transform,
)
from geosr.data.scenes import (
    Scene,
    SceneReader,
    band_percentiles,
    describe_scene,
    find_scenes,
    pooled_percentiles,
)
from geosr.errors import BandMismatchError, InputError
from geosr.model_card import Normalization
from geosr.nodata import fill_invalid

log = logging.getLogger(__name__)

SeedLike = int | torch.Generator | np.random.Generator | None


@dataclass
class TrainingData:
    """Training and validation datasets plus what the checkpoint must remember.

    Attributes:
        train: random training patches (use :class:`BatchStream` to iterate).
        val: fixed validation patches (a plain map-style dataset).
        normalization: for the model's metadata: ``mode="fixed"`` with the pooled per-band
            offset/scale of a multiband model, or ``mode="scene"`` with the percentiles of a
            band-shared one.
        scenes: training scenes; val_scenes: the scenes validation windows come from.
        config: the data configuration used.
    """

    train: TrainPatches
    val: ValidationPatches
    normalization: Normalization
    scenes: list[Scene]
    val_scenes: list[Scene]
    config: DataConfig

    def provenance(self) -> dict[str, Any]:
        """A summary for ``ModelMeta.trained_on``."""
        return {
            "scenes": [s.path.name for s in self.scenes],
            "validation": (
                f"bottom {self.config.val_fraction:g} of each scene's rows"
                if self.val_scenes == self.scenes
                else [s.path.name for s in self.val_scenes]
            ),
            "degradation": self.config.degradation.describe(),
            "patch": self.config.patch,
            "band_shared": self.config.band_shared,
        }


def resolve_seed(generator: SeedLike) -> int:
    """One 63-bit seed from whatever the caller seeds with (None: fresh OS entropy)."""
    if isinstance(generator, torch.Generator):
        return int(torch.randint(0, 2**63 - 1, (1,), generator=generator).item())
    if isinstance(generator, np.random.Generator):
        return int(generator.integers(2**63 - 1))
    if generator is None:
        return int(np.random.default_rng().integers(2**63 - 1))
    return int(generator)


def prepare_data(
    sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    config: DataConfig | None = None,
    *,
    generator: SeedLike = None,
    val_sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | None = None,
) -> TrainingData:
    """Find and check the scenes, compute normalisation, split off validation.

    Args:
        sources: training scenes: folders, globs or files (see :func:`find_scenes`).
        config: data options; defaults to :class:`DataConfig` ().
        generator: seeds the training data order (a ``torch.Generator``, a numpy
            ``Generator`` or an int); one seed is drawn from it.
        val_sources: separate validation scenes; without them each training scene's bottom
            ``val_fraction`` of rows is held out.

    Raises:
        InputError, InputNotFoundError: no scenes, a scene smaller than the patch, no valid
            pixels, or no validation window at all.
        BandMismatchError: a multiband config whose scenes differ in band count.
        NotARasterError: an unreadable file.
    """
    cfg = config or DataConfig()
    scenes = _load_scenes(sources, cfg)
    val_scenes = _load_scenes(val_sources, cfg) if val_sources is not None else []
    all_scenes = scenes + val_scenes
    _check_scenes(all_scenes, cfg)
    train_regions, val_regions = _split(
        scenes, len(scenes) if val_scenes else None, cfg, val_scenes
    )
    if cfg.val_fraction > 0 and not val_regions:
        raise InputError(
            f"no scene has the {2 * cfg.patch} rows needed to hold out a validation strip of "
            f"{cfg.patch}-pixel patches; pass separate validation scenes, use a smaller patch, "
            "or set val_fraction to 0 to train without validation"
        )
    stats, fixed, normalization = _normalization(all_scenes, train_regions, cfg)
    catalog = _Catalog(all_scenes, cfg, stats, fixed)
    draws = _validation_draws(catalog, val_regions)
    catalog.reader.close()
    if val_regions and not draws:
        raise InputError(
            f"no validation window of {cfg.patch}x{cfg.patch} with at most "
            f"{100 * cfg.max_nodata:g}% nodata in the held-out data; raise val_fraction or "
            "max_nodata, or pass separate validation scenes"
        )
    seed = resolve_seed(generator)
    log.info(
        "%d training scenes, %d validation samples, %s",
        len(scenes),
        len(draws),
        "band-shared" if cfg.band_shared else f"{cfg.bands} bands",
    )
    return TrainingData(
        train=TrainPatches(catalog, train_regions, seed),
        val=ValidationPatches(catalog, draws),
        normalization=normalization,
        scenes=scenes,
        val_scenes=val_scenes or scenes,
        config=cfg,
    )


def _check_scenes(scenes: Sequence[Scene], cfg: DataConfig) -> None:
    """Every scene holds a patch, and a multiband config's scenes have its band count."""
    if cfg.bands is not None:
        _check_band_counts(scenes, cfg.bands)
    for scene in scenes:
        if scene.width < cfg.patch or scene.height < cfg.patch:
            raise InputError(
                f"{scene.path} is {scene.width}x{scene.height} pixels, smaller than the "
                f"{cfg.patch}x{cfg.patch} patch; use a smaller patch or remove the scene"
            )


def _normalization(
    scenes: Sequence[Scene], train_regions: Sequence[Region], cfg: DataConfig
) -> tuple[list[np.ndarray | None], np.ndarray | None, Normalization]:
    """Per-scene percentiles (band-shared), or the per-band ones pooled over the training
    regions (multiband), and the model's :class:`Normalization` from them."""
    reader = SceneReader(scenes)
    try:
        if cfg.band_shared:
            stats: list[np.ndarray | None] = [
                band_percentiles(reader, i, cfg.percentiles, cfg.stats_pixels)
                for i in range(len(scenes))
            ]
            return stats, None, Normalization(mode="scene", percentiles=cfg.percentiles)
        fixed = pooled_percentiles(
            reader,
            [(r.scene, (r.row_start, r.row_stop)) for r in train_regions],
            cfg.percentiles,
            cfg.stats_pixels,
        )
    finally:
        reader.close()
    offset, scale = _offset_scale(fixed)
    normalization = Normalization(
        mode="fixed",
        offset=tuple(float(v) for v in offset),
        scale=tuple(float(v) for v in scale),
        percentiles=cfg.percentiles,
    )
    return [None] * len(scenes), fixed, normalization


def _load_scenes(
    sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], cfg: DataConfig
) -> list[Scene]:
    return [describe_scene(path, cfg.nodata) for path in find_scenes(sources)]


def _check_band_counts(scenes: Sequence[Scene], bands: int) -> None:
    wrong = [s for s in scenes if s.count != bands]
    if wrong:
        listed = ", ".join(f"{s.path.name} has {s.count}" for s in wrong[:4])
        more = f" and {len(wrong) - 4} more" if len(wrong) > 4 else ""
        raise BandMismatchError(
            f"a {bands}-band model needs {bands}-band scenes, but {listed}{more}; pass scenes "
            f"with {bands} bands, or train band-shared (no --bands) to use any band count"
        )


def validation_cut(height: int, val_fraction: float, patch: int) -> int | None:
    """First row of a scene's held-out validation strip, or None if the scene is too short.

    The strip is ``val_fraction`` of the rows but at least one patch tall (a thinner strip
    holds no validation window), and at least one patch of rows must stay for training.
    ``geosr evaluate --holdout`` uses the same rule, so it scores exactly the unseen rows.
    """
    if val_fraction <= 0:
        return None
    held_out = max(patch, round(height * val_fraction))
    return height - held_out if height - held_out >= patch else None


def _split(
    scenes: Sequence[Scene],
    first_val_scene: int | None,
    cfg: DataConfig,
    val_scenes: Sequence[Scene],
) -> tuple[list[Region], list[Region]]:
    """Training and validation regions: whole separate scenes, or a bottom strip per scene.

    The strip is ``val_fraction`` of the rows but at least one patch tall (a thinner strip
    holds no validation window). A scene shorter than two patches is used for training only.
    """
    if first_val_scene is not None:
        train = [Region(i, 0, s.height) for i, s in enumerate(scenes)]
        val = [Region(first_val_scene + i, 0, s.height) for i, s in enumerate(val_scenes)]
        return train, val
    train, val, train_only = [], [], []
    for i, scene in enumerate(scenes):
        cut = validation_cut(scene.height, cfg.val_fraction, cfg.patch)
        if cut is not None:
            train.append(Region(i, 0, cut))
            val.append(Region(i, cut, scene.height))
        else:
            train_only.append(scene.path.name)
            train.append(Region(i, 0, scene.height))
    if cfg.val_fraction > 0 and train_only:
        log.info(
            "%d scene(s) shorter than two %d-pixel patches are used for training only: %s",
            len(train_only),
            cfg.patch,
            ", ".join(train_only),
        )
    return train, val


__all__ = [
    "VALIDATION_SEED",
    "BatchStream",
    "DataConfig",
    "Draw",
    "PatchSample",
    "Region",
    "SeedLike",
    "TrainPatches",
    "TrainingData",
    "ValidationPatches",
    "collate_samples",
    "d4_transform",
    "fill_invalid",
    "prepare_data",
    "resolve_seed",
    "validation_cut",
]
