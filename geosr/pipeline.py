"""The inference engine: lazy, chunked, seamless super-resolution of rasters with dask.

A raster is a dask array (bands, y, x). Each chunk is extended by a halo of at least the
generator's receptive radius (``dask.array.overlap``), super-resolved tile by tile on the
chosen device, and cut back to its own footprint times ``scale``; so chunked and
whole-scene inference agree and no seams appear. Nodata never reaches the network and
never leaves it: it is filled before and restored after.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import math
import numbers
import os
import sys
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import dask
import dask.array as da
import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import torch
import xarray as xr
from affine import Affine
from torch import nn

from geosr.checkpoint import ALIASES, ModelMeta, load_model, model_meta, with_strength
from geosr.choices import PRECISIONS
from geosr.consistency import project_block_means
from geosr.contract import describe_dataarray, describe_raster, enforce
from geosr.errors import (
    BandMismatchError,
    ConfigError,
    DeviceMemoryError,
    InputError,
    ModelError,
)
from geosr.nodata import FILL_RADIUS, fill_invalid, valid_mask
from geosr.products import (
    Product,
    input_files,
    is_stac_item,
    open_source,
    product_info,
    product_output_path,
    remote_names,
)
from geosr.products.stac import stac_item_path, write_stac_item
from geosr.raster import (
    DEFAULT_STATS_PIXELS,
    RasterInfo,
    Sources,
    check_output_path,
    compression_options,
    copy_georeference,
    copy_metadata,
    default_output_path,
    lazy_array,
    lazy_mask,
    output_block_size,
    output_profile,
    read_sample,
    sample_array,
    sample_mask,
    select_bands,
)
from geosr.sources import remote_env
from geosr.uncertainty import HALO as UNCERTAINTY_HALO
from geosr.uncertainty import uncertainty_block
from geosr.version import __version__
from geosr.writer import ProgressCallback, active_client, write_raster
from geosr.zarr_store import (
    check_zarr_output,
    grid_transform,
    is_zarr_output,
    raster_attrs,
    write_zarr,
)

log = logging.getLogger(__name__)

#: Input pixels per chunk side when none is given.
DEFAULT_CHUNK_SIZE = 512
#: Largest network tile on a CPU (see TileRunner.default_tile).
CPU_TILE = 256
#: Network tile sides tried on a GPU, largest first (see TileRunner.default_tile).
GPU_TILES = (2048, 1024, 512, 256, 128)
#: Share of the GPU's free memory one forward pass may take (the rest: other chunks'
#: post-processing, cuDNN workspaces, other processes).
GPU_MEMORY_SHARE = 0.25
#: One lock per device: dask threads take turns at the forward pass while the others read,
#: normalise, post-process and write. Concurrent forwards would only multiply activation
#: memory (torch already spreads one forward over every CPU core; a GPU runs one at a time),
#: and with them peak memory grew with the chunk count (benchmarks/: memory).
_DEVICE_LOCKS: dict[str, threading.Lock] = {}
_DEVICE_LOCKS_GUARD = threading.Lock()

# --- models and devices -------------------------------------------------------------------------


def resolve_model(
    model: str | os.PathLike[str] | nn.Module, strength: float | None = None
) -> nn.Module:
    """A loaded generator from a module, a ``.safetensors`` path or a bundled model name, at
    ``strength`` when given (models with a strength dial only; see :func:`geosr.load_model`)."""
    if isinstance(model, nn.Module):
        model_meta(model)  # raises if it carries no metadata
        return with_strength(model, strength)
    return load_model(model, strength)


def keeps_spectra(net: nn.Module, preserve_spectra: bool) -> bool:
    """Whether ``preserve_spectra`` changes anything: on, and ``net`` above strength 0. Models
    without a strength dial refuse it: they have no fidelity endpoint to take the ratios from."""
    if not preserve_spectra:
        return False
    if getattr(net, "endpoints", None) is None:
        name = model_meta(net).name or "this model"
        raise ModelError(
            f"preserve_spectra needs a model with a strength dial (srgan), and {name} has "
            "none; drop preserve_spectra (--preserve-spectra) or use model='srgan'"
        )
    return net.strength > 0


def keep_band_ratios(sr: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
    """``sr`` (bands, y, x) with ``anchor``'s band ratios, in place: each pixel becomes
    ``anchor * sum(sr) / sum(anchor)`` over its bands, so it keeps ``sr``'s brightness (its
    texture) and ``anchor``'s spectral angle. Band-shared GAN texture is invented band by band
    and bends the spectra (SAM); the strength-0 network's spectra are the faithful ones
    (docs/texture.md). Pixels where a ratio means nothing (a non-positive sum, a negative
    anchor value) keep ``sr``; so does a single band, whose ratio is 1."""
    if sr.shape[0] < 2:
        return sr
    total, base = sr.sum(0), anchor.sum(0)
    ok = (total > 0) & (base > 0) & (anchor.amin(0) >= 0)
    factor = total / torch.where(ok, base, 1.0)  # pixels not ok keep sr below
    return sr.copy_(torch.where(ok, anchor * factor, sr))


def self_ensemble(
    forward: Callable[[torch.Tensor], torch.Tensor], tensor: torch.Tensor
) -> torch.Tensor:
    """The x8 self-ensemble (Timofte et al. 2016; EDSR's "+"): ``forward`` on the eight flips
    and 90-degree rotations of ``tensor`` (N, C, H, W), each mapped back and averaged in
    float32. Any tile shape works: a rotated tile's output is rotated back."""
    total: torch.Tensor | None = None
    for flip in (False, True):
        flipped = tensor.flip(-1) if flip else tensor
        for turns in range(4):
            result = forward(torch.rot90(flipped, turns, (-2, -1)))
            result = torch.rot90(result.float(), -turns, (-2, -1))
            result = result.flip(-1) if flip else result
            total = result.clone() if total is None else total.add_(result)
    assert total is not None
    return total.div_(8)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when torch sees a GPU; asking for an absent GPU is an error."""
    if isinstance(device, torch.device):
        device = str(device)
    name = str(device).lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                "device 'cuda' was asked for but torch sees no GPU; use device='cpu' or 'auto'"
            )
        return torch.device(name)
    if name in ("cpu", "mps"):
        return torch.device(name)
    raise ConfigError(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda'")


# --- normalisation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BandStats:
    """Per-band affine normalisation ``x_norm = (x - offset) / scale``."""

    offset: np.ndarray
    scale: np.ndarray

    def __post_init__(self) -> None:
        if self.offset.shape != self.scale.shape:
            raise ConfigError("normalisation offset and scale need one value per band")


def scene_statistics(
    sample: np.ndarray,
    nodata: float | None,
    percentiles: tuple[float, float] = (1.0, 99.0),
    mask: np.ndarray | None = None,
) -> BandStats:
    """Robust per-band statistics of a scene sample (bands, y, x): p_low -> 0, p_high -> 1.
    Pixels where ``mask`` (y, x) is 0 are left out, as nodata is."""
    offsets, scales = [], []
    for band in sample:
        values = band[valid_mask(band, nodata, mask)].astype(np.float64)
        if values.size == 0:
            low, high = 0.0, 1.0
        else:
            low, high = np.percentile(values, percentiles)
        span = high - low
        if not span > 0:
            span = max(abs(low), 1.0)
        offsets.append(low)
        scales.append(span)
    return BandStats(np.asarray(offsets, np.float32), np.asarray(scales, np.float32))


def model_statistics(
    meta: ModelMeta,
    bands: int,
    sample: Callable[[], tuple[np.ndarray, np.ndarray | None]],
    nodata: float | None,
) -> BandStats:
    """The normalisation a model asks for: its stored values, or the scene's own, from
    ``sample()``: a decimated (bands, y, x) sample and its (y, x) mask (0 = masked) or None."""
    norm = meta.normalization
    if norm.mode == "fixed":
        offset = np.asarray(norm.offset, np.float32)
        scale = np.asarray(norm.scale, np.float32)
        if offset.size == 1 and bands > 1:
            offset, scale = np.repeat(offset, bands), np.repeat(scale, bands)
        if offset.size != bands:
            raise ModelError(
                f"the model stores normalisation for {offset.size} band(s) but the raster has {bands}"
            )
        return BandStats(offset, scale)
    data, mask = sample()
    return scene_statistics(data, nodata, norm.percentiles, mask)


# --- tiled inference ----------------------------------------------------------------------------


class TileRunner:
    """Runs a generator over a normalised array in halo'd tiles, batched on the device.

    Picklable: it travels with the CPU model and resolves its device where it runs (so a
    cluster worker with a GPU uses it, whatever the client has); each process then keeps one
    copy of the model per device, so the model moves to the GPU once, not once per chunk.

    On CUDA a chunk's work is queued on the device's own non-default stream (:meth:`stream`):
    inputs go up from pinned buffers without waiting, and the host waits once per chunk, for
    the result (:meth:`to_host`), so the GPU keeps working while threads read and write.
    """

    #: One non-default CUDA stream per device, shared by the threads: freed memory returns to
    #: one pool (per-thread streams would each cache a chunk's activations) and work stays in order.
    _streams: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        model: nn.Module,
        device: str | torch.device = "auto",
        halo: int = 0,
        tile_size: int | None = None,
        batch_size: int | None = None,
        precision: str = "auto",
        output_dtype: np.dtype | str | None = None,
        tta: bool = False,
    ) -> None:
        if precision not in PRECISIONS:
            raise ConfigError(
                f"precision must be one of {', '.join(map(repr, PRECISIONS))}, got {precision!r}"
            )
        self.model = model.eval()
        self.meta = model_meta(model)
        self.device_spec = str(device)
        self.halo = halo
        self.tile_size = tile_size
        self.requested_batch_size = batch_size
        self.precision = precision
        self.output_dtype = None if output_dtype is None else np.dtype(output_dtype)
        self.tta = bool(tta)
        self._device: torch.device | None = None
        self._device_model: nn.Module | None = None
        self._lock = threading.Lock()
        self._local = threading.local()  # per-thread scratch buffer

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(
            _device=None, _device_model=None, _lock=None, _local=None, model=self.model.to("cpu")
        )
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._local = threading.local()

    @property
    def device(self) -> torch.device:
        if self._device is None:
            self._device = resolve_device(self.device_spec)
        return self._device

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """Half-precision type of the forward pass, or None for float32. ``auto`` takes fp16 on
        CUDA for 8-bit outputs only: measured within 1 DN of fp32 there, but up to 6 DN on
        uint16 (benchmarks/run.py --only gpu; tests/test_gpu.py)."""
        if self.device.type != "cuda":
            return None
        precision = self.precision
        if precision == "auto":
            eight_bit = self.output_dtype is not None and self.output_dtype.itemsize == 1
            precision = "fp16" if eight_bit and self.output_dtype.kind in "ui" else "fp32"
        return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)

    @property
    def batch_size(self) -> int:
        if self.requested_batch_size:
            return max(1, int(self.requested_batch_size))
        return 8 if self.device.type == "cuda" else 1

    def default_tile(self, chunk_side: int) -> int:
        """Network tile side when none is given. On a CPU at most CPU_TILE: with one forward
        at a time, 256- to 512-pixel tiles run within 8 % of each other (benchmarks/), and
        256 bounds the output-resolution activations to about 0.2 GB for the compact model.
        On a GPU the largest tile whose batch of activations fits GPU_MEMORY_SHARE of the
        free memory."""
        if self.device.type == "cpu":
            return min(chunk_side, CPU_TILE)
        if self.device.type != "cuda":
            return chunk_side
        free, _ = torch.cuda.mem_get_info(self.device)
        width = self.meta.generator.width
        items = self.batch_size
        for tile in GPU_TILES:
            # about three live float32 feature maps at output resolution per item
            need = 3 * items * (tile * self.meta.scale) ** 2 * width * 4
            if tile <= chunk_side and need <= GPU_MEMORY_SHARE * free:
                return tile
        return min(chunk_side, GPU_TILES[-1])

    def device_lock(self) -> threading.Lock:
        with _DEVICE_LOCKS_GUARD:
            return _DEVICE_LOCKS.setdefault(str(self.device), threading.Lock())

    def device_model(self) -> nn.Module:
        with self._lock:
            if self._device_model is None:
                device = self.device
                if device.type == "cpu":
                    self._device_model = self.model
                else:
                    # a copy: the CPU model stays as it is for pickling and other devices
                    layout = torch.channels_last if device.type == "cuda" else torch.preserve_format
                    self._device_model = copy.deepcopy(self.model).to(device, memory_format=layout)
            return self._device_model

    def stream(self) -> contextlib.AbstractContextManager[Any]:
        """The context a chunk's device work is queued in: on CUDA the device's non-default
        stream, elsewhere nothing."""
        if self.device.type != "cuda":
            return contextlib.nullcontext()
        key = str(self.device)
        with _DEVICE_LOCKS_GUARD:
            stream = self._streams.get(key)
            if stream is None:
                stream = self._streams[key] = torch.cuda.Stream(self.device)
        return torch.cuda.stream(stream)

    def to_device(self, array: np.ndarray) -> torch.Tensor:
        """``array`` on the runner's device. On CUDA through a pinned buffer, asynchronously
        on the current stream: a copy from pageable memory would wait for the stream's queue
        (the forward pass) to drain first."""
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if self.device.type == "cpu":
            return tensor
        if self.device.type != "cuda":
            return tensor.to(self.device)
        return tensor.pin_memory().to(self.device, non_blocking=True)

    def to_host(self, *tensors: torch.Tensor) -> list[np.ndarray]:
        """The tensors as numpy arrays, with a single wait for the device. On CUDA they are
        copied asynchronously into pinned buffers, then out of them, so the pinned pool holds
        the chunks being transferred, not every chunk waiting to be written."""
        if self.device.type != "cuda":
            return [t.cpu().numpy() for t in tensors]
        staged = []
        for tensor in tensors:
            host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
            staged.append(host.copy_(tensor, non_blocking=True))
        done = torch.cuda.Event()
        done.record(torch.cuda.current_stream(self.device))
        done.synchronize()  # up to this chunk's work only: later work of other threads runs on
        return [host.numpy().copy() for host in staged]

    def _scratch(self, shape: tuple[int, ...]) -> torch.Tensor:
        """This thread's float32 buffer of ``shape``, reused from chunk to chunk: a fresh
        output-size array per chunk cost about 40 ms of page faults per 64 MB here."""
        need = math.prod(shape)
        buffer = getattr(self._local, "scratch", None)
        if buffer is None or buffer.numel() < need:
            self._local.scratch = buffer = None  # the old one goes before the new one comes
            self._local.scratch = buffer = torch.empty(need, dtype=torch.float32)
        return buffer[:need].view(shape)

    def __call__(self, x: np.ndarray, core: tuple[int, int, int, int]) -> np.ndarray:
        """Super-resolve the ``core`` rows/cols (r0, r1, c0, c1) of ``x`` (bands, H, W),
        using up to ``halo`` pixels of context around each tile. Returns (bands, rows*s, cols*s)."""
        with self.stream():
            return self.to_host(self.run(x, core))[0]

    def run(
        self, x: np.ndarray, core: tuple[int, int, int, int], *, scratch: bool = False
    ) -> torch.Tensor:
        """As ``__call__``, but the result stays a float32 tensor on the runner's device, so
        post-processing runs there too (one host-device copy in, one out, per chunk). With
        ``scratch`` a CPU result lives in this thread's scratch buffer: valid until the
        thread's next ``run``."""
        scale = self.meta.scale
        bands = x.shape[0]
        r0, r1, c0, c1 = core
        device = self.device
        source = self.to_device(x)
        shape = (bands, (r1 - r0) * scale, (c1 - c0) * scale)
        if scratch and device.type == "cpu":
            out = self._scratch(shape)
        else:
            out = torch.empty(shape, dtype=torch.float32, device=device)
        tile = self.tile_size or self.default_tile(max(r1 - r0, c1 - c0))
        items = []  # (input array, destination slices, crop slices)
        for ty in range(r0, r1, tile):
            for tx in range(c0, c1, tile):
                ty1, tx1 = min(ty + tile, r1), min(tx + tile, c1)
                y0, y1 = max(ty - self.halo, 0), min(ty1 + self.halo, x.shape[1])
                x0, x1 = max(tx - self.halo, 0), min(tx1 + self.halo, x.shape[2])
                crop = (
                    slice((ty - y0) * scale, (ty1 - y0) * scale),
                    slice((tx - x0) * scale, (tx1 - x0) * scale),
                )
                dest = (
                    slice((ty - r0) * scale, (ty1 - r0) * scale),
                    slice((tx - c0) * scale, (tx1 - c0) * scale),
                )
                context = source[:, y0:y1, x0:x1]
                if self.meta.band_shared:
                    items.extend((context[b : b + 1], (b, *dest), crop) for b in range(bands))
                else:
                    items.append((context, (slice(None), *dest), crop))
        model = self.device_model()
        # batch items of equal shape; edge tiles differ in shape and run in their own batches
        by_shape: dict[tuple[int, ...], list] = {}
        for item in items:
            by_shape.setdefault(item[0].shape, []).append(item)
        with self.device_lock():
            for group in by_shape.values():
                for start in range(0, len(group), self.batch_size):
                    batch = group[start : start + self.batch_size]
                    # a batch of one is a view, not a stacked copy
                    inputs = (
                        batch[0][0][None]
                        if len(batch) == 1
                        else torch.stack([item[0] for item in batch])
                    )
                    result = self._forward(model, inputs)
                    for (_, dest, crop), sr in zip(batch, result, strict=True):
                        out[dest] = sr[(slice(None), *crop)]
        return out

    def _forward(self, model: nn.Module, tensor: torch.Tensor) -> torch.Tensor:
        try:
            return self._forward_unchecked(model, tensor)
        except torch.OutOfMemoryError:
            raise DeviceMemoryError(
                f"the {self.device} device ran out of memory on a batch of {tensor.shape[0]} "
                f"tile(s) of {tensor.shape[-2]}x{tensor.shape[-1]} pixels; pass a smaller "
                "tile_size / --tile-size or batch_size / --batch-size"
            ) from None

    def _forward_unchecked(self, model: nn.Module, tensor: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cuda":
            # channels-last NHWC is what cuDNN's fastest convolutions take on tensor cores
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        dtype = self.autocast_dtype

        def forward(batch: torch.Tensor) -> torch.Tensor:
            if dtype is None:
                return model(batch)
            with torch.autocast("cuda", dtype=dtype):
                return model(batch)

        with torch.inference_mode():
            if self.tta:
                return self_ensemble(forward, tensor)
            return forward(tensor).float()


def project_consistent(
    sr: np.ndarray | torch.Tensor,
    lr: np.ndarray | torch.Tensor,
    scale: int,
    low: float = -math.inf,
    high: float = math.inf,
) -> np.ndarray | torch.Tensor:
    """Make each ``scale`` x ``scale`` block of ``sr`` average exactly to its ``lr`` pixel.

    The Euclidean projection onto that constraint is SR + upsample_nearest(LR - box_down(SR)).
    With value limits (a dtype's range) it becomes ``clip(SR + t, low, high)`` with one shift
    ``t`` per block, found by bisection for the few blocks the plain projection pushes out of
    range; so outputs keep the input's radiometry (NDVI and the like average back to the
    input's) even next to saturated or black pixels.

    Works in place on float32 torch tensors (on the device that made them) or numpy arrays.
    The blocks are searched for values out of range only when the chunk's minimum or maximum
    is (one pass over it, where the search took several): the result is the same.
    """
    if isinstance(sr, np.ndarray):
        lr_t = torch.from_numpy(np.asarray(lr, np.float32))
        return project_consistent(torch.from_numpy(sr), lr_t, scale, low, high).numpy()
    project_block_means(sr, lr, scale)
    if math.isinf(low) and math.isinf(high):
        return sr
    if not bool(_inside_limits(sr, low, high)):
        _clip_to_limits(sr, lr, scale, low, high)
    return sr


def _inside_limits(sr: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Whether every value of ``sr`` lies in [low, high], as a 0-d bool tensor where ``sr``
    is (reading it needs no wait for a GPU until asked). False where a value is NaN, which
    sends the chunk to the exact search, as before."""
    if sr.numel() == 0:
        return torch.ones((), dtype=torch.bool, device=sr.device)
    lo, hi = torch.aminmax(sr)
    return (lo >= low) & (hi <= high)


def _clip_to_limits(
    sr: torch.Tensor, lr: torch.Tensor, scale: int, low: float, high: float
) -> None:
    """The constrained projection, in place, of blocks already projected by
    :func:`_project_mean`: blocks with a value outside [low, high] get the shift ``t`` that
    makes ``clip(block + t, low, high)`` average to their ``lr`` pixel clipped to the range."""
    bands, h, w = lr.shape
    blocks = sr.view(bands, h, scale, w, scale)
    outside = ((blocks < low) | (blocks > high)).any(dim=4).any(dim=2)
    if bool(outside.any()):
        b, y, x = torch.nonzero(outside, as_tuple=True)
        sub = blocks[b, y, :, x, :]  # (n, scale, scale)
        target = lr[b, y, x].clamp(low, high)
        shift_low = low - sub.amax(dim=(1, 2))  # every pixel at `low`
        shift_high = high - sub.amin(dim=(1, 2))  # every pixel at `high`
        for _ in range(40):  # the block mean is monotone in the shift
            mid = (shift_low + shift_high) / 2
            below = (sub + mid[:, None, None]).clamp(low, high).mean(dim=(1, 2)) < target
            shift_low = torch.where(below, mid, shift_low)
            shift_high = torch.where(below, shift_high, mid)
        shift = (shift_low + shift_high) / 2
        blocks[b, y, :, x, :] = (sub + shift[:, None, None]).clamp(low, high)


def output_limits(dtype: np.dtype, nodata: float | None) -> tuple[float, float]:
    """Range valid output pixels may take: the dtype's, minus a nodata value at either end,
    as the floats nearest inside it (float64 rounds int64/uint64 limits outwards, to 2**63
    and 2**64, which would wrap around on the cast back)."""
    if dtype.kind == "f":
        return -math.inf, math.inf
    info = np.iinfo(dtype)
    low, high = int(info.min), int(info.max)
    if nodata is not None and not math.isnan(nodata):
        if nodata == float(low):  # nodata arrives as a float
            low += 1
        elif nodata == float(high):
            high -= 1
    low_f, high_f = float(low), float(high)
    if low_f < low:
        low_f = math.nextafter(low_f, math.inf)
    if high_f > high:
        high_f = math.nextafter(high_f, -math.inf)
    return low_f, high_f


_TORCH_INTEGERS = {
    "uint8": torch.uint8,
    "int8": torch.int8,
    "uint16": torch.uint16,
    "int16": torch.int16,
    "int32": torch.int32,
}


def to_output_dtype(
    sr: np.ndarray | torch.Tensor,
    valid: np.ndarray,
    scale: int,
    dtype: np.dtype,
    nodata: float | None,
    *,
    inplace: bool = False,
) -> np.ndarray:
    """Clip and round to ``dtype``; pixels from nodata sources become nodata (or NaN).

    ``sr`` may be a tensor on a GPU: rounding and clipping run there, before the copy back.
    ``inplace`` lets rounding overwrite ``sr`` instead of a copy of it.
    """
    t = torch.as_tensor(sr)
    valid_t = None if valid.all() else torch.from_numpy(np.ascontiguousarray(valid)).to(t.device)
    values = _device_output(t, valid_t, scale, dtype, nodata, inplace).cpu().numpy()
    return _host_output(values, valid, scale, dtype, nodata)


def _device_output(
    t: torch.Tensor,
    valid: torch.Tensor | None,
    scale: int,
    dtype: np.dtype,
    nodata: float | None,
    inplace: bool,
) -> torch.Tensor:
    """The part of :func:`to_output_dtype` that runs where ``t`` is: rounding, clipping and
    the integer conversion. ``valid`` is the per-input-pixel validity there, or None when
    all pixels are valid. Float outputs come back as they are."""
    if dtype.kind == "f":
        return t
    low, high = output_limits(dtype, nodata)  # data never turns into nodata
    if dtype.itemsize >= 4:  # float32 cannot hold int32 limits exactly (2**31 - 1 -> 2**31)
        t = t.double()
        inplace = True  # a copy already
    # round half to even, as numpy's rint; in place, a fresh output-size tensor costs page faults
    t = t.round_() if inplace else t.round()
    t.clamp_(low, high)
    if nodata is not None and not math.isnan(nodata) and low < nodata < high:
        hit = t == nodata
        if valid is not None:
            bands, h, w = valid.shape
            hit.view(bands, h, scale, w, scale).logical_and_(valid[:, :, None, :, None])
        t.masked_fill_(hit, nodata + 1)  # indexing with a mask would wait for a GPU
    # convert where the data is: a uint8 copy off a GPU moves a quarter of float32's bytes
    torch_dtype = _TORCH_INTEGERS.get(dtype.name)
    return t.to(torch_dtype) if torch_dtype else t


def _host_output(
    values: np.ndarray, valid: np.ndarray, scale: int, dtype: np.dtype, nodata: float | None
) -> np.ndarray:
    """The host part of :func:`to_output_dtype`: ``dtype``, and nodata under invalid pixels.
    Float values may be a reused buffer, and are copied; integers are a new array already."""
    out = values.astype(dtype, copy=dtype.kind == "f")
    if valid.all():  # the common case: no output-size mask is built
        return out
    hr_valid = _nearest(valid, scale)
    if dtype.kind == "f":
        out[~hr_valid] = np.nan if nodata is None else nodata
    else:
        # under a mask without a nodata value: 0, whatever the network made of the fill
        fill = nodata if nodata is not None and not math.isnan(nodata) else 0
        out[~hr_valid] = dtype.type(fill)
    return out


@dataclass(frozen=True)
class _BlockPlan:
    runner: TileRunner
    stats: BandStats
    halo: tuple[int, int]
    numblocks: tuple[int, int]
    nodata: float | None
    dtype: np.dtype
    consistency: bool
    carry: tuple[int, ...] = ()  # band positions carried by nearest neighbour (alpha)
    anchor: TileRunner | None = None  # strength 0, whose band ratios the output keeps


def _upscale_block(
    block: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    plan: _BlockPlan,
    block_id: tuple[int, ...] | None = None,
) -> np.ndarray:
    _, height, width = block.shape
    _, iy, ix = block_id or (0, 0, 0)
    halo_y, halo_x = plan.halo
    top = halo_y if iy > 0 else 0
    bottom = height - (halo_y if iy < plan.numblocks[0] - 1 else 0)
    left = halo_x if ix > 0 else 0
    right = width - (halo_x if ix < plan.numblocks[1] - 1 else 0)
    scale = plan.runner.meta.scale
    whole = block
    if plan.carry:
        block = np.delete(whole, plan.carry, axis=0)
    valid = valid_mask(block, plan.nodata, mask)
    offset = plan.stats.offset[:, None, None]
    spread = plan.stats.scale[:, None, None]
    x = (block.astype(np.float32) - offset) / spread
    if not valid.all():
        x = fill_invalid(x, valid)
    core_valid = valid[:, top:bottom, left:right]
    runner = plan.runner
    with runner.stream():
        sr = runner.run(x, (top, bottom, left, right), scratch=True)
        # the rest goes up without waiting (a pageable copy would wait for the forward pass)
        spread_t, offset_t = runner.to_device(spread), runner.to_device(offset)
        sr = sr.mul_(spread_t).add_(offset_t)
        if plan.anchor is not None:
            anchor = plan.anchor.run(x, (top, bottom, left, right), scratch=True)
            keep_band_ratios(sr, anchor.mul_(spread_t).add_(offset_t))
            del anchor
        lr = None
        if plan.consistency:
            lr_values = np.where(core_valid, block[:, top:bottom, left:right], 0)
            lr = runner.to_device(lr_values.astype(np.float32))
        out = _finish_chunk(sr, lr, core_valid, plan, speculate=runner.device.type == "cuda")
    del sr, x
    _release_freed_memory()
    if plan.carry:
        carried = whole[list(plan.carry), top:bottom, left:right]
        out = np.insert(out, [c - i for i, c in enumerate(plan.carry)], _nearest(carried, scale), 0)
    return out


def _finish_chunk(
    sr: torch.Tensor,
    lr: torch.Tensor | None,
    valid: np.ndarray,
    plan: _BlockPlan,
    *,
    speculate: bool,
) -> np.ndarray:
    """A chunk's de-normalised SR (float32, on the runner's device, overwritten) as its output
    array: the radiometric projection onto ``lr`` (None: consistency off), rounding, clipping
    and nodata, as :func:`project_consistent` and :func:`to_output_dtype` make them.

    ``speculate`` (CUDA) waits for the device once per chunk, for the result: the output is
    made assuming the plain projection stays within the dtype's range, and that is checked
    when it arrives; only chunks where it fails are redone with the exact search. Without it
    the check is read first (free on a CPU), and the exact search runs only where needed."""
    runner = plan.runner
    scale = runner.meta.scale
    dtype, nodata = plan.dtype, plan.nodata
    valid_t = None if valid.all() else runner.to_device(valid)
    if lr is not None:
        project_block_means(sr, lr, scale)
        low, high = output_limits(dtype, nodata)
        if not (math.isinf(low) and math.isinf(high)):
            inside = _inside_limits(sr, low, high)
            if not speculate:
                if not bool(inside):
                    _clip_to_limits(sr, lr, scale, low, high)
            else:
                guess = _device_output(sr, valid_t, scale, dtype, nodata, inplace=False)
                values, ok = runner.to_host(guess, inside)
                if bool(ok):
                    return _host_output(values, valid, scale, dtype, nodata)
                log.debug("chunk reaches its dtype's limits: exact projection")
                _clip_to_limits(sr, lr, scale, low, high)
    (values,) = runner.to_host(_device_output(sr, valid_t, scale, dtype, nodata, inplace=True))
    return _host_output(values, valid, scale, dtype, nodata)


def _nearest(array: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upsampling of the last two axes by ``scale``."""
    return np.repeat(np.repeat(array, scale, axis=-2), scale, axis=-1)


def upscaled_mask(mask: da.Array, scale: int, chunks: tuple[tuple[int, ...], ...]) -> da.Array:
    """The output's mask: ``mask`` (y, x; 0 = masked) as 0/255, nearest-upsampled by
    ``scale`` and chunked as the output's (y, x) ``chunks``."""
    flags = da.where(mask != 0, np.uint8(255), np.uint8(0))
    return da.repeat(da.repeat(flags, scale, axis=0), scale, axis=1).rechunk(chunks)


def _load_malloc_trim() -> Callable[[int], int] | None:
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


_MALLOC_TRIM = _load_malloc_trim() if sys.platform.startswith("linux") else None


def _release_freed_memory() -> None:
    """Hand the heap's freed pages back to the OS after each chunk. glibc otherwise keeps the
    chunks' freed activations in per-thread arenas and RSS creeps up with the chunk count
    (measured: 16x the pixels took 1.43x the memory of 1x without this)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _halo_chunks(chunks: tuple[int, ...], halo: int) -> tuple[tuple[int, ...], int]:
    """Merge chunks smaller than the halo into their neighbour (dask's overlap needs every
    chunk at least as deep as the halo); an axis shorter than the halo needs no halo at all."""
    total = sum(chunks)
    if total <= halo or len(chunks) == 1:
        return (total,), 0
    merged = list(chunks)
    while len(merged) > 1 and min(merged) < halo:
        i = merged.index(min(merged))
        j = i - 1 if i == len(merged) - 1 or (i > 0 and merged[i - 1] < merged[i + 1]) else i + 1
        merged[min(i, j)] = merged[i] + merged[j]
        del merged[max(i, j)]
    return tuple(merged), (halo if len(merged) > 1 else 0)


def upscale_array(
    array: da.Array,
    runner: TileRunner,
    stats: BandStats,
    nodata: float | None,
    halo: int,
    consistency: bool = True,
    mask: da.Array | None = None,
    carry: Sequence[int] = (),
    anchor: TileRunner | None = None,
) -> da.Array:
    """Lazy super-resolution of a dask array (bands, y, x); output chunks are ``scale`` times
    the input chunks. Bands stay in one chunk, since the network needs all of them.

    ``mask`` (y, x) marks masked pixels with 0: they are invalid, as nodata is. The bands at
    0-based positions ``carry`` (an alpha band) are upsampled by nearest neighbour, never
    super-resolved; ``runner`` and ``stats`` see the other bands only. With ``anchor`` (a
    runner like ``runner``, of the strength-0 network) each output pixel keeps the anchor's
    band ratios (:func:`keep_band_ratios`)."""
    scale = runner.meta.scale
    if array.chunks[0] != (array.shape[0],):
        array = array.rechunk({0: -1})
    ychunks, halo_y = _halo_chunks(array.chunks[1], halo)
    xchunks, halo_x = _halo_chunks(array.chunks[2], halo)
    if (ychunks, xchunks) != array.chunks[1:]:
        array = array.rechunk((array.shape[0], ychunks, xchunks))
    extended = da.overlap.overlap(array, depth={0: 0, 1: halo_y, 2: halo_x}, boundary="none")
    masks = []
    if mask is not None:
        mask = mask.rechunk((ychunks, xchunks))
        masks.append(da.overlap.overlap(mask, depth={0: halo_y, 1: halo_x}, boundary="none"))
    plan = _BlockPlan(
        runner=runner,
        stats=stats,
        halo=(halo_y, halo_x),
        numblocks=(len(ychunks), len(xchunks)),
        nodata=nodata,
        dtype=np.dtype(array.dtype),
        consistency=consistency,
        carry=tuple(sorted(int(c) for c in carry)),
        anchor=anchor,
    )
    out_chunks = (
        array.chunks[0],
        tuple(c * scale for c in ychunks),
        tuple(c * scale for c in xchunks),
    )
    return da.map_blocks(
        _upscale_block,
        extended,
        *masks,  # (y, x): dask aligns it with the last two axes
        # one graph key holding the model: a cluster ships it once per worker, not per chunk
        plan=dask.delayed(plan, pure=False),
        chunks=out_chunks,
        dtype=array.dtype,
        token=f"geosr-upscale-x{scale}",
        meta=np.empty((0, 0, 0), array.dtype),
    )


@dataclass(frozen=True)
class _UncertaintyPlan:
    stats: BandStats
    halo: tuple[int, int]
    numblocks: tuple[int, int]
    nodata: float | None
    scale: int
    strength: float
    carry: tuple[int, ...] = ()


def _uncertainty_chunk(
    block: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    plan: _UncertaintyPlan,
    block_id: tuple[int, ...] | None = None,
) -> np.ndarray:
    _, height, width = block.shape
    _, iy, ix = block_id or (0, 0, 0)
    halo_y, halo_x = plan.halo
    top = halo_y if iy > 0 else 0
    bottom = height - (halo_y if iy < plan.numblocks[0] - 1 else 0)
    left = halo_x if ix > 0 else 0
    right = width - (halo_x if ix < plan.numblocks[1] - 1 else 0)
    bands = np.delete(block, plan.carry, axis=0) if plan.carry else block
    valid = valid_mask(bands, plan.nodata, mask)
    error = uncertainty_block(
        bands, valid, plan.stats.offset, plan.stats.scale, plan.scale, plan.strength
    )
    s = plan.scale
    error = error[:, top * s : bottom * s, left * s : right * s]
    if plan.carry:  # an alpha band is carried exactly: no error
        positions = [c - i for i, c in enumerate(plan.carry)]
        error = np.insert(error, positions, np.float32(0), axis=0)
    return error


def uncertainty_array(
    array: da.Array,
    stats: BandStats,
    nodata: float | None,
    scale: int,
    strength: float,
    mask: da.Array | None = None,
    carry: Sequence[int] = (),
) -> da.Array:
    """Lazy per-pixel uncertainty (float32, NaN where masked) of upscaling ``array`` (bands,
    y, x) by ``scale``: the expected absolute error of each output pixel, in the band's units
    (:mod:`geosr.uncertainty`). It needs no network, only the input and ``stats``, the
    normalisation the network saw; chunks get a halo, so the values do not depend on them."""
    if array.chunks[0] != (array.shape[0],):
        array = array.rechunk({0: -1})
    ychunks, halo_y = _halo_chunks(array.chunks[1], UNCERTAINTY_HALO)
    xchunks, halo_x = _halo_chunks(array.chunks[2], UNCERTAINTY_HALO)
    if (ychunks, xchunks) != array.chunks[1:]:
        array = array.rechunk((array.shape[0], ychunks, xchunks))
    extended = da.overlap.overlap(array, depth={0: 0, 1: halo_y, 2: halo_x}, boundary="none")
    masks = []
    if mask is not None:
        mask = mask.rechunk((ychunks, xchunks))
        masks.append(da.overlap.overlap(mask, depth={0: halo_y, 1: halo_x}, boundary="none"))
    plan = _UncertaintyPlan(
        stats=stats,
        halo=(halo_y, halo_x),
        numblocks=(len(ychunks), len(xchunks)),
        nodata=nodata,
        scale=scale,
        strength=strength,
        carry=tuple(sorted(int(c) for c in carry)),
    )
    return da.map_blocks(
        _uncertainty_chunk,
        extended,
        *masks,
        plan=dask.delayed(plan, pure=True),
        chunks=(
            array.chunks[0],
            tuple(c * scale for c in ychunks),
            tuple(c * scale for c in xchunks),
        ),
        dtype=np.float32,
        token=f"geosr-uncertainty-x{scale}",
        meta=np.empty((0, 0, 0), np.float32),
    )


def with_uncertainty(upscaled: xr.DataArray, error: da.Array) -> xr.Dataset:
    """The Dataset ``upscale_dataarray(uncertainty=True)`` returns: ``upscaled`` and its
    ``uncertainty`` (float32, NaN nodata, same grid, bands described as ``<band>
    uncertainty``)."""
    names = upscaled.attrs.get("long_name")
    band_dim = upscaled.dims[0]
    if not isinstance(names, list | tuple):
        coord = upscaled.coords.get(band_dim)
        names = (
            [str(v) for v in coord.values]
            if coord is not None and coord.dtype.kind in "OU"
            else [f"band {i}" for i in range(1, upscaled.shape[0] + 1)]
        )
    attrs = {
        "long_name": [f"{name} uncertainty" for name in names],
        "geosr_uncertainty": UNCERTAINTY_MEANING,
        "geosr_model": upscaled.attrs.get("geosr_model", ""),
        "geosr_scale": upscaled.attrs.get("geosr_scale", ""),
    }
    error_da = xr.DataArray(error, dims=upscaled.dims, coords=upscaled.coords, attrs=attrs)
    error_da = error_da.rio.write_nodata(np.nan, encoded=False)
    return xr.Dataset({"upscaled": upscaled, "uncertainty": error_da})


#: What the uncertainty raster holds, as its GEOSR_UNCERTAINTY tag says.
UNCERTAINTY_MEANING = (
    "expected absolute error of each output pixel, in the band's units (geosr.uncertainty)"
)


def uncertainty_path(output: str | os.PathLike[str]) -> Path:
    """Where ``upscale(uncertainty=True)`` writes the uncertainty beside ``output``:
    ``scene_x4.tif`` -> ``scene_x4_uncertainty.tif`` (``.zarr`` likewise)."""
    path = Path(output)
    return path.with_name(f"{path.stem}_uncertainty{path.suffix}")


def _strength_of(net: nn.Module) -> float:
    """The strength the error model is told: the dial's, 0 (fidelity) without one."""
    strength = getattr(net, "strength", None)
    return 0.0 if strength is None else float(strength)


def default_halo(model: nn.Module, may_have_nodata: bool) -> int:
    """The generator's receptive radius, plus the nodata fill's reach when it can matter."""
    return model.receptive_radius() + (FILL_RADIUS if may_have_nodata else 0)


def check_bands(meta: ModelMeta, count: int, source: str) -> None:
    if meta.bands is not None and meta.bands != count:
        names = f" ({', '.join(meta.band_names)})" if meta.band_names else ""
        raise BandMismatchError(
            f"the model expects {meta.bands} band(s){names} but {source} has {count}; select "
            f"{meta.bands} bands with bands=[...] (--bands 1,2,...) or use a band-shared model"
        )


def chunk_side(chunk_size: int | None) -> int:
    """Input pixels per chunk side: ``chunk_size``, or DEFAULT_CHUNK_SIZE when it is None."""
    if chunk_size is None:
        return DEFAULT_CHUNK_SIZE
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral):
        raise ConfigError(
            f"chunk_size must be a whole number of pixels, got {chunk_size!r}; pass e.g. 512"
        )
    if chunk_size < 1:
        raise ConfigError(
            f"chunk_size must be a positive number of pixels, got {chunk_size}; pass e.g. 512, "
            "or leave it unset for the default"
        )
    return int(chunk_size)


def check_scale(meta: ModelMeta, scale: int | None) -> None:
    if scale is not None and int(scale) != meta.scale:
        raise ModelError(
            f"this model upscales x{meta.scale} only, not x{scale}; pass a x{scale} model or scale={meta.scale}"
        )


def check_dtype(dtype: np.dtype, source: str) -> None:
    if dtype.kind == "c":
        raise InputError(
            f"{source} holds complex values ({dtype}); geosr needs real-valued bands, e.g. take numpy.abs first"
        )
    if dtype.kind not in "uif":
        raise InputError(f"{source} has unsupported data type {dtype}; convert it to float32")


# --- xarray face --------------------------------------------------------------------------------


def upscale_dataarray(
    data: xr.DataArray,
    model: str | os.PathLike[str] | nn.Module = "default",
    *,
    scale: int | None = None,
    chunk_size: int | None = None,
    overlap: int | None = None,
    device: str | torch.device = "auto",
    tile_size: int | None = None,
    batch_size: int | None = None,
    precision: str = "auto",
    consistency: bool = True,
    stats: BandStats | None = None,
    mask: xr.DataArray | da.Array | np.ndarray | None = None,
    alpha: int | None = None,
    strict: bool | None = False,
    strength: float | None = None,
    tta: bool = False,
    preserve_spectra: bool = False,
    uncertainty: bool = False,
) -> xr.DataArray | xr.Dataset:
    """Lazily super-resolve a georeferenced DataArray (``band, y, x`` or ``y, x``), or a cube
    with leading dimensions such as ``time`` (``time, band, y, x``): each slice is upscaled
    as a scene of its own, with its own statistics.

    Nothing is computed: for models that normalise per scene, the statistics of a dask-backed
    array come from a decimated sample of at most a million pixels per band (whole chunks on a
    regular sub-grid) computed inside the same graph, so no chunk is read twice; an in-memory
    array is sampled at once (pass ``stats=`` to skip either). The result is dask-backed, with
    x/y coordinates of the new pixel centres, the same CRS, transform ``transform @
    Affine.scale(1/scale)``, the same nodata, dims, coordinates and attributes.

    Args:
        data: the raster, e.g. from ``rioxarray.open_rasterio(path, chunks=...)``.
        model: a generator from :func:`geosr.load_model`, a ``.safetensors`` path or a name.
        scale: checked against the model's scale when given.
        chunk_size: input pixels per chunk side; by default the DataArray's own chunks, or 512.
        overlap: halo in input pixels; default the receptive radius (plus nodata fill reach).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        tile_size: network tile side inside a chunk (memory bound on small GPUs); default the chunk.
        batch_size: tiles (and bands of a band-shared model) per forward pass; default 8 on
            CUDA, 1 on CPU.
        precision: forward pass on CUDA: ``"auto"`` (fp16 autocast for 8-bit outputs, where
            it stays within 1 DN of fp32; fp32 otherwise), or ``"fp32"``, ``"fp16"``, ``"bf16"``.
            CPUs always run fp32.
        consistency: project the output so each block averages back to its input pixel.
        stats: the normalisation to use instead of the scene's (or the model's fixed one).
        mask: (y, x) validity, 0 where a pixel is masked (e.g. ``src.dataset_mask()``):
            masked pixels never reach the network and come out as nodata (NaN for floats,
            0 for integers without a nodata value).
        alpha: 1-based position of an alpha band along ``band``: carried by nearest
            neighbour, never super-resolved, and a mask for the other bands (0 = masked).
        strict: the input contract (:mod:`geosr.contract`): before any work the scene (pixel
            size, dtype, a sample of its values) is compared with the training domain the
            model's card records; False (default) warns once (a ``DomainWarning``) naming
            what lies outside it, True refuses with a ``DomainError``, None skips the check.
        strength: for a model with a strength dial (``srgan``): 0 is its PSNR model (fidelity),
            1 its GAN endpoint (texture), values between interpolate the two networks; default
            the model's own (``geosr info srgan``). Other models refuse it.
        tta: the x8 self-ensemble: each tile also runs flipped and rotated, and the eight
            outputs are averaged before the projection (8x the network time; see the README).
        preserve_spectra: for a model with a strength dial, on more than one band: each
            output pixel keeps the band ratios (the spectral angle) of strength 0 and the
            brightness, hence the texture, of ``strength`` (:func:`keep_band_ratios`), before
            the projection. SAM stays at the PSNR model's; it costs a second network pass.
        uncertainty: also estimate each output pixel's error: the result is then an
            ``xr.Dataset`` of ``upscaled`` (the DataArray returned otherwise) and
            ``uncertainty`` (float32, same grid and bands, NaN where masked): the expected
            absolute error in the band's units, from the input's local detail with an error
            model fitted on real errors (:mod:`geosr.uncertainty`); no network pass.
    """
    net = resolve_model(model, strength)
    meta = model_meta(net)
    check_scale(meta, scale)
    kept = keeps_spectra(net, preserve_spectra)  # refuses a model without a dial, before any work
    enforce(meta, lambda: describe_dataarray(data, alpha), strict)  # the input contract
    label = model_label(model, net, tta, preserve_spectra)
    options = {
        "scale": scale,
        "chunk_size": chunk_size,
        "overlap": overlap,
        "device": device,
        "tile_size": tile_size,
        "batch_size": batch_size,
        "precision": precision,
        "consistency": consistency,
        "stats": stats,
        "mask": mask,
        "alpha": alpha,
        "strict": None,  # checked once, above
        "tta": tta,
        "preserve_spectra": preserve_spectra,
        "uncertainty": uncertainty,
    }
    if data.ndim > 3:
        return _upscale_cube(data, net, options, label)
    if data.ndim == 2:
        data = data.expand_dims("band")
    if data.ndim != 3:
        raise InputError(f"expected a DataArray with dims (band, y, x), got {data.dims}")
    if _south_up(data):
        # rows as NetCDF stores them: the network sees the scene north-up, as it would the
        # same scene from a GeoTIFF (it is not flip-equivariant), and the rows go back after
        rows = {data.dims[-2]: slice(None, None, -1)}
        flipped_mask = None if mask is None else _flip_rows(mask)
        north_up = upscale_dataarray(data.isel(rows), net, **{**options, "mask": flipped_mask})
        if isinstance(north_up, xr.Dataset):  # with its uncertainty: each flipped back
            return xr.Dataset(
                {
                    name: _rows_back(variable, rows, label if name == "upscaled" else None)
                    for name, variable in north_up.items()
                }
            )
        return _rows_back(north_up, rows, label)
    check_dtype(np.dtype(data.dtype), "the DataArray")
    count = data.shape[0]
    carry = _alpha_position(alpha, count)
    check_bands(
        meta, count - len(carry), "the DataArray" + (" (less its alpha band)" if carry else "")
    )
    nodata = data.rio.nodata
    if nodata is None and data.rio.encoded_nodata is not None:
        nodata = float("nan")  # masked on read: nodata arrives as NaN
    array = data.data if isinstance(data.data, da.Array) else da.asarray(data.data)
    if chunk_size is not None or not isinstance(data.data, da.Array):
        size = chunk_side(chunk_size)
        array = array.rechunk((count, size, size))
    valid = _mask_array(mask, array)
    if carry:
        alpha_band = array[carry[0]]
        valid = alpha_band if valid is None else da.where(valid != 0, alpha_band, 0)
    may_have_nodata = nodata is not None or array.dtype.kind == "f" or valid is not None
    halo = default_halo(net, may_have_nodata) if overlap is None else int(overlap)
    if stats is None:
        network = array[np.delete(np.arange(count), carry)] if carry else array
        if isinstance(data.data, da.Array) and meta.normalization.mode != "fixed":
            stats = _graph_statistics(network, valid, nodata, meta.normalization.percentiles)
        else:

            def sample() -> tuple[np.ndarray, np.ndarray | None]:
                pixels = sample_array(network)
                return pixels, None if valid is None else sample_array(valid[None])[0]

            stats = model_statistics(meta, count - len(carry), sample, nodata)
    if active_client() is None:
        resolve_device(device)  # fail now, not in the first chunk; a cluster resolves per worker
    runner_options = {
        "device": device,
        "halo": halo,
        "tile_size": tile_size,
        "batch_size": batch_size,
        "precision": precision,
        "output_dtype": array.dtype,
        "tta": tta,
    }
    runner = TileRunner(net, **runner_options)
    anchor = None  # the strength-0 network, whose band ratios the output keeps
    _hint_preserve_spectra(net, preserve_spectra, count - len(carry))
    if kept and count - len(carry) > 1:  # one band has no ratios: no second network pass
        anchor = TileRunner(with_strength(net, 0.0), **runner_options)
    result = upscale_array(array, runner, stats, nodata, halo, consistency, valid, carry, anchor)
    out = _wrap_result(data, result, meta.scale, nodata, label)
    if not uncertainty:
        return out
    error = uncertainty_array(array, stats, nodata, meta.scale, _strength_of(net), valid, carry)
    return with_uncertainty(out, error)


def _rows_back(
    north_up: xr.DataArray, rows: dict[Hashable, slice], label: str | None
) -> xr.DataArray:
    out = north_up.isel(rows)
    if label is not None:
        out = out.assign_attrs(geosr_model=label)
    return out.rio.write_transform(grid_transform(out))


def _hint_preserve_spectra(net: nn.Module, preserve_spectra: bool, bands: int) -> None:
    """Say when preserve_spectra would pay. It stays off by default: at the default strength
    it changes little for twice the network time (docs/uncertainty.md, "Spectral fidelity")."""
    strength = getattr(net, "strength", None)
    if not preserve_spectra and bands > 1 and strength is not None and strength >= 0.5:
        log.info(
            "at strength %g, preserve_spectra=True (--preserve-spectra) keeps strength 0's "
            "band ratios: on the validation scenes SAM -7 %% at 0.5 and -20 %% at 1, PSNR "
            "+0.1 to +0.2 dB, for a second network pass",
            strength,
        )


def _south_up(data: xr.DataArray) -> bool:
    """Whether ``data``'s rows run south to north (its y coordinate increases); rows of an
    array without a CRS are pixel rows, never flipped."""
    y = data.dims[-2]
    if y not in data.coords or data.sizes[y] < 2 or data.rio.crs is None:
        return False
    values = data.coords[y].values
    return bool(values[-1] > values[0]) and grid_transform(data).e > 0


def _flip_rows(mask: Any) -> Any:
    """A (y, x) or (1, y, x) mask with its rows reversed."""
    if isinstance(mask, xr.DataArray):
        return mask.isel({mask.dims[-2]: slice(None, None, -1)})
    return mask[..., ::-1, :]


def _upscale_cube(
    data: xr.DataArray, net: nn.Module, options: dict[str, Any], label: str
) -> xr.DataArray:
    """Each slice along the leading dimensions upscaled lazily as a scene; dims (a ``band``
    dimension first moved next to y, x), coordinates, attributes and ``spatial_ref`` kept."""
    spatial = data.dims[-2:]
    if "band" in data.dims and data.dims.index("band") != data.ndim - 3:
        order = [d for d in data.dims if d not in ("band", *spatial)]
        moved = upscale_dataarray(data.transpose(*order, "band", *spatial), net, **options)
        return moved.transpose(*data.dims).assign_attrs(geosr_model=label)
    lead = data.dims[0]
    slices = [
        upscale_dataarray(data.isel({lead: i}, drop=True), net, **options)
        for i in range(data.sizes[lead])
    ]
    # the slices' other coordinates are the cube's, put back whole (e.g. cloud along time)
    cube = xr.concat(slices, dim=lead, coords="minimal", compat="override", join="override")
    return cube.assign_coords(_unchanged_coords(data)).assign_attrs(geosr_model=label)


def _unchanged_coords(data: xr.DataArray) -> dict[Hashable, xr.Variable]:
    """The coordinates upscaling leaves as they are: all but those along y or x (their grid
    changes) and the grid mapping (written anew for the output)."""
    spatial = set(data.dims[-2:])
    return {
        name: coord.variable
        for name, coord in data.coords.items()
        if name != data.rio.grid_mapping and not spatial.intersection(coord.dims)
    }


def _graph_statistics(
    array: da.Array, mask: da.Array | None, nodata: float | None, percentiles: Sequence[float]
) -> Any:
    """The scene statistics as one task of the computation's own graph (a ``Delayed``) over
    the chunks :func:`_chunk_sample` picks: a chunk is read once for the sample and the
    upscale alike (unoptimised delayed parts keep the array's own keys; optimising would fuse
    the reads into new tasks and read those chunks twice)."""

    def parts(source: da.Array) -> list[Any]:
        return [p.to_delayed(optimize_graph=False).ravel()[0] for p in _chunk_sample(source)]

    masks = None if mask is None else parts(mask[None])
    return dask.delayed(_sample_statistics, pure=True)(
        parts(array), masks, nodata, tuple(percentiles)
    )


def _sample_statistics(
    parts: list[np.ndarray],
    masks: list[np.ndarray] | None,
    nodata: float | None,
    percentiles: tuple[float, float],
) -> BandStats:
    bands = parts[0].shape[0]
    sample = np.concatenate([p.reshape(bands, -1) for p in parts], axis=1)[:, None]
    mask = None if masks is None else np.concatenate([m.reshape(-1) for m in masks])[None]
    return scene_statistics(sample, nodata, percentiles, mask)


def _chunk_sample(array: da.Array, max_pixels: int = DEFAULT_STATS_PIXELS) -> list[da.Array]:
    """A decimated sample of a dask array (bands, y, x), as single-chunk pieces: every pixel
    when they fit ``max_pixels`` per band; else whole chunks on a regular sub-grid (so most
    chunks are not needed before the statistics are known), thinned by a whole step."""
    _, height, width = array.shape
    array = array.rechunk({0: -1})
    ny, nx = array.numblocks[1:]
    if height * width <= max_pixels:
        step = 1
    else:
        chunk_pixels = max(array.chunks[1]) * max(array.chunks[2])
        wanted = max(1, math.ceil(max_pixels / chunk_pixels))
        step = max(1, math.floor(math.sqrt(ny * nx / wanted)))
    picked = [
        array.blocks[:, iy, ix]
        for iy in range(step // 2, ny, step)
        for ix in range(step // 2, nx, step)
    ]
    pixels = sum(block.shape[1] * block.shape[2] for block in picked)
    thin = max(1, math.ceil(math.sqrt(pixels / max_pixels)))
    return [block[:, ::thin, ::thin] if thin > 1 else block for block in picked]


def _alpha_position(alpha: int | None, count: int) -> tuple[int, ...]:
    """The 0-based position of a 1-based alpha band number, checked."""
    if alpha is None:
        return ()
    if (
        isinstance(alpha, bool)
        or not isinstance(alpha, numbers.Integral)
        or not 1 <= alpha <= count
    ):
        raise InputError(
            f"alpha={alpha!r} is not a band of the DataArray; pass its 1-based position, 1 to {count}"
        )
    if count == 1:
        raise InputError("the DataArray's only band is its alpha band; pass the data bands too")
    return (int(alpha) - 1,)


def _mask_array(mask: Any, array: da.Array) -> da.Array | None:
    """``mask`` as a dask (y, x) array chunked like ``array``'s rows and columns."""
    if mask is None:
        return None
    values = mask.data if isinstance(mask, xr.DataArray) else mask
    values = values if isinstance(values, da.Array) else da.asarray(values)
    if values.ndim == 3 and values.shape[0] == 1:
        values = values[0]
    if values.shape != array.shape[1:]:
        raise InputError(
            f"the mask is {'x'.join(map(str, values.shape))} but the DataArray's rows and "
            f"columns are {'x'.join(map(str, array.shape[1:]))}; pass a (y, x) mask of the same size"
        )
    return values.rechunk(array.chunks[1:])


def model_label(
    model: Any, net: nn.Module, tta: bool = False, preserve_spectra: bool = False
) -> str:
    """The model as the GEOSR_MODEL tag names it: the file or bundled name (an alias such as
    ``default`` as the model it stands for), else the loaded model's own name; then the
    strength of a model with a strength dial, the band ratios kept and the self-ensemble."""
    if isinstance(model, str | os.PathLike):
        text = os.fspath(model)
        label = Path(ALIASES.get(text, text)).name
    else:
        label = model_meta(net).name or "custom"
    strength = getattr(net, "strength", None)
    if strength is not None:
        label += f", strength {strength:g}"
        if keeps_spectra(net, preserve_spectra):
            label += ", spectra of strength 0"
    return label + (", tta x8" if tta else "")


def _wrap_result(
    source: xr.DataArray, result: da.Array, scale: int, nodata: float | None, label: str
) -> xr.DataArray:
    # from the coordinates as given: a y that increases keeps its order and its sign
    transform = grid_transform(source) @ Affine.scale(1 / scale)
    _, height, width = result.shape
    coords: dict[Hashable, Any] = _unchanged_coords(source)
    band_dim = source.dims[0]
    if transform.b == 0 and transform.d == 0:
        coords["x"] = (transform @ (np.arange(width) + 0.5, np.zeros(width)))[0]
        coords["y"] = (transform @ (np.zeros(height), np.arange(height) + 0.5))[1]
    attrs = dict(source.attrs)
    attrs.update({"geosr_model": label, "geosr_scale": scale})
    out = xr.DataArray(
        result, dims=(band_dim, "y", "x"), coords=coords, attrs=attrs, name=source.name
    )
    crs = source.rio.crs
    if crs is not None:
        out = out.rio.write_crs(crs)
    out = out.rio.write_transform(transform)
    if nodata is not None:
        if math.isnan(nodata) and source.rio.encoded_nodata is not None:
            out = out.rio.write_nodata(source.rio.encoded_nodata, encoded=True)
        else:
            out = out.rio.write_nodata(nodata, encoded=False)
    return out


def write(
    data: xr.DataArray,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    cog: bool = False,
    progress: bool | ProgressCallback = False,
    scheduler: Any = None,
    num_workers: int | None = None,
    format: str | None = None,
) -> Path:
    """Stream a (lazy) georeferenced DataArray, such as :func:`upscale_dataarray`'s result,
    into a tiled, compressed GeoTIFF, atomically, on threads or a dask.distributed cluster;
    into a Zarr store (:func:`geosr.zarr_store.write_zarr`) for a ``.zarr`` path or
    ``format="zarr"``.

    CRS, transform and nodata come from the ``rio`` accessor; band descriptions from the
    ``long_name`` attribute or string band labels; ``geosr_*`` attributes become tags.
    """
    if is_zarr_output(path, format):
        _check_zarr_options(cog)
        return write_zarr(
            data,
            path,
            overwrite=overwrite,
            progress=progress,
            scheduler=scheduler,
            num_workers=num_workers,
        )
    if data.ndim == 2:
        data = data.expand_dims("band")
    if data.ndim != 3:
        raise InputError(f"expected a DataArray with dims (band, y, x), got {data.dims}")
    out_path = check_output_path((), path, overwrite)
    array = data.data if isinstance(data.data, da.Array) else da.asarray(data.data)
    if array.chunks[0] != (array.shape[0],):
        array = array.rechunk({0: -1})
    count, height, width = array.shape
    block = output_block_size(array.chunks[1][0])
    floating = array.dtype.kind == "f"
    nodata = data.rio.nodata if data.rio.nodata is not None else data.rio.encoded_nodata
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": count,
        "dtype": array.dtype.name,
        "transform": grid_transform(data),
        "nodata": None if nodata is None or (not floating and math.isnan(nodata)) else nodata,
        "tiled": True,
        "blockxsize": block,
        "blockysize": block,
        **compression_options(floating),
    }
    if data.rio.crs is not None:
        profile["crs"] = data.rio.crs
    names = data.attrs.get("long_name")
    if isinstance(names, str):
        names = (names,) * count if count == 1 else None
    if (
        names is None
        and data.dims[0] in data.coords
        and data.coords[data.dims[0]].dtype.kind in "OU"
    ):
        names = [str(v) for v in data.coords[data.dims[0]].values]
    tags = {k.upper(): str(v) for k, v in data.attrs.items() if k.startswith("geosr_")}

    def decorate(dst: Any) -> None:
        dst.update_tags(**tags)
        for index, name in enumerate(names or (), start=1):
            if name:
                dst.set_band_description(index, str(name))

    write_raster(
        array,
        out_path,
        profile,
        decorate,
        cog=cog,
        progress=progress,
        scheduler=scheduler,
        num_workers=num_workers,
    )
    return out_path


def _check_zarr_options(cog: bool) -> None:
    if cog:
        raise ConfigError(
            "cog=True (--cog) makes a GeoTIFF, not a Zarr store; drop it, or write a .tif output"
        )


def dataarray_from_info(info: RasterInfo, chunk_size: int) -> xr.DataArray:
    """The selected bands of a raster file as a lazy, georeferenced DataArray."""
    array = lazy_array(info, chunk_size)
    transform = info.transform
    coords: dict[str, Any] = {"band": list(info.selected)}
    if transform.b == 0 and transform.d == 0:
        coords["x"] = (transform @ (np.arange(info.width) + 0.5, np.zeros(info.width)))[0]
        coords["y"] = (transform @ (np.zeros(info.height), np.arange(info.height) + 0.5))[1]
    data = xr.DataArray(array, dims=("band", "y", "x"), coords=coords, name=info.stem)
    if info.crs is not None:
        data = data.rio.write_crs(info.crs)
    data = data.rio.write_transform(transform)
    if info.nodata is not None:
        data = data.rio.write_nodata(info.nodata, encoded=False)
    return data


def open_dataarray(
    source: Sources | Any,
    *,
    bands: Sequence[int | str] | None = None,
    band_names: Sequence[str] | None = None,
    mask: str | None = "auto",
    chunk_size: int | None = None,
    guided: Any = "auto",
    device: str | torch.device = "auto",
) -> xr.DataArray:
    """A raster or a product (see :func:`upscale`) as a lazy, georeferenced DataArray
    (``band, y, x``) on its finest band's grid, ready for ``.geosr.upscale()`` or any xarray
    work: the ``band`` coordinate holds the band names, masked pixels (``mask``, as in
    :func:`upscale`) hold nodata (0 for integers without a nodata value, which is then
    declared), and the attributes carry the tags and band metadata a GeoTIFF output would
    (``long_name``, ``scale_factor``/``add_offset``, ``band_central_wavelength_um`` ...).

    Example:
        >>> sr = geosr.open_dataarray("S2A_MSIL2A_...SAFE", bands=["B04", "B03", "B02"])  # doctest: +SKIP
        >>> sr.geosr.upscale().geosr.to_raster("rgb_x4.tif")  # doctest: +SKIP
    """
    if not isinstance(source, str | os.PathLike) and not is_stac_item(source):
        source = list(source)
    with remote_env(remote_names(source)):
        info, _, data, size = open_aligned(
            source, bands, band_names, mask, guided, chunk_side(chunk_size), device
        )
    valid = lazy_mask(info, size)
    nodata = info.nodata
    if valid is not None and nodata is None:
        nodata = float("nan") if data.dtype.kind == "f" else 0.0
        data = data.rio.write_nodata(nodata, encoded=False)
    data = _masked_source(data, valid, nodata)
    names = info.band_names()
    attrs = {k: v for k, v in raster_attrs(info, "").items() if k != "geosr_model"}
    return data.assign_coords(band=names).assign_attrs(attrs)


# --- file face ----------------------------------------------------------------------------------


def upscale(
    input: Sources,
    output: str | os.PathLike[str] | None = None,
    *,
    model: str | os.PathLike[str] | nn.Module = "default",
    scale: int | None = None,
    bands: Sequence[int | str] | None = None,
    band_names: Sequence[str] | None = None,
    mask: str | None = "auto",
    resolution: float | None = None,
    guided: Any = "auto",
    chunk_size: int | None = None,
    overlap: int | None = None,
    device: str | torch.device = "auto",
    tile_size: int | None = None,
    batch_size: int | None = None,
    precision: str = "auto",
    consistency: bool = True,
    stac: bool = False,
    cog: bool = False,
    overwrite: bool = False,
    strict: bool | None = False,
    progress: bool | ProgressCallback = False,
    scheduler: Any = None,
    num_workers: int | None = None,
    format: str | None = None,
    strength: float | None = None,
    tta: bool = False,
    preserve_spectra: bool = False,
    uncertainty: bool = False,
) -> Path:
    """Super-resolve a raster into a local GeoTIFF (or Zarr store) on exactly the same footprint.

    The output has the input's CRS and bounds, its pixel size divided by the model's scale
    (transform ``src.transform @ Affine.scale(1/scale)``, right for rotated rasters too), or
    its GCPs or RPCs rescaled to the finer grid; the same bands, dtype, nodata, band
    descriptions, colour interpretation and tags, plus ``GEOSR_MODEL``/``GEOSR_SCALE`` tags.
    An alpha band is carried by nearest neighbour, a per-dataset mask becomes the output's
    internal mask; masked pixels, like nodata, never reach the network. It is streamed chunk
    by chunk to a tiled, compressed GeoTIFF (BigTIFF when needed) through a temporary file
    renamed at the end, so memory stays bounded and an interruption leaves neither a partial
    output nor a changed input. Remote inputs are read window by window (range requests).

    Products: a Sentinel-2 SAFE folder, ``.zip`` or ``MTD_MSIL*.xml``, a Landsat folder or
    MTL file, a STAC Item (JSON file, URL or ``pystac.Item``) or single-band files on several
    grids (:mod:`geosr.products`). Their bands are first brought to the finest selected
    band's grid (the aligner: cubic resampling, named in the ``GEOSR_ALIGNER`` tag), then
    upscaled; band names, wavelengths, scale/offset to reflectance and product metadata are
    carried as band descriptions and tags.

    Args:
        input: the source raster: a local path (any GDAL raster: GeoTIFF, JPEG 2000, VRT...),
            a URL (``https://``, ``s3://``, ``gs://``, ``az://``) or a GDAL name
            (``/vsicurl/...``, ``/vsis3/...``); a list of single-band rasters, stacked in
            order (each band described by its file name, or by its band name when the files
            lie on several grids); or a product (see above).
        output: a local destination; by default ``<stem>_x<scale>.tif`` beside a local input,
            in the current folder for a remote one, ``<first stem>_stack_x<scale>.tif``
            for a stack (see :func:`geosr.raster.default_output_path`), and
            ``<product id>_x<scale>.tif`` beside a product.
        model: bundled name (``"default"``), ``.safetensors`` path, or a loaded generator.
        scale: if given, must equal the model's scale (a guard against the wrong model).
        bands: bands to process, by 1-based number (GDAL's numbering) or by name
            (``["B04", "B03", "B02", "B08"]``: a product's band names, a raster's band
            descriptions); default all (a product's default bands: its reflective ones).
        band_names: one name per band of a raster or per file of a list, for files whose
            names do not tell (``..._B8A.jp2`` does).
        mask: ``"auto"`` (default: ``"clouds"`` for a product with a quality band, else
            ``"nodata"``), ``"clouds"`` (no-data, saturated, cloud, thin cirrus and cloud
            shadow pixels from ``SCL``, ``QA_PIXEL`` or ``BQA``), ``"nodata"`` (only the fill),
            or ``None`` (nothing). Masked pixels never reach the network or the statistics
            and are the output's mask.
        resolution: the output pixel size in CRS units: the finest band's pixel divided by
            the model's scale (the default), or the finest band's pixel itself, which runs
            the aligner only (no super-resolution network).
        guided: how a product's coarser bands reach its finest grid: ``"auto"`` (default: the
            bundled guided model of its sensor, ``s2-guided`` or ``landsat-pan``, when the
            product has its guide bands), a guided model's name or ``.safetensors`` file, or
            None (cubic resampling). The guided model's grid is the output's base grid (for
            Landsat: the 30 m grid cut in two, which the pan band guides).
        stac: also write a STAC Item (``<output stem>.json``) describing the output, with the
            projection, eo and raster extensions.
        chunk_size: input pixels per chunk side (default 512).
        overlap: halo in input pixels (default: the receptive radius, exact and seam-free).
        device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
        tile_size, batch_size, precision, consistency, strength, tta, preserve_spectra: see
            :func:`upscale_dataarray`.
        uncertainty: also write each output pixel's expected absolute error, in the band's
            units (float32, NaN nodata, same grid and georeference, bands described as
            ``<band> uncertainty``), beside the output: ``<output stem>_uncertainty.tif``
            (``.zarr`` for a Zarr output; :func:`uncertainty_path`), named by the output's
            ``GEOSR_UNCERTAINTY`` tag. See :mod:`geosr.uncertainty`; it costs no network pass.
        cog: write a Cloud-Optimised GeoTIFF with overviews.
        overwrite: replace an existing output.
        strict: the input contract: False (default) warns once when the scene lies outside
            the model's training domain (``geosr info``), True refuses it before anything is
            written (see :func:`upscale_dataarray`).
        progress: ``True`` for a progress bar, or a callable ``(done, total)``.
        scheduler: ``"threads"`` (default without a cluster), ``"synchronous"``, or a
            ``dask.distributed.Client``; an active default Client is used automatically.
        num_workers: threads computing chunks in parallel (default: dask's choice).
        format: ``"gtiff"`` or ``"zarr"``; by default Zarr for an output named ``*.zarr``,
            else GeoTIFF. A Zarr store holds the same pixels, georeference (CF grid
            mapping), nodata (``_FillValue``), band descriptions and tags
            (:func:`geosr.zarr_store.write_zarr`).

    Returns:
        The path of the written GeoTIFF or Zarr store.
    """
    net = resolve_model(model, strength)
    meta = model_meta(net)
    check_scale(meta, scale)
    if not isinstance(input, str | os.PathLike) and not is_stac_item(input):
        input = list(input)  # read more than once: an iterator would be spent
    with remote_env(remote_names(input)):
        size = chunk_side(chunk_size)
        info, product, source, size = open_aligned(
            input, bands, band_names, mask, guided, size, device, consistency
        )
        out_scale = output_scale(info, meta.scale, resolution)
        # one decimated read, for the input contract and the statistics alike
        pixels = functools.cache(functools.partial(read_sample, info))
        if out_scale != 1:
            _check_file_bands(meta, info)
            enforce(meta, lambda: describe_raster(info, pixels()), strict)  # the input contract
        if output is None:
            output = (
                default_output_path(input, out_scale)
                if product is None
                else product_output_path(product, out_scale)
            )
            if is_zarr_output(output, format):
                output = output.with_suffix(".zarr")
        to_zarr = is_zarr_output(output, format)
        if to_zarr:
            _check_zarr_options(cog)
            if not info.has_transform and info.georeferenced:
                raise ConfigError(
                    f"{info.label} is georeferenced by GCPs or RPCs, which a Zarr store cannot "
                    "carry; write a GeoTIFF (.tif) output instead"
                )
            out_path = check_zarr_output(output, overwrite, info.local_files)
        else:
            out_path = check_output_path(info.local_files, output, overwrite)
        if stac:  # refuse before any work
            stac_item_path(out_path, overwrite, [*info.local_files, *input_files(input)])
        error_path = _uncertainty_output(out_path, uncertainty, out_scale, to_zarr, info, overwrite)
        runner_options = {
            "device": device,
            "tile_size": tile_size,
            "batch_size": batch_size,
            "precision": precision,
            "consistency": consistency,
        }
        active_client(scheduler)  # refuses an unknown scheduler before any work
        log.info("upscaling %s to %s", info.label, out_path)
        # an alpha band among the outputs masks the others itself; else read the mask
        alpha = info.selected.index(info.alpha) + 1 if info.alpha in info.selected else None
        valid = lazy_mask(info, size) if alpha is None else None
        if out_scale == 1:  # the aligner only: the bands on the finest grid, masked
            result = _masked_source(source, valid, info.nodata)
            label = "none (aligner only)"
        else:
            result = _upscale_source(
                source,
                info,
                net,
                alpha,
                valid,
                overlap,
                tta,
                preserve_spectra,
                runner_options,
                read=pixels,
                uncertainty=uncertainty,
            )
            pixels.cache_clear()  # the statistics are known: free the sample
            label = model_label(model, net, tta, preserve_spectra)
        error = None
        if isinstance(result, xr.Dataset):
            result, error = result["upscaled"], result["uncertainty"]
        started = time.perf_counter()
        if to_zarr:
            # masked pixels are already nodata (or 0 without a nodata value) in the bands;
            # a Zarr store has no separate mask band
            write_zarr(
                result.assign_attrs(raster_attrs(info, label)),
                out_path,
                overwrite=overwrite,
                progress=progress,
                scheduler=scheduler,
                num_workers=num_workers,
            )
        else:
            block = output_block_size(result.data.chunks[1][0])
            tags = {
                "GEOSR_MODEL": label,
                "GEOSR_SCALE": str(out_scale),
                "GEOSR_VERSION": __version__,
            }
            if error_path is not None:
                tags["GEOSR_UNCERTAINTY"] = error_path.name

            def decorate(dst: Any) -> None:
                copy_metadata(dst, info, tags)
                copy_georeference(dst, info, out_scale)

            write_raster(
                result.data,
                out_path,
                output_profile(info, out_scale, block),
                decorate,
                mask=None
                if valid is None
                else upscaled_mask(valid, out_scale, result.data.chunks[1:]),
                cog=cog,
                progress=progress,
                scheduler=scheduler,
                num_workers=num_workers,
            )
        if error is not None and error_path is not None:
            _write_uncertainty(
                error,
                error_path,
                info,
                out_scale,
                label,
                to_zarr,
                overwrite,
                progress,
                scheduler,
                num_workers,
            )
        if stac:
            write_stac_item(out_path, info, product, out_scale, label, cog=cog, overwrite=overwrite)
    log.info("wrote %s in %.1f s", out_path, time.perf_counter() - started)
    return out_path


def _uncertainty_output(
    out_path: Path,
    uncertainty: bool,
    out_scale: int,
    to_zarr: bool,
    info: RasterInfo,
    overwrite: bool,
) -> Path | None:
    """The uncertainty's path, checked before any work; None when none is asked for."""
    if not uncertainty:
        return None
    if out_scale == 1:
        raise ConfigError(
            "uncertainty=True (--uncertainty) estimates the super-resolution's error, but this "
            "resolution runs the aligner only; drop one of them"
        )
    error_path = uncertainty_path(out_path)
    if to_zarr:
        return check_zarr_output(error_path, overwrite, info.local_files)
    return check_output_path(info.local_files, error_path, overwrite)


def _write_uncertainty(
    error: xr.DataArray,
    path: Path,
    info: RasterInfo,
    scale: int,
    label: str,
    to_zarr: bool,
    overwrite: bool,
    progress: bool | ProgressCallback,
    scheduler: Any,
    num_workers: int | None,
) -> None:
    """The uncertainty beside the output, on its grid and georeference, atomically."""
    options = {"progress": progress, "scheduler": scheduler, "num_workers": num_workers}
    tags = {
        "GEOSR_MODEL": label,
        "GEOSR_SCALE": str(scale),
        "GEOSR_VERSION": __version__,
        "GEOSR_UNCERTAINTY": UNCERTAINTY_MEANING,
    }
    if to_zarr:
        write_zarr(error, path, overwrite=overwrite, name="uncertainty", **options)
        return
    profile = output_profile(info, scale, output_block_size(error.data.chunks[1][0]))
    profile.update(dtype="float32", nodata=float("nan"), **compression_options(True))
    profile.pop("photometric", None)
    names = [f"{info.descriptions[b - 1] or f'band {b}'} uncertainty" for b in info.selected]

    def decorate(dst: Any) -> None:
        dst.update_tags(**tags)
        for index, name in enumerate(names, start=1):
            dst.set_band_description(index, name)
        copy_georeference(dst, info, scale)

    write_raster(error.data, path, profile, decorate, **options)
    log.info("wrote the uncertainty to %s", path)


#: Fine pixels per side of a guided block (rounded up to whole chunks).
GUIDED_BLOCK = 2048


def open_aligned(
    input: Any,
    bands: Sequence[int | str] | None,
    band_names: Sequence[str] | None,
    mask: str | None,
    guided: Any,
    size: int,
    device: str | torch.device,
    consistency: bool = True,
) -> tuple[RasterInfo, Product | None, xr.DataArray, int]:
    """An input opened (:func:`~geosr.products.open_source`) as a lazy DataArray of its
    selected bands, a product's aligned on its finest grid: by its guided model where one
    covers them (:mod:`geosr.aligner`), else by cubic resampling; with the chunk side used (a
    multiple of the guided ratios), and the product if it is one."""
    from geosr.aligner import (
        chunk_multiple,
        guided_arrays,
        guided_label,
        guided_stages,
        output_grid,
        resolve_guided,
    )

    info, product = open_source(input, bands, band_names=band_names, mask=mask)
    model = resolve_guided(guided, product)
    stages = guided_stages(product, model) if model is not None and product else []
    selected = product.select(bands) if product is not None else ()
    wanted = {b.name for b in selected}
    stages = [s for s in stages if any(b is not None and b.name in wanted for b in s.targets)]
    if model is None or not stages:
        return info, product, dataarray_from_info(info, size), size
    grid = output_grid(stages)
    covered = {b.name for s in stages for b in s.targets if b is not None}
    cubic = [
        b.name
        for b in selected
        if b.name not in covered and (b.grid.width, b.grid.height) != (grid.width, grid.height)
    ]
    label = guided_label(model, stages, sorted(wanted), cubic)
    info = product_info(product, bands, mask, grid=grid, aligner=label)
    multiple = chunk_multiple(stages)
    size = max(multiple, size // multiple * multiple)
    # guided blocks of a few chunks each: the net's halo is wide (some 20 coarse pixels), so
    # small blocks would recompute much of it; each block splits into whole chunks after
    block = size * max(1, -(-GUIDED_BLOCK // size))
    guided_bands = guided_arrays(
        stages, model, block, resolve_device(device), info.label, consistency, info.quality
    )
    guided_bands = {name: array.rechunk(size) for name, array in guided_bands.items()}
    names = info.band_names()
    rest = [n for n, name in zip(info.selected, names, strict=True) if name not in guided_bands]
    rest_data = lazy_array(select_bands(info, rest), size) if rest else None
    layers = []
    for number, name in zip(info.selected, names, strict=True):
        if name in guided_bands:
            layers.append(guided_bands[name].astype(info.dtype)[None])
        else:
            layers.append(rest_data[rest.index(number)][None])
    log.info("aligner: %s", label)
    data = dataarray_from_info(info, size)
    data = data.copy(data=da.concatenate(layers, axis=0).rechunk({0: -1}))
    return info, product, data, size


def output_scale(info: RasterInfo, model_scale: int, resolution: float | None) -> int:
    """The output's scale from the input grid: the model's, or 1 (the aligner only) for a
    ``resolution`` equal to the input's pixel size.

    Raises:
        ConfigError: a ``resolution`` that is neither, or an input without a geotransform.
    """
    if resolution is None:
        return model_scale
    if not info.has_transform:
        raise ConfigError(
            f"{info.label} has no geotransform, so resolution= has no meaning; drop it"
        )
    pixel = math.hypot(info.transform.a, info.transform.d)
    for out_scale in (model_scale, 1):
        if math.isclose(float(resolution), pixel / out_scale, rel_tol=1e-6):
            return out_scale
    raise ConfigError(
        f"resolution {resolution:g} is not one geosr makes from {info.label}: use "
        f"{pixel / model_scale:g} (the model's x{model_scale} of its finest grid, {pixel:g}) "
        f"or {pixel:g} (the finest grid, aligner only)"
    )


def _masked_source(
    source: xr.DataArray, valid: da.Array | None, nodata: float | None
) -> xr.DataArray:
    """The source bands with masked pixels set to nodata (0 for integers without one)."""
    if valid is None:
        return source
    fill = nodata if nodata is not None else (np.nan if source.dtype.kind == "f" else 0)
    data = da.where(valid[None] != 0, source.data, np.asarray(fill, source.dtype))
    return source.copy(data=data)


def _upscale_source(
    source: xr.DataArray,
    info: RasterInfo,
    net: nn.Module,
    alpha: int | None,
    valid: da.Array | None,
    overlap: int | None,
    tta: bool,
    preserve_spectra: bool,
    runner_options: dict[str, Any],
    read: Callable[[], np.ndarray] | None = None,
    uncertainty: bool = False,
) -> xr.DataArray | xr.Dataset:
    """:func:`upscale_dataarray` of a file's bands, with statistics from a decimated read."""
    meta = model_meta(net)
    masked = alpha is not None or valid is not None
    may_have_nodata = info.nodata is not None or np.dtype(info.dtype).kind == "f" or masked
    network = [info.selected.index(b) for b in info.network_bands]

    def sample() -> tuple[np.ndarray, np.ndarray | None]:
        pixels = read_sample(info) if read is None else read()
        if alpha is None:
            return pixels, sample_mask(info)
        return pixels[network], pixels[alpha - 1]

    stats = model_statistics(meta, len(network), sample, info.nodata)
    return upscale_dataarray(
        source,
        net,
        overlap=default_halo(net, may_have_nodata) if overlap is None else overlap,
        stats=stats,
        mask=valid,
        alpha=alpha,
        tta=tta,
        preserve_spectra=preserve_spectra,
        strict=None,  # upscale checked the file
        uncertainty=uncertainty,
        **runner_options,
    )


def _check_file_bands(meta: ModelMeta, info: RasterInfo) -> None:
    """check_bands for a file, which says so when its alpha band makes the difference."""
    if info.alpha in info.selected and meta.bands == len(info.selected):
        raise BandMismatchError(
            f"the model expects {meta.bands} bands but band {info.alpha} of {info.label} is an "
            f"alpha band (a mask, carried as it is), which leaves {meta.bands - 1}; if it holds "
            f"data, set its colour interpretation to undefined (gdal_edit.py -colorinterp_"
            f"{info.alpha} undefined), or select other bands"
        )
    check_bands(meta, len(info.network_bands), info.label)


__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "BandStats",
    "TileRunner",
    "default_halo",
    "fill_invalid",
    "open_dataarray",
    "project_consistent",
    "resolve_device",
    "resolve_model",
    "scene_statistics",
    "uncertainty_array",
    "uncertainty_path",
    "upscale",
    "upscale_array",
    "upscale_dataarray",
    "valid_mask",
    "write",
]
