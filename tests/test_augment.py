"""DiffAugment: differentiable, seeded, each op does what it says; ADA moves p in the right direction."""

from __future__ import annotations

import pytest
import torch

from gan_augment.augment import AdaptiveAugment, DiffAugment


def test_identity_and_validation():
    x = torch.randn(2, 3, 16, 16)
    assert DiffAugment("")(x) is x
    assert DiffAugment("color", p=0.0)(x) is x
    with pytest.raises(ValueError, match=r"unknown augmentation \['rotate'\]"):
        DiffAugment("color,rotate")
    with pytest.raises(ValueError, match="padding must be one of"):
        DiffAugment("translation", padding="wrap")


def test_gradients_flow_through_every_op():
    for policy in ("color", "translation", "cutout"):
        x = torch.randn(4, 3, 16, 16, requires_grad=True)
        DiffAugment(policy, seed=1)(x).sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0, policy


def test_seeded_and_state_roundtrip():
    x = torch.randn(4, 3, 16, 16)
    a, b = DiffAugment(seed=3), DiffAugment(seed=3)
    assert torch.equal(a(x), b(x))
    state = a.state_dict()
    first = a(x)
    b2 = DiffAugment(seed=99)
    b2.load_state_dict(state)
    assert torch.equal(b2(x), first)


def test_translation_shifts_whole_pixels_and_pads():
    x = torch.arange(64, dtype=torch.float32).view(1, 1, 8, 8).repeat(16, 1, 1, 1)
    out = DiffAugment("translation", translation=0.25, padding="zeros", seed=0)(x)
    for img in out[:, 0]:
        # every output pixel is an input pixel value or padding, i.e. a pure integer shift
        vals = set(img.flatten().tolist())
        assert vals <= set(range(64))
    assert any(not torch.equal(o, x[0]) for o in out)
    refl = DiffAugment("translation", translation=0.25, padding="reflection", seed=0)(x + 1)
    assert (refl > 0).all()  # reflection never leaves an empty frame


def test_cutout_zeroes_a_square_and_p_gates_per_image():
    x = torch.ones(200, 3, 16, 16)
    out = DiffAugment("cutout", cutout=0.5, seed=0)(x)
    zero_frac = (out == 0).float().mean(dim=(1, 2, 3))
    assert (zero_frac > 0).all() and (zero_frac <= 0.25 + 1e-6).all()
    gated = DiffAugment("cutout", cutout=0.5, p=0.3, seed=0)(x)
    changed = ((gated == 0).flatten(1).any(dim=1)).float().mean().item()
    assert 0.18 < changed < 0.42


def test_adaptive_p_rises_when_d_overfits_and_falls_otherwise():
    aug = DiffAugment("color", p=0.5)
    ada = AdaptiveAugment(aug, target=0.6, interval=2, speed_kimg=0.1)
    for _ in range(4):
        ada.accumulate(torch.full((32,), 5.0))  # D sure every real is real: r_t = 1 > 0.6
    assert aug.p > 0.5 and ada.last_rt == 1.0
    high = aug.p
    for _ in range(4):
        ada.accumulate(torch.full((32,), -5.0))  # r_t = -1
    assert aug.p < high
    state = ada.state_dict()
    ada2 = AdaptiveAugment(DiffAugment("color"), target=0.6, interval=2, speed_kimg=0.1)
    ada2.load_state_dict(state)
    assert ada2.last_rt == ada.last_rt


def test_sharded_augmentation_equals_augmenting_the_global_batch():
    x = torch.rand(6, 3, 16, 16) * 2 - 1
    full = DiffAugment("color,translation,cutout", p=0.7, seed=4)
    expected = full(x)
    parts = []
    for rank in range(3):
        aug = DiffAugment("color,translation,cutout", p=0.7, seed=4)
        aug.shard = (rank, 3)
        parts.append(aug(x[2 * rank:2 * rank + 2]))
        assert torch.equal(aug.state_dict()["rng"]["cpu"], full.state_dict()["rng"]["cpu"])
    torch.testing.assert_close(torch.cat(parts), expected)
