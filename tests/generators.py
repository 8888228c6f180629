"""Generators for measuring everything but the network, shared by tests and benchmarks."""

from __future__ import annotations

import torch
from torch import nn

from geosr.checkpoint import ModelMeta
from geosr.models.config import GeneratorConfig


class NearestGenerator(nn.Module):
    """A generator that costs nothing: nearest-neighbour upsampling, no weights, carrying
    geosr's metadata as :func:`geosr.build_model` attaches it (receptive radius 0)."""

    def __init__(self, bands: int, scale: int) -> None:
        super().__init__()
        self.factor = scale
        self.meta = ModelMeta(generator=GeneratorConfig(bands=bands, scale=scale), name="nearest")

    def receptive_radius(self) -> int:
        return 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(x, scale_factor=self.factor, mode="nearest")
