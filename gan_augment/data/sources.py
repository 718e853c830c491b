"""Where images come from: ImageFolder trees, metadata CSVs (HAM10000 / ISIC style) and MedMNIST ``.npz`` files.

Each scanner returns a :class:`ScanResult`: one :class:`Sample` per image with its label, its group (lesion /
patient; the image itself when there is none) and, where the source already has one, its split.
"""

from __future__ import annotations

import csv
import hashlib
import os
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .decode import IMAGE_EXTENSIONS, make_npz_ref

__all__ = [
    "Sample",
    "ScanResult",
    "scan_image_folder",
    "scan_metadata_csv",
    "scan_medmnist_npz",
    "resolve_duplicates",
    "SPLIT_ALIASES",
    "MEDMNIST_CLASS_NAMES",
]

# Folder names recognised as a split level in ImageFolder trees (case-insensitive).
SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val",
    "test": "test", "testing": "test",
}

# Class names of the MedMNIST sets we document; the npz files carry only integer labels.
MEDMNIST_CLASS_NAMES = {
    # DermaMNIST = HAM10000 (Tschandl et al. 2018); index order of medmnist's INFO["dermamnist"]["label"].
    "dermamnist": ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"],
}


@dataclass(frozen=True)
class Sample:
    """One image: where it is, its class name, its group id and (optionally) a split the source fixed."""

    path: str
    label: str
    group: str
    split: str | None = None


@dataclass
class ScanResult:
    """The samples a source yielded, plus what did not match up."""

    samples: list[Sample]
    source: str
    missing_files: list[str] = field(default_factory=list)  # ids in the CSV with no image file
    orphan_files: list[str] = field(default_factory=list)  # image files with no CSV row
    dropped: list[str] = field(default_factory=list)  # removed by a policy (e.g. conflicting duplicates)

    @property
    def class_names(self) -> list[str]:
        return sorted({s.label for s in self.samples})

    def report(self, examples: int = 5) -> str:
        """Human-readable summary: counts per class and any unmatched ids / files with examples."""
        counts = Counter(s.label for s in self.samples)
        lines = [f"{self.source}: {len(self.samples)} images, {len(counts)} classes, "
                 f"{len({s.group for s in self.samples})} groups"]
        lines += [f"  {name}: {counts[name]}" for name in self.class_names]
        for what, items in (("ids in the CSV with no image file", self.missing_files),
                            ("image files with no CSV row", self.orphan_files),
                            ("images dropped", self.dropped)):
            if items:
                ex = ", ".join(items[:examples])
                lines.append(f"  {len(items)} {what} (e.g. {ex})")
        return "\n".join(lines)


def _is_image(path: Path, extensions: Sequence[str]) -> bool:
    return path.is_file() and path.suffix.lower() in extensions and not path.name.startswith(".")


def _list_images(folder: Path, extensions: Sequence[str]) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if _is_image(p, extensions))


