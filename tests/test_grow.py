"""Growing a trained FastGAN generator by one block (``model.g_grown_from``, issue #44): the file's blocks kept, a new
up-block, SLE and output layer faded in from the file's own images; its discriminator reused where the frozen
backbone sees the same view."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import gan_augment
from gan_augment.generators import load_generator, read_generator_metadata, save_generator
from gan_augment.models import create_generator
from gan_augment.training import Trainer
from gan_augment.training.warm_start import read_discriminator, save_discriminator, warm_start

from .test_training import _cfg, folder  # noqa: F401 - folder is a fixture
from .test_warm_start_discriminator import _recipe


def _small(resolution, **kw):
    torch.manual_seed(0)
    G = create_generator("fastgan", resolution=resolution, num_classes=3, z_dim=16, base_channels=4, **kw)
    G.class_names = ["a", "b", "c"]
    return G


def test_a_grown_generator_starts_as_the_files_images_upsampled_and_fades_in(tmp_path):
    src = _small(32)
    for p in src.parameters():  # a "trained" generator: not the init the grown one also starts from
        p.data.add_(0.05 * torch.randn_like(p))
    path = save_generator(src, tmp_path / "g32.safetensors", manifest_hash="m" * 64, split="train")
    G = _small(64, grown_from=32)
    record = warm_start(G, str(path), ["a", "b", "c"])
    assert record["grown_from"] == 32 and record["lineage"][-1]["sha256"] == record["sha256"]
    assert float(G.fade) == 0.0
    src, G = src.eval(), G.eval()
    z, y = torch.randn(5, 16), torch.tensor([0, 1, 2, 0, 1])
    with torch.no_grad():
        expected = F.interpolate(src(z, y), scale_factor=2, mode="nearest")
        assert torch.allclose(G(z, y), expected, atol=1e-6)  # the file's images, each pixel 2x2
        G.fade.fill_(0.5)
        half = G(z, y)
        G.fade.fill_(1.0)
        full = G(z, y)
    assert half.shape == full.shape == (5, 3, 64, 64)
    assert (half - expected).abs().mean() > 1e-4 and (full - half).abs().mean() > 1e-4
    # at fade 1 the low path is skipped: no gradient reaches the file's output layer
    G.train()
    G(z, y).mean().backward()
    assert G.to_image_low.weight.grad is None and G.to_image.weight.grad is not None
    # the grown file rebuilds as a grown generator, its fade with it
    out = save_generator(G, tmp_path / "g64.safetensors", manifest_hash="m" * 64, split="train")
    again = load_generator(out)
    assert again.resolution == 64 and again.grown_from == 32 and float(again.fade) == 1.0
    assert read_generator_metadata(out)["arch_args"]["grown_from"] == 32


def test_growing_refuses_a_file_that_is_not_the_half_resolution_generator(tmp_path):
    with pytest.raises(ValueError, match="grown_from must be half the resolution \\(32\\)"):
        _small(64, grown_from=16)
    g16 = save_generator(_small(32), tmp_path / "g32.safetensors", manifest_hash="m" * 64, split="train")
    with pytest.raises(ValueError, match="a 32 px generator; model.g_grown_from 64 grows a 64 px one"):
        warm_start(_small(128, grown_from=64), str(g16), ["a", "b", "c"])
    torch.manual_seed(0)
    wide = create_generator("fastgan", resolution=32, num_classes=3, z_dim=32, base_channels=4)
    wide.class_names = ["a", "b", "c"]
    other = save_generator(wide, tmp_path / "z32.safetensors", manifest_hash="m" * 64, split="train")
    with pytest.raises(ValueError, match="z_dim \\(32 there, 16 here\\)"):
        warm_start(_small(64, grown_from=32), str(other), ["a", "b", "c"])
    with pytest.raises(ValueError, match="classes"):
        warm_start(_small(64, grown_from=32), str(g16), ["a", "b", "x"])


def test_a_grown_run_fades_in_over_its_steps_and_takes_the_files_discriminator(tmp_path, folder):
    first = _recipe(tmp_path / "first", folder, steps=3)
    first["model"].update({"d_backbone_scale": 2})  # 32 px images, the backbone sees 64 px
    result = Trainer(_cfg(first)).fit()
    gen, disc = result.generator_path, result.generator_path.parent / "discriminator.safetensors"
    grown = _recipe(tmp_path / "grown", folder, steps=7, init_generator=str(gen), init_discriminator=str(disc),
                    fade_steps=2)
    grown["model"].update({"resolution": 64, "g_grown_from": 32, "d_backbone_scale": 1})  # the same 64 px view
    trainer = Trainer(_cfg(grown))
    assert [trainer.fade(s) for s in (3, 4, 5, 6)] == [0.0, 0.5, 1.0, 1.0]
    assert float(trainer.G.fade) == 0.0 and trainer.init_from["discriminator"]["path"] == str(disc)
    out = trainer.fit()
    assert out.finished and out.step == 7
    G = load_generator(out.generator_path)
    assert G.resolution == 64 and float(G.fade) == 1.0
    meta = read_generator_metadata(out.generator_path)
    assert meta["init_from"]["grown_from"] == 32 and meta["init_from"]["step"] == 3
    # the grown file continued on another machine (train.init_generator = that file, the same grown config): loaded
    # as it is, no second fade-in, its discriminator file pairs
    more = _recipe(tmp_path / "more", folder, steps=9, init_generator=str(out.generator_path),
                   init_discriminator=str(out.generator_path.parent / "discriminator.safetensors"), fade_steps=2)
    more["model"].update({"resolution": 64, "g_grown_from": 32, "d_backbone_scale": 1})
    again = Trainer(_cfg(more))
    assert "grown_from" not in again.init_from and again.init_from["step"] == 7
    assert [again.fade(s) for s in (7, 8)] == [1.0, 1.0] and float(again.G.fade) == 1.0
    assert torch.equal(again.G.to_image.weight, G.to_image.weight)
    # another view is refused, naming the scale that would fit
    grown["model"]["d_backbone_scale"] = 2
    with pytest.raises(ValueError, match="saw 64 px images, this grown run's sees 128 px.*d_backbone_scale to 1"):
        Trainer(_cfg({**grown, "out": str(tmp_path / "g2")}))
    # a file whose backbone saw fewer pixels than the grown run's images have: no scale fits, D starts afresh
    meta, tensors = read_discriminator(disc)
    narrow = save_discriminator(tensors, tmp_path / "d_view32.safetensors",
                                model={**first["model"], "d_backbone_scale": 1}, class_names=meta["class_names"],
                                manifest_hash=meta["manifest_hash"], split=meta["split"], step=meta["step"],
                                generator_sha256=meta["generator_sha256"])
    grown["model"]["d_backbone_scale"] = 1
    grown["train"]["init_discriminator"] = str(narrow)
    with pytest.raises(ValueError, match="saw 32 px images, this grown run's sees 64 px.*start D afresh "
                                         "\\(train.init_discriminator: null\\)"):
        Trainer(_cfg({**grown, "out": str(tmp_path / "g3")}))
    # growing needs a file to grow
    bare = _recipe(tmp_path / "bare", folder, steps=2)
    bare["model"].update({"resolution": 64, "g_grown_from": 32})
    with pytest.raises(ValueError, match="model.g_grown_from 32 grows a trained generator"):
        Trainer(_cfg(bare))


def test_the_pilots_variants_differ_only_by_their_start_and_its_readme_answers_at_a_shared_point():
    from gan_augment.training import load_config
    from studies.grow128 import CONFIG, VARIANTS, overrides, study_markdown

    grow, scratch = (load_config(CONFIG, overrides(k)) for k in ("grow", "scratch"))
    assert grow.model.g_grown_from == 64 and grow.train.init_generator == "pretrained:ham10000-64-lite128-16k"
    assert scratch.model.g_grown_from is None and scratch.train.init_generator is None
    assert scratch.train.init_discriminator is None and grow.model.resolution == scratch.model.resolution == 128
    a, b = grow.to_dict(), scratch.to_dict()
    for d in (a, b):
        d["model"].pop("g_grown_from"), d["train"].pop("init_generator"), d["train"].pop("init_discriminator")
    assert a == b  # nothing else differs

    def point(cpu, fid, probe):
        return {"cpu_minutes": cpu, "step": 10, "overall": {"fid": fid, "kid": 0.01, "precision": 0.5, "recall": 0.4,
                                                            "c2st": probe}, "memorisation": {"p_value": 0.3}}

    study = {"points_cpu_minutes": [20.0, 40.0], "per_class": 50, "max_real_per_class": 200,
             "meta": {"commit": "abcdef123456789", "device": "cpu"},
             "floor": {"distribution": {"overall": {"fid": 40.0, "c2st": 0.55}}},
             "variants": {"grow": {"points": {"20": point(20.1, 70.0, 0.9), "40": point(40.2, 60.0, 0.85)}},
                          "scratch": {"points": {"20": point(20.3, 150.0, 0.99)}}}}
    text = study_markdown(study)
    assert "**Answer (at 20 CPU-minutes, the largest point both reached).** `grow` has the lower FID" in text
    assert "grow FID 70.0, probe 90 %; scratch FID 150.0, probe 99 %" in text and "FID 40.0, probe 55 %" in text
    assert "| grow | 40.2 | 10 | 60.0 | 10.0 | 0.50 | 0.40 | 85 | 0.300 |" in text
    assert "**Not yet run:** scratch @ 40." in text and set(VARIANTS) == {"grow", "scratch"}


def _fake_study_loop(monkeypatch, fids, probes=None):
    """A fake training loop and evaluation for the growing studies: FID (and probe, default 0.9) per (variant,
    CPU-minutes); the fade-in ends at step 1000 (CPU-minute 100). Returns the list of (variant, budget) trained."""
    import types

    import gan_augment.generators as generators
    import studies.gan_recipes as recipes
    import studies.grow128 as grow128

    trained: list[tuple[str, float]] = []
    now = {}

    def train_for_cpu(config, overrides, run_dir, budget, deadline, name):
        trained.append((name, budget))
        now[name] = budget
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        (run_dir / "checkpoints" / "ckpt_1.pt").write_bytes(b"")
        (run_dir / "generator.safetensors").write_text(f"{name} {budget:g}")
        return True

    def evaluate_point(key, run_dir, out_dir, cache_dir):
        probe = (probes or {}).get(key, {}).get(now[key], 0.9)
        return {"cpu_minutes": now[key] + 0.4, "step": int(now[key] * 10),
                "overall": {"fid": fids[key][now[key]], "kid": 0.01, "precision": 0.6, "recall": 0.5, "c2st": probe},
                "memorisation": {"p_value": 0.4, "flagged": False}}

    def collect(key, run_dir, dest, final):  # as gan_recipes' _collect: this point's panels beside its metrics
        (dest / f"eval_{final}").mkdir(parents=True, exist_ok=True)
        (dest / f"eval_{final}" / "samples_vs_real.jpg").write_bytes(b"jpg")

    monkeypatch.setattr(grow128, "settled_step", lambda key, spec=None: 1000 if key == "grow" else 0)
    monkeypatch.setattr(grow128, "train_for_cpu", train_for_cpu)
    monkeypatch.setattr(recipes, "evaluate_point", evaluate_point)
    monkeypatch.setattr(recipes, "_collect", collect)
    monkeypatch.setattr(recipes, "real_floor", lambda *a, **k: {"distribution": {"overall": {"fid": 50.0,
                                                                                              "c2st": 0.52}}})
    monkeypatch.setattr(generators, "load_generator", lambda path: types.SimpleNamespace(class_names=["a", "b"]))
    return trained


def test_the_pilots_leader_trains_on_while_its_fid_falls_and_stops_after_two_points_without(tmp_path, monkeypatch):
    import studies.grow128 as grow128

    assert grow128.settled_step("grow") == 16500 + 1000 and grow128.settled_step("scratch") == 0  # the real config
    # grow improves to 120 CPU-minutes and then stalls
    trained = _fake_study_loop(monkeypatch, {"grow": {20: 80, 40: 75, 60: 70, 90: 66, 120: 64, 150: 65, 180: 64.5,
                                                      210: 50},
                                             "scratch": {20: 120, 40: 110, 60: 100}})
    out, runs = tmp_path / "out", tmp_path / "runs"
    study = grow128.run_study(out, runs, time_limit_minutes=None, cache_dir=None, continue_to=240)
    assert trained[:6] == [("grow", 20), ("scratch", 20), ("grow", 40), ("scratch", 40), ("grow", 60),
                           ("scratch", 60)]
    assert trained[6:] == [("grow", 90), ("grow", 120), ("grow", 150), ("grow", 180)]  # 150, 180 above 64: stop
    assert grow128.leader(study) == "grow"
    assert study["continuation"] == {"variant": "grow", "every": 30.0, "to": 240.0, "settled_step": 1000,
                                     "stopped": "2 points without a lower FID at 180 CPU-min"}
    # points inside the fade-in never stop it: 20-60 without a lower FID than at 20, all before step 1000
    fading = {k: v for k, v in study["variants"]["grow"]["points"].items() if k in ("20", "40", "60")}
    for pt, fid in zip(fading.values(), (70, 75, 80)):
        pt["overall"]["fid"] = fid
    assert not grow128.stalled(fading, 1000) and grow128.stalled(fading, 0)
    text = (out / "README.md").read_text()
    assert "**Continued.** `grow` trained on past the pilot" in text
    assert "Its best point by FID: 120 CPU-minutes, step 1200: FID 64.0, probe 90 %" in text
    assert ("FID <= 1.5x the floor = 75.0, memorisation not flagged): not met (probe). Stopped: 2 points without a "
            "lower FID at 180 CPU-min.") in text
    assert "--continue-to 240" in text and "| grow | 180.4 | 1800 | 64.5 |" in text
    # each judged generator is kept beside its evaluation: the best (120) can be shipped after the last (180)
    assert (runs / "grow" / "eval_120" / "generator.safetensors").read_text() == "grow 120"
    assert (runs / "scratch" / "eval_60" / "generator.safetensors").read_text() == "scratch 60"
    # the committed folder keeps the image panels of each variant's last point only
    assert sorted(p.parent.name for p in out.rglob("samples_vs_real.jpg")) == ["eval_180", "eval_60"]

    # a rerun trains nothing more; a goal met stops the continuation at once
    trained.clear()
    grow128.run_study(out, runs, time_limit_minutes=None, cache_dir=None, continue_to=240)
    assert trained == []
    point = {"overall": {"fid": 74.0, "c2st": 0.8}, "memorisation": {"flagged": False}}
    assert grow128.goal(point, {"fid": 50.0}) == {"probe": True, "fid": True, "memorisation": True}
    assert grow128.goal({**point, "memorisation": {"flagged": True}}, {"fid": 50.0})["memorisation"] is False


def test_the_256_px_study_grows_the_shipped_128_px_file_and_gives_up_when_its_probe_stays_above_95(tmp_path,
                                                                                                    monkeypatch):
    """Route a at 256 px: one variant, the pilot's ~2 CPU-hours, continued every 60 CPU-minutes, stopped when no
    point's probe is below 95 % after 4 CPU-hours (issue #44), though its FID still falls."""
    from gan_augment.training import load_config
    from studies import grow128
    from studies.grow128 import G256, overrides

    cfg = load_config(G256.config, overrides("grow", G256))
    assert (cfg.model.resolution, cfg.model.g_grown_from, cfg.model.d_backbone_scale) == (256, 128, 1)
    assert (cfg.train.init_generator, cfg.train.init_discriminator) == ("pretrained:ham10000-128", None)
    shipped = json.loads((Path(gan_augment.__file__).parent / "pretrained" / "index.json").read_text())
    # the shipped 128 px file's step (its index entry) + the fade-in
    assert grow128.settled_step("grow", G256) == shipped["ham10000-128"]["step"] + 300 > 19000

    fids = {"grow": {30: 140, 60: 120, 120: 110, 180: 100, 240: 95, 300: 90}}
    trained = _fake_study_loop(monkeypatch, fids, probes={"grow": {30: 1.0, 60: 0.99, 120: 0.98, 180: 0.97,
                                                                    240: 0.96, 300: 0.9}})
    out, runs = tmp_path / "out", tmp_path / "runs"
    study = grow128.run_study(out, runs, time_limit_minutes=None, cache_dir=None, continue_to=360, spec=G256)
    assert trained == [("grow", 30), ("grow", 60), ("grow", 120), ("grow", 180), ("grow", 240)]
    assert study["continuation"]["stopped"] == "no probe below 95 % by 240 CPU-min at 240 CPU-min"
    text = (out / "README.md").read_text()
    assert text.startswith("# 256 px by growing the 128 px generator once more (route a)")
    assert "**Answer (at 240 CPU-minutes, the last point).** FID 95.0, probe 96 %; real training images at 256 px: "\
           "FID 50.0, probe 52 %" in text
    assert "Goal at 256 px (probe <= 80 %, memorisation not flagged): not met (probe). A point may be " \
           "shipped once its probe is <= 90 %, in place of the one shipped only if lower at two evaluation seeds." \
        in text
    assert "python benchmarks/studies/grow128.py --study grow256 --out " in text and "--continue-to 360" in text
    assert "| real training images (256 px floor) |" in text and "scratch" not in text
    # one point below 95 % before 240 CPU-minutes keeps it going (on to the FID rule)
    pts = {k: {**v, "overall": {**v["overall"], "c2st": 0.94 if k == "60" else 0.99}}
           for k, v in study["variants"]["grow"]["points"].items()}
    assert not grow128.given_up(pts, G256) and grow128.given_up(study["variants"]["grow"]["points"], G256)
    assert not grow128.given_up(study["variants"]["grow"]["points"], grow128.G128)  # 128 px: no such rule

