"""The cascade (a generator + a learned 2x upsampler as one generator file) and the upsampler's trainer."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gan_augment.generators import load_generator, read_generator_metadata, save_generator
from gan_augment.models import create_generator
from gan_augment.models.cascade import CascadeGenerator, PatchDiscriminator, Upsampler2x, cascade_generator
from gan_augment.training.upsampler import UpsamplerConfig, UpsamplerTrainer


def _base(num_classes: int = 3) -> torch.nn.Module:
    torch.manual_seed(0)
    G = create_generator("fastgan", resolution=32, num_classes=num_classes, base_channels=4, z_dim=8).eval()
    G.class_names = ["a", "b", "c"][:num_classes]
    return G


def _bicubic(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False).clamp(-1, 1)


def test_untrained_upsampler_is_bicubic_and_every_part_gets_a_gradient():
    torch.manual_seed(0)
    up = Upsampler2x(channels=3, width=8, blocks=2)
    x = torch.rand(2, 3, 12, 10) * 2 - 1
    assert torch.equal(up(x), _bicubic(x))  # zero-initialised residual: exactly bicubic at the start
    torch.nn.init.normal_(up.out.weight, std=0.01)  # once the output layer moves, the residual reaches the image
    up(x).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in up.parameters())
    D = PatchDiscriminator(channels=3, width=8, layers=3)
    assert D(torch.zeros(2, 3, 32, 32), torch.zeros(2, 3, 16, 16)).shape == (2, 1, 4, 4)
    with pytest.raises(ValueError, match="twice"):
        D(torch.zeros(2, 3, 32, 32), torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"expects \(N, 3, H, W\)"):
        up(torch.zeros(2, 1, 8, 8))


def test_cascade_samples_the_base_images_at_twice_the_size_and_round_trips(tmp_path):
    G = _base()
    torch.manual_seed(1)
    up = Upsampler2x(channels=3, width=8, blocks=1)
    torch.nn.init.normal_(up.out.weight, std=0.05)
    cascade = cascade_generator(G, up)
    assert isinstance(cascade, CascadeGenerator) and cascade.arch == "cascade"
    assert (cascade.resolution, cascade.z_dim, cascade.class_names) == (64, 8, ["a", "b", "c"])
    small = G.sample(5, "b", seed=3, output="float")
    big = cascade.sample(5, "b", seed=3, output="float")
    assert big.shape == (5, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(big, up.eval()(small), atol=1e-5)  # same latents as the base generator's
    # between classes too (boundary samples)
    mixed, labels = cascade.sample_between(2, "a", "c", 0.3, seed=1, output="float")
    assert mixed.shape == (2, 3, 64, 64) and torch.allclose(labels[0], torch.tensor([0.7, 0.0, 0.3]))

    path = save_generator(cascade, tmp_path / "cascade.safetensors", manifest_hash="abc", split="train", step=7)
    meta = read_generator_metadata(path)
    assert meta["arch"] == "cascade" and meta["resolution"] == 64
    assert meta["arch_args"]["base_arch"] == "fastgan" and meta["arch_args"]["base_args"]["resolution"] == 32
    loaded = load_generator(path)
    assert torch.equal(loaded.sample(5, "b", seed=3), cascade.sample(5, "b", seed=3))


def test_cascade_refuses_what_it_cannot_build():
    with pytest.raises(ValueError, match="doubles its base's resolution: base 32 px -> 64 px"):
        create_generator("cascade", resolution=128, num_classes=3, base_arch="fastgan",
                         base_args={"resolution": 32, "num_classes": 3, "channels": 3, "base_channels": 4})
    with pytest.raises(ValueError, match="cannot itself be a cascade"):
        create_generator("cascade", resolution=64, base_arch="cascade", base_args={})
    with pytest.raises(ValueError, match="must be the base's"):
        create_generator("cascade", resolution=64, num_classes=2, base_arch="fastgan",
                         base_args={"resolution": 32, "num_classes": 3, "channels": 3, "base_channels": 4})
    with pytest.raises(ValueError, match="upsampler has 1 channels"):
        cascade_generator(_base(), Upsampler2x(channels=1, width=4, blocks=0))


def _pairs(n: int = 24, side: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Blocky images: the large one is the small one with every pixel repeated 2x2, which bicubic upsampling blurs
    and a learned upsampler can reproduce exactly."""
    g = torch.Generator().manual_seed(0)
    small = torch.randint(0, 256, (n, 3, side, side), generator=g, dtype=torch.uint8)
    return small, small.repeat_interleave(2, -2).repeat_interleave(2, -1)


