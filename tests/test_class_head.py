"""The projected discriminator's auxiliary classifier (``loss.class_lambda``): a linear probe of the real classes
on D's frozen features, whose cross-entropy on G's images is added to G's loss."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from gan_augment.models import create_discriminator
from gan_augment.training import Trainer

from .test_data_efficient import _recipe
from .test_training import _cfg, folder, tiny_config  # noqa: F401 - folder is a fixture


def _colour_batch(n_per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class k = a noisy image dominated by colour channel k (separable, but not in any one pixel)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(3).repeat_interleave(n_per_class)
    x = torch.rand(len(y), 3, 32, 32, generator=g) * 1.2 - 1.0
    x[torch.arange(len(y)), y] += 0.8
    return x.clamp(-1, 1), y


def test_class_head_is_trainable_state_read_from_the_same_pass():
    torch.manual_seed(0)
    D = create_discriminator("projected", resolution=32, num_classes=3, base_channels=8, pretrained=False).eval()
    x, y = _colour_batch(2, seed=1)
    with pytest.raises(ValueError, match=r"with_class=True needs add_class_head\(\) first"):
        D(x, y, with_class=True)
    plain = D(x, y)
    head = D.add_class_head()
    logits, cls = D(x, y, with_class=True)
    assert torch.equal(logits, plain) and cls.shape == (6, 3)  # the real/fake logits are untouched
    assert any(p is head.fc.weight for p in D.parameters())  # D's optimizer trains it ...
    assert "class_head.fc.weight" in D.state_dict()  # ... and checkpoints keep it
    assert not any(k.startswith("projector") for k in D.state_dict())
    xg = x.clone().requires_grad_(True)
    F.cross_entropy(D(xg, y, with_class=True)[1], y).backward()
    assert xg.grad.abs().sum() > 0  # G gets the class gradient through the frozen backbone
    unconditional = create_discriminator("projected", resolution=32, base_channels=8, pretrained=False)
    with pytest.raises(ValueError, match="needs a class-conditional discriminator with >= 2 classes"):
        unconditional.add_class_head()


def test_class_head_learns_the_classes_on_frozen_features():
    torch.manual_seed(0)
    D = create_discriminator("projected", resolution=32, num_classes=3, base_channels=8, pretrained=False)
    head = D.add_class_head()
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    x, y = _colour_batch(16, seed=2)
    test_x, test_y = _colour_batch(16, seed=3)
    with torch.no_grad():
        before = (D(test_x, test_y, with_class=True)[1].argmax(1) == test_y).float().mean().item()
    for _ in range(60):
        loss = F.cross_entropy(D(x, y, with_class=True)[1], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = (D(test_x, test_y, with_class=True)[1].argmax(1) == test_y).float().mean().item()
    assert before < 0.7 and after >= 0.95  # held-out images of the toy classes, from random frozen features
    assert all(p.grad is None for p in D.heads.parameters())  # the real/fake heads are not part of this


def test_class_lambda_trains_the_head_on_real_images_and_changes_g(tmp_path, folder):
    d = _recipe(tmp_path / "c", folder, steps=4)
    d["model"]["cond_transition"] = None
    d["loss"]["class_lambda"] = 1.0
    with_head = Trainer(_cfg(d)).fit()
    rows = [json.loads(line) for line in with_head.log_path.read_text().splitlines()]
    assert len(rows) == 4
    for r in rows:
        assert 0.0 <= r["class_real_acc"] <= 1.0 and 0.0 <= r["class_fake_acc"] <= 1.0
        assert np.isfinite(r["class_real_ce"]) and r["class_fake_ce"] > 0
    ckpt = torch.load(with_head.checkpoint_path, weights_only=True)
    assert ckpt["D"]["class_head.fc.weight"].shape == (3, 64 + 128 + 256 + 512)
    d0 = _recipe(tmp_path / "n", folder, steps=4)
    d0["model"]["cond_transition"] = None
    without = Trainer(_cfg(d0)).fit()
    assert "class_real_acc" not in json.loads(without.log_path.read_text().splitlines()[0])
    a, b = load_file(str(with_head.generator_path)), load_file(str(without.generator_path))
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())  # the class term reached G


@pytest.mark.parametrize("change, message", [
    ({"loss": {"class_lambda": -0.5}}, "loss.class_lambda must be >= 0"),
    ({"loss": {"class_lambda": 1.0}}, "loss.class_lambda needs discriminator 'projected'"),
    ({"loss": {"class_lambda": 1.0}, "model": {"discriminator": "projected", "d_pretrained": False,
                                               "conditional": False}}, "needs a class-conditional GAN"),
])
def test_class_lambda_refuses_what_it_cannot_do(tmp_path, folder, change, message):
    d = tiny_config(tmp_path, folder, steps=1)
    for section, values in change.items():
        d[section].update(values)
    with pytest.raises(ValueError, match=message):
        Trainer(_cfg(d))
