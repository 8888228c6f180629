"""Training and validation patches from GeoTIFF scenes, reproducible and resumable.

The datasets, the batch stream and the rules that cut and build a sample; which scenes, their
normalisation and the validation split are :func:`~geosr.data.dataset.prepare_data`'s.

Sampling is counter-based: training sample ``i`` draws everything (scene, band, window,
flip/rotation, degradation, noise) from ``numpy.random.default_rng([seed, i])``. Data order
is therefore a pure function of ``(seed, i)``: DataLoader workers, their number and process
boundaries change nothing, and resuming means continuing at the sample counter where the
run stopped (:class:`BatchStream` keeps that counter). The one ``seed`` is drawn from the
generator the caller passes in.

Validation never sees training pixels: each scene's bottom ``val_fraction`` of rows is held
out (a horizontal strip, so the two parts share no pixel and no window can straddle them),
or whole separate scenes are used for validation.

Example:
    >>> data = prepare_data("scenes/", DataConfig(bands=None), generator=torch.Generator().manual_seed(0))
    >>> stream = BatchStream(data.train, batch_size=16)
    >>> for batch in stream: ...                 # batch.lr, batch.hr, batch.valid
    >>> state = stream.state_dict()              # save with the checkpoint; load_state_dict resumes
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, NamedTuple, TypeVar

import numpy as np
import torch
from rasterio.windows import Window
from torch.utils.data import DataLoader, Dataset, Sampler

from geosr.data.degradations import DegradationConfig, add_noise
from geosr.data.scenes import Scene, SceneReader
from geosr.errors import ConfigError
from geosr.models.config import SUPPORTED_SCALES
from geosr.nodata import fill_invalid
from geosr.raster import DEFAULT_STATS_PIXELS

log = logging.getLogger(__name__)

#: Seed of validation noise: fixed, so validation is identical across runs and seeds.
VALIDATION_SEED = 20240917

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


@dataclass(frozen=True)
class DataConfig:
    """Everything that decides which patches training sees.

    Attributes:
        scale: super-resolution factor; the LR patch side is ``patch // scale``.
        patch: HR patch side in pixels (96 as in SRGAN), a multiple of ``scale``.
        bands: None trains a band-shared model: each sample is one random band of a random
            scene, normalised by that scene's own percentiles, so the model works on any
            sensor. An int trains a multiband model: every scene must have that many bands,
            and one fixed per-band normalisation is computed from the training scenes.
        max_nodata: windows with a larger fraction of nodata pixels are redrawn (up to
            ``max_tries`` times, then the most valid window drawn is used).
        max_tries: draws per training sample before giving up on ``max_nodata``.
        val_fraction: fraction of each scene's rows held out for validation as a bottom
            strip, at least one patch tall; a scene shorter than two patches is used for
            training only. Ignored when separate validation scenes are given.
        max_val_samples: cap on validation samples, chosen evenly over the held-out windows.
        percentiles: robust (low, high) percentiles mapped to 0 and 1 by the normalisation.
        stats_pixels: pixels per scene read (decimated) to estimate the percentiles.
        augment: random flips and 90-degree rotations (the 8 symmetries of the square).
        nodata: overrides the files' nodata value (for scenes whose fill is not tagged).
        degradation: how LR inputs are made, see :class:`DegradationConfig`.
    """

    scale: int = 4
    patch: int = 96
    bands: int | None = None
    max_nodata: float = 0.1
    max_tries: int = 10
    val_fraction: float = 0.1
    max_val_samples: int = 64
    percentiles: tuple[float, float] = (1.0, 99.0)
    stats_pixels: int = DEFAULT_STATS_PIXELS
    augment: bool = True
    nodata: float | None = None
    degradation: DegradationConfig = field(default_factory=DegradationConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "percentiles", tuple(float(p) for p in self.percentiles))
        if isinstance(self.degradation, Mapping):
            object.__setattr__(self, "degradation", DegradationConfig(**self.degradation))
        if self.scale not in SUPPORTED_SCALES:
            raise ConfigError(
                f"scale {self.scale} is not supported; use one of "
                f"{', '.join(map(str, SUPPORTED_SCALES))}"
            )
        if self.patch < 2 * self.scale or self.patch % self.scale:
            raise ConfigError(
                f"patch {self.patch} must be a multiple of scale {self.scale} and at least "
                f"{2 * self.scale}; 96 is the usual choice"
            )
        if self.bands is not None and self.bands < 1:
            raise ConfigError(f"bands must be a positive integer or None, got {self.bands}")
        if not 0 <= self.max_nodata < 1:
            raise ConfigError(f"max_nodata must be in [0, 1), got {self.max_nodata}")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        low, high = self.percentiles
        if not 0 <= low < high <= 100:
            raise ConfigError(f"percentiles must satisfy 0 <= low < high <= 100, got {low, high}")
        for name in ("max_tries", "max_val_samples", "stats_pixels"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")

    @property
    def band_shared(self) -> bool:
        return self.bands is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown data option(s): {', '.join(unknown)}")
        values = dict(data)
        if "degradation" in values and isinstance(values["degradation"], Mapping):
            degradation = dict(values["degradation"])
            if "mix" in degradation:
                degradation["mix"] = tuple(degradation["mix"])
            values["degradation"] = DegradationConfig(**degradation)
        return cls(**values)


class PatchSample(NamedTuple):
    """One training or validation sample (batched by the DataLoader along a new first axis).

    Attributes:
        lr: normalised LR input, float32 (C, patch/scale, patch/scale).
        hr: normalised HR target, float32 (C, patch, patch); nodata pixels are filled as at
            inference (:func:`geosr.nodata.fill_invalid`), so the LR input has no artificial
            edges and the network learns the fill it will see.
        valid: bool (1, patch, patch), False on nodata: the weight of every loss and metric.
        offset, scale: float32 (C,), the normalisation used: ``raw = x * scale + offset``
            (needed for radiometric metrics such as SAM and ERGAS).
    """

    lr: torch.Tensor
    hr: torch.Tensor
    valid: torch.Tensor
    offset: torch.Tensor
    scale: torch.Tensor


@dataclass(frozen=True)
class Region:
    """Rows ``[row_start, row_stop)`` of scene ``scene`` (all its columns)."""

    scene: int
    row_start: int
    row_stop: int

    @property
    def height(self) -> int:
        return self.row_stop - self.row_start


@dataclass(frozen=True)
class Draw:
    """Where and how one sample is cut: the decision, before any pixel is read."""

    scene: int
    band: int | None
    row: int
    col: int
    transform: int
    kind: str
    noise_std: float
    noise_seed: int


# --- the shared catalogue ----------------------------------------------------------------------


class _Catalog:
    """Scenes, their statistics and the rule that turns a window into a sample.

    Shared by the training and validation datasets; picklable (holds no open files).
    """

    def __init__(
        self,
        scenes: Sequence[Scene],
        config: DataConfig,
        scene_stats: Sequence[np.ndarray | None],
        fixed: np.ndarray | None,
    ) -> None:
        self.scenes = list(scenes)
        self.config = config
        self.reader = SceneReader(self.scenes)
        self.scene_stats = list(scene_stats)
        self.fixed = fixed  # (bands, 2) for a multiband model, None when band-shared

    def radiometry(self, scene: int, band: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Offset and scale (float32, one per output band) that normalise this sample."""
        if self.fixed is not None:
            stats = self.fixed
        else:
            per_scene = self.scene_stats[scene]
            assert per_scene is not None  # band-shared catalogs have stats for every scene
            stats = per_scene[[band]] if band is not None else per_scene
        return _offset_scale(stats)

    def read(self, draw: Draw) -> tuple[np.ndarray, np.ndarray]:
        size = self.config.patch
        return self.reader.read(draw.scene, Window(draw.col, draw.row, size, size), draw.band)

    def build(self, draw: Draw, data: np.ndarray, valid: np.ndarray) -> PatchSample:
        """Normalise, fill nodata, flip/rotate, degrade and add noise: one finished sample."""
        offset, scale = self.radiometry(draw.scene, draw.band)
        x = (data - offset[:, None, None]) / scale[:, None, None]
        x = fill_invalid(x.astype(np.float32, copy=False), valid)
        # everything in numpy: torch's kernels on one small patch cost ~100x more when the
        # CPU is shared (intra-op threads wait on each other), numpy runs single-threaded
        hr = np.ascontiguousarray(d4_transform(x, draw.transform))
        mask = torch.from_numpy(np.ascontiguousarray(d4_transform(valid[None], draw.transform)))
        lr = torch.from_numpy(self.config.degradation.apply_numpy(hr, self.config.scale, draw.kind))
        if draw.noise_std > 0:
            noise = torch.Generator().manual_seed(draw.noise_seed)
            lr = add_noise(lr, draw.noise_std, noise)
        return PatchSample(
            lr,
            torch.from_numpy(hr),
            mask,
            torch.from_numpy(offset),
            torch.from_numpy(scale),
        )


