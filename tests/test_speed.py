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
                       "--num-workers", "0", "--parts", "gan,sampling,classifier,features"]) == 0
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
    assert "compile" not in r and "train.compile" not in md  # a part not asked for is not run


def test_per_step_cost_skips_start_up_windows():
    records = [{"step": 5, "cpu_s": 90.0, "elapsed_s": 60.0},   # compilation
               {"step": 10, "cpu_s": 100.0, "elapsed_s": 66.0},
               {"step": 15, "cpu_s": 105.0, "elapsed_s": 69.0},
               {"step": 20, "cpu_s": 112.0, "elapsed_s": 73.0}]
    r = speed.per_step_cost(records, skip=2)  # timed: steps 10 -> 20
    assert r["steps"] == 10 and r["windows"] == 2 and r["start_up_wall_s"] == 66.0
    assert r["cpu_s_per_step"] == pytest.approx(1.2) and r["wall_s_per_step"] == pytest.approx(0.7)
    assert speed.per_step_cost(records, skip=1)["cpu_s_per_step"] == pytest.approx(22 / 15)
    with pytest.raises(ValueError, match="at least 1 logged window after the first 4"):
        speed.per_step_cost(records, skip=4)
    with pytest.raises(ValueError, match="skip must be >= 1"):
        speed.per_step_cost(records, skip=0)


@pytest.mark.slow  # compiles G (tens of seconds on 2 cores)
def test_speed_compile_part_times_eager_and_compiled_g(tmp_path, monkeypatch):
    small = {**speed.SETTINGS["quick"], "compile_images": 24, "compile_steps": 8, "compile_log_every": 2,
             "compile_skip": 1}
    monkeypatch.setitem(speed.SETTINGS, "quick", small)
    folder = make_image_folder(tmp_path / "imgs", {"a": 12, "b": 12}, size=(72, 64))
    out = tmp_path / "speed"
    assert speed_main(["--quick", "--data-dir", str(folder), "--out", str(out), "--device", "cpu",
                       "--parts", "compile"]) == 0
    c = json.loads((out / "speed.json").read_text())["compile"]
    assert c["config"] == "configs/ham10000_64_cpu.yaml" and c["setup"]["generator"] == "fastgan"
    for variant in ("eager", "compiled"):
        assert c[variant]["steps"] == 6 and c[variant]["windows"] == 3 and c[variant]["cpu_s_per_step"] > 0
        assert c[variant]["start_up_wall_s"] > 0  # 8 steps logged every 2: the window ending at step 2 skipped
    assert c["ratio_cpu_s_per_step"] == pytest.approx(c["compiled"]["cpu_s_per_step"] / c["eager"]["cpu_s_per_step"])
    assert "| **compiled / eager** |" in (out / "speed.md").read_text()


def test_speed_refuses_a_missing_data_dir(tmp_path, capsys):
    assert speed_main(["--quick", "--data-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "neither a HAM10000 folder" in capsys.readouterr().err
