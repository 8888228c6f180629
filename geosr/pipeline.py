"""Compatibility names: the inference engine lives in :mod:`geosr.engine`."""

from __future__ import annotations

from geosr.checkpoint import with_strength
from geosr.engine import (
    CPU_TILE,
    DEFAULT_CHUNK_SIZE,
    GPU_MEMORY_SHARE,
    GPU_TILES,
    GUIDED_BLOCK,
    UNCERTAINTY_MEANING,
    BandStats,
    TileRunner,
    check_bands,
    check_dtype,
    check_scale,
    chunk_side,
    dataarray_from_info,
    default_halo,
    keep_band_ratios,
    keeps_spectra,
    model_label,
    model_statistics,
    open_aligned,
    open_dataarray,
    output_limits,
    output_scale,
    project_consistent,
    resolve_device,
    resolve_model,
    scene_statistics,
    self_ensemble,
    to_output_dtype,
    uncertainty_array,
    uncertainty_path,
    upscale,
    upscale_array,
    upscale_dataarray,
    upscaled_mask,
    with_uncertainty,
    write,
)

# private names tests import from here
from geosr.engine.chunks import _BlockPlan as _BlockPlan
from geosr.engine.chunks import _finish_chunk as _finish_chunk
from geosr.engine.chunks import _upscale_block as _upscale_block
from geosr.engine.radiometry import _clip_to_limits as _clip_to_limits
from geosr.engine.radiometry import _inside_limits as _inside_limits
from geosr.engine.stats import _chunk_sample as _chunk_sample
from geosr.nodata import fill_invalid, valid_mask

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
    "fill_invalid",
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
    "valid_mask",
    "with_strength",
    "with_uncertainty",
    "write",
]
