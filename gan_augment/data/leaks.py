"""Leaks between splits: an image (or its lesion / patient group, or a byte-identical copy of it) in training and
in validation or test. Public medical folders often hold "- Copy" files on both sides of their own split; a
classifier or a GAN trained on one copy and evaluated on the other inflates every number reported. By default
such a split is refused; the two ways out are splitting afresh (grouped) or dropping the held-out copies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .manifest import Manifest
from .sources import _file_digest

__all__ = ["Leak", "SplitLeakError", "find_leaks", "drop_leaked", "resolve_leaks", "LEAK_POLICIES"]

LEAK_POLICIES = ("refuse", "drop", "keep")
_SPLIT_RANK = {"train": 0, "val": 1, "test": 2}


@dataclass(frozen=True)
class Leak:
    """Row ``index`` (in ``split``) shares its group or its bytes with row ``other`` of an earlier split."""

    index: int
    split: str
    path: str
    other_path: str
    other_split: str
    why: str  # "group" or "identical file"


class SplitLeakError(ValueError):
    """A split puts the same image or group on both sides."""

    def __init__(self, message: str, leaks: Sequence[Leak]):
        super().__init__(message)
        self.leaks = list(leaks)


def _rank(split: str) -> int:
    return _SPLIT_RANK.get(split, 3)


def _digest(path: str) -> str | None:
    if "::" in path or not Path(path).is_file():  # npz references have no file of their own
        return None
    return _file_digest(path)  # the same digest resolve_duplicates groups copies by


def find_leaks(manifest: Manifest, *, by_content: bool = True) -> list[Leak]:
    """Rows whose group - or, with ``by_content``, whose file bytes - also occur in an earlier split (train before
    val before test). The earliest occurrence stays; every later one is a leak."""
    keys: list[tuple[str, list[str]]] = [("group", list(manifest.groups))]
    if by_content:
        keys.append(("identical file", [_digest(p) or f"\0{i}" for i, p in enumerate(manifest.paths)]))
    leaks: dict[int, Leak] = {}
    for why, values in keys:
        first: dict[str, int] = {}
        order = sorted(range(len(manifest)), key=lambda i: (_rank(manifest.splits[i]), i))
        for i in order:
            v = values[i]
            j = first.setdefault(v, i)
            if j != i and manifest.splits[j] != manifest.splits[i] and i not in leaks:
                leaks[i] = Leak(i, manifest.splits[i], manifest.paths[i], manifest.paths[j], manifest.splits[j], why)
    return [leaks[i] for i in sorted(leaks)]


def drop_leaked(manifest: Manifest, leaks: Sequence[Leak]) -> Manifest:
    """The manifest without the leaked (later-split) rows."""
    drop = {lk.index for lk in leaks}
    keep = [i for i in range(len(manifest)) if i not in drop]
    return Manifest(paths=[manifest.paths[i] for i in keep], labels=[manifest.labels[i] for i in keep],
                    groups=[manifest.groups[i] for i in keep], splits=[manifest.splits[i] for i in keep],
                    class_names=list(manifest.class_names), location=manifest.location)


def leak_message(where: str, leaks: Sequence[Leak], *, cli: bool, shown: int = 3) -> str:
    examples = "; ".join(f"{Path(lk.path).name} ({lk.split}) = {Path(lk.other_path).name} ({lk.other_split}, "
                         f"{lk.why})" for lk in leaks[:shown])
    splits = sorted({lk.split for lk in leaks}, key=_rank)
    fresh, drop = (("--resplit", "--drop-leaked") if cli else ("respect_existing=False", "on_leak='drop'"))
    return (f"{where}: {len(leaks)} image(s) in {'/'.join(splits)} are copies of, or share a group with, images of an "
            f"earlier split, e.g. {examples}. Evaluating on them would inflate every number. Split afresh with "
            f"`{fresh}` (grouped, so copies stay together), or drop the held-out copies with `{drop}`.")


def resolve_leaks(manifest: Manifest, *, on_leak: str = "refuse", where: str = "the split", cli: bool = False,
                  by_content: bool = True) -> tuple[Manifest, list[Leak]]:
    """Apply ``on_leak`` to a manifest: ``"refuse"`` raises :class:`SplitLeakError` naming offending files and
    the ways out, ``"drop"`` removes the held-out copies (returned, for the report), ``"keep"`` changes nothing.
    Returns the manifest to use and the leaks found."""
    if on_leak not in LEAK_POLICIES:
        raise ValueError(f"on_leak must be one of {LEAK_POLICIES}, got {on_leak!r}")
    leaks = find_leaks(manifest, by_content=by_content) if on_leak != "keep" else []
    if not leaks:
        return manifest, []
    if on_leak == "refuse":
        raise SplitLeakError(leak_message(where, leaks, cli=cli), leaks)
    return drop_leaked(manifest, leaks), leaks
