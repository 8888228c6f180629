"""The inference engine: lazy, chunked, seamless super-resolution of rasters with dask.

A raster is a dask array (bands, y, x). Each chunk is extended by a halo of at least the
generator's receptive radius (``dask.array.overlap``), super-resolved tile by tile on the
chosen device, and cut back to its own footprint times ``scale``; so chunked and
whole-scene inference agree and no seams appear. Nodata never reaches the network and
never leaves it: it is filled before and restored after.

One concern per module, each importing only those before it:

- :mod:`~geosr.engine.devices`: device choice and the tile runner;
- :mod:`~geosr.engine.stats`: normalisation statistics;
- :mod:`~geosr.engine.radiometry`: the projection, value limits and the output dtype;
- :mod:`~geosr.engine.models`: the generator, its label and the checks it makes;
- :mod:`~geosr.engine.plan`: the chunk and halo plan;
- :mod:`~geosr.engine.chunks`: a chunk's work, and the lazy graph of it;
- :mod:`~geosr.engine.uncertainty`: the per-pixel uncertainty path;
- :mod:`~geosr.engine.arrays`: DataArrays in and out (grids, masks, alpha bands);
- :mod:`~geosr.engine.lazy`: the lazy path of DataArrays and cubes;
- :mod:`~geosr.engine.guided`: the guided path of products;
- :mod:`~geosr.engine.output`: GeoTIFF and Zarr outputs;
- :mod:`~geosr.engine.files`: the file path (:func:`upscale`, :func:`open_dataarray`).
"""

from __future__ import annotations

from geosr.engine.arrays import dataarray_from_info
from geosr.engine.chunks import upscale_array, upscaled_mask
from geosr.engine.devices import (
    CPU_TILE,
    GPU_MEMORY_SHARE,
    GPU_TILES,
    TileRunner,
    resolve_device,
    self_ensemble,
)
from geosr.engine.files import open_dataarray, output_scale, upscale
from geosr.engine.guided import GUIDED_BLOCK, open_aligned
from geosr.engine.lazy import upscale_dataarray
from geosr.engine.models import (
    check_bands,
    check_dtype,
    check_scale,
    default_halo,
    keeps_spectra,
    model_label,
    resolve_model,
)
from geosr.engine.output import write
from geosr.engine.plan import DEFAULT_CHUNK_SIZE, chunk_side
from geosr.engine.radiometry import (
    keep_band_ratios,
    output_limits,
    project_consistent,
    to_output_dtype,
)
from geosr.engine.stats import BandStats, model_statistics, scene_statistics
from geosr.engine.uncertainty import (
    UNCERTAINTY_MEANING,
    uncertainty_array,
    uncertainty_path,
    with_uncertainty,
)

__all__ = [
    "CPU_TILE",
    "DEFAULT_CHUNK_SIZE",
    "GPU_MEMORY_SHARE",
    "GPU_TILES",
    "GUIDED_BLOCK",
    "UNCERTAINTY_MEANING",
    "BandStats",
    "TileRunner",
    "check_bands",
    "check_dtype",
    "check_scale",
    "chunk_side",
    "dataarray_from_info",
    "default_halo",
    "keep_band_ratios",
    "keeps_spectra",
    "model_label",
    "model_statistics",
    "open_aligned",
    "open_dataarray",
    "output_limits",
    "output_scale",
    "project_consistent",
    "resolve_device",
    "resolve_model",
    "scene_statistics",
    "self_ensemble",
    "to_output_dtype",
    "uncertainty_array",
    "uncertainty_path",
    "upscale",
    "upscale_array",
    "upscale_dataarray",
    "upscaled_mask",
    "with_uncertainty",
    "write",
]
