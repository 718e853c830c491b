"""The benchmark's verdicts never pass on missing evidence: rare classes come from the data (named in the report),
a goal with a criterion not measured is not met, and fewer than 3 seeds give numbers without a verdict."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ga_bench.balance_isic import main as bench_main
from ga_bench.protocol import GOALS, rare_classes_of
from ga_bench.report import goal_met, report_markdown

from .conftest import make_image_folder


def _ci(mean, lo, hi):
    return {"mean": mean, "ci_low": lo, "ci_high": hi}


def test_rare_classes_come_from_the_data():
    names = ["glioma", "meningioma", "no_tumor", "pituitary"]
    labels = [0] * 400 + [1] * 15 + [2] * 300 + [3] * 19
    assert rare_classes_of(labels, names) == ["meningioma", "pituitary"]  # below 5 % of 400
    assert rare_classes_of(labels, names, share=0.01) == ["meningioma"]  # none below: the smallest class
    assert rare_classes_of(labels, names, given=["no_tumor"]) == ["no_tumor"]
    with pytest.raises(ValueError, match=r"--rare-classes \['df', 'vasc'\] are not classes of this data"):
        rare_classes_of(labels, names, given=["df", "vasc"])
    with pytest.raises(ValueError, match="is empty"):
        rare_classes_of(labels, names, given=[])


def test_ham10000_counts_give_the_classes_it_always_used():
    counts = {"akiec": 228, "bcc": 360, "bkl": 769, "df": 81, "mel": 779, "nv": 4693, "vasc": 99}
    names = sorted(counts)
    labels = [i for i, c in enumerate(names) for _ in range(counts[c])]
    assert rare_classes_of(labels, names) == ["akiec", "df", "vasc"]


def test_goal_needs_every_criterion_measured_and_three_seeds():
    goal = GOALS["full"]
    good = {"balanced_accuracy": _ci(0.05, 0.01, 0.09), "rare_mean_recall": _ci(0.08, 0.0, 0.15),
            "macro_auroc": _ci(0.001, -0.01, 0.01)}
    assert goal_met(good, goal, 3) == (True, "every criterion met")
    assert goal_met(good, goal, 1) == (None, "1 seed")
    assert goal_met(good, goal, 2)[0] is None
    missing = {k: v for k, v in good.items() if k != "rare_mean_recall"}
    assert goal_met(missing, goal, 3) == (False, "not measured: rare_mean_recall")
    spans_zero = {**good, "balanced_accuracy": _ci(0.05, -0.01, 0.1)}
    met, why = goal_met(spans_zero, goal, 3)
    assert met is False and "CI not above 0" in why
    worse_auc = {**good, "macro_auroc": _ci(-0.01, -0.02, 0.0)}
    assert goal_met(worse_auc, goal, 3) == (False, "macro-AUROC lower")


def test_one_seed_report_on_non_ham_classes_gives_numbers_but_no_verdict(tmp_path):
    folder = make_image_folder(tmp_path / "scans", {"glioma": 60, "meningioma": 14, "pituitary": 40}, size=(32, 32),
                               mode="L")
    out = tmp_path / "bench"
    rc = bench_main(["--preset", "quick", "--data-dir", str(folder), "--out", str(out), "--arms", "plain,aug",
                     "--seeds", "0", "--epochs", "1", "--image-size", "32", "--no-progress", "--num-workers", "0"])
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    # no class below 5 % of the largest: the smallest stands in, and the report says so (not "derived")
    assert results["rare_classes"] == ["meningioma"]
    assert results["rare_classes_source"].startswith("no class has fewer than 5% of the largest class's training")
    report = (out / "report.md").read_text()
    assert "Rare classes (the goal needs their mean recall): meningioma" in report
    assert "rare-class recall (meningioma)" in report
    assert "df" not in report.split("## Data")[1].split("## Test results")[0].split()
    rare = results["arms"]["aug"]["rare_mean_recall"]
    assert len(rare) == 1 and 0.0 <= rare[0] <= 1.0  # measured, not "-"
    # what the preset plans that is not finished, and how to resume it
    assert "Preset `quick` plans 5 (arm, seed) runs; 2 are finished, 2 in this report." in report
    assert "Missing: seed 0: `aug_oversample`, `aug_weighted`, `gan`." in report
    assert f"`python benchmarks/balance_isic.py --preset quick --out {out}`" in report
    # a report for a subset of the finished runs still names the others
    assert bench_main(["--preset", "quick", "--data-dir", str(folder), "--out", str(out), "--arms", "plain",
                       "--seeds", "0", "--epochs", "1", "--image-size", "32", "--no-progress",
                       "--num-workers", "0"]) == 0
    subset = (out / "report.md").read_text()
    assert "2 are finished, 1 in this report." in subset
    assert "Finished but not in this report (it was written for a subset): seed 0: `aug`." in subset
    # a GAN arm that "beat" the baseline on this one seed: the report gives the numbers, no yes / beat wording
    d = {"balanced_accuracy": _ci(0.1, 0.02, 0.2), "rare_mean_recall": _ci(0.2, 0.1, 0.3),
         "macro_auroc": _ci(0.01, 0.0, 0.02)}
    d["meets_goal"], d["goal_reason"] = goal_met(d, GOALS["full"], 1)
    results["comparison"] = {"best_baseline": "aug", "goal": GOALS["full"], "n_seeds": 1, "verdict": False, "gan": d}
    text = report_markdown(results)
    assert "| gan | 1 | +10.0 [+2.0, +20.0] | +20.0 [+10.0, +30.0] | +1.0 [+0.0, +2.0] | no verdict (1 seed) |" \
        in text
    assert "**No verdict:** `gan` (1 seed) (a verdict needs at least 3 seeds shared with `aug`)" in text
    assert "beat" not in text and "**Verdict:**" not in text
    # arms at different seeds in one report: a verdict for the arm with three, none for the arm with one
    three = {**d, "seeds": [0, 1, 2], "balanced_accuracy": _ci(-0.03, -0.07, 0.01)}
    three["meets_goal"], three["goal_reason"] = goal_met(three, GOALS["full"], 3)
    results["comparison"] = {"best_baseline": "aug", "goal": GOALS["full"], "n_seeds": 3, "verdict": True,
                             "gan": {**d, "seeds": [0]}, "gan_light": three}
    text = report_markdown(results)
    assert "| gan_light | 3 | -3.0 [-7.0, +1.0] |" in text and "| gan | 1 | +10.0" in text
    assert "**Verdict:** `gan_light` was not distinguishable from `aug` on balanced accuracy (CI spans 0)." in text
    assert "**No verdict:** `gan` (1 seed)" in text and "all these seeds show" in text
    assert "**No GAN arm met the goal.** Closest: `gan_light`" in text  # among the arms with a verdict
    # --report-only: every finished run among the arms / seeds asked, nothing trained
    before = sorted(p.name for p in (out / "runs").iterdir())
    assert bench_main(["--preset", "quick", "--data-dir", str(folder), "--out", str(out), "--report-only",
                       "--arms", "plain,aug,aug_oversample", "--seeds", "0,1", "--image-size", "32",
                       "--epochs", "1", "--no-progress", "--num-workers", "0"]) == 0
    assert sorted(p.name for p in (out / "runs").iterdir()) == before
    only = json.loads((out / "results.json").read_text())
    assert set(only["arms"]) == {"plain", "aug"} and only["arms"]["aug"]["seeds"] == [0]
    assert "Missing: seed 0: `aug_oversample`" in (out / "report.md").read_text()
    assert bench_main(["--preset", "quick", "--data-dir", str(folder), "--out", str(out), "--report-only",
                       "--arms", "aug_weighted", "--seeds", "0", "--image-size", "32", "--epochs", "1",
                       "--no-progress", "--num-workers", "0"]) == 2


def test_each_gan_arm_is_compared_on_the_seeds_it_shares_with_the_best_baseline(tmp_path):
    from ga_bench.report import compare

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    for arm, seeds in {"aug": [0, 1, 2], "gan": [0], "gan_light": [0, 1, 2], "gan_weighted": [5]}.items():
        for s in seeds:
            np.save(tmp_path / f"{arm}_seed{s}_test_probs.npy", rng.dirichlet(np.ones(3), size=60))
    arms = {a: {"seeds": seeds, "balanced_accuracy": [0.5] * len(seeds)}
            for a, seeds in {"aug": [0, 1, 2], "gan": [0], "gan_light": [0, 1, 2], "gan_weighted": [5]}.items()}
    comp = compare(arms, tmp_path, labels, [0], "full", n_boot=50)
    assert comp["best_baseline"] == "aug" and comp["verdict"] is True
    assert comp["gan"]["seeds"] == [0] and comp["gan"]["meets_goal"] is None
    assert comp["gan_light"]["seeds"] == [0, 1, 2] and comp["gan_light"]["meets_goal"] is not None
    assert comp["gan_weighted"] == {"skipped": "no seed in common with aug"}
    only_one = compare({"aug": arms["aug"], "gan": arms["gan"]}, tmp_path, labels, [0], "full", n_boot=50)
    assert only_one["verdict"] is False


def test_report_names_the_closest_arm_and_why_when_none_meets_the_goal():
    from ga_bench.report import _closest

    near = {"balanced_accuracy": _ci(0.01, -0.02, 0.04), "rare_mean_recall": _ci(0.02, -0.05, 0.08),
            "macro_auroc": _ci(0.0, -0.01, 0.01)}
    far = {**near, "balanced_accuracy": _ci(-0.10, -0.15, -0.05)}
    for d in (near, far):
        d["meets_goal"], d["goal_reason"] = goal_met(d, GOALS["full"], 3)
    gen = {"check": {"distribution": {"inception": {"overall": {"c2st": 0.97}}},
                     "classification_accuracy_on_synthetic": {"per_class": {"df": 0.05, "nv": 0.9, "vasc": 0.2,
                                                                           "akiec": 0.1}}}}
    comp = {"best_baseline": "aug", "goal": GOALS["full"], "n_seeds": 3, "verdict": True, "gan": far,
            "gan_light": near}  # the shape compare() returns
    lines = " ".join(_closest(comp, gen))
    assert "**No GAN arm met the goal.** Closest: `gan_light`, +1.0 [-2.0, +4.0]" in lines
    assert "97% of the time in inception features" in lines and "df 5%, akiec 10%, vasc 20%" in lines
    gen["check"]["classification_accuracy_on_real_heldout"] = {"per_class": {"df": 0.0, "akiec": 0.3, "vasc": 0.4}}
    gen["check"]["class_fidelity"] = {"feature_space": "inception", "mean_generated": 0.2, "mean_real_heldout": 0.6}
    lines = " ".join(_closest(comp, gen))
    assert "df 5% (real 0%), akiec 10% (real 30%), vasc 20% (real 40%)" in lines
    assert "inception features gives 20% of its images their own class (60% of real validation images)" in lines
    one_seed = {**near, "meets_goal": None, "goal_reason": "1 seed"}
    lines = " ".join(_closest({"best_baseline": "aug", "gan_light": one_seed}, gen, verdict=False))
    assert "Closest GAN arm so far: `gan_light`, +1.0 [-2.0, +4.0] pp balanced accuracy (1 seed)" in lines
    assert "No GAN arm met the goal" not in lines and "df 5% (real 0%)" in lines
    met = {**near, "meets_goal": True}
    assert _closest({"gan": met}, gen) == []


def test_the_resume_line_names_what_the_missing_runs_need():
    """A slice with a preset's shipped generator (trained on the whole split) cannot resume its GAN arms with the
    bare command: the report says so and gives the baselines' command; a folder with GAN runs names its generator."""
    from ga_bench.runs_status import runs_lines

    cfg = {"preset": "cpu64", "out": "benchmarks/results/x", "train_fraction": 0.25, "arms": ["plain", "aug"],
           "seeds": [0, 1, 2], "generator": "pretrained:ham10000-64", "generator_from_full_split": False}
    done = [["plain", s] for s in (0, 1, 2)] + [["aug", 0]]
    results = {"config": cfg, "runs_finished": done, "arms": {"plain": {"seeds": [0, 1, 2]}, "aug": {"seeds": [0]}}}
    text = "\n".join(runs_lines(results))
    assert "`python benchmarks/balance_isic.py --preset cpu64 --out benchmarks/results/x --train-fraction 0.25`" in text
    assert "The GAN arms need a generator trained on this folder's `manifest.csv`" in text
    assert "`pretrained:ham10000-64` was trained on the whole training split" in text
    assert "until then `--arms aug,aug_oversample,aug_weighted` runs the missing baselines." in text
    # GAN runs already made with a generator: the resume command passes it, and no such advice
    results["generator"] = {"path": "runs/gan_frac025/generator.safetensors"}
    text = "\n".join(runs_lines(results))
    assert "--train-fraction 0.25 --generator runs/gan_frac025/generator.safetensors`" in text
    assert "need a generator" not in text
    # the full split: the shipped generator is this split's, nothing to add
    full = {**results, "config": {**cfg, "train_fraction": 1.0}}
    del full["generator"]
    text = "\n".join(runs_lines(full))
    assert "need a generator" not in text and "--generator" not in text
    # a folder run with another dose than the preset's: its resume command repeats it (the runs refuse any other)
    dosed = {**full, "config": {**cfg, "train_fraction": 1.0, "light_synthetic_fraction": 0.25, "bank_size": 5000,
                                "rare_classes": ["df", "vasc"], "filter_quantile": None}}
    text = "\n".join(runs_lines(dosed))
    assert "--out benchmarks/results/x --light-synthetic-fraction 0.25 --rare-classes df,vasc`" in text  # cpu64: 5000
    # a folder split by another folder's manifest (stored once there): its resume command reads the same split
    shared = {**full, "config": {**cfg, "train_fraction": 1.0, "split_manifest": "benchmarks/results/y/manifest.csv"}}
    text = "\n".join(runs_lines(shared))
    assert "--out benchmarks/results/x --split-manifest benchmarks/results/y/manifest.csv`" in text


