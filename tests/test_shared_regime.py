"""The regimes study's slices and the shared-generator regime's report (issue #43, item 1): the few-shot slice, the
share of the gap closed with its bootstrap CI, and the refusals of an upper bound that is not the slice's own."""

from __future__ import annotations

import dataclasses
import json
import os
from collections import Counter

import numpy as np
import pytest

from classifier.stats import balanced_accuracy, gap_closed_bootstrap
from ga_bench.balance_isic import build_config, parser
from ga_bench.protocol import BenchmarkConfig, prepare_manifest
from ga_bench.runs_status import runs_lines
from ga_bench.shared_regime import (generator_evidence, generator_manifest, load_upper_bound, shared_generator_lines,
                                    shared_generator_summary)

from .conftest import REPO, make_image_folder


def _probs(labels: np.ndarray, right: np.ndarray, k: int) -> np.ndarray:
    """One-hot probabilities: the true class where ``right``, the next class elsewhere."""
    pred = np.where(right, labels, (labels + 1) % k)
    return np.eye(k)[pred]


def test_gap_closed_is_the_share_of_the_gap_with_a_paired_ci():
    rng = np.random.default_rng(0)
    k, n = 3, 300
    labels = np.arange(n) % k
    u = rng.random((3, n))
    # per seed: base right on 50 %, upper on 90 %, the arm on 70 % of the images (nested: arm right where base is)
    base = np.stack([_probs(labels, u[s] < 0.5, k) for s in range(3)])
    upper = np.stack([_probs(labels, u[s] < 0.9, k) for s in range(3)])
    arm = np.stack([_probs(labels, u[s] < 0.7, k) for s in range(3)])
    d = gap_closed_bootstrap(balanced_accuracy, labels, arm, base, upper, n_boot=300)
    m = [np.mean([balanced_accuracy(labels, p[s]) for s in range(3)]) for p in (arm, base, upper)]
    assert d["share"] == pytest.approx((m[0] - m[1]) / (m[2] - m[1]))
    assert 0.4 < d["share"] < 0.6 and d["ci_low"] < d["share"] < d["ci_high"] and d["ci_high"] - d["ci_low"] < 0.3
    assert (d["arm"], d["base"], d["upper"]) == pytest.approx(tuple(m)) and d["undefined_share"] == 0
    # the arm at the upper bound closes all of it; at the baseline none
    assert gap_closed_bootstrap(balanced_accuracy, labels, upper, base, upper, n_boot=50)["share"] == pytest.approx(1)
    assert gap_closed_bootstrap(balanced_accuracy, labels, base, base, upper, n_boot=50)["share"] == pytest.approx(0)
    # no gap: no share, every replicate undefined
    flat = gap_closed_bootstrap(balanced_accuracy, labels, arm, base, base, n_boot=20)
    assert np.isnan(flat["share"]) and flat["undefined_share"] == 1 and np.isnan(flat["ci_low"])
    with pytest.raises(ValueError, match="one shape"):
        gap_closed_bootstrap(balanced_accuracy, labels, arm[:2], base, upper)


def test_the_few_shot_slice_caps_each_class_and_names_its_regime(tmp_path):
    folder = make_image_folder(tmp_path / "d", {"a": 40, "b": 20, "c": 14}, size=(16, 16))
    full = prepare_manifest(BenchmarkConfig(data_dir=str(folder), out=str(tmp_path / "full")), tmp_path / "full")
    cfg = BenchmarkConfig(data_dir=str(folder), out=str(tmp_path / "fs"), max_train_per_class=5)
    few = prepare_manifest(cfg, tmp_path / "fs")
    full_train = Counter(full.labels[i] for i in full.indices("train"))
    assert Counter(few.labels[i] for i in few.indices("train")) == {c: min(n, 5) for c, n in full_train.items()}
    assert set(few.indices("train")) and few.source_hash == full.hash != few.hash
    for split in ("val", "test"):  # held-out rows untouched
        assert [few.paths[i] for i in few.indices(split)] == [full.paths[i] for i in full.indices(split)]
    assert cfg.regime() == "fewshot5" and cfg.resolved_epochs() == 60
    assert BenchmarkConfig(max_train_per_class=5, epochs=7).resolved_epochs() == 7
    assert BenchmarkConfig(train_fraction=0.25).regime() == "frac025" and BenchmarkConfig().regime() == "full"
    # the default folder names the regime; a bad cap is refused before anything is written
    args = parser().parse_args(["--preset", "cpu64", "--max-train-per-class", "20", "--fewshot-epochs", "40"])
    built = build_config(args)
    assert built.out == "runs/balance_isic_cpu64_fewshot20" and built.resolved_epochs() == 40
    with pytest.raises(ValueError, match="--max-train-per-class must be >= 1"):
        prepare_manifest(BenchmarkConfig(data_dir=str(folder), max_train_per_class=0), tmp_path / "bad")
    assert not (tmp_path / "bad" / "manifest.csv").exists()


