"""``train.init_generator``: a run that starts G (and its EMA) from a trained generator file - to continue a run
without its checkpoints, or to fine-tune a shipped generator - with D afresh, the step count continued, the
lineage kept in the new file, and a benchmark refusing a generator whose ancestor was trained on other data."""

from __future__ import annotations

import pytest
import torch

from ga_bench.protocol import GeneratorMismatch, check_generator
from gan_augment.data import Manifest
from gan_augment.generators import load_generator, read_generator_metadata, save_generator
from gan_augment.pretrained import file_sha256
from gan_augment.training import Trainer

from .test_training import _cfg, folder, kill_during_step, tiny_config  # noqa: F401 - folder is a fixture


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


@pytest.fixture
def first(tmp_path, folder):
    """A finished 6-step run: its generator file is all that another machine would have of it."""
    result = Trainer(_cfg(tiny_config(tmp_path / "first", folder))).fit()
    assert result.finished and result.step == 6
    return result.generator_path


def test_g_and_its_ema_start_from_the_file_d_afresh_and_the_step_count_continues(tmp_path, folder, first):
    d = tiny_config(tmp_path / "warm", folder, steps=9, init_generator=str(first))
    trainer = Trainer(_cfg(d))
    saved = load_generator(first).state_dict()
    assert _same(trainer.G.state_dict(), saved) and _same(trainer.ema.module.state_dict(), saved)
    assert trainer.step == 6
    fresh = Trainer(_cfg(tiny_config(tmp_path / "fresh", folder)))  # same seed, no warm start
    assert _same(trainer.D.state_dict(), fresh.D.state_dict())  # D is the seed's new D, not a trained one
    assert not _same(fresh.G.state_dict(), saved)
    result = trainer.fit()
    assert result.finished and result.step == 9  # three more G steps
    meta = read_generator_metadata(result.generator_path)
    assert meta["step"] == 9
    # the file names no folder of this machine: tmp_path is outside the working dir and the home folder
    shown = f".../{first.parent.name}/{first.name}"
    origin = {"path": shown, "sha256": file_sha256(first), "step": 6,
              "manifest_hash": read_generator_metadata(first)["manifest_hash"], "split": "train"}
    assert meta["init_from"] == {**origin, "lineage": [origin]}
    assert meta["training"]["config"]["train"]["init_generator"] == shown

    # a second warm start from that file carries the whole chain
    again = Trainer(_cfg(tiny_config(tmp_path / "again", folder, steps=10, init_generator=str(result.generator_path))))
    assert again.step == 9
    lineage = again.init_from["lineage"]
    assert [e["sha256"] for e in lineage] == [file_sha256(first), file_sha256(result.generator_path)]


def test_a_warm_started_run_resumes_with_its_lineage(tmp_path, folder, first, monkeypatch):
    d = tiny_config(tmp_path / "warm", folder, steps=12, init_generator=str(first))
    kill_during_step(monkeypatch, d, 10)  # after the checkpoint at step 9
    first.rename(first.with_suffix(".gone"))  # the resume reads the checkpoint, not the file it started from
    result = Trainer(_cfg(d), resume=True).fit()
    assert result.finished and result.step == 12
    assert read_generator_metadata(result.generator_path)["init_from"]["step"] == 6


def test_a_file_that_does_not_fit_the_run_is_refused_naming_what_differs(tmp_path, folder, first):
    wider = tiny_config(tmp_path / "w", folder, steps=9, init_generator=str(first))
    wider["model"]["g_channels"] = 16
    with pytest.raises(ValueError, match=r"train.init_generator .*arch_args"):
        Trainer(_cfg(wider))
    other = tiny_config(tmp_path / "o", folder, steps=9, init_generator=str(first))
    other["data"]["classes"] = ["a", "b"]  # two of the file's three classes
    with pytest.raises(ValueError, match=r"differs from this run's model in num_classes \(3 there, 2 here\)"):
        Trainer(_cfg(other))
    done = tiny_config(tmp_path / "d", folder, steps=6, init_generator=str(first))
    with pytest.raises(ValueError, match="is at step 6, train.steps is 6: nothing to train"):
        Trainer(_cfg(done))
    with pytest.raises(ValueError, match="no generator file"):
        Trainer(_cfg(tiny_config(tmp_path / "n", folder, steps=9, init_generator=str(tmp_path / "none.safetensors"))))
    assert not (tmp_path / "w" / "run" / "generator.safetensors").exists()


def test_the_benchmark_refuses_a_generator_whose_ancestor_saw_other_data(tmp_path, first):
    meta = read_generator_metadata(first)
    manifest = Manifest.read(first.parent / "manifest.csv")
    G = load_generator(first)
    clean = {"path": "a.safetensors", "sha256": "1" * 64, "step": 6, "manifest_hash": manifest.hash, "split": "train"}
    ok = save_generator(G, tmp_path / "ok.safetensors", manifest_hash=manifest.hash, split="train", step=9,
                        extra={"init_from": {**clean, "lineage": [clean]}})
    assert check_generator(str(ok), manifest)["init_from"]["step"] == 6
    leaky = {**clean, "path": "whole_dataset.safetensors", "manifest_hash": "f" * 64}
    bad = save_generator(G, tmp_path / "bad.safetensors", manifest_hash=manifest.hash, split="train", step=12,
                         extra={"init_from": {**clean, "lineage": [leaky, clean]}})
    with pytest.raises(GeneratorMismatch, match=r"started from whole_dataset.safetensors .*ffffffffffff"):
        check_generator(str(bad), manifest)
    assert meta["manifest_hash"] == manifest.hash
