"""Generated images that teach instead of copying their class: soft labels from a teacher, and samples between classes.

Hard-labelled generated images sit deep inside their class (the benchmark's classifiers recognise them far better
than the real images they stand in for) and teach little about where one class ends. Two ways to use them otherwise,
each with the control that isolates what the generated images add:

- :class:`SoftTargets` - a classifier trained on real images (the *teacher*) labels each generated image with its
  temperature-softened prediction, mixed with the hard label (knowledge distillation as He et al., ICLR 2023, use it
  for synthetic data). Control: the same soft labels on real images in the same places (self-distillation), which
  can help on its own.
- :class:`BoundarySamples` - extra items generated *between* two classes (the class conditioning mixed,
  :meth:`~gan_augment.models.base.GeneratorBase.sample_between`) and labelled with the same mix (the inter-class idea
  of Diff-Mix, Wang et al., CVPR 2024, with a GAN's conditioning instead of a diffusion edit; the label here is
  linear in the conditioning weight). Control: :class:`MixupSamples`, the same number of extra items made by mixing
  two real images (mixup, Zhang et al. 2018) with the same pairs and label rule.

Every item of these datasets is ``(image, target)`` with ``target`` a float vector over the classes (the one-hot
label where nothing is soft); ``torch.nn.CrossEntropyLoss`` takes such targets as they are (class weights
included), so a training loop needs no change beyond the dataset.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..data.transforms import apply_transform
from .items import ItemFormat
from .strategy import resolve_class_names, resolve_labels

__all__ = ["one_hot", "teacher_probabilities", "SoftTargets", "boundary_pairs", "BoundarySamples", "MixupSamples"]


def one_hot(label: int, num_classes: int) -> torch.Tensor:
    t = torch.zeros(num_classes)
    t[int(label)] = 1.0
    return t


@torch.no_grad()
def teacher_probabilities(teacher: torch.nn.Module, images: Sequence[Any], transform: Callable, *,
                          temperature: float = 1.0, batch_size: int = 64,
                          device: str | torch.device = "cpu") -> np.ndarray:
    """``softmax(teacher(transform(image)) / temperature)`` for each raw image, (N, K) float32. ``transform`` is the
    evaluation transform (resize, normalise: no augmentation)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    teacher = teacher.to(device).eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = torch.stack([torch.as_tensor(apply_transform(transform, im)) for im in images[i:i + batch_size]])
        out.append(torch.softmax(teacher(x.to(device)).float() / temperature, dim=1).cpu())
    return torch.cat(out).numpy().astype(np.float32) if out else np.zeros((0, 0), np.float32)


class SoftTargets(Dataset):
    """A dataset of ``(image, label[, ...])`` whose items become ``(image, target vector)``: one-hot, or for the
    indices in ``soft`` ``hard_weight * one_hot + (1 - hard_weight) * soft[index]`` (He et al. 2023 mix the
    distillation and hard-label terms; ``hard_weight=0`` is pure distillation).

    ``soft``: ``{index: probability vector}``, e.g. :func:`teacher_probabilities` of the synthetic items of a
    :class:`~gan_augment.balanced.GANBalancedDataset` (``dataset.raw(i)`` gives them untransformed) - or, for the
    self-distillation control, of real items. The wrapped dataset keeps its transform and its ``get_labels`` (for a
    sampler on top).
    """

    def __init__(self, dataset: Dataset, soft: dict[int, np.ndarray], num_classes: int, *, hard_weight: float = 0.5):
        if not 0.0 <= hard_weight <= 1.0:
            raise ValueError(f"hard_weight must be in [0, 1], got {hard_weight}")
        bad = [i for i, p in soft.items() if len(p) != num_classes or abs(float(np.sum(p)) - 1) > 1e-3]
        if bad:
            raise ValueError(f"soft labels of items {bad[:5]} are not probability vectors over {num_classes} classes")
        self.dataset, self.soft, self.num_classes, self.hard_weight = dataset, soft, num_classes, hard_weight

    def __len__(self) -> int:
        return len(self.dataset)

    def get_labels(self) -> list[int]:
        return list(self.dataset.get_labels()) if hasattr(self.dataset, "get_labels") else \
            resolve_labels(self.dataset).tolist()

    def __getitem__(self, index: int):
        image, label = self.dataset[index][:2]
        target = one_hot(label, self.num_classes)
        if index in self.soft:
            target = self.hard_weight * target + (1 - self.hard_weight) * torch.as_tensor(self.soft[index])
        return image, target


def boundary_pairs(labels: Sequence[int], n: int, num_classes: int, *, seed: int = 0,
                   weight_range: tuple[float, float] = (0.0, 0.5)) -> list[tuple[int, int, float]]:
    """``n`` (class a, class b, weight of b): a drawn class-balanced among the classes present (so rare classes
    get as many boundary samples as common ones), b uniformly among the others, the weight uniform in
    ``weight_range`` (below 0.5: the sample stays on a's side of the boundary)."""
    present = sorted(set(int(y) for y in labels))
    if len(present) < 2:
        raise ValueError("boundary samples need at least two classes")
    lo, hi = weight_range
    if not 0 <= lo <= hi <= 1:
        raise ValueError(f"weight_range must be within [0, 1], got {weight_range}")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a = int(rng.choice(present))
        b = int(rng.choice([c for c in present if c != a]))
        out.append((a, b, float(rng.uniform(lo, hi))))
    return out