def _upper_folder(tmp_path, folder, arms: dict[str, list[float]], labels, k, **cfg_kw):
    """A finished full-regime folder: results.json with these baselines' accuracies, and their test probabilities."""
    cfg = BenchmarkConfig(data_dir=str(folder), out=str(tmp_path / "full"), **cfg_kw)
    prepare_manifest(cfg, tmp_path / "full")
    runs = tmp_path / "full" / "runs"
    runs.mkdir()
    rng = np.random.default_rng(1)
    for arm, accs in arms.items():
        for s, acc in enumerate(accs):
            np.save(runs / f"{arm}_seed{s}_test_probs.npy", _probs(labels, rng.random(len(labels)) < acc, k))
    results = {"config": dataclasses.asdict(cfg), "data": {"train_total": 50},
               "arms": {a: {"seeds": list(range(len(v))), "balanced_accuracy": v} for a, v in arms.items()}}
    (tmp_path / "full" / "results.json").write_text(json.dumps(results))
    return tmp_path / "full"


def test_the_upper_bound_is_the_full_splits_best_baseline_and_is_checked(tmp_path):
    folder = make_image_folder(tmp_path / "d", {"a": 40, "b": 30, "c": 20}, size=(16, 16))
    sliced_cfg = BenchmarkConfig(data_dir=str(folder), out=str(tmp_path / "s"), train_fraction=0.5,
                                 generator_from_full_split=True)
    sliced = prepare_manifest(sliced_cfg, tmp_path / "s")
    labels = np.asarray([sliced.class_names.index(sliced.labels[i]) for i in sliced.indices("test")])
    upper_dir = _upper_folder(tmp_path, folder, {"aug": [0.6, 0.6], "aug_oversample": [0.9, 0.9]}, labels, 3)
    sliced_cfg.upper_bound_from = str(upper_dir)
    upper = load_upper_bound(sliced_cfg, sliced)
    assert upper.arm == "aug_oversample" and upper.seeds == [0, 1] and upper.probs([0, 1]).shape == (2, len(labels), 3)
    # the generator check's memorisation test looks for copies among all the training images the generator saw
    checked = generator_manifest(sliced_cfg, sliced)
    train = {checked.paths[i] for i in checked.indices("train")}
    assert len(train) == 63 and {sliced.paths[i] for i in sliced.indices("train")} < train
    assert checked.hash == sliced.source_hash
    assert generator_manifest(dataclasses.replace(sliced_cfg, upper_bound_from=None), sliced) is sliced
    for p in checked.paths:  # the full split's images gone: the slice's own, said
        if p not in set(sliced.paths):
            (upper_dir / "moved").mkdir(exist_ok=True)
            os.replace(p, upper_dir / "moved" / os.path.basename(p))
            break
    with pytest.warns(UserWarning, match="among the slice's training images only"):
        assert generator_manifest(sliced_cfg, sliced) is sliced

    # refusals, each naming what is wrong
    def refused(match, **changes):
        with pytest.raises(ValueError, match=match):
            load_upper_bound(dataclasses.replace(sliced_cfg, **changes), sliced)

    refused("a slice of the training split", train_fraction=1.0)
    refused("add --generator-from-full-split", generator_from_full_split=False)
    refused("another protocol \\(image_size", image_size=64)
    refused("needs a benchmark folder", upper_bound_from=str(tmp_path / "nowhere"))
    other = make_image_folder(tmp_path / "o", {"a": 44, "b": 30, "c": 20}, size=(16, 16), seed=5)
    other_m = prepare_manifest(BenchmarkConfig(data_dir=str(other), out=str(tmp_path / "os"), train_fraction=0.5),
                               tmp_path / "os")
    with pytest.raises(ValueError, match="is not the one this slice was cut from"):
        load_upper_bound(sliced_cfg, other_m)
    # the upper bound is itself a slice
    results = json.loads((upper_dir / "results.json").read_text())
    results["config"]["train_fraction"] = 0.25
    (upper_dir / "results.json").write_text(json.dumps(results))
    refused("it is itself a slice")


