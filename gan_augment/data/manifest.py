"""The split manifest: a CSV ``path,label,group,split`` that every downstream step takes as input.

Its :attr:`Manifest.hash` identifies the split by content. The hash ignores where the data lives (paths are
hashed relative to their common folder), so moving the data or the manifest keeps the hash, while changing a
label, a group or a split assignment changes it. A generator file records the hash of the manifest it was
trained on, so the benchmark can refuse a generator that has seen test images.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .._io import atomic_open
from .sources import Sample

__all__ = ["Manifest", "MANIFEST_COLUMNS", "format_counts_table"]

MANIFEST_COLUMNS = ("path", "label", "group", "split")


@dataclass
class Manifest:
    """Rows of (path, label, group, split); paths are absolute once loaded."""

    paths: list[str]
    labels: list[str]
    groups: list[str]
    splits: list[str]
    class_names: list[str] = field(default_factory=list)
    location: Path | None = None  # the CSV this was read from / written to
    # held-out copies of training images dropped when this manifest was built (see data.leaks); not in the CSV
    dropped_leaked: list = field(default_factory=list, compare=False, repr=False)

    def __post_init__(self) -> None:
        n = len(self.paths)
        if not (len(self.labels) == len(self.groups) == len(self.splits) == n):
            raise ValueError("manifest columns have different lengths")
        if not self.class_names:
            self.class_names = sorted(set(self.labels))
        unknown = sorted(set(self.labels) - set(self.class_names))
        if unknown:
            raise ValueError(f"labels {unknown} are not in class_names {self.class_names}")

    # ----------------------------------------------------------------------------------------------- build
    @classmethod
    def from_samples(cls, samples: Sequence[Sample], splits: Sequence[str]) -> "Manifest":
        """Build from scanned samples and one split name per sample."""
        if len(samples) != len(splits):
            raise ValueError("need one split per sample")
        return cls(paths=[s.path for s in samples], labels=[s.label for s in samples],
                   groups=[s.group for s in samples], splits=list(splits))

    @classmethod
    def read(cls, path: str | os.PathLike, *, root: str | os.PathLike | None = None) -> "Manifest":
        """Read a manifest CSV; relative paths resolve against ``root`` (default: the CSV's folder)."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"manifest {path} does not exist")
        base = Path(root) if root is not None else path.parent
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in MANIFEST_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"manifest {path} lacks columns {missing}; it needs {list(MANIFEST_COLUMNS)} "
                                 f"(has {reader.fieldnames})")
            rows = list(reader)
        if not rows:
            raise ValueError(f"manifest {path} has no rows")
        paths, labels, groups, splits = [], [], [], []
        for i, r in enumerate(rows, start=2):
            if not r["path"] or not r["label"] or not r["split"]:
                raise ValueError(f"{path}:{i}: empty path, label or split")
            p = r["path"]
            paths.append(p if os.path.isabs(p) else os.path.normpath(os.path.join(base, p)))
            labels.append(r["label"])
            groups.append(r["group"] or r["path"])
            splits.append(r["split"])
        return cls(paths=paths, labels=labels, groups=groups, splits=splits, location=path)

    def write(self, path: str | os.PathLike) -> Path:
        """Write atomically; paths are stored relative to the CSV's folder so the pair can move together."""
        path = Path(path)
        base = path.parent.resolve()
        with atomic_open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(MANIFEST_COLUMNS)
            for p, lab, g, s in zip(self.paths, self.labels, self.groups, self.splits):
                w.writerow([_relative_to(p, base), lab, g, s])
        self.location = path
        return path

    # ----------------------------------------------------------------------------------------------- query
    def __len__(self) -> int:
        return len(self.paths)

    @property
    def hash(self) -> str:
        """SHA-256 of the content, independent of where the data and the CSV live."""
        if not self.paths:
            return hashlib.sha256(b"").hexdigest()
        h = hashlib.sha256()
        for line in sorted(self._row_lines()):
            h.update(line.encode("utf-8"))
        return h.hexdigest()

    def _row_lines(self) -> list[str]:
        """One line per row - path relative to the rows' common folder, label, group, split - as the hash sees it."""
        common = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in self.paths])
        return [f"{os.path.relpath(os.path.abspath(p), common)}\t{lab}\t{g}\t{s}\n".replace(os.sep, "/")
                for p, lab, g, s in zip(self.paths, self.labels, self.groups, self.splits)]

    def check_subset_of(self, source: "Manifest", *, where: str = "the manifest") -> None:
        """Raise ``ValueError`` naming the rows of this manifest that are not rows of ``source`` (same path under
        the common folder, label, group and split): a slice cut from ``source`` keeps every image in its split."""
        if not self.paths:
            return
        known = set(source._row_lines())
        stray = [line.strip().replace("\t", ", ") for line in self._row_lines() if line not in known]
        if stray:
            raise ValueError(f"{where}: {len(stray)} of its {len(self)} rows are not rows of the split it names as "
                             f"its source ({source.location or 'source manifest'}), e.g. {stray[:3]}")

    @property
    def short_hash(self) -> str:
        return self.hash[:12]

    @property
    def split_names(self) -> list[str]:
        order = {"train": 0, "val": 1, "test": 2}
        return sorted(set(self.splits), key=lambda s: (order.get(s, 3), s))

    def indices(self, split: str | None) -> list[int]:
        """Row indices of ``split`` (all rows for ``None``); an unknown split lists the valid ones."""
        if split is None:
            return list(range(len(self)))
        if split not in set(self.splits):
            raise ValueError(f"split {split!r} not in manifest {self.location or ''}; splits are {self.split_names}")
        return [i for i, s in enumerate(self.splits) if s == split]

    def select(self, split: str | None) -> "Manifest":
        """A manifest with the rows of one split, keeping the full class list."""
        idx = self.indices(split)
        return Manifest(paths=[self.paths[i] for i in idx], labels=[self.labels[i] for i in idx],
                        groups=[self.groups[i] for i in idx], splits=[self.splits[i] for i in idx],
                        class_names=list(self.class_names), location=self.location)

    def class_index(self, label: str) -> int:
        try:
            return self.class_names.index(label)
        except ValueError:
            raise ValueError(f"unknown class {label!r}; classes are {self.class_names}") from None

    def counts(self) -> dict[str, Counter]:
        """Per split, the number of images per class."""
        out: dict[str, Counter] = {s: Counter() for s in self.split_names}
        for lab, s in zip(self.labels, self.splits):
            out[s][lab] += 1
        return out

    def groups_across_splits(self) -> dict[str, set[str]]:
        """Groups found in more than one split (empty for a sound grouped split)."""
        seen: dict[str, set[str]] = {}
        for g, s in zip(self.groups, self.splits):
            seen.setdefault(g, set()).add(s)
        return {g: ss for g, ss in seen.items() if len(ss) > 1}

    def counts_table(self) -> str:
        return format_counts_table(self.counts(), self.class_names)


def format_counts_table(counts: dict[str, Counter], class_names: Sequence[str]) -> str:
    """Markdown table: one row per class, one column per split, with totals."""
    splits = list(counts)
    header = "| class | " + " | ".join(splits) + " | total |"
    sep = "|---|" + "---:|" * (len(splits) + 1)
    rows = [header, sep]
    for c in class_names:
        vals = [counts[s][c] for s in splits]
        rows.append(f"| {c} | " + " | ".join(str(v) for v in vals) + f" | {sum(vals)} |")
    totals = [sum(counts[s].values()) for s in splits]
    rows.append("| **total** | " + " | ".join(str(v) for v in totals) + f" | {sum(totals)} |")
    return "\n".join(rows)


def _relative_to(path: str, base: Path) -> str:
    try:
        return os.path.relpath(os.path.abspath(path), base).replace(os.sep, "/")
    except ValueError:  # different drives on Windows
        return path
