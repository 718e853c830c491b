"""Number formatting shared by the benchmark's reports and the studies' tables (one definition, not one per file),
and the generated blocks of the Markdown files that show them."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

__all__ = ["num", "ci_pp", "replace_between_markers"]


def num(v: Any, fmt: str = ".1f") -> str:
    """``v`` formatted, or "-" for a missing or non-finite value."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return format(v, fmt)


def ci_pp(d: dict | None) -> str:
    """A difference with its CI (fractions) in percentage points: "+1.2 [-0.3, +2.8]"; "-" without one."""
    if not d or "mean" not in d:
        return "-"
    return f"{d['mean'] * 100:+.1f} [{d['ci_low'] * 100:+.1f}, {d['ci_high'] * 100:+.1f}]"


def replace_between_markers(doc: str | Path, begin: str, end: str, body: str, *, write: bool) -> bool:
    """Put ``body`` between the ``begin`` and ``end`` marker lines of ``doc`` (written atomically when ``write``);
    True if it was there already. A file without both markers is refused, naming it and the marker."""
    from gan_augment._io import write_text

    doc = Path(doc)
    text = doc.read_text()
    for marker in (begin, end):
        if marker not in text:
            raise ValueError(f"{doc}: no marker line {marker!r} to put the generated block after")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    new = f"{head}{begin}\n{body}\n{end}{tail}"
    if new != text and write:
        write_text(doc, new)
    return new == text