def _offset_scale(stats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    low, high = stats[:, 0], stats[:, 1]
    scale = high - low
    # a flat band (p_low == p_high) would divide by zero; the inference pipeline's fallback
    scale = np.where(scale > 0, scale, np.maximum(np.abs(low), 1.0))
    return low.astype(np.float32), scale.astype(np.float32)


def d4_transform(x: ArrayT, transform: int) -> ArrayT:
    """Element ``transform`` (0-7) of the square's symmetry group on the last two axes of a
    numpy array or tensor: 0-3 rotate by 0/90/180/270 degrees, 4-7 mirror left-right first.
    0 is the identity."""
    if isinstance(x, torch.Tensor):
        if transform >= 4:
            x = x.flip(-1)
        return torch.rot90(x, transform % 4, dims=(-2, -1))
    if transform >= 4:
        x = x[..., ::-1]
    return np.rot90(x, transform % 4, axes=(-2, -1))


# --- training ----------------------------------------------------------------------------------


class TrainPatches(Dataset[PatchSample]):
    """Random training patches; ``dataset[i]`` is a pure function of ``(seed, i)``.

    Unbounded (no ``len``): draw indices from :class:`BatchStream`. Scenes are chosen with
    probability proportional to their number of window positions, so every training pixel is
    about equally likely to be seen whatever the scene sizes.
    """

    def __init__(self, catalog: _Catalog, regions: Sequence[Region], seed: int) -> None:
        self.catalog = catalog
        self.config = catalog.config
        self.regions = list(regions)
        self.seed = int(seed)
        patch = self.config.patch
        positions = np.array(
            [
                (r.height - patch + 1) * (catalog.scenes[r.scene].width - patch + 1)
                for r in self.regions
            ],
            dtype=np.float64,
        )
        self._weights = positions / positions.sum()

    def draw(self, index: int, attempt: int = 0) -> Draw:
        """The random decisions of sample ``index`` (attempt > 0: a redraw after nodata)."""
        rng = np.random.default_rng([self.seed, index, attempt])
        cfg = self.config
        region = self.regions[int(rng.choice(len(self.regions), p=self._weights))]
        scene = self.catalog.scenes[region.scene]
        band = int(rng.integers(scene.count)) if cfg.band_shared else None
        row = region.row_start + int(rng.integers(region.height - cfg.patch + 1))
        col = int(rng.integers(scene.width - cfg.patch + 1))
        transform = int(rng.integers(8)) if cfg.augment else 0
        kind = cfg.degradation.choose(rng)
        noise_std = float(rng.uniform(0.0, cfg.degradation.noise))
        noise_seed = int(rng.integers(2**63 - 1))
        return Draw(region.scene, band, row, col, transform, kind, noise_std, noise_seed)

    def locate(self, index: int) -> tuple[Draw, np.ndarray, np.ndarray]:
        """The draw sample ``index`` uses and its raw window: the first attempt with at most
        ``max_nodata`` nodata, else the most valid of ``max_tries`` attempts."""
        best: tuple[float, Draw, np.ndarray, np.ndarray] | None = None
        for attempt in range(self.config.max_tries):
            draw = self.draw(index, attempt)
            data, valid = self.catalog.read(draw)
            fraction = float(valid.mean())
            if fraction >= 1.0 - self.config.max_nodata:
                return draw, data, valid
            if best is None or fraction > best[0]:
                best = (fraction, draw, data, valid)
        assert best is not None  # max_tries >= 1 is validated by DataConfig
        log.debug(
            "sample %d: no window with at most %.0f%% nodata in %d tries; using one with %.0f%%",
            index,
            100 * self.config.max_nodata,
            self.config.max_tries,
            100 * (1 - best[0]),
        )
        return best[1], best[2], best[3]

    def __getitem__(self, index: int) -> PatchSample:
        return self.catalog.build(*self.locate(index))


def collate_samples(samples: Sequence[PatchSample]) -> PatchSample:
    """Stack samples into a batch with numpy, in the calling process.

    The same result as the DataLoader's default collate; in the main process (no workers)
    ``torch.stack`` runs multi-threaded and costs ~20 ms a batch on a shared 2-core CPU,
    ``numpy.stack`` under a millisecond. Workers keep the default, which writes straight into
    shared memory.
    """
    columns = zip(*samples, strict=True)
    return PatchSample(*(torch.from_numpy(np.stack([t.numpy() for t in col])) for col in columns))


class _StreamSampler(Sampler[int]):
    """Endless sample indices: global batch ``b`` of rank ``r`` holds indices
    ``[(b * world + r) * batch, ... + batch)``, so ranks never share a sample."""

    def __init__(self, start_batch: int, batch_size: int, rank: int, world_size: int) -> None:
        self.start_batch = start_batch
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size

    def __iter__(self) -> Iterator[int]:
        batch = self.start_batch
        while True:
            first = (batch * self.world_size + self.rank) * self.batch_size
            yield from range(first, first + self.batch_size)
            batch += 1


class BatchStream:
    """An endless, resumable iterator of training batches (:class:`PatchSample` of tensors).

    It counts the batches it has handed out (not those DataLoader workers prefetched), so
    :meth:`state_dict` after ``n`` batches, restored into a fresh stream, continues with
    batch ``n + 1`` exactly as an uninterrupted run would. With ``world_size > 1`` (DDP) each
    rank gets its own disjoint share of the same global sample sequence.
    """

    def __init__(
        self,
        dataset: TrainPatches,
        batch_size: int,
        *,
        num_workers: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pin_memory: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} is outside world size {world_size}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.rank = rank
        self.world_size = world_size
        self.pin_memory = pin_memory
        self.batches = 0  # per rank; the global sample position is batches * batch * world

    @property
    def samples(self) -> int:
        """Samples consumed by all ranks together: the resumable position."""
        return self.batches * self.batch_size * self.world_size

    def __iter__(self) -> Iterator[PatchSample]:
        sampler = _StreamSampler(self.batches, self.batch_size, self.rank, self.world_size)
        loader = DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=False,
            collate_fn=collate_samples if self.num_workers == 0 else None,
            # the loader draws a base seed at every iter(); giving it its own generator keeps
            # it from consuming the global torch RNG (which would shift model init, dropout...)
            generator=torch.Generator().manual_seed(self.dataset.seed % 2**63),
        )
        for batch in loader:
            self.batches += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        """JSON-serialisable position: save it with the checkpoint."""
        return {
            "seed": self.dataset.seed,
            "samples": self.samples,
            "batch_size": self.batch_size,
            "world_size": self.world_size,
        }

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        """Continue where ``state`` stopped; the seed in it replaces the dataset's."""
        per_step = self.batch_size * self.world_size
        if int(state["samples"]) % per_step:
            raise ConfigError(
                f"cannot resume data order: {state['samples']} samples consumed is not a whole "
                f"number of batches of {self.batch_size} x {self.world_size} processes; resume "
                f"with batch size {state.get('batch_size')} and {state.get('world_size')} processes"
            )
        self.dataset.seed = int(state["seed"])
        self.batches = int(state["samples"]) // per_step


