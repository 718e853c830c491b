"""The mode-seeking term for G (``loss.mode_seeking_lambda``, Mao et al. 2019): pairs of one class with different
latents, G rewarded for images that differ as much as their latents."""

from __future__ import annotations

import json

import pytest
import torch

from gan_augment.losses import mode_seeking_loss
from gan_augment.training import Trainer

from .test_training import _cfg, folder, tiny_config  # noqa: F401 - folder is a fixture


def test_value_is_latent_over_image_distance_and_its_gradient_pushes_pairs_apart():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(6, 8, generator=g)
    x = torch.rand(6, 3, 4, 4, generator=g).requires_grad_(True)
    value = mode_seeking_loss(x, z)
    d_img = (x[:3] - x[3:]).abs().mean()
    d_z = (z[:3] - z[3:]).abs().mean()
    assert torch.allclose(value, 1 / (d_img / d_z + 1e-5))
    value.backward()
    stepped = (x - 0.01 * x.grad).detach()  # one descent step on the term alone
    assert (stepped[:3] - stepped[3:]).abs().mean() > d_img  # ... makes each pair's images differ more
    # an odd batch: the last row has no partner and is left out
    odd = torch.rand(7, 3, 4, 4, generator=g)
    zo = torch.randn(7, 8, generator=g)
    assert torch.allclose(mode_seeking_loss(odd, zo), mode_seeking_loss(odd[:6], zo[:6]))
    # identical pair images (collapse) cost the most
    same = torch.rand(2, 3, 4, 4, generator=g).repeat(2, 1, 1, 1)
    assert mode_seeking_loss(same, torch.randn(4, 8, generator=g)) > 1e4
    with pytest.raises(ValueError, match="needs a batch of >= 2 images with one latent each, got 1 images"):
        mode_seeking_loss(x[:1], z[:1])
    with pytest.raises(ValueError, match="got 6 images and 5 latents"):
        mode_seeking_loss(x, z[:5])


def test_generator_steps_pair_classes_and_the_log_carries_the_term(tmp_path, folder):
    d = tiny_config(tmp_path, folder, steps=3)
    d["loss"]["mode_seeking_lambda"] = 1.0
    trainer = Trainer(_cfg(d))
    seen = []
    inner = trainer.G_step

    def spy(z, y):
        seen.append((torch.is_grad_enabled(), y.clone()))
        return inner(z, y)

    trainer.G_step = spy
    result = trainer.fit()
    g_labels = [y for grad, y in seen if grad]  # G's steps (D's fakes are made without gradients)
    d_labels = [y for grad, y in seen if not grad]
    assert len(g_labels) == 3 and len(d_labels) == 6  # n_dis = 2
    for y in g_labels:
        half = len(y) // 2
        assert torch.equal(y[:half], y[half:2 * half])  # each pair shares a class
    assert any(not torch.equal(y[:len(y) // 2], y[len(y) // 2:]) for y in d_labels)  # D's batches are not paired
    rows = [json.loads(line) for line in result.log_path.read_text().splitlines()]
    assert len(rows) == 3 and all(0 < r["mode_seeking"] < 1e4 for r in rows)
    plain = Trainer(_cfg(tiny_config(tmp_path / "p", folder, steps=1))).fit()
    assert "mode_seeking" not in json.loads(plain.log_path.read_text().splitlines()[0])


def test_negative_weight_is_refused(tmp_path, folder):
    d = tiny_config(tmp_path, folder, steps=1)
    d["loss"]["mode_seeking_lambda"] = -1.0
    with pytest.raises(ValueError, match=r"loss.mode_seeking_lambda must be >= 0 \(0 = off\), got -1.0"):
        Trainer(_cfg(d))
