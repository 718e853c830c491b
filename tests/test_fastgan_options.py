"""The FastGAN generator's fine-detail options: per-pixel noise injection (``model.g_noise``) and bilinear
upsampling (``model.g_upsample``) - what they compute, that ``sample(seed=...)`` stays reproducible with noise,
and that a generator file written without them starts a generator with them (``train.init_generator``)."""

from __future__ import annotations

import threading

import pytest
import torch
from safetensors.torch import load_file

from gan_augment.generators import load_generator, read_generator_metadata, save_generator
from gan_augment.models import create_generator
from gan_augment.training import Trainer
from gan_augment.training.config import ModelConfig
from gan_augment.training.networks import network_kwargs
from gan_augment.training.warm_start import warm_start

from .test_data_efficient import _recipe
from .test_training import _cfg, folder  # noqa: F401 - folder is a fixture

CLASSES = ["a", "b"]


def _g(seed: int = 0, **kw):
    torch.manual_seed(seed)
    return create_generator("fastgan", resolution=32, num_classes=2, channels=3, z_dim=16, base_channels=4, **kw)


def _set_strengths(G, value: float) -> None:
    with torch.no_grad():
        for up in G.ups:
            up.noise.strength.fill_(value)


def test_noise_strengths_start_at_zero_so_a_noise_generator_computes_the_plain_one():
    plain, noisy = _g(), _g(noise=True)
    missing, unexpected = noisy.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and sorted(missing) == [f"ups.{i}.noise.strength" for i in range(3)]
    assert all(float(up.noise.strength.detach().abs().sum()) == 0 for up in noisy.ups)
    z, y = torch.randn(4, 16), torch.tensor([0, 1, 0, 1])
    plain.eval(), noisy.eval()
    assert torch.equal(plain(z, y), noisy(z, y))
    assert noisy.uses_noise and not plain.uses_noise
    assert "noise" not in plain.arch_args and noisy.arch_args["noise"] is True


def test_noise_changes_the_images_and_gets_gradients():
    G = _g(noise=True)
    _set_strengths(G, 0.5)
    z, y = torch.randn(4, 16), torch.tensor([0, 1, 0, 1])
    G.train()
    a = G(z, y)
    b = G(z, y)
    assert (a - b).abs().mean() > 1e-3  # fresh noise maps each call while training
    a.mean().backward()
    assert all(up.noise.strength.grad is not None and up.noise.strength.grad.abs().sum() > 0 for up in G.ups)