def test_batches_are_a_function_of_seed_and_step_with_aligned_crops():
    small, large = _pairs()
    trainer = UpsamplerTrainer(small, large, UpsamplerConfig(batch_size=4, crop=8, seed=5))
    s, l = trainer.batch(3)
    assert s.shape == (4, 3, 4, 4) and l.shape == (4, 3, 8, 8)
    assert torch.equal(l, s.repeat_interleave(2, -2).repeat_interleave(2, -1))  # the crops cover the same place
    again = UpsamplerTrainer(small, large, UpsamplerConfig(batch_size=4, crop=8, seed=5)).batch(3)
    assert torch.equal(again[0], s) and not torch.equal(trainer.batch(4)[0], s)
    with pytest.raises(ValueError, match="crop must be even"):
        UpsamplerTrainer(small, large, UpsamplerConfig(crop=7))
    with pytest.raises(ValueError, match="twice the size"):
        UpsamplerTrainer(small, large[..., :15, :15])
    with pytest.raises(ValueError, match="uint8"):
        UpsamplerTrainer(small.float(), large)


def test_training_beats_bicubic_on_held_out_pairs_and_leaves_the_global_rng_alone():
    small, large = _pairs(40)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    trainer = UpsamplerTrainer(small[:32], large[:32], UpsamplerConfig(width=8, blocks=1, batch_size=8, crop=None,
                                                                       lr=3e-3, adv_weight=0.0))
    assert torch.equal(torch.rand(1), before)
    start = trainer.evaluate_l1(small[32:], large[32:])
    assert start["l1_grey_levels"] == pytest.approx(start["bicubic_l1_grey_levels"], rel=1e-4)
    assert trainer.train(60) == "steps" and trainer.step == 60
    end = trainer.evaluate_l1(small[32:], large[32:])
    assert end["l1_grey_levels"] < 0.5 * end["bicubic_l1_grey_levels"], end  # 0.27 here


def test_resume_from_a_checkpoint_gives_the_uninterrupted_weights(tmp_path):
    small, large = _pairs()
    cfg = UpsamplerConfig(width=8, blocks=1, d_width=8, d_layers=2, batch_size=4, crop=8, seed=1)
    straight = UpsamplerTrainer(small, large, cfg)
    straight.train(6, log_every=2)
    first = UpsamplerTrainer(small, large, cfg)
    assert first.train(6, cpu_limit_s=0.0) == "cpu" and first.step == 0
    first.train(3, log_every=2)
    path = first.save(tmp_path / "up.pt")
    resumed = UpsamplerTrainer(small, large, cfg)
    resumed.load(path)
    assert resumed.step == 3 and resumed.train(6, log_every=2) == "steps"
    for a, b in zip(straight.up.state_dict().values(), resumed.up.state_dict().values()):
        assert torch.equal(a, b)
    assert [r["step"] for r in resumed.log] == [0, 2, 4] and "d_loss" in resumed.log[0]
    other = UpsamplerTrainer(small, large, UpsamplerConfig(width=8, blocks=1, d_width=8, d_layers=2, batch_size=4,
                                                           crop=8, seed=2))
    with pytest.raises(ValueError, match=r"another configuration; differing keys: \['seed'\]"):
        other.load(path)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot load upsampler checkpoint"):
        other.load(tmp_path / "junk.pt")


