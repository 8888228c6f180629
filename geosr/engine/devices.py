"""Devices and the tile runner: where the network runs, and how a chunk goes through it in
halo'd tiles, batched, one forward pass at a time per device."""

from __future__ import annotations

import contextlib
import copy
import math
import sys
import threading
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from geosr.checkpoint import model_meta
from geosr.errors import ConfigError, DeviceMemoryError
from geosr.options import PRECISIONS

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

#: One tile's work: its input (bands, y, x), where its output goes, what of it to keep.
_TileItem = tuple[torch.Tensor, tuple[Any, ...], tuple[slice, slice]]


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
        r0, r1, c0, c1 = core
        source = self.to_device(x)
        shape = (x.shape[0], (r1 - r0) * scale, (c1 - c0) * scale)
        if scratch and self.device.type == "cpu":
            out = self._scratch(shape)
        else:
            out = torch.empty(shape, dtype=torch.float32, device=self.device)
        self._run_tiles(self._tiles(source, core), out)
        return out

    def _tiles(self, source: torch.Tensor, core: tuple[int, int, int, int]) -> list[_TileItem]:
        """The tiles covering ``core`` of ``source`` (bands, H, W) on the device, each with
        up to ``halo`` pixels of context; one per band for a band-shared model."""
        scale = self.meta.scale
        bands = source.shape[0]
        r0, r1, c0, c1 = core
        tile = self.tile_size or self.default_tile(max(r1 - r0, c1 - c0))
        items: list[_TileItem] = []  # (input array, destination slices, crop slices)
        for ty in range(r0, r1, tile):
            for tx in range(c0, c1, tile):
                ty1, tx1 = min(ty + tile, r1), min(tx + tile, c1)
                y0, y1 = max(ty - self.halo, 0), min(ty1 + self.halo, source.shape[1])
                x0, x1 = max(tx - self.halo, 0), min(tx1 + self.halo, source.shape[2])
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
        return items

    def _run_tiles(self, items: list[_TileItem], out: torch.Tensor) -> None:
        """The tiles through the network into ``out``, in batches, holding the device."""
        model = self.device_model()
        # batch items of equal shape; edge tiles differ in shape and run in their own batches
        by_shape: dict[tuple[int, ...], list[_TileItem]] = {}
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
