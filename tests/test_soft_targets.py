"""Generated images that teach: soft labels from a teacher, samples between two classes, and their real-image
controls (self-distillation, mixup)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from gan_augment.balanced import (BoundarySamples, GANBalancedDataset, MixupSamples, SoftTargets, boundary_pairs,
                                  teacher_probabilities)
from gan_augment.models import create_generator


def _generator(k=3, seed=0):
    """A small conditional generator whose classes differ (fresh ones start with equal class corrections)."""
    torch.manual_seed(seed)
    G = create_generator("fastgan", resolution=32, num_classes=k, base_channels=4)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith(("dgain.weight", "dbias.weight")):
                p.normal_(0, 0.5)
    return G


def test_conditioning_between_two_classes_ends_in_each_of_them():
    G = _generator()
    a = G.sample(4, 0, seed=7)
    b = G.sample(4, 2, seed=7)
    at_a, mix_a = G.sample_between(4, 0, 2, 0.0, seed=7)
    at_b, _ = G.sample_between(4, 0, 2, 1.0, seed=7)
    mid, mix = G.sample_between(4, 0, 2, [0.1, 0.2, 0.3, 0.4], seed=7)
    assert torch.equal(at_a, a) and torch.equal(at_b, b)
    assert mix_a.tolist() == [[1.0, 0.0, 0.0]] * 4
    assert torch.allclose(mix, torch.tensor([[0.9, 0, 0.1], [0.8, 0, 0.2], [0.7, 0, 0.3], [0.6, 0, 0.4]]))
    assert not torch.equal(a, b) and not torch.equal(mid, a) and not torch.equal(mid, b)
    with pytest.raises(ValueError, match="weight_b"):
        G.sample_between(2, 0, 1, 1.5)
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        G(torch.zeros(2, G.z_dim), torch.zeros(2, 2))


def test_soft_targets_mix_the_teachers_probabilities_with_the_hard_label():
    base = TensorDataset(torch.zeros(4, 3, 8, 8), torch.tensor([0, 1, 2, 1]))
    soft = {2: np.array([0.2, 0.2, 0.6], np.float32), 3: np.array([0.5, 0.5, 0.0], np.float32)}
    ds = SoftTargets(base, soft, 3, hard_weight=0.25)
    assert ds[0][1].tolist() == [1.0, 0.0, 0.0]
    assert torch.allclose(ds[2][1], torch.tensor([0.15, 0.15, 0.25 + 0.75 * 0.6]))
    assert torch.allclose(ds[3][1], torch.tensor([0.375, 0.625, 0.0]))
    # CrossEntropyLoss takes the vectors as they are: -sum(t * log_softmax(logits))
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    want = -(ds[3][1] * torch.log_softmax(logits, 1)).sum()
    assert torch.nn.CrossEntropyLoss()(logits, ds[3][1][None]).item() == pytest.approx(want.item())
    with pytest.raises(ValueError, match="not probability vectors"):
        SoftTargets(base, {0: np.array([0.5, 0.1, 0.1])}, 3)


def test_a_teachers_temperature_softens_its_labels():
    torch.manual_seed(0)
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 3))
    images = [torch.rand(3, 4, 4) * 5 for _ in range(6)]
    p1 = teacher_probabilities(teacher, images, lambda x: x, temperature=1.0)
    p4 = teacher_probabilities(teacher, images, lambda x: x, temperature=4.0)
    assert p1.shape == (6, 3) and np.allclose(p1.sum(1), 1, atol=1e-5)

    def entropy(p):
        return -(p * np.log(p)).sum(1)

    assert (entropy(p4) > entropy(p1)).all() and (p1.argmax(1) == p4.argmax(1)).all()


def test_synthetic_items_of_a_balanced_dataset_get_soft_labels_from_their_raw_images():
    real = TensorDataset(torch.randint(0, 256, (10, 3, 32, 32), dtype=torch.uint8), torch.tensor([0] * 8 + [1] * 2))
    G = _generator(k=2)
    bal = GANBalancedDataset(real, G, labels=[0] * 8 + [1] * 2, max_synthetic_fraction=None, device="cpu")
    synthetic = [i for i in range(len(bal)) if bal.is_synthetic(i)]
    raw = [bal.raw(i)[0] for i in synthetic]
    assert all(bal.raw(i)[1] == 1 for i in synthetic) and raw[0].dtype == torch.uint8
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 2))
    probs = teacher_probabilities(teacher, raw, lambda x: x.float() / 255)
    ds = SoftTargets(bal, dict(zip(synthetic, probs)), 2, hard_weight=0.5)
    assert ds[0][1].tolist() == [1.0, 0.0]  # real: one-hot
    assert torch.allclose(ds[synthetic[0]][1], 0.5 * torch.tensor([0.0, 1.0]) + 0.5 * torch.as_tensor(probs[0]))


def _coloured(n_per_class=(6, 3, 2)):
    """uint8 HWC images of one flat colour per class: class c has value 40 * (c + 1) everywhere."""
    images, labels = [], []
    for c, n in enumerate(n_per_class):
        images += [np.full((32, 32, 3), 40 * (c + 1), np.uint8)] * n
        labels += [c] * n

    class DS(torch.utils.data.Dataset):
        classes = ["a", "b", "c"]
        targets = labels

        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            return images[i], labels[i]

    return DS()


def test_boundary_samples_and_their_mixup_control_share_pairs_and_labels():
    base = _coloured()
    G = _generator()
    G.class_names = ["a", "b", "c"]
    bnd = BoundarySamples(base, G, rate=0.5, seed=3, weight_range=(0.1, 0.4))
    mix = MixupSamples(base, rate=0.5, seed=3, weight_range=(0.1, 0.4), num_classes=3)
    assert len(bnd) == len(mix) == 11 + 6 and bnd.pairs == mix.pairs
    assert bnd.pairs == boundary_pairs([0] * 6 + [1] * 3 + [2] * 2, 6, 3, seed=3, weight_range=(0.1, 0.4))
    for k, (a, b, w) in enumerate(bnd.pairs):
        target = bnd[11 + k][1]
        assert target.sum().item() == pytest.approx(1) and target[a].item() == pytest.approx(1 - w)
        assert torch.equal(target, mix[11 + k][1]) and a != b and 0.1 <= w <= 0.4
        image = mix[11 + k][0]  # the weighted mean of two flat colours
        assert image.shape == (32, 32, 3) and np.all(image == round((1 - w) * 40 * (a + 1) + w * 40 * (b + 1)))
    assert bnd[0][1].tolist() == [1.0, 0.0, 0.0] and bnd[11][0].shape == (32, 32, 3)
    # the class-balanced draw: every class is a first class of some pair
    assert {a for a, _, _ in boundary_pairs([0] * 50 + [1] * 2 + [2] * 2, 60, 3)} == {0, 1, 2}
    G.class_names = ["x", "y", "z"]
    with pytest.raises(ValueError, match="not the dataset's"):
        BoundarySamples(base, G, rate=0.5)