def test_the_cpu64_header_says_so_far_only_while_planned_runs_are_missing():
    """The committed full-split result has every planned run: its header names the seeds without "so far"; the
    same results with one run still to do say "so far"."""
    from pathlib import Path

    results = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "ham10000_cpu64_full"
                          / "results.json").read_text())
    head = "every training image of the split (7012), 8 epochs, seeds 0, 1, 2"
    assert f"{head} (each arm's seeds: the tables)" in report_markdown(results)
    results["runs_finished"] = results["runs_finished"][:-1]
    assert f"{head} so far (each arm's seeds: the tables)" in report_markdown(results)


def test_a_second_generators_folder_plans_only_the_gan_arms_it_names():
    """A folder that reads its baselines from another (``--baselines-from``) and runs ``--arms gan_light`` with a
    second generator is finished when gan_light's seeds are: the preset's other GAN arms are not its plan, and its
    resume command keeps to its arms. Without ``--arms`` (all the preset's arms) the preset's plan stands."""
    from ga_bench.runs_status import runs_lines, runs_status

    cfg = {"preset": "cpu64", "out": "benchmarks/results/x", "arms": ["gan_light"], "seeds": [0, 1, 2],
           "generator": "pretrained:ham10000-64-ac", "baselines_from": "benchmarks/results/y"}
    base = ["aug", "aug_oversample", "aug_weighted", "plain"]
    done = [[a, s] for s in (0, 1, 2) for a in base + ["gan_light"]]
    results = {"config": cfg, "runs_finished": done,
               "arms": {"gan_light": {"seeds": [0, 1, 2]}, **{a: {"seeds": [0, 1, 2]} for a in base}}}
    st = runs_status(results)
    assert st["missing"] == [] and len(st["planned"]) == 15
    text = "\n".join(runs_lines(results))
    assert "read from `benchmarks/results/y`, and `gan_light` with its own generator) plans 15 (arm, seed) runs; " \
           "15 are finished" in text and "Every planned run is finished." in text
    head = "every training image of the split (7012), 8 epochs, seeds 0, 1, 2 (each arm's seeds"
    # the header's "so far" follows the same plan (report_markdown needs a whole results file: the committed one)
    from pathlib import Path

    full = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "ham10000_cpu64_full"
                       / "results.json").read_text())
    variant = {**full, "config": {**full["config"], **cfg}, "runs_finished": done,
               "arms": {a: full["arms"][a] for a in base + ["gan_light"]}}
    assert head in report_markdown(variant)
    # one gan_light seed still to run: missing, and the resume command runs gan_light only
    results["runs_finished"] = done[:-1]
    text = "\n".join(runs_lines(results))
    assert "Missing: seed 2: `gan_light`." in text
    assert "--out benchmarks/results/x --arms gan_light --generator" not in text  # no GAN record: no generator path
    assert "`python benchmarks/balance_isic.py --preset cpu64 --out benchmarks/results/x --arms gan_light " \
           "--baselines-from benchmarks/results/y`" in text
    # the same folder asked for every preset arm: the preset's plan, gan/gan_weighted/gan_filtered missing
    allarms = {**results, "config": {**cfg, "arms": ["plain", "aug", "aug_oversample", "aug_weighted", "gan",
                                                      "gan_weighted", "gan_filtered", "gan_light"]}}
    assert ("gan", 0) in runs_status(allarms)["missing"]
    assert "Preset `cpu64` plans" in "\n".join(runs_lines(allarms))


def test_the_report_names_the_manifest_file_the_run_read_its_split_from():
    from ga_bench.report import _manifest_file

    assert _manifest_file({"config": {"split_manifest": None}}) == "manifest.csv"  # the copy beside the report
    assert _manifest_file({"config": {"split_manifest": "a/manifest.csv"}, "baselines_from": "b"}) == "`a/manifest.csv`"
    assert _manifest_file({"config": {}, "baselines_from": "results/full"}) == "`results/full/manifest.csv`"
