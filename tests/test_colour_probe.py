"""The colour probe study: the shipped generators' images judged on per-image colour statistics alone."""

from __future__ import annotations

import pytest
import torch

from studies.colour_probe import colour_markdown, colour_probe
from gan_augment.data import scan_image_folder, split_scan
from gan_augment.generators import save_generator
from gan_augment.models import create_generator
from .conftest import make_image_folder


def _generator(path, classes, manifest, seed):
    torch.manual_seed(seed)
    G = create_generator("resnet", resolution=32, num_classes=len(classes), base_channels=4, z_dim=8)
    G.class_names = list(classes)
    return str(save_generator(G, path, manifest_hash=manifest.hash, split="train", step=0))


def test_colour_probe_rows_for_the_floor_and_each_generator_and_a_report_that_reads_them(tmp_path):
    folder = make_image_folder(tmp_path / "imgs", {"a": 16, "b": 16}, size=(40, 40))
    manifest = split_scan(scan_image_folder(folder), (0.5, 0.5), seed=0, names=("train", "val"))
    mpath = manifest.write(tmp_path / "manifest.csv")
    g1 = _generator(tmp_path / "g1.safetensors", ["a", "b"], manifest, 0)
    g2 = _generator(tmp_path / "g2.safetensors", ["a", "b"], manifest, 1)
    r = colour_probe(mpath, [g1, g2], [0, 1])
    assert list(r["rows"]) == ["real training images (the floor)", g1, g2]
    for by_seed in r["rows"].values():
        assert set(by_seed) == {"0", "1"}
        for v in by_seed.values():
            assert 0 <= v["probe"] <= 1 and set(v["per_class_probe"]) == {"a", "b"}
            assert set(v["generated_minus_real"]) == {"R", "G", "B"}
    # an untrained generator's images are nothing like the folder's: colour alone gives them away
    assert min(v["probe"] for v in r["rows"][g1].values()) > 0.9
    assert r["rows"][g1]["0"]["n_fake"] == 2 * r["per_class_generated"]
    md = colour_markdown(r)
    assert "| real training images (the floor) |" in md and f"| {g1} |" in md and "**Reading.**" in md
    assert "| colour probe per class (eval seed 0 / 1) | a | b |" in md
    other = _generator(tmp_path / "g3.safetensors", ["b", "a"], manifest, 2)
    with pytest.raises(ValueError, match="do not share one class list"):
        colour_probe(mpath, [g1, other], [0])
