"""Training losses for multispectral SRGAN, written as in the papers.

Every loss is element-wise and takes an optional ``weight`` (typically the ``valid`` mask of a
batch, shaped (N, 1, H, W)): the mean is taken over the weighted region only, so nodata fill
neither helps nor hurts (BasicSR's ``weight_reduce_loss`` convention). A weight broadcasts
over bands.

Defaults (:class:`LossConfig`):

* ``pretrain`` stage (SRResNet): L1 pixel loss only, weight 1.
* ``gan`` stage: L1 pixel loss 1e-2 and content loss 1 (ESRGAN, Wang et al. 2018, section
  4.1), adversarial loss 1e-3 for the standard GAN (SRGAN, Ledig et al. 2017, eq. 3) or 5e-3
  for the relativistic average GAN (ESRGAN); spectral angle loss off. The content loss is
  feature matching on the discriminator's features (pix2pixHD, Wang et al. 2018, eq. 4),
  which works for any band count; VGG54 on an RGB triplet is the alternative when the user
  has VGG19 weights. These are the papers' values, not tuned on satellite data.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from geosr.errors import CheckpointError, ConfigError, ModelError, ModelNotFoundError

log = logging.getLogger(__name__)

Reduction = Literal["mean", "sum", "none"]

#: Adversarial loss weights of the papers: SRGAN (standard GAN) and ESRGAN (RaGAN).
DEFAULT_ADVERSARIAL_WEIGHTS = {"vanilla": 1e-3, "ragan": 5e-3}

#: ImageNet statistics VGG19 was trained with (RGB in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: SRGAN rescales VGG feature maps by 1/12.75 so the VGG loss is comparable to the MSE.
SRGAN_VGG_RESCALE = 1 / 12.75


# --- weighting -----------------------------------------------------------------------------------


def weighted_reduce(
    loss: torch.Tensor, weight: torch.Tensor | None = None, reduction: Reduction = "mean"
) -> torch.Tensor:
    """Reduce an element-wise loss, weighting elements by ``weight`` (broadcast to ``loss``).

    ``"mean"`` divides by the sum of the broadcast weights, i.e. averages over the weighted
    region; an all-zero weight gives 0 (not NaN), so a batch of pure nodata is harmless.
    """
    if weight is not None:
        weight = weight.to(loss.dtype).expand_as(loss)
        loss = loss * weight
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction != "mean":
        raise ConfigError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if weight is None:
        return loss.mean()
    return loss.sum() / weight.sum().clamp_min(1e-12)


def resize_weight(weight: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """A (N, 1, H, W) mask averaged down (area) to a feature map's size: the fraction of
    valid input pixels under each feature cell."""
    weight = weight.to(torch.float32)
    if tuple(weight.shape[-2:]) == tuple(size):
        return weight
    return F.adaptive_avg_pool2d(weight, tuple(size))


# --- pixel loss ------------------------------------------------------------------------------------


class PixelLoss(nn.Module):
    """L1 or MSE between SR and HR: the whole loss of the ``pretrain`` stage.

    L1 is the default: it trains sharper than MSE and is less dominated by outliers such as
    clouds or specular water (EDSR, Lim et al. 2017, and ESRGAN pretrain with L1).
    """

    def __init__(self, criterion: str = "l1", loss_weight: float = 1.0) -> None:
        super().__init__()
        if criterion not in ("l1", "mse"):
            raise ConfigError(f"pixel loss must be 'l1' or 'mse', got {criterion!r}")
        self.criterion = criterion
        self.loss_weight = loss_weight

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        diff = pred - target
        loss = diff.abs() if self.criterion == "l1" else diff**2
        return self.loss_weight * weighted_reduce(loss, weight)


# --- content losses ----------------------------------------------------------------------------


class FeatureMatchingLoss(nn.Module):
    """Content loss on the discriminator's intermediate features (pix2pixHD eq. 4):
    ``sum_i w_i * mean |D_i(SR) - D_i(HR)|`` with the HR features treated as constants.

    It replaces VGG54 where no ImageNet network applies (any band count, no download). The
    features come from ``discriminator(x, return_features=True)``. Layer weights default to
    ``1 / number of layers``; a valid mask is averaged down to each feature map's size.

    Compute both feature lists with the *same* discriminator weights: in train mode every
    forward of a spectral-norm layer runs one power iteration and changes its weight a little
    (and BN uses batch statistics), so D(SR) and D(HR) from two train-mode calls differ even
    for SR == HR. Put the discriminator in eval mode for the generator step.
    """

    def __init__(
        self,
        loss_weight: float = 1.0,
        layer_weights: Sequence[float] | None = None,
        criterion: str = "l1",
    ) -> None:
        super().__init__()
        if criterion not in ("l1", "mse"):
            raise ConfigError(
                f"feature matching criterion must be 'l1' or 'mse', got {criterion!r}"
            )
        self.loss_weight = loss_weight
        self.layer_weights = None if layer_weights is None else tuple(layer_weights)
        self.criterion = criterion

    def forward(
        self,
        fake_features: Sequence[torch.Tensor],
        real_features: Sequence[torch.Tensor],
        weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if len(fake_features) != len(real_features) or not fake_features:
            raise ModelError(
                f"feature matching needs the same non-empty feature lists for SR and HR, got "
                f"{len(fake_features)} and {len(real_features)}"
            )
        layer_weights = self.layer_weights or (1.0 / len(fake_features),) * len(fake_features)
        if len(layer_weights) != len(fake_features):
            raise ConfigError(
                f"{len(layer_weights)} layer weights for {len(fake_features)} feature maps"
            )
        total = fake_features[0].new_zeros(())
        for w, fake, real in zip(layer_weights, fake_features, real_features, strict=True):
            diff = fake - real.detach()
            loss = diff.abs() if self.criterion == "l1" else diff**2
            mask = resize_weight(weight, fake.shape[-2:]) if weight is not None else None
            total = total + w * weighted_reduce(loss, mask)
        return self.loss_weight * total


#: VGG19 ("configuration E" of Simonyan & Zisserman 2015): channels, "M" = max pooling.
_VGG19_PLAN: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
    512, 512, 512, 512, "M", 512, 512, 512, 512, "M",
)  # fmt: skip


def _vgg19_layer_names() -> list[str]:
    """torchvision's ``features`` indices named as in the papers: conv5_4, relu5_4, pool5..."""
    names, block, conv = [], 1, 1
    for item in _VGG19_PLAN:
        if item == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 1
        else:
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
            conv += 1
    return names