class _ExtraItems(Dataset):
    """The base dataset's items (one-hot targets) followed by extra items with soft targets."""

    def __init__(self, base: Dataset, extra: list[tuple[Any, torch.Tensor]], num_classes: int, labels,
                 transform: Callable | None):
        self.base, self.extra, self.num_classes, self.transform = base, extra, num_classes, transform
        self.labels = labels

    def __len__(self) -> int:
        return len(self.base) + len(self.extra)

    def get_labels(self) -> list[int]:
        """Each item's main class (the extra items': their larger share), for a sampler on top."""
        return list(self.labels) + [int(t.argmax()) for _, t in self.extra]

    def __getitem__(self, index: int):
        if index < len(self.base):
            image, label = self.base[index][:2]
            return apply_transform(self.transform, image), one_hot(label, self.num_classes)
        image, target = self.extra[index - len(self.base)]
        return apply_transform(self.transform, image), target.clone()


class BoundarySamples(_ExtraItems):
    """``base`` (raw images, labels) plus ``round(rate * len(base))`` generated items between two classes, made once
    (seeded): :func:`boundary_pairs`, each drawn with ``generator.sample_between`` and labelled with its class
    weights. The generator's classes must be the dataset's (same order); images take the real items' type, size and
    mode, and ``transform`` is applied to every item."""

    def __init__(self, base: Dataset, generator, *, rate: float = 0.1, weight_range=(0.0, 0.5), seed: int = 0,
                 transform: Callable | None = None, classes: Sequence[str] | None = None, batch_size: int = 64,
                 device: str | torch.device = "cpu", labels: Sequence[int] | None = None):
        if rate < 0:
            raise ValueError(f"rate must be >= 0, got {rate}")
        labels = resolve_labels(base, labels)
        names = resolve_class_names(base, classes, int(labels.max()) + 1)
        gnames = list(getattr(generator, "class_names", None) or [])
        if gnames and gnames != list(names):
            raise ValueError(f"the generator's classes {gnames} are not the dataset's {list(names)} (same order)")
        k = generator.num_classes
        fmt = ItemFormat(base[0][0])
        pairs = boundary_pairs(labels, int(round(rate * len(base))), k, seed=seed, weight_range=weight_range)
        extra = []
        for i, (a, b, w) in enumerate(pairs):
            images, mix = generator.sample_between(1, a, b, w, seed=seed * 1_000_003 + i, device=device,
                                                   batch_size=batch_size)
            extra.append((fmt.from_uint8(fmt.to_storage(images)[0]), mix[0]))
        self.pairs = pairs
        super().__init__(base, extra, k, labels.tolist(), transform)


class MixupSamples(_ExtraItems):
    """The control of :class:`BoundarySamples`: the same extra items made from real images - for each (a, b, w) of
    :func:`boundary_pairs` (same seed: same pairs), ``(1 - w) * an image of a + w * an image of b`` (mixup), labelled
    ``(1 - w) * a + w * b``."""

    def __init__(self, base: Dataset, *, rate: float = 0.1, weight_range=(0.0, 0.5), seed: int = 0,
                 transform: Callable | None = None, num_classes: int | None = None,
                 labels: Sequence[int] | None = None):
        if rate < 0:
            raise ValueError(f"rate must be >= 0, got {rate}")
        labels = resolve_labels(base, labels)
        k = num_classes or int(labels.max()) + 1
        fmt = ItemFormat(base[0][0])
        pairs = boundary_pairs(labels, int(round(rate * len(base))), k, seed=seed, weight_range=weight_range)
        rng = np.random.default_rng(seed + 1)
        by_class = {c: np.flatnonzero(labels == c) for c in set(labels.tolist())}
        extra = []
        for a, b, w in pairs:
            xa, xb = (_uint8_hwc(fmt, base[int(rng.choice(by_class[c]))][0]) for c in (a, b))
            mixed = np.clip(np.rint((1 - w) * xa.astype(np.float32) + w * xb.astype(np.float32)), 0, 255)
            target = torch.zeros(k)
            target[a] += 1 - w
            target[b] += w
            extra.append((fmt.from_uint8(mixed.astype(np.uint8)), target))
        self.pairs = pairs
        super().__init__(base, extra, k, labels.tolist(), transform)


def _uint8_hwc(fmt: ItemFormat, image: Any) -> np.ndarray:
    if fmt.kind == "pil":
        a = np.asarray(image, dtype=np.uint8)
    elif fmt.kind == "numpy":
        a = np.asarray(image)
    else:
        t = image.float() * 255 if image.is_floating_point() else image.float()
        a = t.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    return a[:, :, None] if a.ndim == 2 else a
