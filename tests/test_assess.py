"""``benchmarks/assess.py``: one command from a folder to a verdict within a budget - the plan's arithmetic, the
refusals, and end to end on a tiny grey folder: killed and resumed, then continued with a larger budget."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from ga_bench import assess as A
from ga_bench import runner as R
from ga_bench.protocol import BenchmarkConfig
from ga_bench.report_html import verdict_sentence

from .conftest import make_image_folder


@pytest.mark.parametrize("text, seconds", [("2h", 7200), ("90m", 5400), ("1h30m", 5400), ("45min", 2700),
                                           ("600s", 600), ("1.5h", 5400), ("30", 1800)])
def test_budgets_in_words(text, seconds):
    assert A.parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["two hours", "2x", "0m", "h"])
def test_a_budget_that_is_no_budget_is_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match="--budget"):
        A.parse_budget(text)


SPEEDS = A.Speeds(train_ips=100.0, eval_ips=400.0)
DATA = dict(n_train=1000, n_val=200, n_test=200, n_classes=5, speeds=SPEEDS, runs=12, check_images=100)


def test_the_plan_gives_the_classifiers_the_protocols_epochs_and_the_generator_the_rest():
    plan = A.make_plan(7200, train_gan=True, **DATA)
    # one run of 8 epochs: 8 x (1000/100 + 200/400) + (200 + 5 x 50)/400 + 5 = 90.125 s
    assert plan.epochs == 8 and plan.run_s == pytest.approx(90.125)
    assert plan.classifier_s == pytest.approx(12 * 90.125)
    assert plan.check_s == pytest.approx(100 / (400 / A.INCEPTION_COST) + 20)  # 57.5 s
    assert plan.reserve_s == pytest.approx(30 + 0.03 * 7200)
    assert plan.total_s == pytest.approx(7200)  # nothing left over: the generator takes the rest
    assert plan.gan_s == pytest.approx(7200 - plan.classifier_s - plan.check_s - plan.reserve_s)
    assert not plan.notes


def test_a_tight_budget_costs_epochs_first_and_says_so():
    plan = A.make_plan(1800, train_gan=True, **DATA)
    assert A.MIN_EPOCHS <= plan.epochs < 8
    assert plan.classifier_s <= 0.5 * (1800 - plan.check_s - plan.reserve_s)  # the classifiers' half
    assert plan.total_s == pytest.approx(1800)
    assert any("under-trained" in n for n in plan.notes)


def test_a_given_generator_leaves_the_whole_budget_to_the_classifiers():
    plan = A.make_plan(1100, train_gan=False, **DATA)
    # 12 x run(8) = 1081.5 s > 1100 - 57.5 (check) - 63 (reserve) = 979.5 s; 12 x run(7) = 955.5 s fits
    assert plan.gan_s == 0 and plan.epochs == 7
    assert plan.total_s <= 1100


def test_a_budget_too_small_is_refused_with_the_budget_that_would_do():
    with pytest.raises(A.BudgetTooSmall, match=r"give --budget (\d+)m or more, or a trained generator") as e:
        A.make_plan(600, train_gan=True, **DATA)
    suggested = int(e.value.args[0].split("--budget ")[1].split("m")[0]) * 60
    assert A.make_plan(suggested, train_gan=True, **DATA).epochs == A.MIN_EPOCHS  # and that budget does


def test_a_continued_assessment_keeps_its_epochs_and_counts_what_was_spent():
    first = A.make_plan(7200, train_gan=True, **DATA)
    later = A.make_plan(10800, train_gan=True, **{**DATA, "runs": 3}, epochs=first.epochs, spent_s=5000,
                        gan_done_s=3000, observed_run_s=70.0)
    # the runs' own times replace the estimate (later runs also test generated images: a margin)
    assert later.epochs == 8 and later.run_s == pytest.approx(70.0 * A.LATER_RUNS_COST)
    assert later.total_s == pytest.approx(10800 + 3000)  # gan_s counts the 3000 s already in spent_s
    assert later.gan_s - 3000 == pytest.approx(10800 - 5000 - 3 * later.run_s - later.check_s - later.reserve_s)


def test_a_runs_time_limit_never_starts_a_run_it_expects_to_overrun(tmp_path):
    data = make_image_folder(tmp_path / "imgs", {"a": 12, "b": 10, "c": 8})
    cfg = BenchmarkConfig(out=str(tmp_path / "out"), preset="assess", data_dir=str(data), image_size=32, epochs=1,
                          seeds=[0], arms=["aug"], batch_size=16, num_workers=0, progress=False,
                          time_limit_minutes=1.0)
    with pytest.raises(TimeoutError, match="paused before aug seed 0"):
        R.run_benchmark(cfg, run_estimate_s=120.0)
    assert not list((tmp_path / "out" / "runs").glob("*.json"))


def test_bad_data_is_refused_before_any_work(tmp_path, capsys):
    data = make_image_folder(tmp_path / "imgs", {"a": 12, "b": 3})
    out = tmp_path / "out"
    assert A.main([str(data), "--out", str(out), "--budget", "10m", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "fewer than 5 images in all: {'b': 3}" in err
    assert not (out / "assess.json").exists() and not (out / "runs").exists()


def test_a_medmnist_npz_is_split_as_published_and_planned(tmp_path, capsys):
    """A MedMNIST .npz (grey, its own train/val/test): the published split is kept, the plan printed, nothing run."""
    from .test_data import _write_medmnist

    npz = _write_medmnist(tmp_path / "pneumoniamnist.npz", channels=1, n=(30, 9, 9), n_classes=2)
    out = tmp_path / "out"
    assert A.main([str(npz), "--out", str(out), "--budget", "10h", "--plan-only", "--no-progress",
                   "--image-size", "32", "--num-workers", "0"]) == 0
    err = capsys.readouterr().err
    assert "train 30, val 9, test 9 images, 2 classes" in err and "generator" in err
    state = json.loads((out / "assess.json").read_text())
    assert state["data"] == str(npz) and state["plan"]["runs"] == 3 * len(A.ASSESS_ARMS)
    assert not (out / "runs").exists() or not list((out / "runs").glob("*.json"))


FAST = ["--image-size", "32", "--gan-config", "configs/quick_cpu.yaml", "--gan-set", "train.log_every=5",
        "--gan-set", "train.checkpoint_every=20", "--gan-set", "train.sample_every=1000", "--min-gan-minutes", "0.1",
        "--check-features", "lite0", "--check-per-class", "8", "--max-epochs", "1", "--num-workers", "0",
        "--no-progress"]


def test_a_grey_folder_to_a_verdict_killed_resumed_and_given_more_budget(tmp_path, monkeypatch):
    data = make_image_folder(tmp_path / "scans", {"normal": 30, "lesion": 16, "rare": 12}, size=(36, 36), mode="L")
    out = tmp_path / "assess"
    argv = [str(data), "--out", str(out), "--budget", "200s", "--max-gan-minutes", "0.15", *FAST]
    trained: list[tuple[str, int]] = []
    real_train = R.Runner.train_model

    def counting(self, arm, seed):
        trained.append((arm, seed))
        if kill_at is not None and len(trained) == kill_at:
            raise KeyboardInterrupt  # the user's Ctrl-C (or a job killed) in the middle of a run
        return real_train(self, arm, seed)

    monkeypatch.setattr(R.Runner, "train_model", counting)
    gan_limits: list[float] = []
    real_gan = R.train_generator

    def spy_gan(*a, **k):
        gan_limits.append(k["time_limit_minutes"])
        return real_gan(*a, **k)

    monkeypatch.setattr(R, "train_generator", spy_gan)

    # 1. killed at the 5th run: the 3 baselines of seed 0, the generator, gan_light seed 0 were done
    kill_at = 5
    with pytest.raises(KeyboardInterrupt):
        A.main(argv)
    state = json.loads((out / "assess.json").read_text())
    assert state["epochs"] == 1 and state["image_size"] == 32
    assert state["plan"]["gan_s"] > 0 and len(gan_limits) == 1
    assert gan_limits[0] * 60 <= state["plan_after_baselines"]["gan_s"] + 1  # the generator got its share only
    assert trained[:4] == [("aug", 0), ("aug_oversample", 0), ("aug_weighted", 0), ("gan_light", 0)]
    assert len(list((out / "runs").glob("*_seed*.json"))) == 4
    assert (out / "gan" / "generator.safetensors").is_file()
    step_1 = json.loads((out / "gan" / "train_summary.json").read_text())["step"]
    assert step_1 > 0

    # 2. the same command continues: only the 8 missing runs; the generator's share is spent, it is not retrained
    trained.clear()
    kill_at = None
    assert A.main(argv) == 0
    assert sorted(trained) == sorted([(a, s) for s in (1, 2) for a in A.ASSESS_ARMS])
    assert len(gan_limits) == 1
    results = json.loads((out / "results.json").read_text())
    assert results["data"]["channels"] == 1  # --channels auto on grey scans
    assert {a: d["seeds"] for a, d in results["arms"].items()} == {a: [0, 1, 2] for a in A.ASSESS_ARMS}
    assert results["assess"]["calls"] == 2 and results["assess"]["budget_s"] == 200
    stages = results["assess"]["stages_s"]
    assert set(stages) >= {"split", "measure", "classifiers", "generator", "report"}
    sentence = verdict_sentence(results)
    assert sentence.startswith("GAN augmentation") and "gan_light" in sentence  # 3 seeds: a verdict
    page = (out / "report.html").read_text()
    assert sentence.replace("'", "&#x27;") in page and "The assessment" in page and "data:image/" in page
    md = (out / "report.md").read_text()
    assert "| generator training |" in md and "What a larger budget would change" in md
    baseline_records = {p.name: p.read_text() for p in (out / "runs").glob("aug*_seed*.json")}

    # 3. a larger budget: the generator trains on from its checkpoint; only the GAN arm and the check are redone
    trained.clear()
    # (the 30 s a larger budget must add before the generator is trained on, 5 s here: 0.35 min leaves ~10 s more)
    monkeypatch.setattr(A, "MIN_MORE_GAN_S", 5.0)
    assert A.main([*argv[:3], "--budget", "260s", "--max-gan-minutes", "0.35", *argv[7:]]) == 0
    assert len(gan_limits) == 2 and 0 < gan_limits[1] <= 0.35 - gan_limits[0] + 0.05  # its cap less what it had
    step_2 = json.loads((out / "gan" / "train_summary.json").read_text())["step"]
    assert step_2 > step_1
    assert sorted(trained) == [("gan_light", s) for s in (0, 1, 2)]
    assert {p.name: p.read_text() for p in (out / "runs").glob("aug*_seed*.json")} == baseline_records
    old = list((out / "superseded").glob("*/gan_light_seed*.json"))
    assert len(old) == 3 and list((out / "superseded").glob("*/generator_check/metrics.json"))
    results = json.loads((out / "results.json").read_text())
    assert results["generator"]["step"] == step_2 and results["assess"]["calls"] == 3


def test_fewer_seeds_than_a_verdict_needs_say_so_in_the_report():
    from ga_bench.report import _assess_lines

    results = {"assess": {"data": "scans", "budget_s": 600, "spent_s": 590, "calls": 1, "epochs": 3,
                          "stages_s": {"split": 1.0, "classifiers": 400.0, "generator": 189.0},
                          "plan": {"runs": 12, "run_s": 30.0, "check_s": 20.0, "gan_s": 180.0}},
               "config": {"seeds": [0, 1, 2], "gan_config": "configs/ham10000_64_cpu.yaml"},
               "arms": {"aug": {"seeds": [0, 1]}, "aug_oversample": {"seeds": [0, 1]}, "gan_light": {"seeds": [0]}}}
    text = "\n".join(_assess_lines(results))
    assert "| generator training | 3.0 min | 3.1 min |" in text
    assert "runs missing (aug, aug_oversample, gan_light, aug_weighted)" in text
    assert "needs 3 seeds" in text and "fewer than the protocol's 8" in text


def test_the_readme_command_for_your_own_data_is_this_commands():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    line = next(ln for ln in readme.splitlines() if "benchmarks/assess.py" in ln and ln.startswith(".venv"))
    argv = line.split("#")[0].split()[2:]
    args = A.parser().parse_args(argv)
    assert args.budget == 7200 and args.out == "runs/assess_scans" and args.channels == "auto"


def test_the_report_says_when_the_generator_memorised_its_training_images():
    """The committed grey assessment: a generator trained 5,412 steps on 920 images, flagged by the memorisation
    test; the demo's (1,200 images) was not."""
    from ga_bench.report import _assess_lines, report_markdown

    results_dir = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
    grey = json.loads((results_dir / "assess_grey_2h" / "results.json").read_text())
    text = report_markdown(grey)
    assert "- memorisation test (nearest training image" in text and "**FLAGGED - the generator reproduces" in text
    assert "not the memorisation: the test flagged this generator (6% of its images" in "\n".join(_assess_lines(grey))
    demo = json.loads((results_dir / "assess_demo_2h" / "results.json").read_text())
    assert "held-out 1st percentile: not flagged." in report_markdown(demo)
    assert "not the memorisation" not in "\n".join(_assess_lines(demo))