def test_the_shared_generator_report_gives_the_gap_closed_and_the_privacy_evidence(tmp_path):
    k, n = 3, 200
    labels = np.arange(n) % k
    rng = np.random.default_rng(2)
    runs = tmp_path / "runs"
    runs.mkdir()
    u = rng.random((2, n))
    for arm, acc in (("aug_oversample", 0.5), ("aug", 0.4), ("gan_light", 0.6)):
        for s in range(2):
            np.save(runs / f"{arm}_seed{s}_test_probs.npy", _probs(labels, u[s] < acc, k))
    upper_dir = tmp_path / "full"
    (upper_dir / "runs").mkdir(parents=True)
    for s in range(2):
        np.save(upper_dir / "runs" / f"aug_oversample_seed{s}_test_probs.npy", _probs(labels, u[s] < 0.9, k))

    class Upper:  # what load_upper_bound returns, without the split checks (tested above)
        folder, arm, seeds, balanced_accuracy, train_total = upper_dir, "aug_oversample", [0, 1], [0.9, 0.9], 7012

        def probs(self, seeds):
            return np.stack([np.load(upper_dir / "runs" / f"aug_oversample_seed{s}_test_probs.npy") for s in seeds])

    arms = {"aug": {"seeds": [0, 1], "balanced_accuracy": [0.4, 0.4]},
            "aug_oversample": {"seeds": [0, 1], "balanced_accuracy": [0.5, 0.5]},
            "gan_light": {"seeds": [0, 1], "balanced_accuracy": [0.6, 0.6]}}
    d = shared_generator_summary(Upper(), arms, lambda a: runs, labels, 1753,
                                 "pretrained:ham10000-64-lite128-16k", n_boot=100)
    g = d["arms"]["gan_light"]
    assert d["slice_best"] == "aug_oversample" and g["seeds"] == [0, 1]
    assert g["share"] == pytest.approx((g["arm"] - g["base"]) / (g["upper"] - g["base"])) and 0.1 < g["share"] < 0.4
    ev = d["evidence"]  # the shipped generator's committed privacy check: every training image searched
    assert ev["folder"].endswith("pretrained_ham10000_64_lite128_16k/privacy")
    assert ev["memorisation"]["flagged"] is False and ev["memorisation"]["p_value"] == pytest.approx(0.762, abs=1e-3)
    assert ev["per_class_flagged"] == [] and ev["train_searched"] == 7012 and ev["generated"] == 500
    assert ev["panel"].endswith("privacy/nearest_training.jpg")
    text = "\n".join(shared_generator_lines(d))
    assert "all 7012 training images" in text and "1753 real training images" in text
    assert f"{g['share']:+.0%} [{g['ci_low']:+.0%}, {g['ci_high']:+.0%}]" in text
    assert "p = 0.762" in text and "**not flagged**; no class flagged" in text
    assert "500 generated images per class against 7012 training images" in text
    assert generator_evidence("some/file.safetensors") is None
    assert "No committed memorisation test" in "\n".join(
        shared_generator_lines({**d, "evidence": None}))


