"""The real-trained classifier (the *judge*) that the generator check and ``gan_filtered`` use, and that teaches the
arms registered with ``teacher=True`` (the studies' distillation and feedback arms): the ``aug`` seed-0 run's
classifier.

A results folder keeps each run's record and test probabilities, never weights, so a benchmark resumed from
committed results (a fresh clone, another machine, a second generator with ``--baselines-from``) has the judge's
record but not its weights. ``--restore-judge`` retrains that one run with its seed and settings and keeps the
weights when the retrained classifier scores like the recorded one: test balanced accuracy within
``--restore-tolerance-pp`` (default :data:`RESTORE_TOLERANCE_PP`) of the record's. On the machine that made the
record the retrained classifier is the same, bit for bit; on another CPU floating point sends training elsewhere
(measured on the cpu64 protocol: 50.4 % against the record's 51.7 %, the same prediction on 92 % of test images;
``aug`` at seeds 0-2 gave 51.7 / 51.9 / 51.5 %), so the check asks for a classifier of the same quality, not an
identical one, and says how far the two agree. What it found is written beside the weights in ``OUT/judge/`` and
in the report; the record itself is never rewritten, and another folder's (``--baselines-from``) is only read."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from classifier import classification_metrics, predict
from gan_augment import distributed as gdist
from gan_augment._io import write_json
from gan_augment.provenance import run_metadata

from .protocol import RESTORE_TOLERANCE_PP, arm_spec

__all__ = ["JUDGE", "RESTORE_TOLERANCE_PP", "judge_path", "check_judge", "restore_judge"]

JUDGE = "aug_seed0.safetensors"


def judge_path(out: Path, runs: Path) -> Path:
    """Where the judge's weights are: beside its record in ``runs``, else restored under ``OUT/judge/``."""
    saved, restored = runs / JUDGE, out / "judge" / JUDGE
    return restored if not saved.is_file() and restored.is_file() else saved


def check_judge(cfg, out: Path, runs: Path) -> bool:
    """Refuse, before any work, a benchmark that will need the judge's weights and cannot have them. ``runs``: where
    the baselines' records are (``--baselines-from``: the other folder's). True when the weights must be restored
    first (``--restore-judge``, the record there and the weights nowhere)."""
    gan_arms = [a for a in cfg.arms if a.startswith("gan")]
    needs = []
    if gan_arms and not (out / "generator_check" / "metrics.json").is_file():
        needs.append("the generator check")
    for arm in cfg.arms:  # the filter's arm and the arms taught by it, while one of their runs is still to train
        if (arm_spec(arm).uses_judge and not cfg.report_only
                and not all((out / "runs" / f"{arm}_seed{s}.json").is_file() for s in cfg.seeds)):
            needs.append(arm)
    if not needs or judge_path(out, runs).is_file():
        return False
    need = f"{' and '.join(needs)} {'need' if len(needs) > 1 else 'needs'}"
    record = runs / "aug_seed0.json"
    if record.is_file():
        if cfg.restore_judge:
            return True
        raise ValueError(f"{record} is saved but its weights {runs / JUDGE} are not (results folders keep no "
                         f"weights), and {need} them: pass --restore-judge to retrain that run and check it against "
                         "its record (as long as one run; the record is kept), or copy the weights file there")
    if runs != out / "runs":  # --baselines-from: nothing of the baselines is trained here
        raise ValueError(f"--baselines-from: {runs} has no finished `aug` seed-0 run, and {need} its classifier: "
                         f"finish it there first (--arms aug --seeds 0 --out {runs.parent})")
    return False


def restore_judge(runner, out: Path, command: list[str] | None = None) -> dict:
    """Retrain the ``aug`` seed-0 run of ``runner.baseline_runs`` and keep its weights in ``OUT/judge/`` when its
    test balanced accuracy is within ``cfg.restore_tolerance_pp`` of the record's; otherwise refuse (ValueError),
    keeping nothing. Returns the comparison (also ``OUT/judge/restore.json``)."""
    tolerance = runner.cfg.restore_tolerance_pp
    runs = runner.baseline_runs
    record_path, probs_path = runs / "aug_seed0.json", runs / "aug_seed0_test_probs.npy"
    dest = out / "judge"
    if not runner.dist.is_main:  # rank 0 compares and writes; the others train with it, then read its file
        runner.train_model("aug", 0)
        gdist.barrier()
        return json.loads((dest / "restore.json").read_text())
    record = json.loads(record_path.read_text())
    saved = np.load(probs_path) if probs_path.is_file() else None
    t0 = time.monotonic()
    model, spec, fr, _ = runner.train_model("aug", 0)
    probs, labels = predict(model, runner.loader(runner.test), device=runner.device)
    metrics = classification_metrics(probs, labels, runner.class_names)
    runner.longest_run_s = max(runner.longest_run_s, time.monotonic() - t0)  # the time limit's next estimate
    ba, recorded = metrics["balanced_accuracy"], record["test"]["balanced_accuracy"]
    comparison = {
        "record": str(record_path), "tolerance_pp": tolerance,
        "recorded_balanced_accuracy": recorded, "retrained_balanced_accuracy": ba,
        "difference_pp": (ba - recorded) * 100,
        "recorded_best_epoch": record.get("best_epoch"), "retrained_best_epoch": fr.best_epoch,
        "seconds": time.monotonic() - t0, "meta": run_metadata(command, device=runner.device),
    }
    if saved is not None and saved.shape == probs.shape:
        comparison["max_abs_probability_difference"] = float(np.abs(saved - probs).max())
        comparison["prediction_agreement"] = float((saved.argmax(1) == probs.argmax(1)).mean())
        comparison["identical"] = comparison["max_abs_probability_difference"] <= 1e-6
    if abs(comparison["difference_pp"]) > tolerance:
        gdist.barrier()
        raise ValueError(f"--restore-judge: the retrained aug seed-0 classifier scores {ba:.1%} test balanced "
                         f"accuracy, its record {record_path} {recorded:.1%} ({comparison['difference_pp']:+.1f} pp, "
                         f"more than the {tolerance:g} pp allowed, --restore-tolerance-pp): not the recorded "
                         "classifier, so nothing is kept. Retrain the run itself (delete its record and "
                         "_test_probs.npy) or copy its weights from the machine that made it")
    runner.save_judge(model, spec, dest / JUDGE)
    write_json(dest / "restore.json", comparison)
    gdist.barrier()
    return comparison