def test_the_studys_pairs_come_from_the_base_generators_split_only_and_its_readme_answers(tmp_path):
    import yaml
    from gan_augment.data import build_manifest
    from studies.cascade import image_pairs, study_markdown

    from .conftest import make_image_folder

    folder = make_image_folder(tmp_path / "imgs", {"a": 14, "b": 8, "c": 6}, size=(36, 32))
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"out": str(tmp_path / "run"), "data": {
        "image_folder": str(folder), "fractions": [0.6, 0.2, 0.2], "channels": 3, "resize": "squash"},
        "model": {"generator": "fastgan", "discriminator": "dcgan", "resolution": 32}}))
    manifest, _ = build_manifest(image_folder=str(folder), fractions=[0.6, 0.2, 0.2], seed=0)
    meta = {"resolution": 16, "manifest_hash": manifest.hash, "class_names": ["a", "b", "c"]}
    small, large, path = image_pairs(config, meta, "train", tmp_path / "runs")
    n_train = sum(s == "train" for s in manifest.splits)
    assert small.shape == (n_train, 3, 16, 16) and large.shape == (n_train, 3, 32, 32) and path.is_file()
    # the same files at both sizes: the large image shrunk is close to the small one
    shrunk = F.interpolate(large.float(), scale_factor=0.5, mode="area")
    assert (shrunk - small.float()).abs().mean() < 8
    val = image_pairs(config, meta, "val", tmp_path / "runs", max_images=3)
    assert len(val[0]) == 3
    with pytest.raises(ValueError, match="is not the one the base generator was trained on"):
        image_pairs(config, {**meta, "manifest_hash": "0" * 64}, "train", tmp_path / "runs")
    with pytest.raises(ValueError, match="differ from the base generator's"):
        image_pairs(config, {**meta, "class_names": ["a", "b", "x"]}, "train", tmp_path / "runs")

    def point(fid, c2st, l1):
        return {"step": 10, "l1_val": l1, "overall": {"fid": fid, "kid": 0.01, "precision": 0.5, "recall": 0.4,
                                                       "c2st": c2st}, "memorisation": {"p_value": 0.6}}

    study = {"base": "pretrained:x", "resolution": 128, "points_cpu_minutes": [0, 10, 30], "per_class": 50,
             "max_real_per_class": 200, "val_pairs": 300, "bicubic_l1": 6.0, "upsampler": {"width": 32},
             "points": {"0": point(80.0, 0.95, 6.0)},
             "floor": {"distribution": {"overall": {"fid": 40.0, "c2st": 0.55}}}}
    assert "Not yet" in study_markdown(study, "out")
    study["points"]["10"] = point(60.0, 0.85, 5.0)
    text = study_markdown(study, "out")
    assert ("**Answer (at 10 CPU-minutes of upsampler training).** FID 60.0 against 80.0 bicubic, probe 85 % "
            "against 95 %") in text
    assert "| 0 (bicubic) | 10 | 6.00 | 80.0 |" in text and "**Not yet measured:** 30 CPU-minutes." in text
    # its command names what differs from the defaults (the 256 px route: another base and other points)
    assert "cascade.py --out out --time-limit-minutes 170 --base pretrained:x --points 0,10,30\n" in text
    default = {**study, "base": "pretrained:ham10000-64-lite128-16k", "points_cpu_minutes": [0.0, 10.0, 30.0, 60.0],
               "config": "configs/ham10000_128_grow.yaml"}
    assert "cascade.py --out out --time-limit-minutes 170\n" in study_markdown(default, "out")
    lower = {**default, "upsampler": {"width": 32, "adv_weight": 0.1}}  # another adversarial weight is named
    assert "cascade.py --out out --time-limit-minutes 170 --adv-weight 0.1\n" in study_markdown(lower, "out")


def _toy_study(tmp_path, counts: dict[str, int], step: int):
    """A study's inputs at toy scale: a config over an image folder (32 px), its split manifest and a 16 px
    generator trained (``step``) on that split."""
    import yaml
    from gan_augment.data import build_manifest

    from .conftest import make_image_folder

    folder = make_image_folder(tmp_path / "imgs", counts, size=(36, 32))
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"out": str(tmp_path / "run"), "data": {
        "image_folder": str(folder), "fractions": [0.6, 0.2, 0.2], "channels": 3},
        "model": {"generator": "fastgan", "discriminator": "dcgan", "resolution": 32}}))
    manifest, _ = build_manifest(image_folder=str(folder), fractions=[0.6, 0.2, 0.2], seed=0)
    torch.manual_seed(0)
    G = create_generator("dcgan", resolution=16, num_classes=len(counts), base_channels=4, z_dim=8)
    base = save_generator(G, tmp_path / "g16.safetensors", class_names=list(counts), manifest_hash=manifest.hash,
                          split="train", step=step)
    return config, manifest, base