def build_vgg19_features(until: str = "relu5_4") -> nn.Sequential:
    """VGG19's convolutional part up to and including layer ``until``, with torchvision's
    module indices, so a torchvision state dict's ``features.*`` keys load as they are."""
    names = _vgg19_layer_names()
    if until not in names:
        raise ConfigError(f"unknown VGG19 layer {until!r}; use e.g. relu5_4 (SRGAN) or conv5_4")
    layers: list[nn.Module] = []
    channels = 3
    for item in _VGG19_PLAN:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, int(item), 3, padding=1), nn.ReLU(inplace=False)]
            channels = int(item)
    return nn.Sequential(*layers[: names.index(until) + 1])


def load_vgg19_state(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a torchvision VGG19 state dict without running code from the file.

    ``.safetensors`` files are read with safetensors; anything else with
    ``torch.load(weights_only=True)``, which refuses pickled code. Keys may carry torchvision's
    ``features.`` prefix (a full model's state dict) and a DataParallel ``module.`` prefix.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelNotFoundError(
            f"VGG19 weights file {path} does not exist; pass a torchvision VGG19 state dict "
            "(e.g. vgg19-dcbb9e9d.pth) or use the default feature-matching content loss"
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for unsafe or corrupt files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"cannot read VGG19 weights from {path} ({first}); pass a plain state dict saved "
            "with torch.save(model.state_dict()) or a .safetensors file"
        ) from None
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path} does not hold a state dict; save model.state_dict()")
    features = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        if key.startswith("features."):
            features[key.removeprefix("features.")] = value
        elif key.split(".")[0].isdigit():
            features[key] = value
    return features


