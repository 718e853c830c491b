"""Seeded, stratified subsets of a split (the benchmark's 25 % regime, MedGAN's 160 images)."""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np

__all__ = ["stratified_subset", "per_class_cap"]


def stratified_subset(labels: Sequence, *, fraction: float | None = None, max_images: int | None = None,
                      seed: int = 0) -> list[int]:
    """Indices of a class-stratified random subset; every class keeps at least one image.

    ``fraction`` keeps ``round(fraction * n_c)`` of each class (imbalance kept); ``max_images`` keeps at most
    that many in total, allocated in proportion to class sizes (largest remainders). Both may be given.
    """
    if fraction is not None and not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if max_images is not None and max_images < 1:
        raise ValueError(f"max_images must be >= 1, got {max_images}")
    by_class: dict = defaultdict(list)
    for i, y in enumerate(labels):
        by_class[y].append(i)
    classes = sorted(by_class, key=str)
    rng = np.random.default_rng(seed)
    order = {c: list(rng.permutation(by_class[c])) for c in classes}
    keep = {c: len(order[c]) for c in classes}
    if fraction is not None:
        keep = {c: max(1, int(round(fraction * n))) for c, n in keep.items()}
    total = sum(keep.values())
    if max_images is not None and max_images < total:
        if max_images < len(classes):
            raise ValueError(f"max_images={max_images} is fewer than the {len(classes)} classes")
        raw = {c: max_images * n / total for c, n in keep.items()}
        alloc = {c: max(1, int(np.floor(r))) for c, r in raw.items()}
        for c in sorted(classes, key=lambda c: alloc[c] - raw[c])[: max(0, max_images - sum(alloc.values()))]:
            alloc[c] += 1
        keep = {c: min(alloc[c], keep[c]) for c in classes}
    return sorted(int(i) for c in classes for i in order[c][: keep[c]])


def per_class_cap(labels: Sequence, cap: int | None, seed: int = 0) -> list[int]:
    """Sorted indices keeping at most ``cap`` random items of each class (all of them for ``cap=None``)."""
    if cap is None:
        return list(range(len(labels)))
    if cap < 1:
        raise ValueError(f"cap must be >= 1, got {cap}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for c in sorted(set(labels.tolist()), key=str):
        keep.extend(rng.permutation(np.flatnonzero(labels == c))[:cap].tolist())
    return sorted(int(i) for i in keep)
