"""Losses: the properties the papers rely on, with real discriminators and real crops."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import torch.nn.functional as F
from rasterio.windows import Window
from safetensors.torch import save_file

from geosr import metrics
from geosr.errors import CheckpointError, ConfigError, ModelError, ModelNotFoundError
from geosr.losses import (
    DEFAULT_ADVERSARIAL_WEIGHTS,
    AdversarialLoss,
    FeatureMatchingLoss,
    GeneratorLoss,
    LossConfig,
    PixelLoss,
    SAMLoss,
    VGGFeatureLoss,
    build_vgg19_features,
    spectral_angle,
    weighted_reduce,
)
from geosr.models import build_discriminator
from tests.conftest import LANDSAT8


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: on a shared 2-core machine, two threads waiting on each other
    make these small forward/backward passes about three times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def landsat() -> torch.Tensor:
    """A real 4-band uint16 crop as a (1, 4, 32, 32) float64 tensor of DNs."""
    with rasterio.open(LANDSAT8) as src:
        data = src.read(window=Window(300, 250, 32, 32)).astype(np.float64)
    return torch.from_numpy(data)[None]


@pytest.fixture(scope="module")
def unet() -> torch.nn.Module:
    """One per-pixel (U-Net) discriminator for the module: it takes seconds to build."""
    torch.manual_seed(0)
    return build_discriminator("unet", bands=4)


def discriminator(arch: str, bands: int, unet: torch.nn.Module) -> torch.nn.Module:
    if arch == "unet":
        assert bands == 4
        return unet
    return build_discriminator("srgan", bands=bands, width=8)


def half_mask(n: int = 2, size: int = 32) -> torch.Tensor:
    valid = torch.ones(n, 1, size, size, dtype=torch.bool)
    valid[..., size // 2 :] = False
    return valid


# --- weighting and pixel loss ----------------------------------------------------------------------


def test_weighted_reduce_averages_over_the_weighted_region():
    loss = torch.arange(8.0).view(1, 2, 2, 2)
    weight = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).view(1, 1, 2, 2)
    # kept elements: band 0 -> 0, 3; band 1 -> 4, 7
    assert weighted_reduce(loss, weight).item() == pytest.approx((0 + 3 + 4 + 7) / 4)
    assert weighted_reduce(loss, weight, "sum").item() == pytest.approx(14.0)
    assert weighted_reduce(loss, torch.zeros(1, 1, 2, 2)).item() == 0.0
    with pytest.raises(ConfigError, match="reduction"):
        weighted_reduce(loss, None, "max")


@pytest.mark.parametrize("criterion", ["l1", "mse"])
def test_pixel_loss_matches_torch_and_ignores_masked_pixels(criterion):
    generator = torch.Generator().manual_seed(0)
    sr = torch.randn(2, 3, 32, 32, generator=generator, requires_grad=True)
    hr = torch.randn(2, 3, 32, 32, generator=generator)
    loss = PixelLoss(criterion)
    reference = F.l1_loss if criterion == "l1" else F.mse_loss
    assert loss(sr, hr).item() == pytest.approx(reference(sr, hr).item(), rel=1e-6)
    valid = half_mask()
    masked = loss(sr, hr, valid)
    assert masked.item() == pytest.approx(reference(sr[..., :16], hr[..., :16]).item(), rel=1e-6)
    masked.backward()
    assert sr.grad[..., 16:].abs().max() == 0 and sr.grad[..., :16].abs().max() > 0
    assert PixelLoss(criterion, loss_weight=0.5)(sr, hr).item() == pytest.approx(
        0.5 * reference(sr, hr).item(), rel=1e-6
    )
    with pytest.raises(ConfigError, match="'l1' or 'mse'"):
        PixelLoss("huber")


# --- feature matching --------------------------------------------------------------------------


@pytest.mark.parametrize(("arch", "bands"), [("srgan", 4), ("srgan", 6), ("unet", 4)])
def test_feature_matching_on_real_discriminators(arch, bands, unet):
    torch.manual_seed(0)
    disc = discriminator(arch, bands, unet)
    # in train mode every spectral-norm forward runs a power iteration, so two calls see
    # slightly different weights; the generator step compares features in eval mode
    disc.eval()
    hr = torch.rand(2, bands, 32, 32, requires_grad=True)
    sr = (hr.detach() + 0.1 * torch.randn(2, bands, 32, 32)).requires_grad_(True)
    loss = FeatureMatchingLoss()
    _, real = disc(hr, return_features=True)
    _, same = disc(hr.detach().clone(), return_features=True)
    assert loss(same, real).item() == pytest.approx(0.0, abs=1e-6)
    _, fake = disc(sr, return_features=True)
    value = loss(fake, real, torch.ones(2, 1, 32, 32))
    assert value.item() > 0
    value.backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0
    assert hr.grad is None  # the HR features are targets, not trained through


def test_feature_matching_mask_and_layer_weights():
    real = [torch.zeros(1, 2, 8, 8), torch.zeros(1, 4, 4, 4)]
    fake = [torch.zeros(1, 2, 8, 8), torch.zeros(1, 4, 4, 4)]
    fake[0][..., 4:] = 5.0  # differs only where the mask is invalid
    fake[1][..., 2:] = 5.0
    valid = torch.ones(1, 1, 32, 32)
    valid[..., 16:] = 0
    loss = FeatureMatchingLoss()
    assert loss(fake, real, valid).item() == 0.0
    assert loss(fake, real).item() == pytest.approx(2.5)  # half the cells differ by 5
    weighted = FeatureMatchingLoss(layer_weights=[1.0, 0.0])
    assert weighted(fake, real).item() == pytest.approx(2.5)
    with pytest.raises(ModelError, match="same non-empty"):
        loss(fake, real[:1])


# --- VGG54 -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory) -> Path:
    """A torchvision-layout VGG19 state dict with random weights (no download)."""
    torch.manual_seed(0)
    features = build_vgg19_features("relu5_4")
    path = tmp_path_factory.mktemp("vgg") / "vgg19.pth"
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    return path


def test_vgg_layer_indices_match_torchvision(tmp_path):
    vgg = pytest.importorskip("torchvision.models.vgg")
    reference = vgg.make_layers(vgg.cfgs["E"]).eval()  # torchvision's VGG19 ``features``
    path = tmp_path / "tv.pth"
    torch.save({f"features.{k}": v for k, v in reference.state_dict().items()}, path)
    loss = VGGFeatureLoss(path, rgb_bands=(2, 1, 0), layer="relu5_4")
    x = torch.rand(1, 4, 32, 32)
    rgb = (x[:, [2, 1, 0]] - loss.mean) / loss.std
    expected = reference[:36](rgb) / 12.75  # features[35] is relu5_4
    torch.testing.assert_close(loss.features(x), expected)
    conv = VGGFeatureLoss(path, layer="conv5_4")
    assert isinstance(conv.vgg[-1], torch.nn.Conv2d) and len(conv.vgg) == 35


def test_vgg_loss_properties(vgg_file, tmp_path):
    loss = VGGFeatureLoss(vgg_file, rgb_bands=(0, 1, 2))
    hr = torch.rand(2, 4, 32, 32)
    sr = (hr + 0.05 * torch.randn_like(hr)).requires_grad_(True)
    assert loss(hr, hr).item() == 0.0
    value = loss(sr, hr)
    assert value.item() > 0
    value.backward()
    assert sr.grad[:, 3].abs().max() == 0  # the NIR band is not one of the RGB triplet
    assert sr.grad[:, :3].abs().max() > 0
    assert all(not p.requires_grad for p in loss.vgg.parameters())
    loss.train()
    assert not loss.vgg.training
    # the same weights from a features-only safetensors file
    state = torch.load(vgg_file, weights_only=True)
    safe = tmp_path / "vgg19.safetensors"
    save_file({k.removeprefix("features."): v.contiguous() for k, v in state.items()}, str(safe))
    torch.testing.assert_close(VGGFeatureLoss(safe)(sr, hr), value)
    with pytest.raises(ConfigError, match="need at least 6 bands"):
        VGGFeatureLoss(vgg_file, rgb_bands=(5, 1, 0))(sr, hr)


def test_vgg_weights_errors(vgg_file, tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        VGGFeatureLoss(tmp_path / "missing.pth")

    class Payload:  # pickled code must never run: weights_only refuses it
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pth"
    torch.save({"x": Payload()}, evil)
    with pytest.raises(CheckpointError, match="cannot read VGG19 weights"):
        VGGFeatureLoss(evil)
    partial = tmp_path / "vgg16ish.pth"
    state = torch.load(vgg_file, weights_only=True)
    torch.save({k: v for k, v in state.items() if not k.startswith("features.34")}, partial)
    with pytest.raises(CheckpointError, match="not a VGG19 state dict"):
        VGGFeatureLoss(partial)
    with pytest.raises(ConfigError, match="three distinct"):
        VGGFeatureLoss(vgg_file, rgb_bands=(0, 0, 1))
    with pytest.raises(ConfigError, match="unknown VGG19 layer"):
        VGGFeatureLoss(vgg_file, layer="relu6_1")


# --- adversarial ---------------------------------------------------------------------------------


def test_vanilla_gan_matches_the_srgan_formulas():
    real = torch.tensor([[2.0], [0.5]])
    fake = torch.tensor([[-1.0], [0.3]])
    loss = AdversarialLoss("vanilla")
    assert loss.loss_weight == 1e-3
    sig = torch.sigmoid
    expected_d = (-torch.log(sig(real))).mean() + (-torch.log(1 - sig(fake))).mean()
    expected_g = 1e-3 * (-torch.log(sig(fake))).mean()
    assert loss.discriminator_loss(real, fake).item() == pytest.approx(expected_d.item(), rel=1e-6)
    assert loss.generator_loss(fake).item() == pytest.approx(expected_g.item(), rel=1e-6)
    # a discriminator that separates perfectly has ~0 loss; a fooled one a large loss
    assert loss.discriminator_loss(torch.full((4, 1), 15.0), torch.full((4, 1), -15.0)) < 1e-5
    assert loss.discriminator_loss(torch.full((4, 1), -15.0), torch.full((4, 1), 15.0)) > 20


def test_relativistic_loss_is_symmetric_and_relative():
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(6, 1, 8, 8, generator=generator)
    b = torch.randn(6, 1, 8, 8, generator=generator) + 1.0
    loss = AdversarialLoss("ragan", loss_weight=1.0)
    assert DEFAULT_ADVERSARIAL_WEIGHTS["ragan"] == AdversarialLoss("ragan").loss_weight == 5e-3
    # the generator plays the discriminator's game with the roles swapped
    assert loss.generator_loss(a, b).item() == pytest.approx(
        loss.discriminator_loss(a, b).item(), rel=1e-6
    )
    # only differences to the other side's mean count: a common shift changes nothing
    assert loss.discriminator_loss(a + 7.0, b + 7.0).item() == pytest.approx(
        loss.discriminator_loss(a, b).item(), rel=1e-5
    )
    # equal logits: each term is -log(sigmoid(0)) = log 2
    assert loss.discriminator_loss(a * 0, a * 0).item() == pytest.approx(2 * math.log(2))
    fake = a.clone().requires_grad_(True)
    loss.generator_loss(fake, b).backward()
    assert (fake.grad < 0).all()  # raising SR logits above the HR mean lowers the G loss
    with pytest.raises(ModelError, match="HR logits"):
        loss.generator_loss(a)


@pytest.mark.parametrize("gan_type", ["vanilla", "ragan"])
def test_adversarial_losses_with_both_discriminators(gan_type, unet):
    torch.manual_seed(0)
    loss = AdversarialLoss(gan_type)
    for arch in ("srgan", "unet"):
        disc = discriminator(arch, 4, unet).train()
        disc.zero_grad()
        hr = torch.rand(2, 4, 32, 32)
        sr = torch.rand(2, 4, 32, 32, requires_grad=True)
        valid = half_mask()
        d_loss = loss.discriminator_loss(disc(hr), disc(sr.detach()), valid)
        d_loss.backward()
        assert sr.grad is None
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in disc.parameters())
        disc.zero_grad()
        g_loss = loss.generator_loss(disc(sr), disc(hr), valid)
        g_loss.backward()
        assert torch.isfinite(g_loss) and sr.grad.abs().sum() > 0


def test_per_pixel_logits_under_the_mask_do_not_count():
    loss = AdversarialLoss("ragan", loss_weight=1.0)
    real = torch.randn(2, 1, 16, 16)
    fake = torch.randn(2, 1, 16, 16)
    valid = half_mask(size=16)
    base_d = loss.discriminator_loss(real, fake, valid)
    base_g = AdversarialLoss("vanilla").generator_loss(fake, None, valid)
    fake2, real2 = fake.clone(), real.clone()
    fake2[..., 8:] = 100.0
    real2[..., 8:] = -100.0
    assert loss.discriminator_loss(real2, fake2, valid).item() == pytest.approx(base_d.item())
    assert AdversarialLoss("vanilla").generator_loss(fake2, None, valid).item() == pytest.approx(
        base_g.item()
    )
    # image-level logits: a patch that is all nodata gets no weight
    image_real, image_fake = torch.tensor([[3.0], [-50.0]]), torch.tensor([[-3.0], [50.0]])
    empty_second = torch.ones(2, 1, 4, 4)
    empty_second[1] = 0
    expected = loss.discriminator_loss(image_real[:1], image_fake[:1])
    got = loss.discriminator_loss(image_real, image_fake, empty_second)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ConfigError, match="unknown GAN type"):
        AdversarialLoss("wgan")


# --- spectral angle ----------------------------------------------------------------------------------


def test_sam_loss_zero_for_scaled_spectra_and_right_angles(landsat):
    loss = SAMLoss()
    assert loss(landsat * 3.7, landsat).item() == pytest.approx(0.0, abs=1e-6)
    a = torch.zeros(1, 3, 4, 4)
    b = torch.zeros(1, 3, 4, 4)
    a[:, 0], b[:, 1] = 1.0, 2.0
    assert loss(a, b).item() == pytest.approx(math.pi / 2, rel=1e-6)


def test_sam_loss_matches_the_metric_on_radiometry(landsat):
    generator = torch.Generator().manual_seed(0)
    pred = landsat * (
        1 + 0.05 * torch.randn(landsat.shape, generator=generator, dtype=torch.float64)
    )
    expected = metrics.sam(pred[0].numpy(), landsat[0].numpy())
    assert SAMLoss()(pred, landsat).item() == pytest.approx(expected, rel=1e-6)
    # on normalised tensors with the normalisation passed in, the angle is the radiometric one
    offset = torch.tensor([7000.0, 6000.0, 5000.0, 4000.0], dtype=torch.float64)
    scale = torch.tensor([3000.0, 2500.0, 2000.0, 9000.0], dtype=torch.float64)
    norm = lambda x: (x - offset.view(1, -1, 1, 1)) / scale.view(1, -1, 1, 1)  # noqa: E731
    assert SAMLoss()(norm(pred), norm(landsat), None, offset, scale).item() == pytest.approx(
        expected, rel=1e-6
    )
    assert SAMLoss()(norm(pred), norm(landsat)).item() != pytest.approx(expected, rel=0.1)


def test_sam_loss_mask_gradient_and_band_count(landsat):
    target = landsat.float()
    pred = target.clone()
    pred[..., 16:] = torch.flip(pred[..., 16:], dims=[1])  # wrong band order on the right
    valid = half_mask(1)
    assert SAMLoss()(pred, target, valid).item() == pytest.approx(0.0, abs=1e-5)
    assert SAMLoss()(pred, target).item() > 0.05
    same = target.clone().requires_grad_(True)
    SAMLoss()(same, target).backward()
    assert torch.isfinite(same.grad).all()  # no NaN at angle 0 (arccos would give inf)
    angle = spectral_angle(pred, target)
    assert angle.shape == (1, 1, 32, 32)
    with pytest.raises(ConfigError, match="at least 2 bands"):
        SAMLoss()(target[:, :1], target[:, :1])


# --- configuration and total loss ----------------------------------------------------------------


def test_loss_config_stages_and_validation(vgg_file):
    pretrain = LossConfig.for_stage("pretrain")
    gan = LossConfig.for_stage("gan")
    assert pretrain.pixel_weight == 1.0 and pretrain.content == "none"
    assert gan.pixel_weight == 1e-2 and gan.content == "features" and gan.gan_type == "vanilla"
    assert LossConfig.for_stage("gan", gan_type="ragan").gan_type == "ragan"
    assert LossConfig.from_dict(gan.to_dict()) == gan
    with pytest.raises(ConfigError, match="unknown loss option"):
        LossConfig.from_dict({"pixel_wieght": 1})
    with pytest.raises(ConfigError, match="needs vgg_weights"):
        LossConfig(content="vgg")
    with pytest.raises(ConfigError, match="sam_weight"):
        LossConfig(sam_weight=-1)
    with pytest.raises(ConfigError, match="stage"):
        LossConfig.for_stage("finetune")
    assert LossConfig(content="vgg", vgg_weights=str(vgg_file)).vgg_layer == "relu5_4"


def test_generator_loss_pretrain_and_gan_stage(landsat):
    torch.manual_seed(0)
    hr = torch.rand(2, 4, 32, 32)
    sr = (hr + 0.1 * torch.randn_like(hr)).requires_grad_(True)
    valid = half_mask()
    total, parts = GeneratorLoss(LossConfig.for_stage("pretrain"), adversarial=False)(sr, hr, valid)
    assert set(parts) == {"pixel"}
    assert total.item() == pytest.approx(PixelLoss()(sr, hr, valid).item())

    disc = build_discriminator("srgan", bands=4, width=8)
    criterion = GeneratorLoss(LossConfig.for_stage("gan", sam_weight=0.1))
    offset, scale = torch.full((2, 4), 100.0), torch.full((2, 4), 1000.0)
    total, parts = criterion(
        sr,
        hr,
        valid,
        fake=disc(sr, return_features=True),
        real=disc(hr, return_features=True),
        offset=offset,
        scale=scale,
    )
    assert set(parts) == {"pixel", "content", "adversarial", "sam"}
    assert total.item() == pytest.approx(sum(v.item() for v in parts.values()), rel=1e-6)
    assert parts["pixel"].item() == pytest.approx(1e-2 * PixelLoss()(sr, hr, valid).item())
    total.backward()
    assert sr.grad.abs().sum() > 0
    with pytest.raises(ModelError, match="discriminator outputs"):
        criterion(sr, hr, valid)