def test_the_resume_command_repeats_the_regime(tmp_path):
    cfg = dataclasses.asdict(BenchmarkConfig(preset="cpu64", out="runs/x", max_train_per_class=20,
                                             generator_from_full_split=True, upper_bound_from="runs/full"))
    results = {"config": cfg, "arms": {"aug": {"seeds": [0]}}, "runs_finished": [["aug", 0]], "run_commits": []}
    text = "\n".join(runs_lines(results))
    assert "--max-train-per-class 20 --upper-bound-from runs/full --generator-from-full-split" in text
    # a study's arms: its plan is its arm list, resumed by the study's script with its external test
    study = {**results, "config": {**cfg, "arms": ["aug", "aug_oversample", "gan_matched", "real_mixup"],
                                   "generator": "pretrained:ham10000-64-lite128-16k",
                                   "external_test": "isic9", "external_drop_copies": True, "keep_classifiers": True}}
    text = "\n".join(runs_lines(study))
    assert ("This folder's arms (`aug`, `aug_oversample`, `gan_matched`, `real_mixup`: a study's list, beyond preset "
            "`cpu64`'s) plan 12 (arm, seed) runs; 1 are finished") in text and "`plain`" not in text
    assert ("`python benchmarks/studies/balance_arms.py --preset cpu64 --out runs/x --arms aug,aug_oversample,"
            "gan_matched,real_mixup --max-train-per-class 20") in text
    resume = text.split("`; `--arms`")[0]
    assert "--generator-from-full-split --generator pretrained:ham10000-64-lite128-16k" in resume
    assert resume.endswith(" --external-test isic9 --external-drop-copies --keep-classifiers")


def test_the_regimes_table_compares_each_mechanism_with_the_best_baseline_and_its_control(tmp_path):
    from classifier.stats import paired_bootstrap
    from ga_bench.fmt import ci_pp
    from studies.regimes import REGIMES, regimes_table

    results_dir = tmp_path / "benchmarks" / "results"
    folder = results_dir / "regime_shared_fewshot20"
    data = make_image_folder(tmp_path / "d", {"a": 30, "b": 20, "c": 14}, size=(16, 16))
    m = prepare_manifest(BenchmarkConfig(data_dir=str(data), max_train_per_class=5), folder)
    labels = np.asarray([m.class_names.index(m.labels[i]) for i in m.indices("test")])
    (folder / "runs").mkdir()
    rng = np.random.default_rng(3)
    acc = {"aug": 0.5, "aug_oversample": 0.6, "gan_matched": 0.55, "gan_distill": 0.7, "real_distill": 0.65}
    for arm, p in acc.items():
        for s in (0, 1):
            np.save(folder / "runs" / f"{arm}_seed{s}_test_probs.npy", _probs(labels, rng.random(len(labels)) < p, 3))
    arms = {a: {"seeds": [0, 1], "balanced_accuracy": [p, p]} for a, p in acc.items()}
    gap = {"gan_distill": {"share": 0.25, "ci_low": -0.1, "ci_high": 0.6}}
    external = {"gan_distill": {"seeds": [0, 1], "balanced_accuracy": {"mean": 0.01, "ci_low": -0.02, "ci_high": 0.04},
                                "mel_auroc": {"mean": 0.031, "ci_low": 0.002, "ci_high": 0.06}}}
    (folder / "results.json").write_text(json.dumps({"arms": arms, "shared_generator": {"arms": gap},
                                                     "external": external}))
    table = regimes_table(results_dir, repo=tmp_path, n_boot=200)

    def pair(a, b):
        load = lambda x: np.stack([np.load(folder / "runs" / f"{x}_seed{s}_test_probs.npy") for s in (0, 1)])  # noqa
        return ci_pp(paired_bootstrap(balanced_accuracy, labels, load(a), load(b), n_boot=200))

    rows = {r.split(" | ")[1]: r for r in table.splitlines() if " | " in r}
    assert "best baseline `aug_oversample`" in rows and "60.0 ± 0.0" in rows["best baseline `aug_oversample`"]
    assert f"| {pair('gan_distill', 'aug_oversample')} | {pair('gan_distill', 'real_distill')} | +25% [-10%, +60%] |" \
        in rows["gan_distill"]
    assert rows["gan_distill"].endswith("| +25% [-10%, +60%] | +1.0 [-2.0, +4.0] | +3.1 [+0.2, +6.0] |")  # external
    assert f"| {pair('gan_matched', 'aug_oversample')} |  | - | - | - |" in rows["gan_matched"]  # no control, gap, ext
    assert "real_distill" in rows and "aug" not in rows  # baselines other than the best are not rows
    for name in REGIMES:
        if name != folder.name:
            assert f"(`{name}`) | not yet run" in table