# --- validation --------------------------------------------------------------------------------


class ValidationPatches(Dataset[PatchSample]):
    """Fixed validation patches from held-out rows or scenes: no augmentation, fixed
    degradation per window (kinds of a mixed degradation taken in turn), fixed noise."""

    def __init__(self, catalog: _Catalog, draws: Sequence[Draw]) -> None:
        self.catalog = catalog
        self.draws = list(draws)

    def __len__(self) -> int:
        return len(self.draws)

    def __getitem__(self, index: int) -> PatchSample:
        draw = self.draws[index]
        data, valid = self.catalog.read(draw)
        return self.catalog.build(draw, data, valid)

    def windows(self) -> list[tuple[int, Window]]:
        """``(scene index, window)`` of every validation sample."""
        size = self.catalog.config.patch
        return [(d.scene, Window(d.col, d.row, size, size)) for d in self.draws]


def _validation_draws(catalog: _Catalog, regions: Sequence[Region]) -> list[Draw]:
    """Non-overlapping grid windows in the held-out regions, nodata-filtered and capped."""
    cfg = catalog.config
    size = cfg.patch
    candidates: list[tuple[int, int, int]] = []
    for region in regions:
        width = catalog.scenes[region.scene].width
        for row in range(region.row_start, region.row_stop - size + 1, size):
            for col in range(0, width - size + 1, size):
                _, valid = catalog.reader.read(region.scene, Window(col, row, size, size))
                if valid.mean() >= 1.0 - cfg.max_nodata:
                    candidates.append((region.scene, row, col))
    items = [
        (scene, band, row, col)
        for scene, row, col in candidates
        for band in (range(catalog.scenes[scene].count) if cfg.band_shared else [None])
    ]
    if len(items) > cfg.max_val_samples:
        keep = np.unique(np.linspace(0, len(items) - 1, cfg.max_val_samples).round().astype(int))
        items = [items[i] for i in keep]
    kinds = cfg.degradation.kinds
    draws = []
    for i, (scene, band, row, col) in enumerate(items):
        rng = np.random.default_rng([VALIDATION_SEED, i])
        noise_std = float(rng.uniform(0.0, cfg.degradation.noise))
        noise_seed = int(rng.integers(2**63 - 1))
        draws.append(Draw(scene, band, row, col, 0, kinds[i % len(kinds)], noise_std, noise_seed))
    return draws
