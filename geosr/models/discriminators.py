"""Discriminators for adversarial training: SRGAN's VGG-style net and a U-Net (Real-ESRGAN)."""

from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from geosr.errors import ModelError


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Configuration of either discriminator.

    Attributes:
        arch: ``"srgan"`` (one logit per image) or ``"unet"`` (one logit per pixel).
        bands: input bands.
        width: channels of the first stage (64 in SRGAN).
        spectral_norm: wrap every conv/linear layer in spectral normalisation (Miyato et al.
            2018); replaces BN in the SRGAN net, stabilises GAN training on small batches.
        encoder: segmentation_models_pytorch encoder for the U-Net.
    """

    arch: str = "srgan"
    bands: int = 4
    width: int = 64
    spectral_norm: bool = True
    encoder: str = "resnet18"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SRGANDiscriminator(nn.Module):
    """VGG-style discriminator of Ledig et al. 2017 (figure 4, bottom).

    Eight 3x3 conv layers, channels 64-64-128-128-256-256-512-512, stride 2 on every second
    layer, LeakyReLU(0.2), BN after all but the first (or spectral norm instead). The paper's
    two dense layers become global average pooling plus 1x1 convs so any patch size works.
    Intermediate activations are kept for the feature-matching content loss.
    """

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        plan = [
            (w, 1),
            (w, 2),
            (2 * w, 1),
            (2 * w, 2),
            (4 * w, 1),
            (4 * w, 2),
            (8 * w, 1),
            (8 * w, 2),
        ]
        stages: list[nn.Module] = []
        in_ch = config.bands
        for index, (out_ch, stride) in enumerate(plan):
            conv = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1)
            layers: list[nn.Module] = []
            if config.spectral_norm:
                layers.append(spectral_norm(conv))
            else:
                layers.append(conv)
                if index > 0:
                    layers.append(nn.BatchNorm2d(out_ch))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            stages.append(nn.Sequential(*layers))
            in_ch = out_ch
        self.features = nn.ModuleList(stages)
        dense1 = nn.Conv2d(in_ch, 16 * w, 1)
        dense2 = nn.Conv2d(16 * w, 1, 1)
        if config.spectral_norm:
            dense1, dense2 = spectral_norm(dense1), spectral_norm(dense2)
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), dense1, nn.LeakyReLU(0.2, inplace=True), dense2
        )

    def forward(self, x: torch.Tensor, return_features: bool = False):
        features = []
        for stage in self.features:
            x = stage(x)
            features.append(x)
        logits = self.classifier(x).flatten(1)  # (N, 1)
        return (logits, features) if return_features else logits


class UNetDiscriminator(nn.Module):
    """Per-pixel discriminator as in Real-ESRGAN, built on segmentation_models_pytorch's U-Net.

    No pretrained encoder weights (none can be downloaded, and ImageNet encoders know only RGB);
    spectral norm on every convolution. Returns logits shaped (N, 1, H, W). The decoder's
    stage outputs serve as features for the feature-matching loss.
    """

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        try:
            import segmentation_models_pytorch as smp
        except ImportError as exc:  # pragma: no cover - it is a hard dependency
            raise ModelError(
                "the U-Net discriminator needs segmentation-models-pytorch; pip install it"
            ) from exc
        self.config = config
        self.net = smp.Unet(
            encoder_name=config.encoder,
            encoder_weights=None,
            in_channels=config.bands,
            classes=1,
        )
        if config.spectral_norm:
            _apply_spectral_norm(self.net)

    @property
    def min_size(self) -> int:
        return 32  # five stride-2 stages in the encoder

    def forward(self, x: torch.Tensor, return_features: bool = False):
        height, width = x.shape[-2:]
        if height % 32 or width % 32:
            raise ModelError(
                f"the U-Net discriminator needs patch sides divisible by 32, got {height}x{width}"
            )
        encoded = self.net.encoder(x)
        # smp >= 0.5 takes the feature list, older releases take it unpacked
        decoder = self.net.decoder
        decoded = decoder(*encoded) if _takes_varargs(decoder.forward) else decoder(encoded)
        logits = self.net.segmentation_head(decoded)
        if return_features:
            return logits, [*encoded[1:], decoded]
        return logits


def _takes_varargs(function: Any) -> bool:
    params = list(inspect.signature(function).parameters.values())
    return bool(params) and params[0].kind is inspect.Parameter.VAR_POSITIONAL


def _apply_spectral_norm(module: nn.Module) -> None:
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Conv2d):
            setattr(module, name, spectral_norm(child))
        else:
            _apply_spectral_norm(child)


def build_discriminator(arch: str = "srgan", bands: int = 4, **options: Any) -> nn.Module:
    """Build an untrained discriminator: ``arch`` is ``"srgan"`` or ``"unet"``."""
    config = DiscriminatorConfig(arch=arch, bands=bands, **options)
    if arch == "srgan":
        return SRGANDiscriminator(config)
    if arch == "unet":
        return UNetDiscriminator(config)
    raise ModelError(f"unknown discriminator {arch!r}; use 'srgan' or 'unet'")