@pytest.mark.parametrize("arm", ["gan_distill", "real_distill"])
def test_a_distill_run_is_read_back_by_the_same_command(tmp_path, arm):
    # both distillation arms draw gan_light's set, capped at --light-synthetic-fraction, and record that cap: a
    # resumed folder must read their records back (real_distill's was checked against --max-synthetic-fraction)
    from types import SimpleNamespace

    import studies.teach  # noqa: F401  (registers the arms)
    from ga_bench.runner import Runner

    cfg = BenchmarkConfig(preset="cpu64", light_synthetic_fraction=0.5, max_synthetic_fraction=0.9)
    record = {"arm": arm, "seed": 0, "history": [{}] * 3, "synthetic_cap": cfg.light_synthetic_fraction,
              "distill_temperature": cfg.distill_temperature, "distill_hard_weight": cfg.distill_hard_weight,
              "distill_set": cfg.distill_set}
    (tmp_path / f"{arm}_seed0.json").write_text(json.dumps(record))
    runner = SimpleNamespace(cfg=cfg, epochs=3, folder=lambda a: tmp_path)
    assert Runner.read(runner, arm, 0) == record
    (tmp_path / f"{arm}_seed0.json").write_text(json.dumps({**record, "synthetic_cap": 0.9}))
    with pytest.raises(ValueError, match="synthetic_cap 0.9 there, 0.5 here.*--light-synthetic-fraction 0.9"):
        Runner.read(runner, arm, 0)


def test_the_report_says_what_each_mechanism_and_its_control_trained_on():
    """The committed 25 % regime's records: the distillation control fills the synthetic places with real images,
    and the generator check does not call the named shared-generator regime 'not evidence'."""
    from ga_bench.report import aggregate, report_markdown
    from ga_bench.report_sections import arms_lines

    folder = REPO / "benchmarks" / "results" / "regime_shared_frac025"
    results = json.loads((folder / "results.json").read_text())
    records = {arm: [json.loads((folder / "runs" / f"{arm}_seed0.json").read_text())]
               for arm in ("gan_distill", "real_distill", "gan_boundary", "real_mixup")}
    text = "\n".join(arms_lines(aggregate(records, results["data"]["class_names"], []), results["config"]))
    assert ("- `real_distill` - 579 places for synthetic images in the balanced set (cap 50% per class), filled with "
            "real (self-distillation control) images and labelled soft: the teacher's probabilities at temperature "
            "2.0 mixed with the one-hot label at weight 0.5; drawn class-balanced") in text
    assert ("- `gan_distill` - 579 places for synthetic images in the balanced set (cap 50% per class), filled with "
            "generated images") in text
    assert "- `gan_boundary` - 175 items between two classes with the mixed label (generated between classes; 0.1" in text
    assert "- `real_mixup` - 175 items between two classes with the mixed label (mixup of real images; 0.1" in text
    report = report_markdown(results)
    assert "the shared-generator regime below, whose upper bound" in report and "not evidence" not in report
    assert "(1 seeds)" not in report


def test_without_a_privacy_check_the_evidence_is_the_cards_evaluation(tmp_path, monkeypatch):
    """A shipped generator without a ``privacy/`` folder: its card's evaluation, flagged classes named."""
    from ga_bench import shared_regime

    card = tmp_path / "benchmarks" / "results" / "pretrained_some_gen"
    card.mkdir(parents=True)
    (card / "metrics.json").write_text(json.dumps({
        "data": {"per_class_generated": 50, "train_per_class": {"a": 200, "b": 120}},
        "memorisation": {"overall": {"p_value": 0.03, "fraction_below_heldout_p1": 0.02, "flagged": False},
                         "per_class": {"a": {"flagged": True}, "b": {"flagged": False}}}}))
    monkeypatch.setattr(shared_regime, "REPO", tmp_path)
    ev = shared_regime.generator_evidence("pretrained:some-gen")
    assert ev["folder"] == "benchmarks/results/pretrained_some_gen" and ev["panel"] is None
    assert ev["per_class_flagged"] == ["a"] and ev["train_searched"] == 320
    text = "\n".join(shared_regime.shared_generator_lines(
        {"slice_train_total": 10, "generator_saw": 320, "upper_arm": "aug", "upper_bound_from": "x",
         "upper_balanced_accuracy": [0.5], "upper_seeds": [0], "evidence": ev}))
    assert "50 generated images per class against 320 training images" in text and "flagged classes: a" in text
    assert shared_regime.generator_evidence("pretrained:absent") is None
