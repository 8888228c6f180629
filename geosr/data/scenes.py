"""Training scenes: finding them, describing them, reading windows and robust band statistics.

Nothing here holds a file open: :class:`SceneReader` opens datasets lazily in whichever process
uses it and forgets them when pickled, because rasterio handles cannot cross into DataLoader
workers (and a handle inherited through ``fork`` must not be shared).
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import MaskFlags
from rasterio.errors import RasterioError
from rasterio.windows import Window

from geosr.errors import InputError, InputNotFoundError, NotARasterError
from geosr.nodata import valid_mask
from geosr.raster import DEFAULT_STATS_PIXELS, read_decimated

log = logging.getLogger(__name__)

#: File name patterns a folder is searched for (not recursively; pass a ``**`` glob for that).
RASTER_PATTERNS = ("*.tif", "*.tiff", "*.TIF", "*.TIFF")


@dataclass(frozen=True)
class Scene:
    """What the sampler needs to know about one raster, read once from its header.

    Attributes:
        path: the file.
        width, height: size in pixels.
        count: band count.
        dtype: numpy dtype name of the bands.
        nodata: the value marking missing pixels (the file's tag or a user override), or None.
        band_names: the band descriptions, None where the file has none.
        internal_mask: the file has a per-dataset mask or alpha band that rasterio must read.
    """

    path: Path
    width: int
    height: int
    count: int
    dtype: str
    nodata: float | None
    band_names: tuple[str | None, ...]
    internal_mask: bool = False


def find_scenes(sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Expand files, folders (their GeoTIFFs, not recursive) and glob patterns to sorted paths.

    Raises:
        InputNotFoundError: a named file or folder does not exist.
        InputError: nothing matched, so there are no scenes to train on.
    """
    items = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    if not items:
        raise InputError("no scenes given; pass a folder of GeoTIFFs, a glob or file paths")
    found: list[Path] = []
    for item in items:
        text = os.fspath(item)
        path = Path(text).expanduser()
        if glob.has_magic(text):
            found.extend(Path(p) for p in glob.glob(os.path.expanduser(text), recursive=True))
        elif path.is_dir():
            matches = {p for pattern in RASTER_PATTERNS for p in path.glob(pattern)}
            if not matches:
                raise InputError(
                    f"no GeoTIFFs (*.tif, *.tiff) in folder {path}; pass the folder that holds "
                    "the scenes, a glob such as 'scenes/**/*.tif', or file paths"
                )
            found.extend(matches)
        elif path.is_file():
            found.append(path)
        else:
            raise InputNotFoundError(f"scene path {path} does not exist; check the path")
    files = sorted({p.resolve() for p in found if p.is_file()})
    if not files:
        raise InputError(
            f"no scenes found for {', '.join(map(os.fspath, items))}; pass a folder of GeoTIFFs, "
            "a glob such as 'scenes/*.tif', or file paths"
        )
    return files


def describe_scene(path: str | os.PathLike[str], nodata: float | None = None) -> Scene:
    """Read a scene's header; ``nodata`` overrides the file's tag (for files with untagged fill).

    Raises:
        NotARasterError: the file is not a raster GDAL can open.
    """
    path = Path(path)
    try:
        with rasterio.open(path) as src:
            flags = src.mask_flag_enums[0] if src.count else ()
            internal = any(f in (MaskFlags.per_dataset, MaskFlags.alpha) for f in flags)
            return Scene(
                path=path,
                width=src.width,
                height=src.height,
                count=src.count,
                dtype=src.dtypes[0],
                nodata=src.nodata if nodata is None else float(nodata),
                band_names=tuple(src.descriptions),
                internal_mask=internal,
            )
    except RasterioError as exc:
        raise NotARasterError(
            f"{path} is not a readable raster ({_first_line(exc)}); remove it from the scenes "
            "or replace it with a valid GeoTIFF"
        ) from None


class SceneReader:
    """Windowed reads from a list of scenes, with lazily opened, per-process file handles.

    Picklable: the handle cache is dropped on pickling and rebuilt after a fork, so every
    DataLoader worker opens its own handles on first use.
    """

    def __init__(self, scenes: Sequence[Scene]) -> None:
        self.scenes = list(scenes)
        self._handles: dict[int, Any] = {}
        self._pid = os.getpid()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handles"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._pid = os.getpid()

    def _open(self, index: int) -> Any:
        if self._pid != os.getpid():  # forked: the parent's handles are not ours to use
            self._handles, self._pid = {}, os.getpid()
        handle = self._handles.get(index)
        if handle is None:
            scene = self.scenes[index]
            try:
                handle = rasterio.open(scene.path)
            except RasterioError as exc:
                raise NotARasterError(
                    f"{scene.path} cannot be opened any more ({_first_line(exc)}); "
                    "check that the file was not moved or modified during training"
                ) from None
            self._handles[index] = handle
        return handle

    def close(self) -> None:
        """Close this process's handles (they reopen on the next read)."""
        for handle in self._handles.values():
            handle.close()
        self._handles = {}

    def read(
        self, index: int, window: Window, band: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Read a window as float32 ``(bands, h, w)`` and its validity mask ``(h, w)``.

        ``band`` (0-based) reads one band; None reads all. A pixel is valid when every band
        read is valid: not the nodata value, not NaN, and not masked by an internal mask.

        Raises:
            NotARasterError: the file cannot be decoded (corrupt or truncated).
        """
        scene = self.scenes[index]
        indexes = [band + 1] if band is not None else list(range(1, scene.count + 1))
        src = self._open(index)
        try:
            data = src.read(indexes, window=window)
            masks = src.read_masks(indexes, window=window) if scene.internal_mask else None
        except RasterioError as exc:
            raise NotARasterError(
                f"{scene.path} cannot be read at rows {window.row_off}-"
                f"{window.row_off + window.height}, columns {window.col_off}-"
                f"{window.col_off + window.width} ({_first_line(exc)}); the file is corrupt or "
                "truncated: replace it or remove it from the scenes"
            ) from None
        return data.astype(np.float32, copy=False), _pixel_mask(data, masks, scene.nodata)

    def read_decimated(
        self, index: int, max_pixels: int, rows: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The scene (or its ``rows`` [start, stop)) decimated to at most ``max_pixels`` pixels
        per band, and its ``(h, w)`` validity mask: the statistics read inference uses too
        (:func:`geosr.raster.read_decimated`), so a band-shared model sees the same scaling."""
        scene = self.scenes[index]
        start, stop = rows if rows is not None else (0, scene.height)
        window = Window(0, start, scene.width, stop - start)
        indexes = range(1, scene.count + 1)
        try:
            data, masks = read_decimated(
                self._open(index), indexes, max_pixels, window, masks=scene.internal_mask
            )
        except RasterioError as exc:
            raise NotARasterError(
                f"{scene.path} cannot be read ({_first_line(exc)}); the file is corrupt or "
                "truncated: replace it or remove it from the scenes"
            ) from None
        return data, _pixel_mask(data, masks, scene.nodata)


def _pixel_mask(data: np.ndarray, masks: np.ndarray | None, nodata: float | None) -> np.ndarray:
    """``(H, W)`` True where every band of ``data`` is valid and no internal mask hides it."""
    valid = valid_mask(data, nodata).all(axis=0)
    if masks is not None:
        valid &= (masks > 0).all(axis=0)
    return valid


def band_percentiles(
    reader: SceneReader,
    index: int,
    percentiles: tuple[float, float] = (1.0, 99.0),
    max_pixels: int = DEFAULT_STATS_PIXELS,
) -> np.ndarray:
    """Per-band (low, high) percentiles of one scene's valid pixels, shaped (bands, 2).

    Each band counts its own valid pixels (not nodata, not NaN). Robust percentiles, not min/max: one saturated pixel or a cloud must not set the scale.
    This is ``Normalization(mode="scene")``'s rule: ``x_norm = (x - p_low) / (p_high - p_low)``.

    Raises:
        InputError: the scene has no valid pixel.
    """
    data, valid = reader.read_decimated(index, max_pixels)
    if not valid.any():
        raise InputError(
            f"{reader.scenes[index].path} has no valid pixels (all nodata); remove it from the "
            "scenes or fix its nodata value"
        )
    nodata = reader.scenes[index].nodata
    stats = np.empty((data.shape[0], 2))
    for band, values in enumerate(data):
        # each band's own validity, as a band-shared sample (one band) and inference see it
        own = valid_mask(values, nodata)
        if reader.scenes[index].internal_mask:  # a per-dataset mask applies to every band
            own &= valid
        stats[band] = np.percentile(values[own].astype(np.float64), percentiles)
    return stats


def pooled_percentiles(
    reader: SceneReader,
    regions: Sequence[tuple[int, tuple[int, int] | None]],
    percentiles: tuple[float, float] = (1.0, 99.0),
    max_pixels: int = DEFAULT_STATS_PIXELS,
) -> np.ndarray:
    """Per-band (low, high) percentiles over the valid pixels of several scenes together.

    ``regions`` are ``(scene index, (row start, row stop) or None)``: restricting them to the
    training rows keeps validation pixels out of the statistics. Each region contributes its
    decimated sample (at most ``max_pixels``), so a huge scene does not drown the others. Used
    for a multiband model's fixed normalisation.
    """
    samples = []
    for index, rows in regions:
        data, valid = reader.read_decimated(index, max_pixels, rows)
        if valid.any():
            samples.append(data[:, valid].astype(np.float64))
    if not samples:
        raise InputError("no valid pixels in any training scene; check their nodata values")
    return np.percentile(np.concatenate(samples, axis=1), percentiles, axis=1).T


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
