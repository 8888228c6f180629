"""Guided super-resolution: coarse bands brought to a finer grid with the help of sharper
"guide" bands of the same acquisition (Sentinel-2 20/60 m bands with its 10 m bands, Landsat
30 m bands with its 15 m pan band), after DSen2 (Lanaras et al. 2018).

One :class:`GuidedNet` serves one ratio. Its body runs on the coarse grid, where the guides
arrive space-to-depth (pixel unshuffle, so every guide pixel is seen and nothing is
resampled), and it predicts the residual over a bicubic upsampling of the coarse bands, made
sub-pixel by a pixel shuffle and refined by a light convolution on the fine grid. The
consistency projection closes the forward: every ``ratio`` x ``ratio`` block of the output
averages to its coarse pixel, so the radiometry of the coarse bands is kept exactly.

A target band may be absent (the real T55HFA product lacks B8A): ``present`` says which are
there; an absent band's input is zero and its output is not used. Training drops bands at
random so the net learns to do without any one of them.

Tensors in, tensors out, normalised: the net knows nothing of rasters.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from geosr.consistency import project_block_means
from geosr.errors import ModelError
from geosr.models.srresnet import ResidualBlock

#: Coarse-to-fine ratios a guided net can have (Sentinel-2 20->10 m: 2, 60->20 m: 3,
#: 60->10 m: 6; Landsat 30->15 m: 2).
GUIDED_RATIOS = (2, 3, 4, 6)


@dataclass(frozen=True)
class GuidedConfig:
    """One guided network: which bands it restores, from which guides, at which ratio.

    Attributes:
        targets: names of the coarse bands it brings to the fine grid, in input order.
        guides: names of the fine bands that guide it, in input order.
        ratio: coarse pixel side over fine pixel side.
        width, blocks: feature channels and residual blocks of the body (on the coarse grid).
        refine: channels of the refinement on the fine grid (0: none).
    """

    targets: tuple[str, ...]
    guides: tuple[str, ...]
    ratio: int = 2
    width: int = 48
    blocks: int = 6
    refine: int = 16

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(str(t) for t in self.targets))
        object.__setattr__(self, "guides", tuple(str(g) for g in self.guides))
        if self.ratio not in GUIDED_RATIOS:
            raise ModelError(
                f"guided ratio {self.ratio} is not supported; use one of "
                f"{', '.join(map(str, GUIDED_RATIOS))}"
            )
        if not self.targets or not self.guides:
            raise ModelError("a guided network needs at least one target and one guide band")
        overlap = set(self.targets) & set(self.guides)
        if overlap:
            raise ModelError(f"bands {', '.join(sorted(overlap))} are both target and guide")
        if self.width < 1 or self.blocks < 0 or self.refine < 0:
            raise ModelError("width must be positive; blocks and refine must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GuidedConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ModelError(f"unknown guided option(s): {', '.join(sorted(unknown))}")
        return cls(**data)


def _conv(in_ch: int, out_ch: int) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, padding=1)


class GuidedNet(nn.Module):
    """Coarse bands ``(N, T, h, w)`` and guides ``(N, G, h*r, w*r)`` -> the bands on the fine
    grid ``(N, T, h*r, w*r)``, all normalised; ``present`` ``(N, T)`` (1 = the band is there)."""

    def __init__(self, config: GuidedConfig) -> None:
        super().__init__()
        self.config = config
        c, r = config, config.ratio
        targets, guides = len(c.targets), len(c.guides)
        self.unshuffle = nn.PixelUnshuffle(r)
        self.head = _conv(2 * targets + guides * r * r, c.width)
        self.act = nn.PReLU(c.width)
        self.body = nn.Sequential(*(ResidualBlock(c.width, False) for _ in range(c.blocks)))
        self.conv_body = _conv(c.width, c.width)
        self.tail = _conv(c.width, targets * r * r)
        self.shuffle = nn.PixelShuffle(r)
        self.refine = (
            nn.Sequential(
                _conv(targets + guides, c.refine), nn.PReLU(c.refine), _conv(c.refine, targets)
            )
            if c.refine
            else None
        )
        self._init_weights()

    def _init_weights(self) -> None:
        # as SRResNet: scaled residual branches, and a tail near zero so an untrained net is
        # bicubic plus the projection
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, a=0.25)
                nn.init.zeros_(module.bias)
        for block in self.body:
            block.conv2.weight.data.mul_(0.1)
        self.tail.weight.data.mul_(0.1)
        if self.refine is not None:
            self.refine[-1].weight.data.mul_(0.1)

    @property
    def ratio(self) -> int:
        return self.config.ratio

    def receptive_radius(self) -> int:
        """Coarse pixels on each side that can influence one output block: the halo of tiled
        inference (the guides' halo is this times the ratio, in their own pixels)."""
        convs = 1 + 2 * self.config.blocks + 1 + 1  # head, blocks, conv_body, tail
        bicubic = 2
        refine = math.ceil(2 / self.ratio) if self.refine is not None else 0
        return max(convs, bicubic) + refine + 1

    def forward(
        self, coarse: torch.Tensor, guides: torch.Tensor, present: torch.Tensor | None = None
    ) -> torch.Tensor:
        r = self.ratio
        if present is None:
            present = coarse.new_ones(coarse.shape[:2])
        flags = present[:, :, None, None].to(coarse.dtype).expand_as(coarse)
        coarse = coarse * flags
        features = torch.cat([coarse, flags, self.unshuffle(guides)], dim=1)
        head = self.act(self.head(features))
        body = self.conv_body(self.body(head)) + head
        fine = F.interpolate(coarse, scale_factor=r, mode="bicubic", align_corners=False)
        fine = fine + self.shuffle(self.tail(body))
        if self.refine is not None:
            fine = fine + self.refine(torch.cat([fine, guides], dim=1))
        return project_block_means(fine, coarse, r)


class GuidedModel(nn.Module):
    """The guided networks of one model file, one per stage (e.g. Sentinel-2's 20 m bands
    at ratio 2 and its 60 m bands at ratio 6), by stage name."""

    def __init__(self, stages: dict[str, GuidedConfig]) -> None:
        super().__init__()
        if not stages:
            raise ModelError("a guided model needs at least one stage")
        self.stages = nn.ModuleDict({name: GuidedNet(cfg) for name, cfg in stages.items()})
        targets = [t for cfg in stages.values() for t in cfg.targets]
        if len(set(targets)) != len(targets):
            raise ModelError("a band is the target of more than one stage")

    def configs(self) -> dict[str, GuidedConfig]:
        return {name: net.config for name, net in self.stages.items()}

    def forward(self, stage: str, *inputs: torch.Tensor) -> torch.Tensor:
        return self.stages[stage](*inputs)
