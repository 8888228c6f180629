"""Guided super-resolution: coarse bands brought to a finer grid with the help of sharper
"guide" bands of the same acquisition (Sentinel-2 20/60 m bands with its 10 m bands, Landsat
30 m bands with its 15 m pan band), after DSen2 (Lanaras et al. 2018).

One :class:`GuidedNet` serves one ratio. Its starting point is the classical fusion of
high-pass injection: the bicubic upsampling of each coarse band plus the guides' detail
(each guide minus its own MTF low-pass), weighted by ``gains``, the regression of that band
on the low-passed guides over the whole scene (:func:`injection_gains`). Those gains adapt
to each scene's band relations, which fixed weights cannot; the net learns what the linear
model misses. Its body runs on the coarse grid, where guides and detail arrive
space-to-depth (pixel unshuffle: every guide pixel is seen, nothing is resampled), and its
residual is made sub-pixel by a pixel shuffle and refined by a light convolution on the fine
grid. The consistency projection closes the forward: every ``ratio`` x ``ratio`` block of
the output averages to its coarse pixel, so the radiometry of the coarse bands is kept.

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
from geosr.mtf import DEFAULT_MTF_AT_NYQUIST, blur_decimate, mtf_sigma

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
        mtf: the guides' MTF at the coarse grid's Nyquist frequency, which defines their
            low-pass (and so their detail).
    """

    targets: tuple[str, ...]
    guides: tuple[str, ...]
    ratio: int = 2
    width: int = 48
    blocks: int = 6
    refine: int = 16
    mtf: float = DEFAULT_MTF_AT_NYQUIST

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
        self.head = _conv(2 * targets + (guides + targets) * r * r, c.width)
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
        # as SRResNet: scaled residual branches; the last layers start at zero, so an untrained
        # net is the classical injection plus the projection, and training only adds to it
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, a=0.25)
                nn.init.zeros_(module.bias)
        for block in self.body:
            block.conv2.weight.data.mul_(0.1)
        nn.init.zeros_(self.tail.weight)
        if self.refine is not None:
            nn.init.zeros_(self.refine[-1].weight)

    @property
    def ratio(self) -> int:
        return self.config.ratio

    @property
    def sigma(self) -> float:
        return mtf_sigma(self.ratio, self.config.mtf)

    def receptive_radius(self) -> int:
        """Coarse pixels on each side that can influence one output block: the halo of tiled
        inference (the guides' halo is this times the ratio, in their own pixels)."""
        lowpass = math.ceil(3 * self.sigma / self.ratio) + 2  # MTF taps, then bicubic
        convs = 1 + 2 * self.config.blocks + 1 + 1  # head, blocks, conv_body, tail
        refine = math.ceil(2 / self.ratio) if self.refine is not None else 0
        return lowpass + convs + refine + 1

    def forward(
        self,
        coarse: torch.Tensor,
        guides: torch.Tensor,
        present: torch.Tensor | None = None,
        gains: torch.Tensor | None = None,
        project: bool = True,
    ) -> torch.Tensor:
        """``gains`` (N, T, G): :func:`injection_gains` of the scene (zero: no injection).
        ``project=False`` leaves out the consistency projection: training learns without it
        (Wald's degradation is a Gaussian MTF, whose coarse pixels are not block means, so the
        projection would only cap what the net can learn), and the engine projects raster
        values itself, within the dtype's limits."""
        r = self.ratio
        if present is None:
            present = coarse.new_ones(coarse.shape[:2])
        flags = present[:, :, None, None].to(coarse.dtype).expand_as(coarse)
        coarse = coarse * flags
        if gains is None:
            gains = coarse.new_zeros(coarse.shape[0], coarse.shape[1], guides.shape[1])
        injected = torch.einsum(
            "ntg,nghw->nthw", gains * present[:, :, None], guide_detail(guides, r, self.sigma)
        )
        features = torch.cat(
            [coarse, flags, self.unshuffle(guides), self.unshuffle(injected)], dim=1
        )
        head = self.act(self.head(features))
        body = self.conv_body(self.body(head)) + head
        fine = F.interpolate(coarse, scale_factor=r, mode="bicubic", align_corners=False)
        fine = fine + injected + self.shuffle(self.tail(body))
        if self.refine is not None:
            fine = fine + self.refine(torch.cat([fine, guides], dim=1))
        return project_block_means(fine, coarse, r) if project else fine


def guide_detail(guides: torch.Tensor, ratio: int, sigma: float) -> torch.Tensor:
    """Each guide minus its MTF low-pass (blur of ``sigma`` fine pixels and decimation)
    brought back to the fine grid by bicubic upsampling: (N, G, H, W)."""
    low = blur_decimate(guides, ratio, sigma)
    return guides - F.interpolate(low, scale_factor=ratio, mode="bicubic", align_corners=False)


def injection_gains(
    coarse: torch.Tensor,
    guides: torch.Tensor,
    ratio: int,
    mtf: float = DEFAULT_MTF_AT_NYQUIST,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """The regression of each coarse band on the guides low-passed and decimated to its grid
    (least squares with an intercept, over a scene's ``valid`` coarse pixels): (T, G) gains
    that turn guide detail into band detail. ``coarse`` (T, h, w), ``guides`` (G, h*r, w*r)."""
    low = blur_decimate(guides[None].double(), ratio, mtf_sigma(ratio, mtf))[0]
    design = torch.cat([low.reshape(len(low), -1), torch.ones(1, low[0].numel(), dtype=low.dtype)])
    targets = coarse.reshape(len(coarse), -1).double()
    if valid is not None:
        keep = valid.reshape(-1)
        design, targets = design[:, keep], targets[:, keep]
    if targets.shape[1] <= design.shape[0]:
        return torch.zeros(len(coarse), len(guides), dtype=coarse.dtype)
    solution = torch.linalg.lstsq(design.T, targets.T).solution  # (G + 1, T)
    return solution[:-1].T.to(coarse.dtype)


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

    def forward(self, stage: str, *inputs: torch.Tensor, **options: bool) -> torch.Tensor:
        return self.stages[stage](*inputs, **options)