def test_the_study_evaluates_each_point_of_cpu_time_and_resumes(tmp_path, monkeypatch):
    import json

    from gan_augment.training.upsampler import UpsamplerConfig
    from studies import cascade, gan_recipes

    config, manifest, base = _toy_study(tmp_path, {"a": 10, "b": 6, "c": 5}, step=5)
    seen = []

    def fake_point(gen, manifest_path, out_dir, cache_dir):  # the Inception protocol is tested elsewhere
        g = load_generator(gen)
        seen.append((g.resolution, g.meta["step"], g.meta["cascade"]["base_step"]))
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "metrics.json").write_text("{}")
        return {"overall": {"fid": 100.0 - g.meta["step"], "c2st": 0.9}, "memorisation": {"p_value": 0.5}}

    monkeypatch.setattr(gan_recipes, "generator_point", fake_point)
    monkeypatch.setattr(gan_recipes, "real_floor", lambda *a, **k: {"distribution": {"overall": {"fid": 1.0}}})
    up = UpsamplerConfig(width=4, blocks=1, d_width=4, d_layers=2, batch_size=2, crop=16)
    kw = dict(base=str(base), config=config, time_limit_minutes=None, cache_dir=None, up_cfg=up)
    out, runs = tmp_path / "out", tmp_path / "runs"
    study = cascade.run_study(out, runs, points=(0.0, 0.002), **kw)
    assert seen[0] == (32, 0, 5) and seen[1][1] > 0 and list(study["points"]) == ["0", "0.002"]
    assert study["points"]["0.002"]["cpu_minutes"] >= 0.002 and (out / "eval_0" / "metrics.json").is_file()
    assert json.loads((out / "study.json").read_text())["resolution"] == 32
    assert "**Answer (at 0.002 CPU-minutes" in (out / "README.md").read_text()
    step = study["points"]["0.002"]["step"]
    # each judged file is kept beside its evaluation with what shipping it takes (ga_bench.ship_generator)
    ev = runs / "eval_0.002"
    summary = json.loads((ev / "train_summary.json").read_text())
    assert summary["step"] == step == load_generator(ev / "generator.safetensors").meta["step"]
    assert summary["trained"] == "upsampler" and summary["train_images"] == 12 and summary["elapsed_s_total"] is None
    assert summary["cpu_s_total"] == pytest.approx(60 * study["points"]["0.002"]["cpu_minutes"])
    assert (ev / "samples_per_class.jpg").stat().st_size > 1000 and (ev / "loss_curves.png").stat().st_size > 1000
    assert load_generator(runs / "eval_0" / "generator.safetensors").meta["step"] == 0
    study = cascade.run_study(out, runs, points=(0.0, 0.002, 0.004), **kw)  # finished points kept, training resumed
    # (CPU time decides the step counts: one slow step may already pass 0.004 minutes, so >= not >)
    assert len(seen) == 3 and study["points"]["0.004"]["step"] >= step
    assert study["points"]["0.004"]["cpu_minutes"] >= 0.004 and study["points"]["0"]["step"] == 0
    (runs / "upsampler.pt").unlink()  # another machine: the trained points go, bicubic (point 0) stays
    study = cascade.run_study(out, runs, points=(0.0, 0.002), **kw)
    assert len(seen) == 4 and seen[3][1] > 0 and list(study["points"]) == ["0", "0.002"]
    # one folder, one upsampler configuration: another adversarial weight is refused before anything is trained
    before = (out / "study.json").read_text()
    with pytest.raises(ValueError, match=r"study.json: its points were measured with another upsampler "
                                         r"configuration \(differing: adv_weight\)"):
        cascade.run_study(out, runs, points=(0.0, 0.002), adv_weight=0.1, **kw)
    assert len(seen) == 4 and (out / "study.json").read_text() == before


def test_a_cascade_file_feeds_the_balanced_dataset_at_its_own_resolution(tmp_path):
    import warnings

    from gan_augment import GANBalancedDataset

    from .test_balanced import NAMES, PILDataset

    torch.manual_seed(0)
    base = create_generator("resnet", resolution=32, num_classes=3, base_channels=4, z_dim=8)
    base.class_names = list(NAMES)
    path = save_generator(cascade_generator(base, Upsampler2x(channels=3, width=4, blocks=1)),
                          tmp_path / "c64.safetensors")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 64 px real images, a 64 px cascade: nothing resized, nothing to say
        ds = GANBalancedDataset(PILDataset(size=(64, 64)), str(path), device="cpu")
    assert len(ds) > len(PILDataset()) and ds[len(ds) - 1][0].size == (64, 64)  # a synthetic item, at 64 px
    with pytest.warns(UserWarning, match="the generator makes 64 px images and the real images are 32x32"):
        GANBalancedDataset(PILDataset(size=(32, 32)), str(path), device="cpu")


