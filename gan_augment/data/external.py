"""An external test set: images from another source (another clinic, another archive), scored by classifiers trained
on the benchmark's data to see whether what they learnt - and what generated images taught them - carries over.

Built from an ImageFolder (``<class>/<images>``, optionally under ``train/`` / ``test/`` folders, which are pooled)
and a class map onto the training data's classes. What cannot be a fair test image is left out and listed:

- classes the map does not name (counted per class);
- byte-identical files filed under two classes (their label is unknowable; copies under one class count once);
- with ``drop_same_names``, files named like an image of the training data (the same archive image, e.g. HAM10000
  images inside an ISIC Archive download);
- copies of a *training* image (same bytes) - refused by default, naming them: a test image the classifier has
  seen scores what it memorised (:func:`training_copies`; the benchmark also looks for near-copies by features).

``unsquash_4x3`` (a resize policy of :mod:`gan_augment.data.transforms`) undoes a set's squashing of 4:3 frames to
squares so that a lesion appears at the scale the classifier trained at.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .manifest import Manifest
from .sources import _file_digest, scan_image_folder

__all__ = ["EXTERNAL_SPLIT", "parse_class_map", "ExternalTestSet", "scan_external", "training_copies"]

EXTERNAL_SPLIT = "external"


def parse_class_map(text: str | dict[str, str] | None) -> dict[str, str]:
    """``"melanoma=mel,nevus=nv"`` -> ``{"melanoma": "mel", "nevus": "nv"}`` (a dict passes through). Names may hold
    spaces; an empty or malformed entry is an error naming it."""
    if text is None:
        return {}
    if isinstance(text, dict):
        return dict(text)
    out: dict[str, str] = {}
    for item in str(text).split(","):
        if not item.strip():
            continue
        if item.count("=") != 1 or not all(p.strip() for p in item.split("=")):
            raise ValueError(f"class map entry {item.strip()!r}: write it as external_class=training_class")
        k, v = (p.strip() for p in item.split("="))
        if k in out and out[k] != v:
            raise ValueError(f"class map: {k!r} is mapped twice ({out[k]!r} and {v!r})")
        out[k] = v
    return out


@dataclass
class ExternalTestSet:
    """The external images kept (a :class:`Manifest` whose every row is in split ``"external"``, labelled with the
    training data's classes) and what was left out, with why."""

    manifest: Manifest
    source: str
    class_map: dict[str, str]
    unmapped: dict[str, int] = field(default_factory=dict)  # external class -> images left out
    dropped: list[dict] = field(default_factory=list)  # {"path", "why"}

    @property
    def counts(self) -> dict[str, int]:
        c = Counter(self.manifest.labels)
        return {name: c.get(name, 0) for name in self.manifest.class_names}

    def scored_classes(self, min_images: int) -> list[str]:
        """The training classes with at least ``min_images`` external images (the others are too few to score)."""
        return [c for c, n in self.counts.items() if n >= min_images]

    def summary(self, min_images: int) -> dict:
        return {"source": self.source, "class_map": self.class_map, "counts": self.counts,
                "scored_classes": self.scored_classes(min_images), "min_images_per_class": min_images,
                "unmapped": self.unmapped, "dropped": Counter(d["why"] for d in self.dropped),
                "n_images": len(self.manifest.paths)}


def scan_external(root: str | Path, class_map: str | dict[str, str], class_names: Sequence[str], *,
                  drop_same_names: Sequence[str] = ()) -> ExternalTestSet:
    """Scan the ImageFolder ``root`` and map its classes onto ``class_names`` with ``class_map``.

    ``drop_same_names``: file names (any extension) of the training data's images; external files with the same
    stem are left out as the same archive image. A map naming a class that is not in the folder, or a training
    class that does not exist, is an error naming it."""
    mapping = parse_class_map(class_map)
    if not mapping:
        raise ValueError(f"external test set {root}: give a class map (external_class=training_class,...)")
    bad = sorted({v for v in mapping.values() if v not in class_names})
    if bad:
        raise ValueError(f"external test set {root}: the class map names {bad}, not classes of the training data "
                         f"{list(class_names)}")
    scan = scan_image_folder(root)
    present = {s.label for s in scan.samples}
    missing = sorted(k for k in mapping if k not in present)
    if missing:
        raise ValueError(f"external test set {root}: the class map names {missing}, not class folders there "
                         f"({sorted(present)})")
    dropped: list[dict] = []
    # byte-identical copies: under two classes all are dropped, under one class one is kept
    by_digest: dict[str, list] = {}
    for s in scan.samples:
        by_digest.setdefault(_file_digest(s.path), []).append(s)
    samples = []
    for copies in by_digest.values():
        if len({s.label for s in copies}) > 1:
            dropped += [{"path": s.path, "why": "the same file under two classes"} for s in copies]
        else:
            samples.append(copies[0])
            dropped += [{"path": s.path, "why": "a copy of another external file"} for s in copies[1:]]
    names = {Path(n).stem for n in drop_same_names}
    unmapped: Counter = Counter()
    paths, labels = [], []
    for s in sorted(samples, key=lambda s: s.path):
        if s.label not in mapping:
            unmapped[s.label] += 1
        elif Path(s.path).stem in names:
            dropped.append({"path": s.path, "why": "named like an image of the training data"})
        else:
            paths.append(s.path)
            labels.append(mapping[s.label])
    if not paths:
        raise ValueError(f"external test set {root}: no image is left after the class map and the exclusions")
    manifest = Manifest(paths=paths, labels=labels, groups=list(paths), splits=[EXTERNAL_SPLIT] * len(paths),
                        class_names=list(class_names))
    return ExternalTestSet(manifest=manifest, source=str(root), class_map=mapping, unmapped=dict(unmapped),
                           dropped=dropped)


def training_copies(external: ExternalTestSet, paths: Sequence[str]) -> list[tuple[str, str]]:
    """(external path, path) for every external file byte-identical to one of ``paths`` (the training data's)."""
    digests = {_file_digest(p): p for p in paths if "::" not in p}
    return [(p, digests[d]) for p in external.manifest.paths if (d := _file_digest(p)) in digests]
