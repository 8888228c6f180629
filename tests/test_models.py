"""Generators and discriminators: shapes, scales, band counts, receptive field."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.parametrize import is_parametrized

import geosr
from geosr.models import SRGANDiscriminator, UNetDiscriminator


@pytest.mark.parametrize("scale", [2, 4, 8])
@pytest.mark.parametrize("bands", [1, 3, 4, 13])
def test_generator_shapes_for_every_scale_and_band_count(bands: int, scale: int) -> None:
    model = geosr.build_model(bands=bands, scale=scale, width=8, blocks=1)
    out = model(torch.randn(2, bands, 12, 10))
    assert out.shape == (2, bands, 12 * scale, 10 * scale)
    assert len(model.upsample) == {2: 1, 4: 2, 8: 3}[scale]


def test_paper_architecture_layout() -> None:
    model = geosr.build_model(bands=4, scale=4, preset="paper")
    assert model.conv_head.kernel_size == (9, 9) and model.conv_tail.kernel_size == (9, 9)
    assert len(model.body) == 16 and model.config.width == 64
    block = model.body[0]
    assert isinstance(block.bn1, torch.nn.BatchNorm2d) and isinstance(block.act, torch.nn.PReLU)
    compact = geosr.build_model(bands=4, scale=4, preset="compact")
    assert len(compact.body) == 8 and compact.config.width == 32
    assert isinstance(compact.body[0].bn1, torch.nn.Identity)
    assert (
        sum(p.numel() for p in compact.parameters())
        < sum(p.numel() for p in model.parameters()) / 3
    )


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_fast_layout_reconstructs_at_input_resolution(scale: int) -> None:
    """The bundled layout: no convolution runs at output resolution; one 3x3 conv at input
    resolution makes every sub-pixel, then one pixel shuffle."""
    model = geosr.build_model(bands=None, scale=scale, preset="fast")
    assert model.config.upsampler == "pixelshuffledirect"
    conv, shuffle = model.upsample
    assert conv.out_channels == scale**2 and shuffle.upscale_factor == scale
    assert isinstance(model.conv_tail, torch.nn.Identity)
    assert (model.config.width, model.config.blocks) == (48, 7)
    out = model(torch.randn(3, 1, 11, 9))
    assert out.shape == (3, 1, 11 * scale, 9 * scale)


def test_unknown_upsampler_is_refused() -> None:
    with pytest.raises(geosr.ModelError, match="upsampler must be one of"):
        geosr.build_model(upsampler="deconv")


def test_band_shared_model_has_one_band_network() -> None:
    model = geosr.build_model(bands=None, scale=4, width=8, blocks=1)
    assert model.meta.band_shared and model.meta.bands is None
    assert model.conv_head.in_channels == 1


@pytest.mark.parametrize("bad", [3, 1, 16])
def test_unsupported_scale_is_a_clear_error(bad: int) -> None:
    with pytest.raises(geosr.ModelError, match="scale .* not supported; use one of 2, 4, 8"):
        geosr.build_model(bands=4, scale=bad)


def test_unknown_options_are_refused() -> None:
    with pytest.raises(geosr.ModelError, match="unknown preset"):
        geosr.build_model(preset="huge")
    with pytest.raises(geosr.ModelError, match="unknown generator architecture"):
        geosr.build_model(arch="transformer")


@pytest.mark.parametrize(
    "config",
    [
        dict(scale=4, width=8, blocks=2),
        dict(scale=2, width=8, blocks=3),
        dict(scale=8, width=8, blocks=1, skip="none"),
        dict(
            scale=4, width=8, blocks=2, head_kernel=3, tail_kernel=3, upsampler="pixelshuffledirect"
        ),
        dict(scale=2, width=8, blocks=1, head_kernel=5, upsampler="pixelshuffledirect"),
    ],
)
def test_receptive_radius_bounds_the_real_influence(config: dict) -> None:
    """A pixel farther than the radius never changes the output over the centre pixel, and one
    just inside it does: the halo is both sufficient and not wasteful."""
    torch.manual_seed(1)
    model = geosr.build_model(bands=1, batch_norm=False, **config).eval()
    radius, scale = model.receptive_radius(), model.scale
    size = 2 * radius + 9
    centre = size // 2
    x = torch.randn(1, 1, size, size)
    with torch.no_grad():
        base = model(x)

        def influences(distance: int) -> bool:
            bumped = x.clone()
            bumped[..., centre, centre + distance] += 5.0
            diff = (model(bumped) - base).abs()[0, 0]
            window = diff[
                centre * scale : (centre + 1) * scale, centre * scale : (centre + 1) * scale
            ]
            return bool(window.max() > 0)

        assert not influences(radius)
        assert not influences(radius + 2)
        assert influences(radius - 2)


def test_srgan_discriminator_any_patch_size_and_features() -> None:
    disc = geosr.build_discriminator("srgan", bands=6, width=8)
    assert isinstance(disc, SRGANDiscriminator)
    for size in (48, 96):
        logits, features = disc(torch.randn(2, 6, size, size), return_features=True)
        assert logits.shape == (2, 1)
        assert len(features) == 8 and features[-1].shape[1] == 64
    assert any(is_parametrized(m) for m in disc.modules())  # spectral norm


def test_srgan_discriminator_without_spectral_norm_uses_batch_norm() -> None:
    disc = geosr.build_discriminator("srgan", bands=3, width=8, spectral_norm=False)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in disc.modules())
    assert not any(is_parametrized(m) for m in disc.modules())


def test_unet_discriminator_is_per_pixel_with_spectral_norm() -> None:
    disc = geosr.build_discriminator("unet", bands=4)
    assert isinstance(disc, UNetDiscriminator)
    logits, features = disc(torch.randn(2, 4, 64, 64), return_features=True)
    assert logits.shape == (2, 1, 64, 64)
    assert len(features) >= 5
    convs = [m for m in disc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(is_parametrized(c, "weight") for c in convs)
    logits.mean().backward()
    assert disc.net.encoder.conv1.parametrizations.weight.original.grad is not None
    with pytest.raises(geosr.ModelError, match="divisible by 32"):
        disc(torch.randn(1, 4, 40, 40))


def test_unknown_discriminator() -> None:
    with pytest.raises(geosr.ModelError, match="unknown discriminator"):
        geosr.build_discriminator("patchgan")