def test_a_judged_cascade_point_ships_with_a_card_that_says_what_was_trained(tmp_path, monkeypatch):
    import json

    from ga_bench.ship_generator import ship
    from gan_augment import pretrained as pt
    from gan_augment.training.upsampler import UpsamplerConfig
    from studies import cascade, gan_recipes

    config, manifest, base = _toy_study(tmp_path, {"a": 6, "b": 5}, step=7)
    block = {"fid": 80.0, "kid": 0.02, "precision": 0.7, "recall": 0.5, "c2st": 0.88}

    def fake_point(gen, manifest_path, out_dir, cache_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "metrics.json").write_text(json.dumps({
            "generator": {"manifest_hash": manifest.hash, "path": str(gen), "step": load_generator(gen).meta["step"]},
            "distribution": {"inception": {"overall": block, "per_class": {"a": block, "b": block}}}}))
        return {"overall": block}

    monkeypatch.setattr(gan_recipes, "generator_point", fake_point)
    monkeypatch.setattr(gan_recipes, "real_floor", lambda *a, **k: {"distribution": {"overall": {"fid": 1.0}}})
    up = UpsamplerConfig(width=4, blocks=1, d_width=4, d_layers=2, batch_size=2, crop=16)
    out, runs = tmp_path / "out", tmp_path / "runs"
    cascade.run_study(out, runs, base=str(base), config=config, time_limit_minutes=None, cache_dir=None,
                      points=(0.002,), up_cfg=up)
    ev = runs / "eval_0.002"
    meta = load_generator(ev / "generator.safetensors").meta
    assert meta["cascade"]["base_sha256"] == pt.file_sha256(base)
    # the evidence written again from the checkpoint's log (a point measured before the study wrote it)
    first = json.loads((ev / "train_summary.json").read_text())
    (ev / "train_summary.json").unlink()
    (ev / "loss_curves.png").unlink()
    assert cascade.main(["--out", str(out), "--runs-dir", str(runs), "--evidence-for", "0.002"]) == 0
    assert json.loads((ev / "train_summary.json").read_text()) == first and (ev / "loss_curves.png").is_file()
    from gan_augment.plots import plot_loss_log

    with pytest.raises(ValueError, match="no numeric series to plot"):  # bookkeeping keys only: nothing drawn
        plot_loss_log([{"step": 0, "cpu_s": 1.0}], tmp_path / "empty.png")
    assert not (tmp_path / "empty.png").exists()
    with pytest.raises(SystemExit):  # an unmeasured point
        cascade.main(["--out", str(out), "--runs-dir", str(runs), "--evidence-for", "5"])
    with pytest.raises(SystemExit):  # a negative adversarial weight, refused before any work
        cascade.main(["--out", str(tmp_path / "neg"), "--adv-weight", "-1"])
    assert not (tmp_path / "neg").exists()

    dest = tmp_path / "pretrained"
    path = ship(ev, "toy-cascade-32", ev / "metrics.json", dest=dest, evidence=tmp_path / "evidence")
    card = pt.model_card("toy-cascade-32", root=dest)
    assert card.startswith("# `toy-cascade-32`: cascade generator, 32 px, 2 classes")
    assert (f"- **Cascade**: the 16 px generator `{meta['cascade']['base']}` (step 7, sha256 "
            f"`{pt.file_sha256(base)[:12]}`, used as it is, embedded in this file)") in card
    assert f"- **Training** (the upsampler only): {meta['step']} steps, 0.0 CPU-hours on cpu" in card
    assert "h wall" not in card and "16 -> 32 px pairs (crops of 16 px, batch 2;" in card
    assert "| this generator | 80.0 | 20.0 | 0.70 | 0.50 | 88 % |" in card and "Ships its discriminator" not in card
    for name in ("samples_per_class.jpg", "loss_curves.png", "train_summary.json", "metrics.json"):
        assert (tmp_path / "evidence" / name).is_file()
    G = pt.load_pretrained("toy-cascade-32", root=dest)
    assert G.resolution == 32 and torch.equal(G.sample(2, "b", seed=0), load_generator(path).sample(2, 1, seed=0))


def test_the_best_point_is_the_lowest_probe_with_fid_breaking_ties_within_one_point():
    from studies.cascade import best_point

    def pts(**kw):
        return {k.lstrip("p"): {"overall": {"c2st": c, "fid": f}} for k, (c, f) in kw.items()}

    points = pts(p0=(0.80, 70.0), p30=(0.879, 75.8), p60=(0.93, 70.0), p90=(0.884, 74.5))
    assert best_point(points, ["0", "30", "60", "90"]) == "90"  # 88 % both; 75.8 is more than 1 above 74.5
    points["90"]["overall"]["fid"] = 75.0
    assert best_point(points, ["0", "30", "60", "90"]) == "30"  # within 1: the earlier point
    assert best_point(points, ["0", "60"]) == "60" and best_point(points, ["0"]) is None  # bicubic never counts