class VGGFeatureLoss(nn.Module):
    """VGG54 content loss of SRGAN on three bands taken as R, G, B.

    ``MSE(phi(SR), phi(HR))`` where ``phi`` is VGG19 up to ``layer`` ("relu5_4": the 4th
    convolution before the 5th pooling, after activation, as in SRGAN; ESRGAN uses
    "conv5_4", before activation), feature maps rescaled by 1/12.75 as in SRGAN. Inputs are
    geosr-normalised bands (p1 -> 0, p99 -> 1, close to the [0, 1] RGB VGG expects), then
    standardised with ImageNet statistics. The network is frozen; gradients reach SR only.
    ``rgb_bands`` are band indices in the order red, green, blue, e.g. (2, 1, 0) for a
    Landsat 8 B2-B5 stack (see PROVENANCE: band orders differ between sensors).
    """

    def __init__(
        self,
        weights_path: str | os.PathLike[str],
        rgb_bands: Sequence[int] = (0, 1, 2),
        layer: str = "relu5_4",
        loss_weight: float = 1.0,
        criterion: str = "mse",
        feature_scale: float = SRGAN_VGG_RESCALE,
    ) -> None:
        super().__init__()
        if len(rgb_bands) != 3 or len(set(rgb_bands)) != 3 or min(rgb_bands) < 0:
            raise ConfigError(f"rgb_bands must be three distinct band indices, got {rgb_bands}")
        if criterion not in ("l1", "mse"):
            raise ConfigError(f"VGG loss criterion must be 'l1' or 'mse', got {criterion!r}")
        self.rgb_bands = tuple(int(b) for b in rgb_bands)
        self.loss_weight = loss_weight
        self.criterion = criterion
        self.feature_scale = feature_scale
        self.vgg = build_vgg19_features(layer)
        state = load_vgg19_state(weights_path)
        expected = self.vgg.state_dict()
        missing = [k for k in expected if k not in state]
        if missing:
            raise CheckpointError(
                f"{weights_path} is not a VGG19 state dict: {len(missing)} layer tensors missing "
                f"(first {', '.join(missing[:3])}); pass torchvision's vgg19 weights"
            )
        try:
            self.vgg.load_state_dict({k: state[k] for k in expected}, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(
                f"{weights_path} does not match VGG19 ({str(exc).strip().splitlines()[-1]}); "
                "pass torchvision's vgg19 weights (not vgg16 or vgg19_bn)"
            ) from None
        self.vgg.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def train(self, mode: bool = True) -> VGGFeatureLoss:
        super().train(mode)
        self.vgg.eval()  # frozen: never leave eval mode
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] <= max(self.rgb_bands):
            raise ConfigError(
                f"rgb_bands {self.rgb_bands} need at least {max(self.rgb_bands) + 1} bands, "
                f"the images have {x.shape[1]}"
            )
        rgb = x[:, list(self.rgb_bands)]
        return self.vgg((rgb - self.mean) / self.std) * self.feature_scale

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        fake = self.features(pred)
        with torch.no_grad():
            real = self.features(target)
        diff = fake - real
        loss = diff.abs() if self.criterion == "l1" else diff**2
        mask = resize_weight(weight, fake.shape[-2:]) if weight is not None else None
        return self.loss_weight * weighted_reduce(loss, mask)


# --- adversarial losses ------------------------------------------------------------------------


