"""``gan-augment serve``: the page, /classes, /sample (PNG and JSON), bad requests, bounded sampling."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
from PIL import Image

from gan_augment.generators import save_generator
from gan_augment.models import create_generator
from gan_augment.serve import create_app, grid_png

flask = pytest.importorskip("flask")


@pytest.fixture
def gen_file(tmp_path):
    torch.manual_seed(0)
    G = create_generator("dcgan", resolution=32, num_classes=3, channels=1, base_channels=4, z_dim=8)
    with torch.no_grad():  # an untrained DCGAN (weights N(0, 0.02)) draws flat grey in eval mode: give it contrast
        for p in G.parameters():
            p.normal_(0.0, 1.0)
    return save_generator(G, tmp_path / "g.safetensors", class_names=["glioma", "meningioma", "pituitary"],
                          manifest_hash="f" * 64, split="train", step=7)


@pytest.fixture
def client(gen_file):
    return create_app(gen_file, max_n=20, batch_size=4).test_client()


def _png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_classes_and_metadata(client):
    r = client.get("/classes")
    assert r.status_code == 200
    j = r.get_json()
    assert j["classes"] == ["glioma", "meningioma", "pituitary"] and j["resolution"] == 32 and j["channels"] == 1
    assert j["step"] == 7 and j["manifest_hash"] == "f" * 64 and j["max_n"] == 20


def test_sample_png_is_a_seeded_grid_of_n_images(client):
    r = client.get("/sample?class=meningioma&n=9&seed=3")
    assert r.status_code == 200 and r.mimetype == "image/png"
    img = _png(r.data)
    assert img.ndim == 2  # one channel stays grey
    assert img.shape == (3 * 34 + 2, 3 * 34 + 2)  # a 3x3 grid of 32 px images with 2 px padding
    assert r.data == client.get("/sample?class=meningioma&n=9&seed=3").data  # same seed, same images
    assert r.data != client.get("/sample?class=meningioma&n=9&seed=4").data
    assert r.data != client.get("/sample?class=glioma&n=9&seed=3").data


def test_sample_json_carries_the_same_png(client):
    j = client.get("/sample.json?class=glioma&n=4&seed=1").get_json()
    assert (j["class"], j["n"], j["seed"], j["resolution"]) == ("glioma", 4, 1, 32)
    png = base64.b64decode(j["png"].split(",", 1)[1])
    assert png == client.get("/sample?class=glioma&n=4&seed=1").data


@pytest.mark.parametrize("query,message", [
    ("class=df&n=4", "unknown class 'df'; classes are ['glioma', 'meningioma', 'pituitary']"),
    ("n=4", "class is required"),
    ("class=glioma&n=0", "n must be between 1 and 20, got 0"),
    ("class=glioma&n=100000", "n must be between 1 and 20, got 100000"),
    ("class=glioma&n=lots", "n must be an integer, got 'lots'"),
    ("class=glioma&seed=-1", "seed must be between 0"),
])
def test_bad_requests_answer_400_naming_the_parameter(client, query, message):
    r = client.get(f"/sample?{query}")
    assert r.status_code == 400 and message in r.get_json()["error"]


def test_sampling_is_batched(gen_file, monkeypatch):
    from gan_augment.models.base import GeneratorBase

    seen = []
    original = GeneratorBase.sample

    def spy(self, n, class_=None, **kw):
        seen.append(kw["batch_size"])
        return original(self, n, class_, **kw)

    monkeypatch.setattr(GeneratorBase, "sample", spy)
    client = create_app(gen_file, max_n=20, batch_size=4).test_client()
    assert client.get("/sample?class=glioma&n=20").status_code == 200
    assert seen == [4]


def test_page_has_the_picker_seed_and_grid(client):
    r = client.get("/?class=pituitary&seed=5&n=6")
    text = r.get_data(as_text=True)
    assert r.status_code == 200 and "<select" in text and 'value="pituitary" selected' in text
    assert 'id="seed"' in text and 'value="5"' in text and 'src="/sample?n=6&seed=5&class=pituitary"' in text
    assert client.get("/?class=<script>&n=2").status_code == 400
    assert "<script>" not in client.get("/?class=<script>&n=2").get_data(as_text=True)


def test_grid_png_layout():
    imgs = torch.zeros(5, 3, 8, 8, dtype=torch.uint8)
    arr = _png(grid_png(imgs, nrow=5))
    assert arr.shape == (8 + 4, 5 * 10 + 2, 3)
