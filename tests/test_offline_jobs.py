"""The offline GPU node's scripts, tried here on CPU at toy scale: scripts/offline_job.sh (one step per batch job,
resuming) and scripts/offline_collect.sh (what comes back), across three simulated nodes - so a user's first
GPU job does not spend its time limit on a broken script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from gan_augment import provenance
from gan_augment.generators import read_generator_metadata
from gan_augment.data import Manifest

from .conftest import HAM_DIR, needs_ham
from .test_classifier import needs_lite0

ROOT = Path(__file__).resolve().parents[1]
needs_tools = pytest.mark.skipif(not all(shutil.which(t) for t in ("bash", "tar", "split", "sha256sum", "timeout")),
                                 reason="needs bash and coreutils")


def test_commit_from_the_environment_when_the_copy_has_no_git(monkeypatch):
    monkeypatch.setattr(provenance, "_git", lambda args, cwd: None)
    monkeypatch.setenv("GAN_AUGMENT_COMMIT", "abc123")
    meta = provenance.run_metadata(["x"])
    assert meta["commit"] == "abc123" and meta["commit_source"] == "GAN_AUGMENT_COMMIT" and meta["dirty"] is None
    monkeypatch.delenv("GAN_AUGMENT_COMMIT")
    meta = provenance.run_metadata(["x"])
    assert meta["commit"] == "unknown" and meta["commit_source"] is None


def test_the_cpu_model_is_recorded_with_its_vector_extension(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Some CPU @ 2.0GHz\nflags\t\t: fpu sse4_2 avx avx2 fma\n\n"
                    "processor\t: 1\nmodel name\t: Some CPU @ 2.0GHz\nflags\t\t: fpu sse4_2 avx avx2 fma\n")
    assert provenance.cpu_model(info) == "Some CPU @ 2.0GHz, avx2"
    info.write_text("model name\t: Other CPU\n")  # no flags line: the name alone
    assert provenance.cpu_model(info) == "Other CPU"
    assert provenance.cpu_model(tmp_path / "absent") is None  # not Linux: platform.processor() or 'unknown'
    name = provenance.device_name("cpu")
    assert name.startswith("CPU ") and (provenance.cpu_model() or "") in name


def test_compact_pngs_shrinks_big_grids_and_leaves_small_ones(tmp_path):
    import numpy as np
    from PIL import Image

    from gan_augment.plots import compact_pngs

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:384, 0:512]
    smooth = np.stack([x / 2, y / 1.5, (x + y) / 3.5], axis=-1) + rng.normal(0, 6, (384, 512, 3))
    big = np.clip(smooth, 0, 255).astype(np.uint8)
    Image.fromarray(big).save(tmp_path / "grid.png")
    (tmp_path / "sub").mkdir()
    Image.fromarray(big[:8, :8]).save(tmp_path / "sub" / "small.png")
    small_bytes = (tmp_path / "sub" / "small.png").read_bytes()
    before = (tmp_path / "grid.png").stat().st_size
    done = compact_pngs(tmp_path, max_bytes=2_000)
    assert [(p.name, b) for p, b, _ in done] == [("grid.png", before)]
    after = (tmp_path / "grid.png").stat().st_size
    assert after == done[0][2] and after < 0.6 * before
    with Image.open(tmp_path / "grid.png") as im:
        assert im.mode == "P" and im.size == (512, 384)
        back = np.asarray(im.convert("RGB"), dtype=np.float64)
    assert np.abs(back - big).mean() < 6
    blur = lambda a: a.reshape(96, 4, 128, 4, 3).mean(axis=(1, 3))  # noqa: E731 - dithering keeps local means
    assert np.abs(blur(back) - blur(big.astype(np.float64))).mean() < 2.5  # looks the same at viewing size
    assert (tmp_path / "sub" / "small.png").read_bytes() == small_bytes  # under the limit: untouched
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["grid.png", "small.png", "sub"]  # no temp files left


def _ham_slice(dest: Path, per_class: int = 40) -> Path:
    """The first ``per_class`` metadata rows of each class, images linked: HAM10000's layout, scanned in no time."""
    import csv

    rows, seen = [], {}
    with open(HAM_DIR / "HAM10000_metadata.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        for row in reader:
            if seen.get(row["dx"], 0) < per_class:
                seen[row["dx"]] = seen.get(row["dx"], 0) + 1
                rows.append(row)
    for row in rows:
        (dest / row["dx"]).mkdir(parents=True, exist_ok=True)
        (dest / row["dx"] / f"{row['image_id']}.jpg").symlink_to(HAM_DIR / row["dx"] / f"{row['image_id']}.jpg")
    with open(dest / "HAM10000_metadata.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=reader.fieldnames)
        writer.writeheader()
        writer.writerows(rows)
    return dest


def _call(tmp_path: Path, machine: str, out: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    (tmp_path / out).mkdir()
    data = tmp_path / "ham_slice"
    if not data.is_dir():
        _ham_slice(data)
    full_env = {**os.environ, "PY": sys.executable, "OUT": str(tmp_path / out), "WORK_DIR": str(tmp_path / machine),
                "DATA_DIR": str(data), "SITE": str(tmp_path / "site"), "WHEEL_DIRS": "",
                "GEN_DIR": str(tmp_path / "checkout" / ".gen"), "RESULTS_DIR": str(tmp_path / "checkout" / "results"),
                "GAN_AUGMENT_COMMIT": "feedc0de", "FEATURES": "lite0", "PART_MIB": "15", **env}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "offline_job.sh"), *args], env=full_env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _collect(tmp_path: Path, out: str) -> str:
    dest = tmp_path / "checkout"
    dest.mkdir(exist_ok=True)
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "offline_collect.sh"), str(tmp_path / out)],
                          env={**os.environ, "DEST": str(dest)}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@needs_ham
