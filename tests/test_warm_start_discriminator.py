"""``train.init_discriminator``: every run exports its D beside its generator (``discriminator.safetensors``), and a
warm start can take both, so a run continues on another machine without its checkpoints and without a fresh D
that starts at chance. The pair is checked: same run and step, same model and classes."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from gan_augment._io import safetensors_metadata
from gan_augment.cli import main as cli_main
from gan_augment.generators import load_generator, save_generator
from gan_augment.pretrained import PretrainedUnavailable, file_sha256, pretrained_discriminator_path
from gan_augment.training import Trainer
from gan_augment.training.warm_start import read_discriminator

from .test_training import _cfg, folder, tiny_config  # noqa: F401 - folder is a fixture


def _recipe(tmp_path, folder, **train):
    """The CPU recipe in miniature: FastGAN G, projected D (random frozen backbone), LeCam."""
    d = tiny_config(tmp_path, folder, **train)
    d["model"].update({"generator": "fastgan", "discriminator": "projected", "g_channels": 4, "d_channels": 8,
                       "d_pretrained": False})
    d["loss"].update({"r1_gamma": 0.0, "lecam_lambda": 0.3})
    d["augment"]["adaptive"] = False
    return d


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


@pytest.fixture
def pair(tmp_path, folder):
    """A finished 3-step run of the recipe: its generator and discriminator files, and its last checkpoint."""
    result = Trainer(_cfg(_recipe(tmp_path / "first", folder, steps=3))).fit()
    assert result.finished and result.step == 3
    return result.generator_path, result.generator_path.parent / "discriminator.safetensors", result.checkpoint_path


def test_a_run_exports_its_trainable_d_paired_with_its_generator(pair):
    gen, disc, ckpt = pair
    meta, tensors = read_discriminator(disc)
    state = torch.load(ckpt, weights_only=True)
    assert meta["generator_sha256"] == file_sha256(gen) and meta["step"] == 3
    assert _same(tensors, state["D"])  # the checkpoint's D, nothing more
    assert not any(k.startswith("projector") for k in tensors)  # the frozen part is rebuilt, never saved
    assert meta["model"]["discriminator"] == "projected" and meta["model"]["d_pretrained"] is False
    assert "d_batch_norm" not in meta["model"]  # only the keys this discriminator takes
    assert meta["state"]["lecam"] == state["lecam"] and meta["state"]["lecam"]["ema_real"] is not None
    assert meta["class_names"] == ["a", "b", "c"] and meta["manifest_hash"] == state["manifest_hash"]


def test_a_warm_start_takes_d_from_the_file_and_records_it(tmp_path, folder, pair):
    gen, disc, _ = pair
    d = _recipe(tmp_path / "warm", folder, steps=6, init_generator=str(gen), init_discriminator=str(disc))
    trainer = Trainer(_cfg(d))
    meta, tensors = read_discriminator(disc)
    assert _same(trainer.D.state_dict(), tensors)
    assert trainer.lecam.state_dict() == meta["state"]["lecam"]  # LeCam's averages continue too
    fresh = Trainer(_cfg(_recipe(tmp_path / "fresh", folder, steps=6, init_generator=str(gen))))
    assert not _same(fresh.D.state_dict(), tensors) and fresh.lecam.state_dict()["ema_real"] is None
    assert trainer.init_from["discriminator"] == {"path": str(disc), "sha256": file_sha256(disc), "step": 3}
    result = trainer.fit()
    assert result.finished and result.step == 6
    new_gen = safetensors_metadata(result.generator_path)
    assert new_gen["init_from"]["discriminator"]["sha256"] == file_sha256(disc)
    # the new pair continues the chain the same way
    again = _recipe(tmp_path / "again", folder, steps=8, init_generator=str(result.generator_path),
                    init_discriminator=str(result.generator_path.parent / "discriminator.safetensors"))
    assert Trainer(_cfg(again)).step == 6


def test_adaptive_augmentation_continues_at_the_strength_d_was_trained_at(tmp_path, folder):
    def cfg(name, **train):
        d = tiny_config(tmp_path / name, folder, **train)  # ResNet D, ADA on
        d["augment"]["p"] = 0.3
        return _cfg(d)

    first = Trainer(cfg("a")).fit()
    disc = first.generator_path.parent / "discriminator.safetensors"
    p = read_discriminator(disc)[0]["state"]["augment_p"]
    assert p == torch.load(first.checkpoint_path, weights_only=True)["augment"]["p"] and p != 0.3  # ADA moved it
    warm = Trainer(cfg("b", steps=9, init_generator=str(first.generator_path), init_discriminator=str(disc)))
    assert warm.augment.p == p
    assert Trainer(cfg("c", steps=9, init_generator=str(first.generator_path))).augment.p == 0.3  # the start value


def test_export_discriminator_writes_the_same_file_from_a_run_made_before_the_trainer_did(tmp_path, pair, capsys):
    gen, disc, _ = pair
    run = gen.parent
    original = load_file(str(disc))
    meta = read_discriminator(disc)[0]
    disc.unlink()
    assert cli_main(["export-discriminator", str(run)]) == 0
    assert _same(load_file(str(disc)), original)
    assert read_discriminator(disc)[0] == meta
    # a generator file of another step does not pair with the last checkpoint; no checkpoint, nothing to export
    other = tmp_path / "other"
    shutil.copytree(run, other)
    save_generator(load_generator(gen), other / "generator.safetensors", step=2)
    assert cli_main(["export-discriminator", str(other), "--out", str(tmp_path / "d.safetensors")]) == 2
    assert "is at step 2, the last checkpoint ckpt_00000003.pt at step 3: not a pair" in capsys.readouterr().err
    shutil.rmtree(other / "checkpoints")
    assert cli_main(["export-discriminator", str(other), "--out", str(tmp_path / "d.safetensors")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "d.safetensors").exists()


def test_pairs_that_do_not_fit_are_refused_naming_what_differs(tmp_path, folder, pair):
    gen, disc, _ = pair
    with pytest.raises(ValueError, match="train.init_discriminator needs train.init_generator"):
        Trainer(_cfg(_recipe(tmp_path / "x", folder, steps=6, init_discriminator=str(disc))))
    other = Trainer(_cfg(_recipe(tmp_path / "other", folder, steps=3, seed=9))).fit().generator_path
    with pytest.raises(ValueError, match=r"was trained beside generator [0-9a-f]{12}\.\.\. \(step 3\)"):
        Trainer(_cfg(_recipe(tmp_path / "y", folder, steps=6, init_generator=str(other), init_discriminator=str(disc))))
    wider = _recipe(tmp_path / "z", folder, steps=6, init_generator=str(gen), init_discriminator=str(disc))
    wider["model"]["d_channels"] = 16
    with pytest.raises(ValueError, match=r"model.d_channels \(8 there, 16 here\)"):
        Trainer(_cfg(wider))
    unused = _recipe(tmp_path / "u", folder, steps=6, init_generator=str(gen), init_discriminator=str(disc))
    unused["model"]["max_mult"] = 4  # a key neither FastGAN G nor the projected D takes: not a reason to refuse
    assert Trainer(_cfg(unused)).init_from["discriminator"]["step"] == 3
    headed = _recipe(tmp_path / "h", folder, steps=6, init_generator=str(gen), init_discriminator=str(disc))
    headed["loss"]["class_lambda"] = 1.0  # adds an auxiliary classifier to D
    with pytest.raises(ValueError, match=r"do not fit this run's discriminator: missing \['class_head"):
        Trainer(_cfg(headed))
    with pytest.raises(ValueError, match="is not a discriminator file"):
        Trainer(_cfg(_recipe(tmp_path / "g", folder, steps=6, init_generator=str(gen), init_discriminator=str(gen))))
    with pytest.raises(ValueError, match="no discriminator file"):
        Trainer(_cfg(_recipe(tmp_path / "n", folder, steps=6, init_generator=str(gen),
                             init_discriminator=str(tmp_path / "none.safetensors"))))
    for name in "xyzhgn":
        assert not (tmp_path / name / "run" / "generator.safetensors").exists()


def test_a_shipped_discriminator_is_hash_checked_like_its_generator(tmp_path, pair):
    gen, disc, _ = pair
    root = tmp_path / "pretrained"
    root.mkdir()
    shutil.copy(gen, root / "g.safetensors")
    shutil.copy(disc, root / "g.disc.safetensors")
    entry = {"file": "g.safetensors", "sha256": file_sha256(gen), "card": "g.md"}
    (root / "index.json").write_text(json.dumps({"bare": entry, "paired": {**entry, "discriminator": {
        "file": "g.disc.safetensors", "sha256": file_sha256(disc)}}}))
    assert pretrained_discriminator_path("paired", root=root) == root / "g.disc.safetensors"
    with pytest.raises(PretrainedUnavailable, match="'bare' ships no discriminator"):
        pretrained_discriminator_path("bare", root=root)
    tensors = load_file(str(disc))
    save_file({k: v + 1 if v.is_floating_point() else v for k, v in tensors.items()}, str(root / "g.disc.safetensors"))
    with pytest.raises(PretrainedUnavailable, match="does not match its card.s"):
        pretrained_discriminator_path("paired", root=root)


def test_a_file_written_before_an_option_existed_counts_as_its_default(tmp_path, folder, pair):
    gen, disc, _ = pair
    meta = safetensors_metadata(disc)
    assert meta["model"]["d_backbone_scale"] == 1
    del meta["model"]["d_backbone_scale"]  # as a discriminator file written before model.d_backbone_scale was one
    old = tmp_path / "old.disc.safetensors"
    save_file(load_file(str(disc)), str(old), metadata={"gan_augment": json.dumps(meta)})
    same = _recipe(tmp_path / "s", folder, steps=6, init_generator=str(gen), init_discriminator=str(old))
    assert Trainer(_cfg(same)).init_from["discriminator"]["step"] == 3
    scaled = _recipe(tmp_path / "b", folder, steps=6, init_generator=str(gen), init_discriminator=str(old))
    scaled["model"]["d_backbone_scale"] = 2
    with pytest.raises(ValueError, match=r"model.d_backbone_scale \(1 there, 2 here\)"):
        Trainer(_cfg(scaled))