def test_sample_with_noise_is_a_function_of_the_seed_at_any_batch_size():
    G = _g(noise=True)
    _set_strengths(G, 0.5)
    a = G.sample(6, 0, seed=3, batch_size=4)
    b = G.sample(6, 0, seed=3, batch_size=2)
    c = G.sample(6, 0, seed=4, batch_size=4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert all(up.noise.fixed_seeds is None for up in G.ups)  # training draws from the global RNG again
    _set_strengths(G, 0.0)  # the same seed without noise: the same latents, other pixels
    assert not torch.equal(G.sample(6, 0, seed=3), a)


def test_concurrent_sampling_threads_each_get_their_own_seeds_noise():
    G = _g(noise=True)
    _set_strengths(G, 0.5)
    expected = {seed: G.sample(5, seed % 2, seed=seed, batch_size=2) for seed in range(8)}
    got: dict[int, torch.Tensor] = {}
    threads = [threading.Thread(target=lambda s=seed: got.__setitem__(s, G.sample(5, s % 2, seed=s, batch_size=2)))
               for seed in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(torch.equal(got[s], expected[s]) for s in expected)


def test_bilinear_upsampling_differs_from_nearest_with_the_same_weights():
    nearest, bilinear = _g(), _g(upsample="bilinear")
    with torch.no_grad():  # weights of a trained size (the N(0, 0.02) init gives a near-constant image)
        for name, w in nearest.named_parameters():
            if name.endswith("conv.weight"):
                w.mul_(15)
    bilinear.load_state_dict(nearest.state_dict())  # no weights of its own
    z, y = torch.randn(2, 16), torch.tensor([0, 1])
    nearest.eval(), bilinear.eval()
    out = bilinear(z, y)
    assert out.shape == (2, 3, 32, 32) and torch.isfinite(out).all()
    assert (out - nearest(z, y)).abs().mean() > 1e-2
    with pytest.raises(ValueError, match="upsample must be one of"):
        _g(upsample="bicubic")


def test_a_file_without_the_options_starts_a_generator_with_them(tmp_path):
    plain = _g()
    path = save_generator(plain, tmp_path / "g.safetensors", class_names=CLASSES, step=7)
    noisy = _g(seed=1, noise=True)
    record = warm_start(noisy, str(path), CLASSES)
    assert record["step"] == 7
    z, y = torch.randn(3, 16), torch.tensor([0, 1, 1])
    plain.eval(), noisy.eval()
    assert torch.equal(noisy(z, y), plain(z, y))
    both = _g(seed=1, noise=True, upsample="bilinear")
    warm_start(both, str(path), CLASSES)
    assert torch.equal(both.ups[0].conv.weight, plain.ups[0].conv.weight)
    # a noise generator's file round-trips with its noise
    _set_strengths(noisy, 0.25)
    saved = save_generator(noisy, tmp_path / "noisy.safetensors", class_names=CLASSES)
    back = load_generator(saved)
    assert back.uses_noise and back.class_names == CLASSES
    assert torch.equal(back.sample(4, "b", seed=0), noisy.sample(4, 1, seed=0))


def test_other_differences_and_dropping_learned_noise_are_still_refused(tmp_path):
    noisy = _g(noise=True)
    _set_strengths(noisy, 0.25)
    path = save_generator(noisy, tmp_path / "noisy.safetensors", class_names=CLASSES)
    with pytest.raises(ValueError, match="differs from this run's model in arch_args"):
        warm_start(_g(), str(path), CLASSES)  # its learned noise would be dropped
    plain = save_generator(_g(), tmp_path / "plain.safetensors", class_names=CLASSES)
    wider = create_generator("fastgan", resolution=32, num_classes=2, channels=3, z_dim=16, base_channels=8,
                             noise=True)
    with pytest.raises(ValueError, match="arch_args"):
        warm_start(wider, str(plain), CLASSES)


def test_config_keys_reach_the_generator_only_when_set_and_only_for_fastgan():
    base = dict(generator="fastgan", discriminator="projected", resolution=64)
    g_kwargs, _ = network_kwargs(ModelConfig(**base))
    assert "noise" not in g_kwargs and "upsample" not in g_kwargs  # existing files keep their identity
    g_kwargs, _ = network_kwargs(ModelConfig(**base, g_noise=True, g_upsample="bilinear"))
    assert g_kwargs["noise"] is True and g_kwargs["upsample"] == "bilinear"
    with pytest.raises(ValueError, match=r"model.g_upsample must be one of \['nearest', 'bilinear'\]"):
        network_kwargs(ModelConfig(**base, g_upsample="area"))
    with pytest.raises(ValueError, match="model.g_noise is an option of generator 'fastgan', not 'resnet'"):
        network_kwargs(ModelConfig(generator="resnet", discriminator="resnet", g_noise=True))


def test_a_noise_recipe_trains_resumes_bit_identically_and_draws_fixed_grids(tmp_path, folder):
    def recipe(where, **train):
        d = _recipe(where, folder, **train)
        d["model"].update({"g_noise": True, "g_upsample": "bilinear"})
        return _cfg(d)

    trainer = Trainer(recipe(tmp_path / "s"))
    straight = trainer.fit()
    assert straight.finished and straight.step == 6
    weights = load_file(str(straight.generator_path))
    strengths = [k for k in weights if k.endswith("noise.strength")]
    assert len(strengths) == 3 and all(weights[k].abs().sum() > 0 for k in strengths)  # learned away from 0
    meta = read_generator_metadata(straight.generator_path)
    assert meta["arch_args"]["noise"] is True and meta["arch_args"]["upsample"] == "bilinear"
    rng = torch.get_rng_state()
    grid = trainer.sample_grid_images()
    assert torch.equal(grid, trainer.sample_grid_images()) and torch.equal(torch.get_rng_state(), rng)
    # three steps, stop, resume: the same weights as six straight, noise maps included
    assert Trainer(recipe(tmp_path / "r", steps=3)).fit().step == 3
    resumed = Trainer(recipe(tmp_path / "r"), resume=True).fit()
    again = load_file(str(resumed.generator_path))
    assert all(torch.equal(weights[k], again[k]) for k in weights)


def test_a_refused_option_leaves_no_run_folder_behind(tmp_path, folder):
    d = _recipe(tmp_path, folder)  # out = tmp_path / "run", not there yet
    d["model"].update({"generator": "resnet", "g_noise": True})
    with pytest.raises(ValueError, match="model.g_noise is an option of generator 'fastgan', not 'resnet'"):
        Trainer(_cfg(d))
    assert not (tmp_path / "run").exists() and tmp_path.is_dir()
    # a folder that existed before the call (the user's own) stays, with what was in it
    mine = tmp_path / "run"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(ValueError, match="model.g_noise"):
        Trainer(_cfg(d))
    assert (mine / "notes.txt").read_text() == "keep"
