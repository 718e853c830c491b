"""train.ema_extra_decays: more averages of G from one run, exported beside the main one, resumed with it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gan_augment.generators import read_generator_metadata
from gan_augment.training import Trainer
from gan_augment.training.ema import check_ema_decays, ema_file_name

from .conftest import make_image_folder
from .test_training import _cfg, kill_during_step, tiny_config


@pytest.fixture
def folder(tmp_path) -> Path:
    return make_image_folder(tmp_path / "imgs", {"a": 14, "b": 8, "c": 6}, size=(36, 32))


def _same(a: Path, b: Path) -> None:
    x, y = load_file(str(a)), load_file(str(b))
    assert x.keys() == y.keys()
    for k in x:
        assert torch.equal(x[k], y[k]), k


def test_an_extra_average_is_the_average_a_run_with_that_decay_exports(tmp_path, folder):
    """Extras follow G's own trajectory without disturbing it: run A (main 0.9, extra 0.5) exports as
    generator_ema0.5 exactly what run B (main 0.5) exports as its generator, and A's main file is B's twin's."""
    a = Trainer(_cfg(tiny_config(tmp_path / "a", folder, ema_extra_decays=[0.5, 0.99]))).fit()
    b = Trainer(_cfg(tiny_config(tmp_path / "b", folder, ema_decay=0.5))).fit()
    c = Trainer(_cfg(tiny_config(tmp_path / "c", folder))).fit()  # main 0.9, no extras
    run_a = a.generator_path.parent
    assert sorted(p.name for p in run_a.glob("generator*.safetensors")) == [
        "generator.safetensors", "generator_ema0.5.safetensors", "generator_ema0.99.safetensors"]
    _same(run_a / "generator_ema0.5.safetensors", b.generator_path)
    _same(a.generator_path, c.generator_path)
    meta = read_generator_metadata(run_a / "generator_ema0.99.safetensors")
    assert meta["training"]["ema_decay"] == 0.99 and meta["step"] == 6
    assert read_generator_metadata(a.generator_path)["training"]["ema_decay"] == 0.9
    x, y = load_file(str(run_a / "generator_ema0.99.safetensors")), load_file(str(a.generator_path))
    assert any(not torch.equal(x[k], y[k]) for k in x)  # a longer average is another set of weights


def test_extra_averages_resume_bit_identically(tmp_path, folder, monkeypatch):
    straight = Trainer(_cfg(tiny_config(tmp_path / "s", folder, ema_extra_decays=[0.7]))).fit()
    killed = tiny_config(tmp_path / "k", folder, ema_extra_decays=[0.7])
    kill_during_step(monkeypatch, killed, 4)
    state = torch.load(next((tmp_path / "k" / "run" / "checkpoints").glob("*.pt")), weights_only=True)
    assert list(state["G_ema_extra"]) == ["0.7"]
    resumed = Trainer(_cfg(killed), resume=True).fit()
    name = ema_file_name(0.7)
    _same(straight.generator_path.parent / name, resumed.generator_path.parent / name)


def test_an_extra_average_added_at_resume_starts_from_the_main_one(tmp_path, folder):
    first = Trainer(_cfg(tiny_config(tmp_path, folder))).fit()
    main_then = torch.load(first.checkpoint_path, weights_only=True)["G_ema"]
    # decay so close to 1 that 3 more steps leave it where it started
    resumed = Trainer(_cfg(tiny_config(tmp_path, folder, steps=9, ema_extra_decays=[0.999999])), resume=True).fit()
    assert resumed.step == 9
    extra = load_file(str(resumed.generator_path.parent / ema_file_name(0.999999)))
    main_now = load_file(str(resumed.generator_path))
    params = [k for k in extra if "running" not in k and "num_batches" not in k]
    assert params
    moved = max(float((main_now[k] - main_then[k]).abs().max()) for k in params)
    stayed = max(float((extra[k] - main_then[k]).abs().max()) for k in params)
    assert moved > 1e-4 and stayed < 1e-4 * moved + 1e-6


@pytest.mark.parametrize("extra, match", [([1.0], r"in \(0, 1\)"), ([0.0], r"in \(0, 1\)"),
                                          ([0.9], "equals train.ema_decay"), ([0.5, 0.5], "listed twice")])
def test_bad_extra_decays_are_refused_and_leave_no_folder(tmp_path, folder, extra, match):
    cfg = tiny_config(tmp_path, folder, ema_extra_decays=extra)
    with pytest.raises(ValueError, match=match):
        Trainer(_cfg(cfg))
    assert not (tmp_path / "run").exists()


def test_check_ema_decays():
    assert check_ema_decays(0.99, [0.999, "0.995"]) == [0.999, 0.995]
    assert ema_file_name(0.999) == "generator_ema0.999.safetensors"
    with pytest.raises(ValueError, match="train.ema_decay"):
        check_ema_decays(1.0, [])
