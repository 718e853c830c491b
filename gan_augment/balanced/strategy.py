"""Labels, class names and sampling strategies (imbalanced-learn's ``sampling_strategy`` vocabulary): how many
images each class should have after balancing, and how many of those are synthetic."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset, Subset

__all__ = ["Strategy", "STRATEGY_NAMES", "class_key", "resolve_labels", "resolve_class_names", "sampling_targets",
           "synthetic_counts", "synthetic_share"]

Strategy = str | float | Mapping | Callable[[np.ndarray], Mapping]
STRATEGY_NAMES = ("not majority", "auto", "minority", "not minority", "all")


# ------------------------------------------------------------------------------------------------ labels
def resolve_labels(dataset: Dataset, labels: Sequence[int] | None = None) -> np.ndarray:
    """Integer labels of a map-style dataset, without loading images where the dataset can tell us.

    Looks at ``labels=``, then ``targets``, ``get_labels()``, ``samples`` (ImageFolder / DatasetFolder); a
    ``Subset`` takes its parent's labels *at its indices*; a ``ConcatDataset`` concatenates its parts.
    """
    if labels is not None:
        out = np.asarray(labels.tolist() if isinstance(labels, torch.Tensor) else labels, dtype=np.int64)
        if len(out) != len(dataset):
            raise ValueError(f"labels has {len(out)} entries but the dataset has {len(dataset)} items")
        return out
    if isinstance(dataset, Subset):
        return resolve_labels(dataset.dataset)[np.asarray(dataset.indices, dtype=np.int64)]
    if isinstance(dataset, ConcatDataset):
        return np.concatenate([resolve_labels(d) for d in dataset.datasets])
    for attr in ("targets", "labels"):
        value = getattr(dataset, attr, None)
        if value is not None and not callable(value):
            return np.asarray(value.tolist() if isinstance(value, torch.Tensor) else value, dtype=np.int64).reshape(-1)
    if callable(getattr(dataset, "get_labels", None)):
        return np.asarray(dataset.get_labels(), dtype=np.int64)
    samples = getattr(dataset, "samples", None)
    if samples is not None:
        return np.asarray([s[1] for s in samples], dtype=np.int64)
    raise ValueError(f"cannot find the labels of {type(dataset).__name__}: it has no targets, get_labels() or "
                     "samples; pass labels=[...] (one integer class per item)")


def resolve_class_names(dataset: Dataset, classes: Sequence[str] | None, n_classes: int) -> list[str]:
    """Class names from ``classes=``, the dataset's ``classes`` (through Subset), else ``"0"``, ``"1"``, ..."""
    if classes is not None:
        names = [str(c) for c in classes]
    else:
        base = dataset
        while isinstance(base, Subset):
            base = base.dataset
        if isinstance(base, ConcatDataset):
            base = base.datasets[0]
        found = getattr(base, "classes", None)
        names = [str(c) for c in found] if found is not None else [str(i) for i in range(n_classes)]
    if len(names) < n_classes:
        raise ValueError(f"labels go up to {n_classes - 1} but only {len(names)} class names: {names}")
    return names


def class_key(key: Any, names: Sequence[str]) -> int:
    if isinstance(key, str):
        if key in names:
            return list(names).index(key)
        raise ValueError(f"unknown class {key!r}; classes are {list(names)}")
    k = int(key)
    if not 0 <= k < len(names):
        raise ValueError(f"class index {k} out of range 0..{len(names) - 1}")
    return k


