"""Model configurations as plain data (dataclasses that round-trip through JSON/TOML)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from geosr.errors import ModelError

SUPPORTED_SCALES = (2, 4, 8)
UPSAMPLERS = ("pixelshuffle", "pixelshuffledirect")


@dataclass(frozen=True)
class GeneratorConfig:
    """SRResNet generator (Ledig et al. 2017, "Photo-Realistic Single Image Super-Resolution
    Using a Generative Adversarial Network", section 2.2 / figure 4).

    Attributes:
        bands: input and output band count of the network itself. A band-shared model is built
            with ``bands=1`` and applied to each band of a raster in turn.
        scale: upscaling factor, one pixel-shuffle x2 stage per factor of two (2, 4 or 8).
        width: feature channels (64 in the paper; 32 is the compact CPU variant).
        blocks: residual blocks B (16 in the paper; 8 in the compact variant).
        batch_norm: conv-BN-PReLU-conv-BN blocks as in the paper; False drops BN as EDSR and
            BasicSR's MSRResNet do, which trains better at small batch sizes.
        head_kernel, tail_kernel: 9 in the paper. With ``upsampler="pixelshuffledirect"`` the
            tail is the one convolution that reconstructs, at LR resolution.
        upsampler: ``"pixelshuffle"`` is the paper's: one conv + pixel shuffle x2 stage per factor
            of two, then the tail conv at HR resolution. ``"pixelshuffledirect"`` (ESPCN, Shi et
            al. 2016; SwinIR-light) makes every output sub-pixel with the tail conv at LR
            resolution and one pixel shuffle: on a CPU the HR-resolution convolutions cost most
            of the old forward, so this frees compute for the body.
        skip: ``"bicubic"`` adds a bicubic upsampling of the input to the output so the net
            learns only the residual (faster convergence on small nets); ``"none"`` is the paper.
    """

    bands: int = 4
    scale: int = 4
    width: int = 64
    blocks: int = 16
    batch_norm: bool = True
    head_kernel: int = 9
    tail_kernel: int = 9
    skip: Literal["bicubic", "none"] = "bicubic"
    arch: str = field(default="srresnet")
    # The default is the paper's, so checkpoints written before the field existed still load.
    upsampler: Literal["pixelshuffle", "pixelshuffledirect"] = "pixelshuffle"

    def __post_init__(self) -> None:
        if self.scale not in SUPPORTED_SCALES:
            raise ModelError(
                f"scale {self.scale} is not supported; use one of {', '.join(map(str, SUPPORTED_SCALES))}"
            )
        for name in ("bands", "width", "head_kernel", "tail_kernel"):
            if int(getattr(self, name)) < 1:
                raise ModelError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.blocks < 0:
            raise ModelError(f"blocks must be >= 0, got {self.blocks}")
        if self.head_kernel % 2 == 0 or self.tail_kernel % 2 == 0:
            raise ModelError("head_kernel and tail_kernel must be odd so the output stays aligned")
        if self.skip not in ("bicubic", "none"):
            raise ModelError(f"skip must be 'bicubic' or 'none', got {self.skip!r}")
        if self.upsampler not in UPSAMPLERS:
            raise ModelError(
                f"upsampler must be one of {', '.join(map(repr, UPSAMPLERS))}, got {self.upsampler!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeneratorConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ModelError(f"unknown generator option(s): {', '.join(sorted(unknown))}")
        return cls(**data)


#: The compact CPU variant of geosr 0.x: the paper's layout, fewer channels and blocks.
COMPACT = {"width": 32, "blocks": 8, "batch_norm": False}
#: The bundled models' layout: reconstruction at LR resolution (2x faster per output pixel on a
#: CPU than COMPACT), the time saved spent on a wider body.
FAST = {
    "width": 48,
    "blocks": 7,
    "batch_norm": False,
    "head_kernel": 3,
    "tail_kernel": 3,
    "upsampler": "pixelshuffledirect",
}
