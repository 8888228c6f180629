"""The guided path of products: a product's coarser bands brought to its finest grid by its
guided model (:mod:`geosr.aligner`), in blocks of a few chunks, before any upscaling."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import dask.array as da
import torch
import xarray as xr

from geosr.engine.arrays import dataarray_from_info
from geosr.engine.devices import resolve_device
from geosr.products import Product, open_source, product_info
from geosr.raster import RasterInfo, lazy_array, select_bands

log = logging.getLogger(__name__)

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
    from geosr.aligner import guided_label, guided_stages, output_grid, resolve_guided

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
    layers, size = _guided_layers(info, stages, model, size, device, consistency)
    log.info("aligner: %s", label)
    data = dataarray_from_info(info, size)
    data = data.copy(data=da.concatenate(layers, axis=0).rechunk({0: -1}))
    return info, product, data, size


def _guided_layers(
    info: RasterInfo,
    stages: list[Any],
    model: Any,
    size: int,
    device: str | torch.device,
    consistency: bool,
) -> tuple[list[da.Array], int]:
    """The selected bands on the guided grid, each a (1, y, x) layer in chunks of the side
    returned (``size`` made a multiple of the guided ratios): the guided ones from their
    stages, the others read."""
    from geosr.aligner import chunk_multiple, guided_arrays

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
    return layers, size