# ------------------------------------------------------------------------------------------------ strategy
def sampling_targets(labels: np.ndarray, strategy: Strategy, class_names: Sequence[str]) -> dict[int, int]:
    """Target count per class after balancing (>= the real count), imbalanced-learn semantics."""
    counts = Counter(int(y) for y in labels)
    present = sorted(counts)
    if not present:
        raise ValueError("no labels")
    n_max, n_min = max(counts.values()), min(counts.values())
    majority = [c for c in present if counts[c] == n_max]
    minority = [c for c in present if counts[c] == n_min]
    targets = {c: counts[c] for c in present}
    if callable(strategy) and not isinstance(strategy, (str, Mapping)):
        strategy = strategy(np.asarray(labels))
        if not isinstance(strategy, Mapping):
            raise ValueError(f"a callable strategy must return a dict {{class: target count}}, got {type(strategy)}")
    if isinstance(strategy, str):
        key = strategy.lower().replace("_", " ")
        if key not in STRATEGY_NAMES:
            raise ValueError(f"unknown strategy {strategy!r}; choose one of {list(STRATEGY_NAMES)}, a float ratio, "
                             "a dict {class: target count} or a callable")
        chosen = {"not majority": [c for c in present if c not in majority],
                  "auto": [c for c in present if c not in majority],
                  "minority": minority,
                  "not minority": [c for c in present if c not in minority],
                  "all": present}[key]
        for c in chosen:
            targets[c] = n_max
    elif isinstance(strategy, (float, int)) and not isinstance(strategy, bool):
        ratio = float(strategy)
        if not 0 < ratio <= 1:
            raise ValueError(f"a float strategy is the ratio (class count / majority count) in (0, 1], got {ratio}")
        for c in present:
            targets[c] = max(counts[c], int(math.ceil(ratio * n_max)))
    elif isinstance(strategy, Mapping):
        for key, target in strategy.items():
            c = class_key(key, class_names)
            if c not in counts:
                raise ValueError(f"strategy names class {class_names[c]!r}, which has no real images")
            if int(target) < counts[c]:
                raise ValueError(f"strategy target {int(target)} for class {class_names[c]!r} is below its "
                                 f"{counts[c]} real images; over-sampling cannot remove images")
            targets[c] = int(target)
    else:
        raise ValueError(f"unsupported strategy {strategy!r}")
    return targets


def synthetic_share(fraction: float) -> Callable[[np.ndarray], dict[int, int]]:
    """A strategy that gives *every* class, the largest included, the same share of synthetic images:
    ``fraction`` of each class's items after balancing (0.5: one generated image per real one). Pass it as
    ``strategy=`` (a callable ``labels -> {class: target count}``); it adds images without evening out the class
    counts, so pair it with a class-balanced sampler (:class:`MinorityOversampler`) or class weights.

    Why: with the usual strategies the largest class gets no synthetic images, so wherever a classifier can tell
    generated images from real ones, "looks generated" also means "not the largest class" - a shortcut it can
    learn instead of the lesion. With the same share everywhere the look of a generated image says nothing about
    its class. Measured on HAM10000 at 64 px (the benchmark's ``gan_matched`` arm against ``gan_light``): the
    shortcut was there but small, and removing it did not make the classifier better."""
    f = float(fraction)
    if not 0 < f < 1:
        raise ValueError(f"synthetic_share: the synthetic share of each class must be in (0, 1), got {fraction}")

    def targets(labels: np.ndarray) -> dict[int, int]:
        counts = Counter(int(y) for y in np.asarray(labels).reshape(-1))
        # the same rounding as synthetic_counts' cap, so max_synthetic_fraction=fraction never trims a class
        return {c: n + int(math.floor(f / (1 - f) * n + 1e-9)) for c, n in sorted(counts.items())}

    return targets


def synthetic_counts(real: Mapping[int, int], targets: Mapping[int, int],
                     max_synthetic_fraction: float | None) -> dict[int, int]:
    """Synthetic images per class: target - real, capped so synthetic / (real + synthetic) <= the fraction."""
    if max_synthetic_fraction is not None and not 0 <= max_synthetic_fraction <= 1:
        raise ValueError(f"max_synthetic_fraction must be in [0, 1], got {max_synthetic_fraction}")
    out = {}
    for c, n in real.items():
        need = max(0, targets.get(c, n) - n)
        if max_synthetic_fraction is not None and max_synthetic_fraction < 1:
            cap = int(math.floor(max_synthetic_fraction / (1 - max_synthetic_fraction) * n + 1e-9))
            need = min(need, cap)
        out[c] = need
    return out


