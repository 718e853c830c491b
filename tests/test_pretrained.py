"""Shipped generators (load, sample per class, hash check, tampering refused) and the benchmark's cpu64 preset,
its relative filter threshold and its use of a shipped generator."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ga_bench.arms import relative_thresholds
from ga_bench.balance_isic import build_config, main as bench_main, parser
from ga_bench.protocol import (DEFAULT_ARMS, BenchmarkConfig, GeneratorMismatch, check_generator, prepare_manifest,
                               resolve_generator)
from ga_bench.report import HAM10000_CLASSES, _outside_lines, reference_summary, report_markdown
from gan_augment import pretrained as pt
from gan_augment.pretrained import DEFAULT_PRETRAINED
from gan_augment.generators import save_generator
from gan_augment.models import create_generator

from .conftest import make_image_folder


def _ship(root, name="toy-32", classes=("a", "b", "c"), manifest_hash="abc"):
    torch.manual_seed(0)
    G = create_generator("fastgan", resolution=32, num_classes=len(classes), base_channels=4, z_dim=8)
    path = save_generator(G, root / f"{name}.safetensors", class_names=list(classes), manifest_hash=manifest_hash,
                          split="train", step=10)
    (root / f"{name}.md").write_text(f"# {name}\n\nLicence: CC BY-NC-SA 4.0\n")
    index = {name: {"file": path.name, "sha256": pt.file_sha256(path), "card": f"{name}.md",
                    "manifest_hash": manifest_hash, "resolution": 32}}
    (root / "index.json").write_text(json.dumps(index))
    return path


def test_load_a_shipped_generator_and_sample_each_class(tmp_path):
    _ship(tmp_path)
    assert pt.list_pretrained(root=tmp_path) == ["toy-32"]
    G = pt.load_pretrained("toy-32", root=tmp_path)
    for c in ("a", "b", "c"):
        x = G.sample(5, c, seed=1)
        assert x.shape == (5, 3, 32, 32) and x.dtype == torch.uint8
    assert torch.equal(G.sample(3, "b", seed=2), G.sample(3, "b", seed=2))
    assert "CC BY-NC-SA 4.0" in pt.model_card("toy-32", root=tmp_path)


def test_a_tampered_or_missing_file_is_refused(tmp_path):
    path = _ship(tmp_path)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # one flipped byte in the weights
    path.write_bytes(bytes(data))
    with pytest.raises(pt.PretrainedUnavailable, match="does not match its card"):
        pt.load_pretrained("toy-32", root=tmp_path)
    path.unlink()
    assert pt.list_pretrained(root=tmp_path) == []
    with pytest.raises(pt.PretrainedUnavailable, match="is missing"):
        pt.pretrained_path("toy-32", root=tmp_path)
    with pytest.raises(pt.PretrainedUnavailable, match=r"no pretrained generator 'nope' in this version"):
        pt.pretrained_info("nope", root=tmp_path)


def test_every_shipped_generator_matches_its_card():
    for name in pt.list_pretrained():
        info = pt.pretrained_info(name)
        G = pt.load_pretrained(name)  # the hash check
        assert G.resolution == info["resolution"] and G.meta["manifest_hash"] == info["manifest_hash"]
        assert "CC BY-NC-SA" in pt.model_card(name)


# ------------------------------------------------------------------------------------------------ cpu64 preset
def test_cpu64_preset_resolves_as_documented():
    cfg = build_config(parser().parse_args(["--preset", "cpu64"]))
    assert (cfg.image_size, cfg.resolved_epochs(), cfg.seeds, cfg.batch_size) == (64, 8, [0, 1, 2], 64)
    assert cfg.arms == list(DEFAULT_ARMS) and len(cfg.arms) == 8
    assert cfg.max_train_images is None and cfg.max_eval_per_class is None and cfg.train_fraction == 1.0
    assert (cfg.split_seed, tuple(cfg.fractions)) == (0, (0.7, 0.15, 0.15))
    assert cfg.classifier == "tf_efficientnet_lite0" and cfg.check_features == "inception"
    assert cfg.filter_quantile == 0.25 and cfg.generator == f"pretrained:{DEFAULT_PRETRAINED}"
    assert cfg.out == "runs/balance_isic_cpu64" and cfg.gan_config == "configs/ham10000_64_cpu.yaml"
    frac = build_config(parser().parse_args(["--preset", "cpu64", "--train-fraction", "0.25"]))
    assert frac.train_fraction == 0.25 and frac.out == "runs/balance_isic_cpu64_frac025"
    # a slice trains as many optimiser steps as the full regime: 8 epochs of 7,011 images, 32 of a quarter;
    # --epochs overrides both; without a preset: 12 on the full split, 20 on a slice
    assert cfg.resolved_epochs() == 8 and frac.resolved_epochs() == 32
    tenth = build_config(parser().parse_args(["--preset", "cpu64", "--train-fraction", "0.1"]))
    assert tenth.resolved_epochs() == 80
    given = build_config(parser().parse_args(["--preset", "cpu64", "--train-fraction", "0.25", "--epochs", "5"]))
    assert given.resolved_epochs() == 5
    bare = build_config(parser().parse_args([]))
    assert bare.resolved_epochs() == 12
    assert build_config(parser().parse_args(["--train-fraction", "0.25"])).resolved_epochs() == 20


def test_cpu128_preset_is_cpu64_at_128_px_with_the_128_px_generator():
    cfg = build_config(parser().parse_args(["--preset", "cpu128"]))
    cpu64 = build_config(parser().parse_args(["--preset", "cpu64"]))
    for key in ("split_seed", "fractions", "classifier", "batch_size", "lr", "seeds", "check_features", "bank_size",
                "filter_quantile", "max_train_images", "train_fraction"):
        assert getattr(cfg, key) == getattr(cpu64, key), key
    assert (cfg.image_size, cfg.resolved_epochs(), cfg.out) == (128, 8, "runs/balance_isic_cpu128")
    assert cfg.arms == ["aug", "aug_oversample", "gan_light"]
    assert cfg.generator == "pretrained:ham10000-128" and pt.pretrained_info("ham10000-128")["resolution"] == 128
    assert cfg.gan_config == "configs/ham10000_128_grow.yaml"


def test_demo_preset_resolves_as_documented():
    """`make demo`: a slice of the cpu64 protocol on the embedded demo set, one seed, the default shipped generator,
    the recommended GAN arm, the committed result on top."""
    cfg = build_config(parser().parse_args(["--preset", "demo"]))
    cpu64 = build_config(parser().parse_args(["--preset", "cpu64"]))
    for key in ("image_size", "split_seed", "fractions", "classifier", "batch_size", "lr", "filter_quantile",
                "generator", "check_features"):
        assert getattr(cfg, key) == getattr(cpu64, key), key
    assert (cfg.seeds, cfg.epochs, cfg.max_train_images, cfg.max_eval_per_class) == ([0], 2, 1200, 40)
    assert cfg.arms == ["aug", "aug_oversample", "aug_weighted", "gan_light"]
    assert cfg.data_dir == "demo:ham10000-64" and cpu64.data_dir is None
    assert cfg.generator_from_full_split and not cpu64.generator_from_full_split
    assert cfg.reference == "benchmarks/results/ham10000_cpu64_full" and cpu64.reference is None


def test_a_generator_from_the_unsliced_split_only_with_the_flag(tmp_path):
    folder = make_image_folder(tmp_path / "d", {"a": 30, "b": 20, "c": 10}, size=(16, 16))
    full = prepare_manifest(BenchmarkConfig(data_dir=str(folder), out=str(tmp_path / "full")), tmp_path / "full")
    assert full.source_hash == full.hash  # nothing cut
    sliced = prepare_manifest(BenchmarkConfig(data_dir=str(folder), max_train_images=12, max_eval_per_class=2,
                                              out=str(tmp_path / "s")), tmp_path / "s")
    assert sliced.source_hash == full.hash != sliced.hash and len(sliced.indices("train")) == 12
    G = create_generator("fastgan", resolution=32, num_classes=3, base_channels=4, z_dim=8)
    on_full = save_generator(G, tmp_path / "g.safetensors", class_names=["a", "b", "c"], manifest_hash=full.hash,
                             split="train")
    with pytest.raises(GeneratorMismatch, match="whole training split that this run only slices.*"
                                                "--generator-from-full-split"):
        check_generator(str(on_full), sliced)
    assert check_generator(str(on_full), sliced, from_full_split=True)["manifest_hash"] == full.hash
    assert check_generator(str(on_full), full)["manifest_hash"] == full.hash
    other = save_generator(G, tmp_path / "o.safetensors", class_names=["a", "b", "c"], manifest_hash="0" * 64,
                           split="train")
    with pytest.raises(GeneratorMismatch, match="may have seen test images"):
        check_generator(str(other), sliced, from_full_split=True)  # the flag never admits another split


def test_demo_report_opens_with_the_committed_result(tmp_path):
    ref = tmp_path / "ref"
    ref.mkdir()
    ci = {"mean": -0.012, "ci_low": -0.03, "ci_high": 0.006}
    (ref / "results.json").write_text(json.dumps({
        "meta": {"commit": "abcdef1234567"}, "config": {"image_size": 64}, "epochs": 8,
        "data": {"train_total": 7012}, "rare_classes": ["df"],
        "arms": {"aug": {"seeds": [0, 1, 2], "balanced_accuracy": [0.60, 0.62, 0.64], "rare_mean_recall": [0.3] * 3},
                 "gan": {"seeds": [0, 1, 2], "balanced_accuracy": [0.59, 0.61, 0.60], "rare_mean_recall": [0.3] * 3}},
        "comparison": {"best_baseline": "aug", "goal": {"balanced_accuracy": 0.03, "rare_recall": 0.05},
                       "n_seeds": 3, "verdict": True, "gan": {"balanced_accuracy": ci, "meets_goal": False}}}))
    summary = reference_summary(str(ref))
    assert summary["available"] and summary["gan_vs_best"]["gan"]["meets_goal"] is False
    assert list(summary["gan_vs_best"]) == ["gan"]  # the goal's thresholds are not an arm
    results = {"meta": {"regime": "full", "command": "c", "commit": "x", "device": "cpu", "gpu": None,
                        "versions": {}, "manifest_hash": "f" * 64},
               "config": {"preset": "demo", "seeds": [0], "image_size": 64, "classifier": "lite0", "batch_size": 64,
                          "lr": 3e-4, "weight_decay": 1e-4, "warmup_epochs": 1, "rare_classes": None,
                          "max_synthetic_fraction": 0.9},
               "epochs": 3, "pretrained": "imagenet", "reference": summary,
               "data": {"class_names": ["a"], "counts_table": "", "train_total": 1200},
               "arms": {"aug": {"balanced_accuracy": [0.5], "macro_f1": [0.5], "auroc": [0.8], "accuracy": [0.6],
                                "rare_mean_recall": [0.2], "per_class_recall": {"a": [0.5]}}},
               "generator": {"path": "g", "step": 9, "from_full_split": True, "check": {}}}
    text = report_markdown(results)
    top = text.split("## Data")[0]
    assert "**The evidence** (committed, `" + str(ref) + "/report.md`): 7012 training images" in top
    assert "`aug` 62.0 ± 2.0 (3 seeds)" in top and "`gan` -1.2 [-3.0, +0.6] (misses the goal)" in top
    assert "drew on more real images than the baselines" in text
    missing = report_markdown({**results, "reference": reference_summary(str(tmp_path / "nothing"))})
    assert "is not committed yet" in missing.split("## Data")[0]


def test_outside_figures_only_for_ham10000_at_64_px():
    ham = {"config": {"image_size": 64}, "data": {"class_names": HAM10000_CLASSES}}
    text = "\n".join(_outside_lines(ham))
    assert "MedMNIST+" in text and "| EfficientNet-B4 | 71.5 ± 0.1 | 87.6 ± 0.3 |" in text
    assert "lesion_id" in text  # why the figures differ from ours
    assert _outside_lines({**ham, "config": {"image_size": 256}}) == []
    assert _outside_lines({**ham, "data": {"class_names": ["a", "b"]}}) == []


def test_relative_threshold_accepts_what_the_judge_scores_like_real_images():
    # a weak toy judge: real class-1 validation images get p(class 1) between 0.20 and 0.40
    probs = np.zeros((9, 2))
    probs[:5, 0] = [0.9, 0.8, 0.85, 0.95, 0.7]
    probs[5:, 1] = [0.2, 0.25, 0.3, 0.4]
    labels = [0] * 5 + [1] * 4
    thr = relative_thresholds(probs, labels, 0.25, 2)
    assert thr[0] == pytest.approx(0.8) and thr[1] == pytest.approx(0.2375)
    synthetic_scores = np.array([0.1, 0.24, 0.3, 0.5])
    assert (synthetic_scores >= thr[1]).tolist() == [False, True, True, True]  # an absolute 0.5 keeps one
    assert relative_thresholds(probs, labels, 0.25, 3)[2] == 1.0  # no real images of class 2: accept nothing
    with pytest.raises(ValueError, match="quantile"):
        relative_thresholds(probs, labels, 1.5, 2)


def test_pretrained_generator_spec_is_hash_checked(tmp_path, monkeypatch):
    _ship(tmp_path)
    monkeypatch.setattr(pt, "PRETRAINED_DIR", tmp_path)
    assert resolve_generator("pretrained:toy-32") == str(tmp_path / "toy-32.safetensors")
    assert resolve_generator("some/file.safetensors") == "some/file.safetensors"
    with pytest.raises(pt.PretrainedUnavailable, match="no pretrained generator 'ham10000-64'"):
        resolve_generator("pretrained:ham10000-64")


def test_benchmark_refuses_a_shipped_generator_from_another_split(tmp_path, monkeypatch, capsys):
    """The demo path: a shipped generator whose manifest hash is not this benchmark's split is refused before
    any classifier run."""
    (tmp_path / "ship").mkdir()
    _ship(tmp_path / "ship", manifest_hash="0" * 64)
    monkeypatch.setattr(pt, "PRETRAINED_DIR", tmp_path / "ship")
    folder = make_image_folder(tmp_path / "d", {"a": 12, "b": 8, "c": 6}, size=(32, 32))
    rc = bench_main(["--preset", "quick", "--data-dir", str(folder), "--out", str(tmp_path / "bench"),
                     "--generator", "pretrained:toy-32", "--arms", "aug,gan", "--image-size", "32",
                     "--no-progress", "--check-features", "lite0"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "refusing generator" in err and "was trained on manifest 000000" in err
    assert not (tmp_path / "bench" / "runs").exists() or not any((tmp_path / "bench" / "runs").iterdir())


def test_ship_a_trained_generator_then_load_it(tmp_path):
    from ga_bench.ship_generator import ship

    run = tmp_path / "run"
    run.mkdir()
    torch.manual_seed(0)
    G = create_generator("fastgan", resolution=32, num_classes=2, base_channels=4, z_dim=8)
    save_generator(G, run / "generator.safetensors", class_names=["a", "b"], manifest_hash="h" * 64, split="train",
                   step=50)
    (run / "train_summary.json").write_text(json.dumps({"step": 50, "cpu_s_total": 7200.0, "elapsed_s_total": 3600.0,
                                                        "device": "cpu"}))
    block = {"fid": 60.0, "kid": 0.01, "precision": 0.7, "recall": 0.5, "c2st": 0.7}
    metrics = {"generator": {"manifest_hash": "h" * 64},
               "distribution": {"inception": {"overall": block, "per_class": {"a": block, "b": block}}},
               "memorisation": {"overall": {"p_value": 0.8, "flagged": False}},
               "spectrum": {"high_band_gap": -0.31, "probe": 0.973}, "colour": {"probe": 0.604},
               "class_fidelity": {"feature_space": "inception", "mean_generated": 0.35, "mean_real_heldout": 0.53,
                                  "generated": {"a": 0.6, "b": 0.1}, "real_heldout": {"a": 0.4, "b": 0.66}}}
    (run / "metrics.json").write_text(json.dumps(metrics))
    dest = tmp_path / "pretrained"
    (run / "samples_per_class.jpg").write_bytes(b"grid")
    path = ship(run, "toy-32", run / "metrics.json", dest=dest, evidence=tmp_path / "evidence")
    assert path.name == "toy_32.safetensors" and pt.list_pretrained(root=dest) == ["toy-32"]
    # the card points at the grid and the metrics, copied beside each other
    assert (tmp_path / "evidence" / "samples_per_class.jpg").read_bytes() == b"grid"
    assert json.loads((tmp_path / "evidence" / "metrics.json").read_text()) == metrics
    card = pt.model_card("toy-32", root=dest)
    assert f"`{tmp_path / 'evidence'}/`" in card and "samples_per_class.jpg" in card
    assert "2.0 CPU-hours" in card and "| this generator | 60.0 | 10.0 | 0.70 | 0.50 | 70 % |" in card
    assert "CC BY-NC-SA 4.0" in card and pt.file_sha256(path) in card
    assert "-0.31 (0 = real images' detail" in card and "from real 97 % of the time" in card
    assert "those numbers alone tells generated from real 60 % of the time" in card
    assert "it gives 35 % of generated images their own class, 53 % of real validation images" in card
    assert "Per class, generated / real: a 60 / 40 %, b 10 / 66 %." in card
    G2 = pt.load_pretrained("toy-32", root=dest)
    assert torch.equal(G2.sample(2, "b", seed=0), G.sample(2, 1, seed=0))
    assert "Started from" not in card and "Shipped from the run's" not in card
    # a warm-started run (train.init_generator) says where it started and that its hours are its own
    origin = {"path": "pretrained:toy-16", "sha256": "ab" * 32, "step": 20, "manifest_hash": "h" * 64, "split": "train"}
    save_generator(G, run / "generator.safetensors", class_names=["a", "b"], manifest_hash="h" * 64, split="train",
                   step=50, extra={"init_from": {**origin, "lineage": [origin]}})
    ship(run, "toy-32", run / "metrics.json", dest=dest)
    card = pt.model_card("toy-32", root=dest)
    assert ("- **Started from** `pretrained:toy-16` at step 20" in card and "CPU-hours above are this run's only" in card
            and "newest first: `pretrained:toy-16` (step 20, sha256 `abababababab`)." in card)
    metrics["generator"]["manifest_hash"] = "other"
    (run / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(ValueError, match="evaluates another generator"):
        ship(run, "toy-32", run / "metrics.json", dest=dest)


def _toy_run(tmp_path):
    """A finished toy run to ship: a 32 px generator at step 50, its summary and an evaluation; plus an untrained D
    and the model section that describes it (the tests write the discriminator file they need)."""
    from gan_augment.models import create_discriminator

    run = tmp_path / "run"
    run.mkdir()
    torch.manual_seed(0)
    G = create_generator("fastgan", resolution=32, num_classes=2, base_channels=4, z_dim=8)
    gen = save_generator(G, run / "generator.safetensors", class_names=["a", "b"], manifest_hash="h" * 64,
                         split="train", step=50)
    (run / "train_summary.json").write_text(json.dumps({"step": 50, "cpu_s_total": 60.0, "elapsed_s_total": 30.0,
                                                        "device": "cpu"}))
    block = {"fid": 60.0, "kid": 0.01, "precision": 0.7, "recall": 0.5, "c2st": 0.7}
    (run / "metrics.json").write_text(json.dumps({"generator": {"manifest_hash": "h" * 64}, "distribution": {
        "inception": {"overall": block, "per_class": {"a": block, "b": block}}}}))
    D = create_discriminator("resnet", resolution=32, num_classes=2, base_channels=4)
    return run, G, gen, D, {"discriminator": "resnet", "resolution": 32, "conditional": True, "d_channels": 4}


def test_ship_a_generator_with_the_discriminator_written_beside_it(tmp_path):
    from ga_bench.ship_generator import ship
    from gan_augment.training.warm_start import save_discriminator

    run, G, gen, D, model = _toy_run(tmp_path)
    save_discriminator(D.state_dict(), run / "discriminator.safetensors", model=model, class_names=["a", "b"],
                       manifest_hash="h" * 64, split="train", step=49, generator_sha256="0" * 64)
    dest = tmp_path / "pretrained"
    with pytest.raises(ValueError, match="was not written with .*generator.safetensors"):
        ship(run, "toy-32", run / "metrics.json", dest=dest)
    assert not dest.exists() or not any(dest.iterdir())  # refused before anything was copied
    save_discriminator(D.state_dict(), run / "discriminator.safetensors", model=model, class_names=["a", "b"],
                       manifest_hash="h" * 64, split="train", step=50, generator_sha256=pt.file_sha256(gen))
    ship(run, "toy-32", run / "metrics.json", dest=dest)
    info = pt.pretrained_info("toy-32", root=dest)
    assert info["discriminator"]["file"] == "toy_32.disc.safetensors"
    disc = pt.pretrained_discriminator_path("toy-32", root=dest)
    assert pt.file_sha256(disc) == pt.file_sha256(run / "discriminator.safetensors") == info["discriminator"]["sha256"]
    assert "train.init_discriminator=pretrained:toy-32" in pt.model_card("toy-32", root=dest)
    # a run that continued a pair says that its D did not start afresh
    origin = {"path": "a.safetensors", "sha256": "ab" * 32, "step": 20, "manifest_hash": "h" * 64, "split": "train"}
    gen = save_generator(G, run / "generator.safetensors", class_names=["a", "b"], manifest_hash="h" * 64,
                         split="train", step=50, extra={"init_from": {**origin, "lineage": [origin], "discriminator": {
                             "path": "a.disc.safetensors", "sha256": "cd" * 32, "step": 20}}})
    (run / "discriminator.safetensors").unlink()
    ship(run, "toy-32", run / "metrics.json", dest=dest)
    card = pt.model_card("toy-32", root=dest)
    assert "the discriminator from the file written with it (`train.init_discriminator`: `a.disc.safetensors`)" in card
    assert "discriminator" not in pt.pretrained_info("toy-32", root=dest)  # this run wrote none: none shipped
    assert not (dest / "toy_32.disc.safetensors").exists()  # nor is the last one's left beside it


def test_ship_a_generator_kept_in_the_repository_not_in_the_package(tmp_path, monkeypatch):
    """--in-repository: the weights (and the discriminator) go to the evidence folder's generator/, the card and
    index entry to the package; a clone loads it by name, an install without the clone says where it is."""
    import ga_bench.ship_generator as sg
    from gan_augment.training.warm_start import save_discriminator

    monkeypatch.setattr(sg, "REPO", tmp_path)  # the source checkout
    monkeypatch.setattr(pt, "REPO_ROOT", tmp_path)
    run, G, gen, D, model = _toy_run(tmp_path)
    save_discriminator(D.state_dict(), run / "discriminator.safetensors", model=model, class_names=["a", "b"],
                       manifest_hash="h" * 64, split="train", step=50, generator_sha256=pt.file_sha256(gen))
    dest, evidence = tmp_path / "pkg", tmp_path / "results" / "pretrained_toy_32"
    for outside in (None, tmp_path.parent / "elsewhere"):  # refused before anything is written
        with pytest.raises(ValueError, match="in_repository needs an evidence folder inside the repository"):
            sg.ship(run, "toy-32", run / "metrics.json", dest=dest, evidence=outside, in_repository=True)
    assert not dest.exists()
    path = sg.ship(run, "toy-32", run / "metrics.json", dest=dest, evidence=evidence, in_repository=True)
    assert path == evidence / "generator" / "toy_32.safetensors" and path.is_file()
    assert sorted(f.name for f in dest.iterdir()) == ["index.json", "toy_32.md"]  # no weights in the package
    info = pt.pretrained_info("toy-32", root=dest)
    assert info["archived_at"] == "results/pretrained_toy_32/generator/toy_32.safetensors"
    assert info["discriminator"]["archived_at"] == "results/pretrained_toy_32/generator/toy_32.disc.safetensors"
    assert pt.list_pretrained(root=dest) == [] and pt.list_pretrained(root=dest, archived=True) == ["toy-32"]
    assert torch.equal(pt.load_pretrained("toy-32", root=dest).sample(2, "b", seed=0), G.sample(2, 1, seed=0))
    assert pt.file_sha256(pt.pretrained_discriminator_path("toy-32", root=dest)) == info["discriminator"]["sha256"]
    assert "Kept in the source repository (`results/pretrained_toy_32/generator/toy_32.safetensors`)" in \
        pt.model_card("toy-32", root=dest)
    monkeypatch.setattr(pt, "REPO_ROOT", tmp_path / "elsewhere")  # an installed package, no clone beside it
    with pytest.raises(pt.PretrainedUnavailable, match="does not ship in the package: a clone"):
        pt.pretrained_path("toy-32", root=dest)


def test_cli_takes_a_shipped_generator_by_name(tmp_path, capsys):
    from gan_augment.cli import main as cli_main

    assert cli_main(["generate", "pretrained:ham10000-64", "--per-class", "1", "--out", str(tmp_path / "g")]) == 0
    pngs = sorted(p.parent.name for p in (tmp_path / "g").glob("*/*.png"))
    assert pngs == pt.pretrained_info("ham10000-64")["classes"]  # one image of each class
    assert cli_main(["generate", "pretrained:nope", "--per-class", "1", "--out", str(tmp_path / "n")]) != 0
    assert "no pretrained generator 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "n").exists()


def test_ship_another_average_of_a_run(tmp_path):
    """`--file generator_ema0.998.safetensors` (train.ema_extra_decays): that file is shipped, named on the card,
    without the run's discriminator (it pairs with the main average), and only with its own evaluation."""
    from ga_bench.ship_generator import ship
    from gan_augment.models import create_discriminator
    from gan_augment.training.warm_start import save_discriminator

    run = tmp_path / "run"
    run.mkdir()
    torch.manual_seed(0)
    G = create_generator("fastgan", resolution=32, num_classes=2, base_channels=4, z_dim=8)
    main_file = save_generator(G, run / "generator.safetensors", class_names=["a", "b"], manifest_hash="h" * 64,
                               split="train", step=50, extra={"training": {"ema_decay": 0.99}})
    G_long = create_generator("fastgan", resolution=32, num_classes=2, base_channels=4, z_dim=8)  # other weights
    save_generator(G_long, run / "generator_ema0.998.safetensors", class_names=["a", "b"], manifest_hash="h" * 64,
                   split="train", step=50, extra={"training": {"ema_decay": 0.998}})
    D = create_discriminator("resnet", resolution=32, num_classes=2, base_channels=4)
    save_discriminator(D.state_dict(), run / "discriminator.safetensors", model={"discriminator": "resnet"},
                       class_names=["a", "b"], manifest_hash="h" * 64, split="train", step=50,
                       generator_sha256=pt.file_sha256(main_file))
    (run / "train_summary.json").write_text(json.dumps({"step": 50, "cpu_s_total": 60.0, "elapsed_s_total": 30.0,
                                                        "device": "cpu"}))
    block = {"fid": 60.0, "kid": 0.01, "precision": 0.7, "recall": 0.5, "c2st": 0.7}
    metrics = {"generator": {"manifest_hash": "h" * 64, "step": 50, "path": str(run / "generator.safetensors")},
               "distribution": {"inception": {"overall": block, "per_class": {"a": block, "b": block}}}}
    (run / "metrics.json").write_text(json.dumps(metrics))
    dest = tmp_path / "pretrained"
    # the main average's evaluation does not describe the longer average: refused, nothing copied
    with pytest.raises(ValueError, match="evaluates .*generator.safetensors at step 50, not .*generator_ema0.998"):
        ship(run, "toy-32", run / "metrics.json", dest=dest, file="generator_ema0.998.safetensors")
    assert not dest.exists()
    metrics["generator"]["path"] = str(run / "generator_ema0.998.safetensors")
    (run / "metrics.json").write_text(json.dumps(metrics))
    for bad in ("../run/generator_ema0.998.safetensors", "generator_ema0.9.safetensors", "train_summary.json"):
        with pytest.raises(ValueError, match="run folder|does not exist"):
            ship(run, "toy-32", run / "metrics.json", dest=dest, file=bad)
    summary = (run / "train_summary.json").read_text()
    (run / "train_summary.json").unlink()
    with pytest.raises(ValueError, match="train_summary.json does not exist"):
        ship(run, "toy-32", run / "metrics.json", dest=dest, file="generator_ema0.998.safetensors")
    (run / "train_summary.json").write_text(summary.replace('"step": 50', '"step": 60'))
    with pytest.raises(ValueError, match="at step 50, .*train_summary.json at step 60: not the run's last export"):
        ship(run, "toy-32", run / "metrics.json", dest=dest, file="generator_ema0.998.safetensors")
    (run / "train_summary.json").write_text(summary)
    assert not dest.exists()  # nothing was copied by any refusal
    (run / "samples_per_class.jpg").write_bytes(b"the main average's grid")
    ship(run, "toy-32", run / "metrics.json", dest=dest, evidence=tmp_path / "ev",
         file="generator_ema0.998.safetensors")
    from PIL import Image  # the evidence grid is drawn from the shipped file, not copied from the run's main average
    assert Image.open(tmp_path / "ev" / "samples_per_class.jpg").size[0] > 100
    shipped = pt.load_pretrained("toy-32", root=dest)
    assert torch.equal(shipped.sample(2, "a", seed=0), G_long.sample(2, 0, seed=0))
    card = pt.model_card("toy-32", root=dest)
    assert ("Shipped from the run's `generator_ema0.998.safetensors`: the average of G with decay 0.998" in card
            and "main average (decay 0.99)" in card and "No discriminator is shipped" in card)
    assert "discriminator" not in pt.pretrained_info("toy-32", root=dest)
    assert not (dest / "toy_32.disc.safetensors").exists()
