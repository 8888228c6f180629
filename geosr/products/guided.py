"""Which bands of a product a guided model's stage takes, on which grids.

A stage's targets share one coarse grid; its guides are read on the **nested** grid, the
coarse grid's pixels cut into ``ratio`` x ``ratio``, so every fine block lies exactly inside
its coarse pixel (the consistency projection needs that). A guide already on that grid
(Sentinel-2's 10 m bands over its 20 and 60 m ones) is read as it is; one offset from it (a
Landsat pan band, half a pan pixel off the multispectral grid) is placed on it by cubic
convolution, as the aligner places bands (:mod:`geosr.products.vrt`). Nothing here reads
pixels except :func:`read_band`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import rasterio
from affine import Affine

from geosr.errors import InputError
from geosr.models.guided import GuidedConfig
from geosr.products.model import Grid, Product, ProductBand, check_footprints
from geosr.products.vrt import aligned_vrt


@dataclass(frozen=True)
class StageBands:
    """The bands of one product that one guided stage uses.

    Attributes:
        stage: the stage's name in its model.
        config: the stage's network config.
        targets: the product's band for each target name, None where the product lacks it.
        guides: the product's band for each guide name, in order.
        coarse: the targets' grid.
        fine: the nested grid: ``coarse`` with pixels ``ratio`` times smaller.
    """

    stage: str
    config: GuidedConfig
    targets: tuple[ProductBand | None, ...]
    guides: tuple[ProductBand, ...]
    coarse: Grid
    fine: Grid

    @property
    def ratio(self) -> int:
        return self.config.ratio

    @property
    def present(self) -> tuple[bool, ...]:
        return tuple(band is not None for band in self.targets)


def nested_grid(coarse: Grid, ratio: int) -> Grid:
    """``coarse`` with each pixel cut into ``ratio`` x ``ratio``."""
    return Grid(
        coarse.width * ratio,
        coarse.height * ratio,
        coarse.crs,
        coarse.transform * Affine.scale(1 / ratio),
    )


def stage_bands(
    product: Product, stage: str, config: GuidedConfig, model_name: str
) -> StageBands | None:
    """The bands of ``product`` for ``stage`` of a guided model, or None when the product has
    none of its targets.

    Raises:
        InputError: a guide band the product lacks, guides or targets on other footprints or
            grids, or a ratio between them the stage does not do; each in one line.
    """
    names = {band.name.upper(): band for band in product.bands}
    targets = tuple(names.get(t.upper()) for t in config.targets)
    present = [band for band in targets if band is not None]
    if not present:
        return None
    what = f"stage {stage} of guided model {model_name}"
    missing = [g for g in config.guides if g.upper() not in names]
    if missing:
        raise InputError(
            f"{product.label} lacks guide band {', '.join(missing)} of {what}; use a product "
            "that has it, or guided=None (--guided none) to align bands by cubic resampling"
        )
    guides = tuple(names[g.upper()] for g in config.guides)
    try:
        check_footprints(product.label, [*present, *guides])
    except InputError as exc:
        raise InputError(f"a guide or target of {what} is off the product: {exc}") from None
    coarse = present[0].grid
    for band in present[1:]:
        if not band.grid.same_as(coarse):
            raise InputError(
                f"targets {present[0].name} and {band.name} of {what} lie on different grids "
                f"in {product.label}; guided models take targets of one grid"
            )
    fine = nested_grid(coarse, config.ratio)
    for guide in guides:
        ratio = coarse.resolution / guide.grid.resolution
        if not math.isclose(ratio, config.ratio, rel_tol=1e-3):
            raise InputError(
                f"in {product.label}, guide {guide.name} ({guide.grid.resolution:g}) is "
                f"{ratio:.3g} times finer than {present[0].name} ({coarse.resolution:g}), but "
                f"{what} does ratio {config.ratio}; use a guided model trained for this ratio, "
                "or guided=None (--guided none)"
            )
    return StageBands(stage, config, targets, guides, coarse, fine)


def band_vrt(band: ProductBand, grid: Grid) -> str:
    """VRT XML of one band on ``grid`` (as it is when it lies there, else cubic)."""
    return aligned_vrt([band], grid, dtype=band.dtype, nodata=band.nodata, tags={})


def read_band(band: ProductBand, grid: Grid) -> np.ndarray:
    """A whole band on ``grid`` as float32 (a training or evaluation read: small products)."""
    with rasterio.open(band_vrt(band, grid)) as src:
        return src.read(1).astype(np.float32)


def covered_targets(stages: Sequence[StageBands]) -> set[str]:
    """Names of the product bands the stages bring to their fine grids."""
    return {band.name for s in stages for band in s.targets if band is not None}
