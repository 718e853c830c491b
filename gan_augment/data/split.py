"""Grouped, stratified splits: no lesion / patient in two splits, class ratios kept.

Built on scikit-learn's ``StratifiedGroupKFold``: the data is cut into ``k`` grouped, stratified folds and
whole folds are handed to the splits in proportion to the requested fractions (0.7/0.15/0.15 -> 14/3/3 of 20
folds). Fractions are therefore met up to the fold granularity and up to group sizes.
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from .leaks import resolve_leaks
from .manifest import Manifest
from .sources import ScanResult, resolve_duplicates, scan_image_folder, scan_medmnist_npz, scan_metadata_csv

__all__ = ["grouped_stratified_split", "split_scan", "build_manifest", "parse_fractions", "DEFAULT_SPLIT_NAMES"]

DEFAULT_SPLIT_NAMES = ("train", "val", "test")


def default_split_names(n: int) -> tuple[str, ...]:
    """3 fractions -> train/val/test, 2 -> train/test, 1 -> train."""
    names = {1: ("train",), 2: ("train", "test"), 3: DEFAULT_SPLIT_NAMES}
    if n not in names:
        raise ValueError(f"give 1, 2 or 3 fractions (train[,val],test) or name the splits; got {n} fractions")
    return names[n]


def parse_fractions(text: str | Sequence[float]) -> tuple[float, ...]:
    """``"0.7,0.15,0.15"`` -> ``(0.7, 0.15, 0.15)``; they must be >= 0 and sum to 1."""
    if isinstance(text, str):
        try:
            fr = tuple(float(x) for x in text.split(","))
        except ValueError:
            raise ValueError(f"fractions must be comma-separated numbers, got {text!r}") from None
    else:
        fr = tuple(float(x) for x in text)
    if any(f < 0 for f in fr) or not math.isclose(sum(fr), 1.0, abs_tol=1e-6):
        raise ValueError(f"fractions must be non-negative and sum to 1, got {fr} (sum {sum(fr):.4f})")
    return fr


def _fold_counts(fractions: Sequence[float], max_folds: int = 100) -> tuple[int, list[int]]:
    """Number of folds ``k`` and folds per split that best match ``fractions`` (exactly when possible).

    ``k`` is capped by ``max_folds`` (scikit-learn needs at least ``k`` members in the largest class).
    """
    best: tuple[float, int, list[int]] | None = None
    for k in range(2, max(2, max_folds) + 1):
        raw = [f * k for f in fractions]
        counts = [int(np.floor(r)) for r in raw]
        for i in np.argsort([c - r for c, r in zip(counts, raw)])[: k - sum(counts)]:
            counts[i] += 1  # largest remainders first
        if any(f > 0 and c == 0 for f, c in zip(fractions, counts)):
            continue
        err = max(abs(c / k - f) for c, f in zip(counts, fractions))
        if best is None or err < best[0] - 1e-9:
            best = (err, k, counts)
        if err < 1e-6:
            break
    if best is None:
        raise ValueError(f"cannot split into fractions {tuple(fractions)} with at most {max_folds} folds")
    return best[1], best[2]


def grouped_stratified_split(
    labels: Sequence[str],
    groups: Sequence[str],
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    *,
    seed: int = 0,
    names: Sequence[str] | None = None,
) -> np.ndarray:
    """Assign each sample a split name; every group lands in exactly one split.

    Raises ``ValueError`` when there are fewer groups than folds needed. Warns when a class has too few
    groups to appear in every split with a non-zero fraction.
    """
    fractions = parse_fractions(fractions)
    names = tuple(names) if names is not None else default_split_names(len(fractions))
    if len(names) != len(fractions):
        raise ValueError(f"{len(fractions)} fractions but {len(names)} split names {list(names)}")
    labels = np.asarray(labels)
    groups = np.asarray(groups)
    if len(labels) != len(groups):
        raise ValueError("labels and groups differ in length")
    n_groups = len(np.unique(groups))
    largest_class = int(max(np.unique(labels, return_counts=True)[1])) if len(labels) else 0
    nonzero = sum(f > 0 for f in fractions)
    if n_groups < max(nonzero, 2):
        raise ValueError(f"only {n_groups} groups, too few to split into fractions {fractions}")
    try:
        k, fold_counts = _fold_counts(fractions, max_folds=min(100, n_groups, largest_class))
    except ValueError:
        raise ValueError(f"cannot split {len(labels)} images in {n_groups} groups (largest class: {largest_class} "
                         f"images) into fractions {fractions}: too few for a grouped split with a non-empty part "
                         "for every fraction") from None
    sgkf = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    fold_of = np.empty(len(labels), dtype=np.int64)
    with warnings.catch_warnings():
        # sklearn warns when a class has fewer members than folds; we warn below, naming the class and split.
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        for fold, (_, test_idx) in enumerate(sgkf.split(np.zeros(len(labels)), labels, groups)):
            fold_of[test_idx] = fold
    order = np.random.default_rng(seed).permutation(k)  # which folds go to which split
    split_of_fold = np.empty(k, dtype=object)
    start = 0
    for name, count in zip(names, fold_counts):
        split_of_fold[order[start:start + count]] = name
        start += count
    out = split_of_fold[fold_of].astype(str)

    for cls in np.unique(labels):
        present = set(out[labels == cls])
        absent = [n for n, f in zip(names, fractions) if f > 0 and n not in present]
        if absent:
            n_cls_groups = len(np.unique(groups[labels == cls]))
            warnings.warn(f"class {str(cls)!r} ({n_cls_groups} groups) is absent from split(s) {absent}", stacklevel=2)
    return out


def split_scan(
    scan: ScanResult,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    *,
    seed: int = 0,
    names: Sequence[str] | None = None,
    respect_existing: bool = True,
    on_leak: str = "refuse",
    cli: bool = False,
) -> Manifest:
    """Turn scanned samples into a manifest.

    If the source already fixes splits (``train/``/``test/`` folders, a split column, MedMNIST) and
    ``respect_existing`` is true, they are kept; when the source has no validation split, one is carved out
    of its training split (grouped and stratified) with the relative size of ``fractions``' val share.
    Otherwise all samples are split afresh by :func:`grouped_stratified_split`.

    A source's own split that puts a group or a byte-identical file on both sides is refused by default
    (``on_leak="refuse"``: :class:`~gan_augment.data.leaks.SplitLeakError` names the files);
    ``on_leak="drop"`` drops the held-out copies (listed in ``manifest.dropped_leaked``), and
    ``respect_existing=False`` splits afresh. ``cli`` words the message with the command-line flags.
    """
    samples = scan.samples
    if not samples:
        raise ValueError(f"{scan.source}: no images to split")
    fractions = parse_fractions(fractions)
    names = tuple(names) if names is not None else default_split_names(len(fractions))
    existing = [s.split for s in samples]
    if respect_existing and all(existing):
        assigned = list(existing)
        if "val" in names and "val" not in set(assigned) and "train" in set(assigned):
            fr = dict(zip(names, fractions))
            val_share = fr.get("val", 0.0) / max(fr.get("val", 0.0) + fr.get("train", 0.0), 1e-9)
            if val_share > 0:
                idx = [i for i, s in enumerate(assigned) if s == "train"]
                sub = grouped_stratified_split([samples[i].label for i in idx], [samples[i].group for i in idx],
                                               (1 - val_share, val_share), seed=seed, names=("train", "val"))
                for i, s in zip(idx, sub):
                    assigned[i] = s
        manifest = Manifest.from_samples(samples, assigned)
        manifest, leaks = resolve_leaks(manifest, on_leak=on_leak, where=f"{scan.source}: the source's own split",
                                        cli=cli)
        manifest.dropped_leaked = leaks
        return manifest
    if respect_existing and any(existing):
        warnings.warn(f"{scan.source}: only some samples carry a split; re-splitting all of them", stacklevel=2)
    assigned = grouped_stratified_split([s.label for s in samples], [s.group for s in samples], fractions,
                                        seed=seed, names=names)
    return Manifest.from_samples(samples, list(assigned))


def class_fractions(manifest: Manifest) -> dict[str, dict[str, float]]:
    """Per split, each class's share of that split's images (for checking stratification)."""
    out = {}
    for split, counter in manifest.counts().items():
        total = sum(counter.values()) or 1
        out[split] = {c: counter[c] / total for c in manifest.class_names}
    return out


def build_manifest(
    *,
    metadata: str | None = None,
    image_dir: str | None = None,
    image_folder: str | None = None,
    medmnist: str | None = None,
    id_col: str = "image_id",
    label_col: str = "dx",
    group_col: str | None = "lesion_id",
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    duplicates: str = "drop-conflicts",
    respect_existing: bool = True,
    on_leak: str = "refuse",
    cli: bool = False,
) -> tuple[Manifest, ScanResult]:
    """Scan one source (metadata CSV + image dir, ImageFolder, or MedMNIST npz) and split it."""
    given = [x for x in (metadata, image_folder, medmnist) if x]
    if len(given) != 1:
        raise ValueError("give exactly one source: a metadata CSV (with its image directory), an image folder, "
                         "or a MedMNIST .npz")
    if metadata:
        if not image_dir:
            raise ValueError("a metadata CSV needs image_dir, the folder holding its images")
        scan = scan_metadata_csv(metadata, image_dir, id_col=id_col, label_col=label_col, group_col=group_col)
    elif image_folder:
        scan = scan_image_folder(image_folder)
    else:
        scan = scan_medmnist_npz(medmnist)
    scan = resolve_duplicates(scan, duplicates)
    manifest = split_scan(scan, fractions, seed=seed, respect_existing=respect_existing, on_leak=on_leak, cli=cli)
    return manifest, scan
