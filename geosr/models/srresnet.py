"""SRResNet generator of Ledig et al. 2017 (SRGAN), for any number of bands."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from geosr.models.config import GeneratorConfig


def _conv(in_ch: int, out_ch: int, kernel: int) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2)


class ResidualBlock(nn.Module):
    """conv3x3 - BN - PReLU - conv3x3 - BN, plus identity (figure 4 of the paper)."""

    def __init__(self, width: int, batch_norm: bool) -> None:
        super().__init__()
        norm = (lambda: nn.BatchNorm2d(width)) if batch_norm else nn.Identity
        self.conv1 = _conv(width, width, 3)
        self.bn1 = norm()
        self.act = nn.PReLU(width)
        self.conv2 = _conv(width, width, 3)
        self.bn2 = norm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bn2(self.conv2(self.act(self.bn1(self.conv1(x)))))


class UpsampleStage(nn.Module):
    """conv3x3 to 4x channels, pixel shuffle x2 (Shi et al. 2016), PReLU."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv = _conv(width, width * 4, 3)
        self.shuffle = nn.PixelShuffle(2)
        self.act = nn.PReLU(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.shuffle(self.conv(x)))


class SRResNet(nn.Module):
    """The SRGAN generator.

    Layer names follow the paper's figure: ``conv_head`` (9x9) and its PReLU, ``body`` (B
    residual blocks), ``conv_body`` (3x3 + BN) closed by the global skip, ``upsample`` (one
    pixel-shuffle x2 stage per factor of two) and ``conv_tail`` (9x9). With ``skip="bicubic"``
    the output is added to a bicubic upsampling of the input, so the net predicts a residual.

    Input and output are normalised tensors shaped (N, bands, H, W) -> (N, bands, H*s, W*s).
    """

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.conv_head = _conv(c.bands, c.width, c.head_kernel)
        self.act_head = nn.PReLU(c.width)
        self.body = nn.Sequential(*(ResidualBlock(c.width, c.batch_norm) for _ in range(c.blocks)))
        self.conv_body = _conv(c.width, c.width, 3)
        self.bn_body = nn.BatchNorm2d(c.width) if c.batch_norm else nn.Identity()
        if c.upsampler == "pixelshuffledirect":
            self.upsample = nn.Sequential(
                _conv(c.width, c.bands * c.scale**2, c.tail_kernel), nn.PixelShuffle(c.scale)
            )
            self.conv_tail = nn.Identity()
        else:
            self.upsample = nn.Sequential(
                *(UpsampleStage(c.width) for _ in range(int(math.log2(c.scale))))
            )
            self.conv_tail = _conv(c.width, c.bands, c.tail_kernel)
        self._init_weights()

    def _init_weights(self) -> None:
        # Kaiming init scaled by 0.1 in residual branches keeps a deep BN-free body stable
        # (the trick of EDSR/ESRGAN); the tail starts near zero so an untrained net with the
        # bicubic skip is close to bicubic.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, a=0.25)
                nn.init.zeros_(module.bias)
        for block in self.body:
            block.conv2.weight.data.mul_(0.1)
        if self.config.skip == "bicubic":
            self._reconstruction().weight.data.mul_(0.1)

    def _reconstruction(self) -> nn.Conv2d:
        """The last convolution, the one that makes output values."""
        if self.config.upsampler == "pixelshuffledirect":
            return self.upsample[0]
        return self.conv_tail

    @property
    def scale(self) -> int:
        return self.config.scale

    @property
    def bands(self) -> int:
        return self.config.bands

    def receptive_radius(self) -> int:
        """Input pixels on each side that can influence one output pixel.

        Used as the default halo of tiled inference: with at least this much context a tile's
        output equals whole-image inference.
        """
        c = self.config
        radius = (c.head_kernel // 2) + 2 * c.blocks + 1  # head, residual blocks, conv_body
        if c.upsampler == "pixelshuffledirect":
            radius += c.tail_kernel // 2  # the tail acts on input pixels
        else:
            stages = int(math.log2(c.scale))
            radius += sum(1 / 2**i for i in range(stages))  # one 3x3 conv per upsampling stage
            radius += (c.tail_kernel // 2) / c.scale  # tail conv acts on output pixels
        skip_radius = 2 if c.skip == "bicubic" else 0  # bicubic kernel taps
        # +1: an output pixel's footprint straddles input pixel boundaries after pixel shuffle.
        return math.ceil(max(radius, skip_radius)) + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = self.act_head(self.conv_head(x))
        features = self.bn_body(self.conv_body(self.body(head))) + head
        out = self.conv_tail(self.upsample(features))
        if self.config.skip == "bicubic":
            out = out + F.interpolate(
                x, scale_factor=self.scale, mode="bicubic", align_corners=False
            )
        return out
