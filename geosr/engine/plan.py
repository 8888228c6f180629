"""The chunk and halo plan: chunk sides, chunks every one deep enough for the halo, the
halo'd (overlapping) blocks dask maps over, and the core of each block that is its own."""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import dask.array as da

from geosr.errors import ConfigError

#: Input pixels per chunk side when none is given.
DEFAULT_CHUNK_SIZE = 512

#: Rows and columns of a block: (top, bottom, left, right).
Core = tuple[int, int, int, int]


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


@dataclass(frozen=True, eq=False)
class HaloBlocks:
    """A (bands, y, x) dask array laid out for halo'd blocks: its bands in one chunk, its
    rows and columns in chunks as deep as the halo, and each chunk extended by the halo."""

    array: da.Array  #: the array, rechunked
    extended: da.Array  #: its chunks with their halo (``dask.array.overlap``)
    masks: tuple[da.Array, ...]  #: the (y, x) mask likewise, when there is one
    halo: tuple[int, int]  #: the halo of the rows and of the columns (0 on a single chunk)

    @property
    def numblocks(self) -> tuple[int, int]:
        """Chunks along y and x."""
        return self.array.numblocks[1], self.array.numblocks[2]

    def output_chunks(self, scale: int) -> tuple[tuple[int, ...], ...]:
        """The chunks of the output, ``scale`` times each input chunk's rows and columns."""
        bands, rows, cols = self.array.chunks
        return bands, tuple(c * scale for c in rows), tuple(c * scale for c in cols)


def halo_blocks(array: da.Array, halo: int, mask: da.Array | None = None) -> HaloBlocks:
    """``array`` (bands, y, x) and its (y, x) ``mask`` laid out with a halo of ``halo``
    input pixels around each chunk (less on an axis too short for it)."""
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
    return HaloBlocks(array, extended, tuple(masks), (halo_y, halo_x))


def core_window(
    shape: tuple[int, ...],
    block_id: tuple[int, ...] | None,
    halo: tuple[int, int],
    numblocks: tuple[int, int],
) -> Core:
    """The rows and columns (top, bottom, left, right) of a halo'd block of ``shape`` (...,
    height, width) that are its own: all but the halo on each side with a neighbour."""
    height, width = shape[-2:]
    _, iy, ix = block_id or (0, 0, 0)
    halo_y, halo_x = halo
    top = halo_y if iy > 0 else 0
    bottom = height - (halo_y if iy < numblocks[0] - 1 else 0)
    left = halo_x if ix > 0 else 0
    right = width - (halo_x if ix < numblocks[1] - 1 else 0)
    return top, bottom, left, right