@needs_lite0
@needs_tools
def test_baselines_gan_then_benchmark_across_machines(tmp_path):
    # toy scale: a 64 px, width-8 GAN on a 70-image slice of the 25 % regime, a 32 px classifier, one epoch
    split = "--max-train-images 70 --max-eval-per-class 4"
    gan_set = ("model.resolution=64 model.g_channels=8 model.d_channels=8 model.max_mult=2 train.batch_size=8 "
               "train.steps=3 train.checkpoint_every=2 train.sample_every=2 train.log_every=1 train.ema_start=0 "
               "train.tensorboard=false")
    bench = (f"{split} --image-size 32 --epochs 1 --seeds 0 --batch-size 16 --num-workers 0 --n-boot 20 "
             "--bank-size 40 --check-per-class 6")
    checkout = tmp_path / "checkout"
    # machine 0: no generator yet, so the benchmark runs the four baseline arms only
    log = _call(tmp_path, "m0", "out0", "bench", "frac025", BENCH_ARGS=bench).stdout
    assert "the four baseline arms only" in log
    _collect(tmp_path, "out0")
    results = checkout / "benchmarks" / "results" / "ham10000_frac025"
    baselines = json.loads((results / "results.json").read_text())
    assert set(baselines["arms"]) == {"plain", "aug", "aug_oversample", "aug_weighted"}
    aug_record = (results / "runs" / "aug_seed0.json").read_bytes()
    shutil.copytree(results, checkout / "results" / "ham10000_frac025")  # = committed (+ the carried aug weights)

    # machine 1, call 1: the frac025 GAN (split written first by --prepare-only), 3 steps
    _call(tmp_path, "m1", "out1", "gan", "frac025", GAN_SET=gan_set, BENCH_ARGS=bench)
    # call 2 on the same machine: resumes from its checkpoint and goes on to step 5
    log = _call(tmp_path, "m1", "out2", "gan", "frac025", GAN_SET=gan_set.replace("steps=3", "steps=5"),
                BENCH_ARGS=bench).stdout
    assert "train configs/ham10000_256.yaml --resume" in log
    names = sorted(os.listdir(tmp_path / "out2"))
    assert names == ["gan_frac025.tar", "gen_frac025.part-00", "gen_frac025.sha256"]
    with tarfile.open(tmp_path / "out2" / "gan_frac025.tar") as t:
        members = t.getnames()
    assert not any(m.endswith((".pt", ".safetensors", "manifest.csv")) or "/checkpoints" in m or "/samples/" in m
                   for m in members)
    prefix = "benchmarks/results/gan_ham10000_frac025_256/"
    for f in ("log.jsonl", "loss_curves.png", "train_summary.json", "config.yaml", "job_runs.json"):
        assert prefix + f in members, f
    said = _collect(tmp_path, "out2")
    assert "generator (frac025)" in said
    gan_dir = checkout / prefix
    steps = [json.loads(line)["step"] for line in (gan_dir / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5]  # one log across both calls
    calls = json.loads((gan_dir / "job_runs.json").read_text())["jobs"]
    assert len(calls) == 2 and {c["commit"] for c in calls} in ({"feedc0de"}, {provenance.run_metadata()["commit"]})
    gen = checkout / "runs" / "gan_frac025" / "generator.safetensors"
    manifest = Manifest.read(tmp_path / "m1" / "results" / "ham10000_frac025" / "manifest.csv")
    meta = read_generator_metadata(gen)
    assert meta["manifest_hash"] == manifest.hash and meta["step"] == 5
    assert (checkout / ".gen" / "frac025" / "generator.sha256").is_file()

    # machine 1, call 3: the benchmark with this machine's generator; aug comes from machine 0's committed record
    # and its carried weights (the generator check needs them)
    _call(tmp_path, "m1", "out3", "bench", "frac025", BENCH_ARGS=f"{bench} --arms aug,gan")
    assert sorted(os.listdir(tmp_path / "out3")) == ["aug_frac025.safetensors", "bench_frac025.tar"]
    _collect(tmp_path, "out3")
    assert (results / "runs" / "aug_seed0.json").read_bytes() == aug_record  # reused, not retrained
    shutil.rmtree(checkout / "results" / "ham10000_frac025")
    shutil.copytree(results, checkout / "results" / "ham10000_frac025")  # = committed, travels with the tree
    first = json.loads((results / "results.json").read_text())
    # the GAN arm is compared with every baseline machine 0 finished, read from its records
    baseline_arms = {"plain", "aug", "aug_oversample", "aug_weighted"}
    assert set(first["arms"]) == baseline_arms | {"gan"} and first["meta"]["regime"] == "frac025"
    assert first["meta"]["manifest_hash"] == manifest.hash and first["generator"]["step"] == 5
    assert first["meta"]["commit"] in ("feedc0de", provenance.run_metadata()["commit"])
    assert "classification_accuracy_on_synthetic" in first["generator"]["check"]

    # machine 2 (a later session): the generator comes as carried parts, the runs from the committed results;
    # only the new arm trains
    log = _call(tmp_path, "m2", "out4", "bench", "frac025", BENCH_ARGS=f"{bench} --arms aug,gan,gan_light").stdout
    assert "stashed the frac025 generator" in log
    with tarfile.open(tmp_path / "out4" / "bench_frac025.tar") as t:
        t.extractall(tmp_path / "back", filter="data")
    back = tmp_path / "back" / "benchmarks" / "results" / "ham10000_frac025"
    second = json.loads((back / "results.json").read_text())
    assert set(second["arms"]) == baseline_arms | {"gan", "gan_light"}
    for arm in ("aug", "plain", "gan"):  # reused, not retrained
        assert (back / "runs" / f"{arm}_seed0.json").read_bytes() == (results / "runs" / f"{arm}_seed0.json").read_bytes()
        assert second["arms"][arm]["balanced_accuracy"] == first["arms"][arm]["balanced_accuracy"]
