"""Generators and discriminators. Models know nothing of rasters: tensors in, tensors out."""

from __future__ import annotations

from typing import Any

from torch import nn

from geosr.errors import ModelError
from geosr.models.config import COMPACT, FAST, SUPPORTED_SCALES, GeneratorConfig
from geosr.models.discriminators import (
    DiscriminatorConfig,
    SRGANDiscriminator,
    UNetDiscriminator,
    build_discriminator,
)
from geosr.models.srresnet import SRResNet

#: Generator architectures by name; a config's ``arch`` picks one.
GENERATORS: dict[str, type[nn.Module]] = {"srresnet": SRResNet}

#: Named presets users can pass as ``preset=``.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"width": 64, "blocks": 16, "batch_norm": True},
    "compact": COMPACT,
    "fast": FAST,
}


def build_generator(config: GeneratorConfig) -> nn.Module:
    """Build an untrained generator from its config."""
    try:
        cls = GENERATORS[config.arch]
    except KeyError:
        raise ModelError(
            f"unknown generator architecture {config.arch!r}; known: {', '.join(GENERATORS)}"
        ) from None
    return cls(config)


__all__ = [
    "COMPACT",
    "FAST",
    "GENERATORS",
    "PRESETS",
    "SUPPORTED_SCALES",
    "DiscriminatorConfig",
    "GeneratorConfig",
    "SRGANDiscriminator",
    "SRResNet",
    "UNetDiscriminator",
    "build_discriminator",
    "build_generator",
]
