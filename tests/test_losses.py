"""Every objective: finite values, the expected sign / ordering on toy logits, and its side effects."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gan_augment.losses import create_loss, list_losses, r1_penalty
from gan_augment.models import create_discriminator

CONFIDENT_REAL = torch.full((8,), 3.0)
CONFIDENT_FAKE = torch.full((8,), -3.0)


@pytest.mark.parametrize("name", list_losses())
def test_good_discriminator_has_lower_loss_and_generator_wants_real(name):
    loss = create_loss(name)
    # LSGAN's targets are 1 / 0, the others' decision boundary is 0
    real, fake = (torch.ones(8), torch.zeros(8)) if name == "lsgan" else (CONFIDENT_REAL, CONFIDENT_FAKE)
    good = loss.d_loss(real, fake)
    bad = loss.d_loss(fake, real)
    assert torch.isfinite(good) and torch.isfinite(bad)
    assert good < bad
    # G loss falls as D calls the fakes more real
    assert loss.g_loss(real) < loss.g_loss(fake)
    acc_real, acc_fake = loss.d_accuracy(real, fake)
    assert acc_real == 1.0 and acc_fake == 1.0


def test_chance_levels_and_exact_values():
    zeros = torch.zeros(4)
    assert create_loss("hinge").d_loss(zeros, zeros).item() == pytest.approx(2.0)
    assert create_loss("hinge").chance_d_loss == 2.0
    assert create_loss("bce").d_loss(zeros, zeros).item() == pytest.approx(2 * math.log(2))
    half = torch.full((4,), 0.5)
    assert create_loss("lsgan").d_loss(half, half).item() == pytest.approx(0.25)
    assert create_loss("wgan").d_loss(torch.full((4,), 2.0), torch.full((4,), 1.0)).item() == pytest.approx(-1.0)
    assert create_loss("hinge").g_loss(torch.full((4,), 0.7)).item() == pytest.approx(-0.7)
    assert create_loss("bce").g_loss(zeros).item() == pytest.approx(math.log(2))


def test_wgan_clips_weights_and_wgan_gp_penalises_gradients():
    torch.manual_seed(0)
    D = create_discriminator("dcgan", resolution=32, base_channels=4, batch_norm=False)
    with torch.no_grad():
        for p in D.parameters():
            p.mul_(100)
    create_loss("wgan", clip=0.01).after_d_step(D)
    assert max(p.abs().max().item() for p in D.parameters()) <= 0.01 + 1e-9
    gp = create_loss("wgan-gp", gp_lambda=10.0)
    real, fake = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)
    pen = gp.d_penalty(D, real, fake, None, generator=torch.Generator().manual_seed(0))
    assert pen.item() >= 0 and torch.isfinite(pen)
    pen.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in D.parameters())
    assert create_loss("hinge").d_penalty(D, real, fake, None) is None
    with pytest.raises(ValueError, match="clip must be positive"):
        create_loss("wgan", clip=0)


def test_r1_penalty_is_zero_for_a_constant_discriminator():
    class Constant(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.b = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x, y=None):
            return self.b + 0 * x.sum(dim=(1, 2, 3))

    x = torch.randn(3, 3, 8, 8)
    assert r1_penalty(Constant(), x, None, 10.0).item() == 0.0

    class Linear(torch.nn.Module):
        def forward(self, x, y=None):
            return 2.0 * x.sum(dim=(1, 2, 3))

    # grad = 2 everywhere: ||grad||^2 = 4 * 192; R1 = gamma/2 * that
    assert r1_penalty(Linear(), x, None, 1.0).item() == pytest.approx(0.5 * 4 * 192)


def test_unknown_loss_lists_choices():
    with pytest.raises(ValueError, match=r"unknown loss 'focal'; available: \['bce', 'hinge', 'lsgan', 'wgan', 'wgan-gp'\]"):
        create_loss("focal")
    assert create_loss("WGAN_GP").name == "wgan-gp"


def test_wgan_gp_sharded_over_two_processes_equals_the_global_batch():
    torch.manual_seed(0)
    D = create_discriminator("dcgan", resolution=32, base_channels=4, batch_norm=False)
    gp = create_loss("wgan-gp", gp_lambda=10.0)
    real, fake = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)
    g_full = torch.Generator().manual_seed(0)
    full = gp.d_penalty(D, real, fake, None, generator=g_full)
    halves = []
    for rank in (0, 1):
        g = torch.Generator().manual_seed(0)
        halves.append(gp.d_penalty(D, real[2 * rank:2 * rank + 2], fake[2 * rank:2 * rank + 2], None, generator=g,
                                   shard=(rank, 2)))
        assert torch.equal(g.get_state(), g_full.get_state())  # the random stream advances as one process's
    torch.testing.assert_close((halves[0] + halves[1]) / 2, full)


# ------------------------------------------------------------------------------------------------ spectrum
def test_radial_power_spectrum_finds_a_frequency_and_sees_blur():
    from gan_augment.losses import radial_power_spectrum

    n = 32
    yy, xx = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    stripes = torch.cos(2 * math.pi * 5 * xx / n).float()[None, None].repeat(2, 3, 1, 1)  # 5 cycles per image
    spec = radial_power_spectrum(stripes)
    assert spec.shape == (2, n // 2 - 1) and int(spec[0].argmax()) == 5 - 1  # band k-1 holds radius k
    # scaling the image scales the power: the peak rises by log10 of the power ratio
    assert abs(float(radial_power_spectrum(3 * stripes)[0, 4] - spec[0, 4]) - math.log10(9)) < 1e-4

    g = torch.Generator().manual_seed(0)
    sharp = torch.rand(4, 1, n, n, generator=g)  # 1-channel input works
    blurred = F.avg_pool2d(F.pad(sharp, (1, 1, 1, 1), mode="reflect"), 3, stride=1)
    s_sharp, s_blur = radial_power_spectrum(sharp), radial_power_spectrum(blurred)
    assert (s_blur[:, -5:] < s_sharp[:, -5:] - 0.5).all()  # a 3x3 box blur removes most high-frequency power
    assert (s_blur[:, 0] - s_sharp[:, 0]).abs().max() < 0.2  # and keeps most of the lowest band

    x = sharp.clone().requires_grad_(True)
    radial_power_spectrum(x)[:, -1].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="expected \\(N, C, H, W\\)"):
        radial_power_spectrum(sharp[0])


def test_spectral_discriminator_learns_to_tell_blurred_images():
    from gan_augment.losses import SpectralDiscriminator, create_loss

    torch.manual_seed(0)
    head = SpectralDiscriminator(32)
    assert head.bands == 15
    real = torch.rand(16, 3, 32, 32) * 2 - 1
    fake = F.avg_pool2d(F.pad(real, (1, 1, 1, 1), mode="reflect"), 3, stride=1)
    assert torch.equal(head(real), torch.zeros(16)) and int(head.seen) == 0  # undecided; plain calls do not observe
    loss = create_loss("hinge")
    opt = torch.optim.Adam(head.parameters(), lr=2e-4)  # a GAN's D learning rate: standardised inputs learn at it
    first = None
    for _ in range(100):
        opt.zero_grad()
        d_loss, acc = head.d_terms(loss, real, fake)
        first = float(d_loss) if first is None else first
        d_loss.backward()
        opt.step()
    assert int(head.seen) == 100 and first == 2.0  # hinge at chance
    assert float(d_loss) < 1.0 and acc >= 0.8  # learns within 100 steps at a GAN D learning rate
    # running statistics of the real spectra are buffers (saved with D), not parameters
    assert {n for n, _ in head.named_parameters()} == {"fc.weight", "fc.bias"}
    assert {"real_mean", "real_std", "seen"} <= set(head.state_dict())
    with pytest.raises(ValueError, match="at least 6 px"):
        SpectralDiscriminator(4)
    with pytest.raises(ValueError, match="loss.spectral_lambda must be >= 0"):
        SpectralDiscriminator(32, weight=-1)