def scan_image_folder(root: str | os.PathLike, *, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> ScanResult:
    """Scan ``root/<class>/<files>`` or ``root/<split>/<class>/<files>`` (split = train/val/test aliases).

    Every image is its own group (ImageFolders carry no patient ids). Raises ``ValueError`` for a missing
    root, a tree with no class folders, or an empty class folder (naming it).
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"image folder {root} does not exist or is not a directory")
    top = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not top:
        raise ValueError(f"image folder {root} has no class sub-folders (expected <root>/<class>/<images>)")
    has_split_level = all(p.name.lower() in SPLIT_ALIASES for p in top)
    levels = [(SPLIT_ALIASES[p.name.lower()], p) for p in top] if has_split_level else [(None, root)]
    samples: list[Sample] = []
    for split, base in levels:
        class_dirs = sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not class_dirs:
            raise ValueError(f"split folder {base} has no class sub-folders")
        for cdir in class_dirs:
            files = _list_images(cdir, extensions)
            if not files:
                raise ValueError(f"class folder {cdir} contains no images with extensions {list(extensions)}")
            for f in files:
                rel = f.relative_to(root).as_posix()
                samples.append(Sample(path=str(f), label=cdir.name, group=rel, split=split))
    return ScanResult(samples=samples, source=f"ImageFolder {root}")


def scan_metadata_csv(
    csv_path: str | os.PathLike,
    image_dir: str | os.PathLike,
    *,
    id_col: str = "image_id",
    label_col: str = "dx",
    group_col: str | None = "lesion_id",
    split_col: str | None = None,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
) -> ScanResult:
    """Read a metadata CSV and find each row's image by id anywhere under ``image_dir``.

    The file for id ``X`` is any image file whose stem is ``X`` (``X.jpg``, ``X.png``, ``<dx>/X.jpg``, ...).
    Rows whose file is missing and files with no row are reported in the result (not fatal); a column that
    is not in the CSV, an id found twice on disk, or a row with an empty label is a ``ValueError``.
    """
    csv_path, image_dir = Path(csv_path), Path(image_dir)
    if not csv_path.is_file():
        raise ValueError(f"metadata CSV {csv_path} does not exist")
    if not image_dir.is_dir():
        raise ValueError(f"image directory {image_dir} does not exist")
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        columns = reader.fieldnames or []
        for role, col in (("id", id_col), ("label", label_col), ("group", group_col), ("split", split_col)):
            if col is not None and col not in columns:
                raise ValueError(f"{csv_path}: {role} column {col!r} not found; columns are {columns}")
        rows = list(reader)
    if not rows:
        raise ValueError(f"metadata CSV {csv_path} has no rows")

    by_stem: dict[str, Path] = {}
    clashes: dict[str, list[Path]] = defaultdict(list)
    for f in _list_images(image_dir, extensions):
        if f.stem in by_stem:
            clashes[f.stem].append(f)
        else:
            by_stem[f.stem] = f
    if clashes:
        stem, extra = next(iter(clashes.items()))
        raise ValueError(f"{len(clashes)} image ids occur more than once under {image_dir} "
                         f"(e.g. {stem}: {by_stem[stem]} and {extra[0]}); ids must name one file")

    samples, missing, seen = [], [], set()
    for line_no, row in enumerate(rows, start=2):
        image_id = (row[id_col] or "").strip()
        label = (row[label_col] or "").strip()
        if not image_id:
            raise ValueError(f"{csv_path}:{line_no}: empty {id_col!r}")
        if not label:
            raise ValueError(f"{csv_path}:{line_no}: image {image_id} has an empty label in column {label_col!r}")
        if image_id in seen:
            raise ValueError(f"{csv_path}:{line_no}: image id {image_id} appears twice")
        seen.add(image_id)
        path = by_stem.get(image_id)
        if path is None:
            missing.append(image_id)
            continue
        group = (row[group_col] or "").strip() if group_col else ""
        split = (row[split_col] or "").strip().lower() if split_col else None
        if split is not None:
            split = SPLIT_ALIASES.get(split, split)
        samples.append(Sample(path=str(path), label=label, group=group or image_id, split=split or None))
    orphans = sorted(str(p.relative_to(image_dir)) for stem, p in by_stem.items() if stem not in seen)
    if not samples:
        raise ValueError(f"none of the {len(rows)} ids in {csv_path} has an image file under {image_dir} "
                         f"(e.g. {missing[:3]}); check --image-dir and the id column")
    return ScanResult(samples=samples, source=f"metadata {csv_path}", missing_files=missing, orphan_files=orphans)


def scan_medmnist_npz(npz_path: str | os.PathLike, *, class_names: Sequence[str] | None = None) -> ScanResult:
    """Scan a MedMNIST ``.npz`` (keys ``{train,val,test}_{images,labels}``); its official split is kept.

    ``class_names`` defaults to the documented names for known sets (``dermamnist*.npz``), else ``"0"``,
    ``"1"``, ... Multi-label sets (ChestMNIST) are refused: a sample needs one class.
    """
    npz_path = Path(npz_path)
    if not npz_path.is_file():
        raise ValueError(f"MedMNIST file {npz_path} does not exist")
    with np.load(npz_path, allow_pickle=False) as npz:
        files = set(npz.files)
        splits = [s for s in ("train", "val", "test") if f"{s}_images" in files]
        if not splits:
            raise ValueError(f"{npz_path} is not in the MedMNIST layout: expected keys like 'train_images' and "
                             f"'train_labels', found {sorted(files)}")
        labels_by_split = {}
        for s in splits:
            if f"{s}_labels" not in files:
                raise ValueError(f"{npz_path}: has {s}_images but no {s}_labels")
            lab = np.asarray(npz[f"{s}_labels"])
            if lab.ndim == 2 and lab.shape[1] != 1:
                raise ValueError(f"{npz_path}: {s}_labels has shape {lab.shape}; multi-label sets are not "
                                 "supported (each image needs one class)")
            labels_by_split[s] = lab.reshape(-1).astype(np.int64)
    n_classes = int(max(lab.max() for lab in labels_by_split.values())) + 1
    if class_names is None:
        stem = npz_path.stem.lower()
        known = next((v for k, v in MEDMNIST_CLASS_NAMES.items() if stem.startswith(k)), None)
        class_names = known if known is not None and len(known) >= n_classes else [str(i) for i in range(n_classes)]
    if len(class_names) < n_classes:
        raise ValueError(f"{npz_path}: labels go up to {n_classes - 1} but only {len(class_names)} class names given")
    samples = []
    for s, lab in labels_by_split.items():
        for i, y in enumerate(lab):
            ref = make_npz_ref(npz_path, f"{s}_images", i)
            samples.append(Sample(path=ref, label=str(class_names[y]), group=f"{s}:{i}", split=s))
    return ScanResult(samples=samples, source=f"MedMNIST {npz_path}")


def _file_digest(path: str) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        h.update(fh.read())
    return h.hexdigest()


def resolve_duplicates(result: ScanResult, policy: str = "drop-conflicts") -> ScanResult:
    """Find byte-identical image files and apply ``policy``.

    - ``"keep"``: do nothing.
    - ``"group"``: identical files share one group, so a split can never put copies on both sides.
    - ``"drop-conflicts"`` (default): as ``"group"``, and copies filed under *different* classes are all
      dropped (their label is unknowable; ISIC-9 has 155 such pairs) and listed in ``result.dropped``.
    """
    policies = ("keep", "group", "drop-conflicts")
    if policy not in policies:
        raise ValueError(f"unknown duplicates policy {policy!r}; choose one of {policies}")
    if policy == "keep":
        return result
    by_digest: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(result.samples):
        if "::" in s.path:  # npz references have no file of their own
            continue
        by_digest[_file_digest(s.path)].append(i)
    new = list(result.samples)
    drop: set[int] = set()
    n_groups = 0
    for idxs in by_digest.values():
        if len(idxs) < 2:
            continue
        n_groups += 1
        labels = {result.samples[i].label for i in idxs}
        if policy == "drop-conflicts" and len(labels) > 1:
            drop.update(idxs)
            continue
        group = min(result.samples[i].group for i in idxs)
        for i in idxs:
            s = result.samples[i]
            new[i] = Sample(path=s.path, label=s.label, group=group, split=s.split)
    if n_groups:
        warnings.warn(f"{result.source}: {n_groups} sets of byte-identical images; {len(drop)} images filed under "
                      f"conflicting classes were dropped" if drop else
                      f"{result.source}: {n_groups} sets of byte-identical images now share a group", stacklevel=2)
    kept = [s for i, s in enumerate(new) if i not in drop]
    return ScanResult(samples=kept, source=result.source, missing_files=result.missing_files,
                      orphan_files=result.orphan_files,
                      dropped=result.dropped + [result.samples[i].path for i in sorted(drop)])
