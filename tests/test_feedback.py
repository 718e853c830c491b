"""FeedbackTopK: generated images chosen by a real-trained classifier's feedback (issue #43, item 3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from gan_augment.balanced import FeedbackTopK, GANBalancedDataset
from gan_augment.classifier_file import classifier_input
from gan_augment.models import create_generator


class _Toy(nn.Module):
    """A classifier whose features are each channel's mean and spread: easy to recompute by hand."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.head = nn.Linear(6, 3)

    def feat(self, x):
        return torch.cat([x.mean((2, 3)), x.std((2, 3))], 1)

    def forward(self, x):
        return self.head(self.feat(x))


def _features(model, x):
    return model.feat(x), model(x)


def _prep(u):
    return u.float() / 255


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    G = create_generator("resnet", resolution=32, num_classes=3, base_channels=4, z_dim=8).eval()
    G.class_names = ["a", "b", "c"]
    ref = {c: G.sample(20, c, seed=100 + c) for c in range(3)}
    return G, _Toy(), ref


def _expected(G, toy, ref, n, c, keep, seed):
    """The pick recomputed from its definition: draws in a real image's 3-NN ball first, least sure first; then
    the rest, closest to a ball first."""
    cand = G.sample(int(np.ceil(n / keep)), c, seed=seed)
    with torch.no_grad():
        f = nn.functional.normalize(toy.feat(_prep(cand)), dim=1).numpy()
        p = torch.softmax(toy(_prep(cand)), 1)[:, c].numpy()
        r = nn.functional.normalize(toy.feat(_prep(ref[c])), dim=1).numpy()
    rr = np.linalg.norm(r[:, None] - r[None], axis=2)
    radius = np.sort(rr, axis=1)[:, 3]
    ratio = (np.linalg.norm(f[:, None] - r[None], axis=2) / radius).min(1)
    inside = np.flatnonzero(ratio <= 1)
    outside = np.flatnonzero(ratio > 1)
    order = [*inside[np.argsort(p[inside], kind="stable")], *outside[np.argsort(ratio[outside], kind="stable")]]
    return cand, order[:n], len(inside), p


def test_the_pick_is_on_the_manifold_and_least_sure_first(setup):
    G, toy, ref = setup
    fb = FeedbackTopK(G, toy, 0.25, ref, preprocess=_prep, features=_features)
    out = fb.sample(10, "b", seed=0)
    cand, order, n_inside, p = _expected(G, toy, ref, 10, 1, 0.25, 0)
    assert n_inside == 36 and torch.equal(out, cand[order])  # 36 of 40 draws on the manifold: all 10 kept from them
    stats = fb.last_stats[1]
    assert stats["drawn"] == 40 and stats["on_manifold"] == 36 and stats["kept_on_manifold"] == 10
    assert stats["p_class_kept"] == pytest.approx(float(p[order].mean()), abs=1e-6)
    assert stats["p_class_kept"] < stats["p_class_drawn"]  # the least sure of the draws
    assert out.dtype == torch.uint8 and fb.meta["sampling"][-1] == {"method": "classifier_feedback_top_k",
                                                                    "keep": 0.25, "k": 3}
    # keep=1: the generator's own draws, reordered; the draws off the manifold come last, closest first
    every = FeedbackTopK(G, toy, 1.0, ref, preprocess=_prep, features=_features).sample(40, 1, seed=0)
    cand, order, n_inside, _ = _expected(G, toy, ref, 40, 1, 1.0, 0)
    assert sorted(order) == list(range(40)) and torch.equal(every, cand[order])
    assert torch.equal(every[:n_inside], cand[order[:n_inside]]) and n_inside < 40
    assert fb.sample(0, 1, seed=0).shape == (0, 3, 32, 32)
    floats = fb.sample(4, 1, seed=0, output="float")
    assert floats.dtype == torch.float32 and floats.min() >= -1 and floats.max() <= 1


def test_refusals_name_what_is_wrong(setup):
    G, toy, ref = setup
    kw = dict(preprocess=_prep, features=_features)
    with pytest.raises(ValueError, match="keep must be in"):
        FeedbackTopK(G, toy, 0.0, ref, **kw)
    with pytest.raises(ValueError, match="reference class 'z' is not one of"):
        FeedbackTopK(G, toy, 0.5, {"z": ref[0]}, **kw)
    with pytest.raises(ValueError, match="must be a uint8 tensor"):
        FeedbackTopK(G, toy, 0.5, {0: ref[0].float()}, **kw)
    fb = FeedbackTopK(G, toy, 0.5, {"a": ref[0], 2: ref[2][:1]}, **kw)
    with pytest.raises(ValueError, match="class 'c': FeedbackTopK needs at least 2 reference images of it \\(got 1\\)"):
        fb.sample(3, "c", seed=0)
    with pytest.raises(ValueError, match="class 'b'.*\\(got 0\\)"):
        fb.sample(3, 1, seed=0)
    # no image asked of a class without references (one that receives none): nothing to check against, no error
    assert fb.sample(0, "b", seed=0).shape == (0, 3, 32, 32)
    with pytest.raises(ValueError, match="picks within one class"):
        fb.sample(3, None)
    uncond = create_generator("resnet", resolution=32, num_classes=0, base_channels=4, z_dim=8)
    with pytest.raises(ValueError, match="class-conditional generator"):
        FeedbackTopK(uncond, toy, 0.5, {}, **kw)


def test_it_feeds_the_balanced_dataset_and_classifier_input_prepares_a_batch(setup):
    G, toy, ref = setup
    fb = FeedbackTopK(G, toy, 0.5, ref, preprocess=_prep, features=_features)

    class Real(torch.utils.data.Dataset):
        targets, classes = [0] * 8 + [1] * 3 + [2] * 2, ["a", "b", "c"]

        def __len__(self):
            return len(self.targets)

        def __getitem__(self, i):
            return np.zeros((32, 32, 3), np.uint8), self.targets[i]

    ds = GANBalancedDataset(Real(), fb, max_synthetic_fraction=None, device="cpu", seed=0)
    assert [ds.class_counts()[k]["synthetic"] for k in "abc"] == [0, 5, 6] and set(fb.last_stats) == {1, 2}
    prepare = classifier_input({"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "image_size": 16})
    x = prepare(torch.full((2, 1, 32, 32), 255, dtype=torch.uint8))  # grey, twice the size: resized, 3 channels
    assert x.shape == (2, 3, 16, 16) and torch.allclose(x, torch.full_like(x, 2.0))