def _logit_weight(weight: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor | None:
    """Fit a (N, 1, H, W) valid mask to a discriminator's logits.

    Per-pixel logits (U-Net, (N, 1, h, w)) get the mask averaged to their size; image-level
    logits (SRGAN, (N, 1)) get each sample's valid fraction, so patches with more nodata
    count less.
    """
    if weight is None:
        return None
    weight = weight.to(logits.dtype)
    if logits.dim() == 4:
        return resize_weight(weight, logits.shape[-2:]).to(logits.dtype)
    if weight.dim() == 4:
        return weight.mean(dim=(1, 2, 3)).view(-1, *([1] * (logits.dim() - 1)))
    return weight


def _weighted_mean(x: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    return weighted_reduce(x, weight, "mean")


def _bce(logits: torch.Tensor, target_is_real: bool, weight: torch.Tensor | None) -> torch.Tensor:
    target = torch.ones_like(logits) if target_is_real else torch.zeros_like(logits)
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return weighted_reduce(loss, weight)


class AdversarialLoss(nn.Module):
    """The adversarial game, on logits of either discriminator (image-level or per-pixel).

    ``gan_type="vanilla"`` is SRGAN's standard GAN: the discriminator minimises
    ``-log D(HR) - log(1 - D(SR))``, the generator the non-saturating ``-log D(SR)`` (SRGAN
    eq. 6), with ``D = sigmoid(logits)``.

    ``gan_type="ragan"`` is ESRGAN's relativistic average GAN (eq. 1-2): with
    ``D_Ra(a, b) = sigmoid(C(a) - E[C(b)])`` the discriminator minimises
    ``-E[log D_Ra(HR, SR)] - E[log(1 - D_Ra(SR, HR))]`` and the generator the mirror image
    ``-E[log(1 - D_Ra(HR, SR))] - E[log D_Ra(SR, HR)]``, so it learns from real images too.
    For per-pixel logits the expectation ``E[C(.)]`` runs over the batch and all (valid)
    pixels.

    ``loss_weight`` multiplies the generator side only (BasicSR's ``is_disc`` convention);
    None picks the paper's value from :data:`DEFAULT_ADVERSARIAL_WEIGHTS`.
    """

    def __init__(self, gan_type: str = "vanilla", loss_weight: float | None = None) -> None:
        super().__init__()
        if gan_type not in DEFAULT_ADVERSARIAL_WEIGHTS:
            raise ConfigError(
                f"unknown GAN type {gan_type!r}; use 'vanilla' (SRGAN) or 'ragan' (ESRGAN)"
            )
        self.gan_type = gan_type
        self.loss_weight = (
            DEFAULT_ADVERSARIAL_WEIGHTS[gan_type] if loss_weight is None else float(loss_weight)
        )

    def generator_loss(
        self,
        fake_logits: torch.Tensor,
        real_logits: torch.Tensor | None = None,
        weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Weighted generator loss; RaGAN also needs the logits of the HR batch."""
        w = _logit_weight(weight, fake_logits)
        if self.gan_type == "vanilla":
            return self.loss_weight * _bce(fake_logits, True, w)
        if real_logits is None:
            raise ModelError("the relativistic GAN loss needs the discriminator's HR logits too")
        real_logits = real_logits.detach()
        loss = _bce(real_logits - _weighted_mean(fake_logits, w), False, w) + _bce(
            fake_logits - _weighted_mean(real_logits, w), True, w
        )
        return self.loss_weight * loss

    def discriminator_loss(
        self,
        real_logits: torch.Tensor,
        fake_logits: torch.Tensor,
        weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Discriminator loss (unweighted); pass logits of a detached SR batch."""
        w = _logit_weight(weight, real_logits)
        if self.gan_type == "vanilla":
            return _bce(real_logits, True, w) + _bce(fake_logits, False, w)
        return _bce(real_logits - _weighted_mean(fake_logits, w), True, w) + _bce(
            fake_logits - _weighted_mean(real_logits, w), False, w
        )


# --- spectral angle ----------------------------------------------------------------------------


def spectral_angle(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Per-pixel angle (radians) between band vectors of (N, C, H, W) tensors -> (N, 1, H, W).

    Kahan's ``2 atan2(|u - v|, |u + v|)`` on unit vectors: accurate near 0 and with a finite
    gradient there, unlike ``arccos`` whose derivative is infinite at angle 0.
    """
    u = pred / torch.sqrt((pred**2).sum(1, keepdim=True) + eps**2)
    v = target / torch.sqrt((target**2).sum(1, keepdim=True) + eps**2)
    diff = torch.sqrt(((u - v) ** 2).sum(1, keepdim=True) + eps**2)
    summ = torch.sqrt(((u + v) ** 2).sum(1, keepdim=True) + eps**2)
    return 2.0 * torch.atan2(diff, summ)


class SAMLoss(nn.Module):
    """Mean spectral angle between SR and HR pixel spectra: keeps band *ratios* right.

    Angles are only meaningful on radiometry, so pass the normalisation (``offset``,
    ``scale``: (C,) or (N, C), as in :class:`geosr.data.PatchSample`) and the loss undoes it
    first; without them the angle is taken on the normalised values as given. Needs at least
    two bands, so it applies to multiband models, not band-shared ones.
    """

    def __init__(self, loss_weight: float = 1.0, eps: float = 1e-8) -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self.eps = eps

    def forward(
        self,
        pred: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None = None,
        offset: torch.Tensor | None = None,
        scale: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if pred.shape[1] < 2:
            raise ConfigError(
                "the spectral angle loss needs at least 2 bands; a band-shared model sees one "
                "band at a time: set its weight to 0"
            )
        if scale is not None:
            pred, target = pred * _per_band(scale, pred), target * _per_band(scale, target)
        if offset is not None:
            pred, target = pred + _per_band(offset, pred), target + _per_band(offset, target)
        angle = spectral_angle(pred, target, self.eps)
        return self.loss_weight * weighted_reduce(angle, weight)


def _per_band(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    values = torch.as_tensor(values, dtype=like.dtype, device=like.device)
    if values.dim() == 1:
        return values.view(1, -1, 1, 1)
    return values.view(values.shape[0], -1, 1, 1)


# --- configuration and the generator's total loss -------------------------------------------------


@dataclass(frozen=True)
class LossConfig:
    """Loss weights of one training stage; see the module docstring for where they come from.

    Attributes:
        pixel: ``"l1"`` or ``"mse"``.
        pixel_weight: weight of the pixel loss.
        content: ``"features"`` (discriminator feature matching), ``"vgg"`` (VGG54, needs
            ``vgg_weights``) or ``"none"``.
        content_weight: weight of the content loss (ignored in the pretrain stage).
        vgg_weights: path of a torchvision VGG19 state dict, for ``content="vgg"``.
        vgg_layer: VGG19 layer of the content loss (SRGAN's VGG54 = ``relu5_4``).
        rgb_bands: band indices used as red, green, blue by the VGG loss.
        gan_type: ``"vanilla"`` (SRGAN) or ``"ragan"`` (ESRGAN).
        adversarial_weight: None takes the paper's value for ``gan_type``.
        sam_weight: weight of the spectral angle loss (multiband only; 0 = off).
    """

    pixel: str = "l1"
    pixel_weight: float = 1.0
    content: str = "features"
    content_weight: float = 1.0
    vgg_weights: str | None = None
    vgg_layer: str = "relu5_4"
    rgb_bands: tuple[int, int, int] = (0, 1, 2)
    gan_type: str = "vanilla"
    adversarial_weight: float | None = None
    sam_weight: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "rgb_bands", tuple(self.rgb_bands))
        if self.content not in ("features", "vgg", "none"):
            raise ConfigError(
                f"content loss must be 'features', 'vgg' or 'none', got {self.content!r}"
            )
        if self.content == "vgg" and not self.vgg_weights:
            raise ConfigError("the VGG content loss needs vgg_weights (a VGG19 state dict file)")
        for name in ("pixel_weight", "content_weight", "sam_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} must be a finite number >= 0, got {value}")
        PixelLoss(self.pixel)  # validates the criterion
        AdversarialLoss(self.gan_type, self.adversarial_weight)

    @classmethod
    def for_stage(cls, stage: str, **overrides: Any) -> LossConfig:
        """Defaults of a stage: ``"pretrain"`` (pixel loss only) or ``"gan"``."""
        if stage == "pretrain":
            return cls(**{"content": "none", **overrides})
        if stage == "gan":
            return cls(**{"pixel_weight": 1e-2, **overrides})
        raise ConfigError(f"unknown training stage {stage!r}; use 'pretrain' or 'gan'")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LossConfig:
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(f"unknown loss option(s): {', '.join(unknown)}")
        return cls(**data)


DiscriminatorOutput = tuple[torch.Tensor, list[torch.Tensor]]


class GeneratorLoss(nn.Module):
    """The generator's total loss of a stage, returning the total and each weighted term.

    ``fake``/``real`` are the discriminator's ``(logits, features)`` on SR and HR (from
    ``discriminator(x, return_features=True)``, discriminator in eval mode, see
    :class:`FeatureMatchingLoss`); leave them None in the pretrain stage.
    """

    def __init__(self, config: LossConfig, adversarial: bool = True) -> None:
        super().__init__()
        self.config = config
        self.adversarial_enabled = adversarial
        self.pixel = PixelLoss(config.pixel, config.pixel_weight)
        self.content: nn.Module | None = None
        if adversarial and config.content == "features":
            self.content = FeatureMatchingLoss(config.content_weight)
        elif adversarial and config.content == "vgg":
            assert config.vgg_weights is not None  # checked by LossConfig
            self.content = VGGFeatureLoss(
                config.vgg_weights, config.rgb_bands, config.vgg_layer, config.content_weight
            )
        self.adversarial = AdversarialLoss(config.gan_type, config.adversarial_weight)
        self.sam = SAMLoss(config.sam_weight) if config.sam_weight > 0 else None

    def forward(
        self,
        sr: torch.Tensor,
        hr: torch.Tensor,
        valid: torch.Tensor | None = None,
        *,
        fake: DiscriminatorOutput | None = None,
        real: DiscriminatorOutput | None = None,
        offset: torch.Tensor | None = None,
        scale: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        terms: dict[str, torch.Tensor] = {"pixel": self.pixel(sr, hr, valid)}
        if self.sam is not None:
            terms["sam"] = self.sam(sr, hr, valid, offset, scale)
        if self.adversarial_enabled:
            needs_real = isinstance(self.content, FeatureMatchingLoss) or (
                self.config.gan_type == "ragan"
            )
            if fake is None or (needs_real and real is None):
                raise ModelError(
                    "the GAN stage needs the discriminator outputs on SR and HR: "
                    "fake=discriminator(sr, return_features=True), real=... on hr"
                )
            if isinstance(self.content, FeatureMatchingLoss) and real is not None:
                terms["content"] = self.content(fake[1], real[1], valid)
            elif self.content is not None:
                terms["content"] = self.content(sr, hr, valid)
            terms["adversarial"] = self.adversarial.generator_loss(
                fake[0], None if real is None else real[0], valid
            )
        total = torch.stack(list(terms.values())).sum()
        return total, {name: value.detach() for name, value in terms.items()}
