"""benchmarks/speed.py --quick: runs on CPU in CI time and writes its JSON (figures are never asserted as times)."""

from __future__ import annotations

import json
import math

import pytest

from ga_bench import speed
from ga_bench.speed import main as speed_main
from gan_augment.perf import trainer_log_throughput

from .conftest import make_image_folder


def test_trainer_log_throughput_skips_start_up_and_takes_the_median():
    records = [{"img_per_s": 1.0}, {"img_per_s": 30.0}, {"img_per_s": 10.0}, {"img_per_s": 20.0}]
    r = trainer_log_throughput(records)
    assert r["windows"] == 3 and r["images_per_second"] == 20.0
    assert trainer_log_throughput(records[:3])["images_per_second"] == 20.0  # even count: mean of the middle two
    with pytest.raises(ValueError, match="no throughput"):
        trainer_log_throughput([])


def test_speed_quick_writes_ratios(tmp_path, capsys, monkeypatch):
    # the quick mode's code path at a smaller size (32 px GAN, fewer images): the GANs of the 256 px recipes at
    # 64 px made this the suite's slowest test, and what it checks is the plumbing, not the figures
    small = {**speed.SETTINGS["quick"], "gan_resolution": 32, "gan_batch": 8, "gan_images": 32, "sample_n": 4,
             "sample_batch": 4, "cls_size": 32, "cls_items": 96, "bank_size": 64, "bank_resolution": 32,
             "feature_n": 8, "feature_batch": 8}
    monkeypatch.setitem(speed.SETTINGS, "quick", small)
    folder = make_image_folder(tmp_path / "imgs", {"a": 40, "b": 20, "c": 12}, size=(72, 64))
    out = tmp_path / "speed"
    assert speed_main(["--quick", "--data-dir", str(folder), "--out", str(out), "--device", "cpu",
                       "--num-workers", "0"]) == 0
    r = json.loads((out / "speed.json").read_text())
    assert r["mode"] == "quick" and r["meta"]["command"].startswith("python benchmarks/speed.py --quick")
    assert list(r["gan_training"]) == ["resnet", "fastgan_projected", "dcgan"]
    for arch in r["gan_training"]:
        g = r["gan_training"][arch]
        assert g["setup"]["resolution"] == 32 and g["setup"]["batch_size"] == 8
        assert g["trainer_minimal"]["windows"] == 3  # 8 steps logged every 2, the first window skipped
        for key in ("ratio_minimal_over_bare", "ratio_recipe_over_bare"):
            assert math.isfinite(g[key]) and g[key] > 0
    assert r["gan_training"]["resnet"]["setup"]["generator"] == "resnet"
    assert r["gan_training"]["dcgan"]["setup"]["discriminator"] == "sngan"
    assert r["gan_training"]["fastgan_projected"]["setup"]["discriminator"] == "projected"
    assert r["sampling_256"]["fp32"]["resolution"] == 256 and "bf16" not in r["sampling_256"]  # CPU: fp32 only
    c = r["classifier_epoch"]
    assert c["real"]["images"] == c["balanced"]["images"] == 32 * (c["items_per_epoch"] // 32)
    assert c["ratio_balanced_time_over_real"] > 0 and c["bank"]["images"] > 0
    assert r["features"]["images"] == 8 and r["settings"] == small
    md = (out / "speed.md").read_text()
    assert "goal >= 0.8" in md and "goal <= 1.15" in md
    assert "GANBalancedDataset" in capsys.readouterr().out


def test_speed_refuses_a_missing_data_dir(tmp_path, capsys):
    assert speed_main(["--quick", "--data-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "neither a HAM10000 folder" in capsys.readouterr().err