def test_a_grown_generator_grows_again_from_its_faded_in_file(tmp_path):
    """128 -> 256 px starts from a file that was itself grown (here 32 -> 64 -> 128): its dead low path is dropped,
    its output layer becomes the new low path; a file still fading in is refused."""
    g32 = _small(32)
    first = save_generator(g32, tmp_path / "g32.safetensors", manifest_hash="m" * 64, split="train")
    g64 = _small(64, grown_from=32)
    warm_start(g64, str(first), ["a", "b", "c"])
    for p in g64.parameters():  # "trained" on after the fade-in
        p.data.add_(0.05 * torch.randn_like(p))
    half = save_generator(g64, tmp_path / "g64_fading.safetensors", manifest_hash="m" * 64, split="train")
    with pytest.raises(ValueError, match="still fading in its own last block \\(fade 0.00\\)"):
        warm_start(_small(128, grown_from=64), str(half), ["a", "b", "c"])
    with pytest.raises(ValueError, match="a grown generator still fading in .*resume its run from the checkpoint"):
        warm_start(_small(64, grown_from=32), str(half), ["a", "b", "c"])  # continued, not grown again
    g64.fade.fill_(1.0)
    done = save_generator(g64, tmp_path / "g64.safetensors", manifest_hash="m" * 64, split="train")
    G = _small(128, grown_from=64)
    record = warm_start(G, str(done), ["a", "b", "c"])
    assert record["grown_from"] == 64 and float(G.fade) == 0.0
    assert torch.equal(G.to_image_low.weight, g64.to_image.weight)  # not the 32 px path's layer
    z, y = torch.randn(4, 16), torch.tensor([0, 1, 2, 0])
    with torch.no_grad():
        assert torch.allclose(G.eval()(z, y), F.interpolate(g64.eval()(z, y), scale_factor=2, mode="nearest"),
                              atol=1e-6)
