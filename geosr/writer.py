"""Streaming a lazy raster into a GeoTIFF: threads in this process, or a dask.distributed cluster.

The output is created (profile and metadata) in this process at a temporary path beside the
target, every chunk is computed and written into its window, and the file is renamed over the
target only when all chunks are in. Locally one open handle takes the chunks under a lock;
on a cluster each chunk is written by the worker that computed it, reopening the file under
a ``distributed.Lock`` (the path must then be on storage the workers share).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import rasterio
from rasterio.windows import Window

from geosr.errors import ConfigError
from geosr.raster import BlockWriter, atomic_path, open_raster, translate_to_cog

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]
LOCAL_SCHEDULERS = ("threads", "sync", "synchronous", "single-threaded")


class Progress:
    """Counts written chunks for a ``(done, total)`` callback or a tqdm bar."""

    def __init__(
        self, progress: bool | ProgressCallback, total: int, label: str = "geosr upscale"
    ) -> None:
        self.total = total
        self.done = 0
        self.lock = threading.Lock()
        self.callback = progress if callable(progress) else None
        self.bar = None
        if self.callback is not None:
            self.callback(0, total)
        elif progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="chunk", desc=label, dynamic_ncols=True)

    def advance(self) -> None:
        with self.lock:
            self.done += 1
            done = self.done
        if self.callback is not None:
            self.callback(done, self.total)
        elif self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def active_client(scheduler: Any = None) -> Any:
    """The dask.distributed Client to use: the one passed, else the default one, else None.

    Raises:
        ConfigError: ``scheduler`` is neither a local scheduler name nor a Client.
    """
    if isinstance(scheduler, str):
        if scheduler not in LOCAL_SCHEDULERS:
            raise ConfigError(
                f"scheduler {scheduler!r} is not supported; use 'threads', 'synchronous' or a "
                "dask.distributed Client (processes cannot share an open GeoTIFF)"
            )
        return None
    if scheduler is not None:
        if hasattr(scheduler, "compute") and hasattr(scheduler, "submit"):
            return scheduler
        shown = " ".join(repr(scheduler).split())[:80]
        raise ConfigError(
            f"scheduler {shown} ({type(scheduler).__name__}) is neither a scheduler name nor a "
            "dask.distributed Client; use 'threads', 'synchronous' or a Client"
        )
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        return default_client()
    except ValueError:
        return None


def write_raster(
    array: da.Array,
    path: Path,
    profile: dict[str, Any],
    decorate: Callable[[Any], None],
    *,
    mask: da.Array | None = None,
    cog: bool = False,
    progress: bool | ProgressCallback = False,
    scheduler: Any = None,
    num_workers: int | None = None,
) -> None:
    """Compute ``array`` (bands, y, x) chunk by chunk into a GeoTIFF at ``path``, atomically.

    ``decorate(dataset)`` writes tags, descriptions and the like on the new file. ``mask``
    (y, x; 0 = masked, 255 = valid), chunked as ``array``, becomes the file's internal mask.
    """
    client = active_client(scheduler)
    total = len(array.chunks[1]) * len(array.chunks[2])
    report = Progress(progress, total)
    # an internal mask, never a .msk sidecar: the output stays one file, renamed atomically
    env = rasterio.Env(GDAL_PAM_ENABLED="NO", GDAL_TIFF_INTERNAL_MASK="YES")
    try:
        with atomic_path(path) as tmp, env:
            if client is None:
                with open_raster(tmp, "w", **profile) as dst:
                    decorate(dst)
                    writer = BlockWriter(dst, on_block=report.advance)
                    sources, targets = [array], [writer]
                    if mask is not None:
                        sources.append(mask)
                        targets.append(writer.mask_target())
                    try:
                        da.store(
                            sources,
                            targets,
                            lock=False,
                            scheduler=scheduler if isinstance(scheduler, str) else "threads",
                            num_workers=num_workers,
                        )
                    finally:
                        writer.close()
            else:
                with open_raster(tmp, "w", **profile) as dst:
                    decorate(dst)
                _store_distributed(array, mask, tmp, client, report)
            if cog:
                cog_tmp = tmp.with_name(tmp.name + ".cog.tif")
                try:
                    translate_to_cog(tmp, cog_tmp, profile.get("blockxsize", 512))
                    os.replace(cog_tmp, tmp)
                finally:
                    cog_tmp.unlink(missing_ok=True)
    finally:
        report.close()


def write_block(
    path: str,
    block: np.ndarray,
    row: int,
    col: int,
    lock_name: str,
    mask: np.ndarray | None = None,
) -> int:
    """Write one chunk (and its mask) into an existing GeoTIFF, on whichever worker computed it."""
    from distributed import Lock

    window = Window(col, row, block.shape[2], block.shape[1])
    with (
        Lock(lock_name),
        rasterio.Env(GDAL_TIFF_INTERNAL_MASK="YES"),
        rasterio.open(path, "r+") as dst,
    ):
        dst.write(block, window=window)
        if mask is not None:
            dst.write_mask(mask, window=window)
    return block.shape[1] * block.shape[2]


def _store_distributed(
    array: da.Array, mask: da.Array | None, path: Path, client: Any, report: Progress
) -> None:
    lock_name = f"geosr-write-{dask.base.tokenize(str(path))}"
    blocks = array.to_delayed()[0]  # bands are one chunk
    masks = mask.rechunk(array.chunks[1:]).to_delayed() if mask is not None else None
    rows = np.cumsum((0, *array.chunks[1]))
    cols = np.cumsum((0, *array.chunks[2]))
    writes = [
        dask.delayed(write_block, pure=False)(
            str(path),
            blocks[i, j],
            int(rows[i]),
            int(cols[j]),
            lock_name,
            masks[i, j] if masks is not None else None,
        )
        for i in range(blocks.shape[0])
        for j in range(blocks.shape[1])
    ]
    compute_on_cluster(writes, client, report)


def compute_on_cluster(writes: list[Any], client: Any, report: Progress) -> None:
    """Run delayed chunk writes on a dask.distributed cluster, counting each as it lands;
    the first error cancels the rest (tasks already running finish on their workers)."""
    from distributed import as_completed

    futures = client.compute(writes)
    try:
        for future in as_completed(futures):
            future.result()  # re-raises a worker's error here
            report.advance()
    except BaseException:
        client.cancel(futures)
        raise
