"""Number formatting shared by the benchmark's reports and the studies' tables (one definition, not one per file),
and the generated blocks of the Markdown files that show them."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

__all__ = ["num", "pct", "ci_pp", "fidelity_cells", "replace_between_markers"]


def num(v: Any, fmt: str = ".1f") -> str:
    """``v`` formatted, or "-" for a missing or non-finite value."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return format(v, fmt)


def pct(x: float | None) -> str:
    """A fraction as a whole percentage ("84" for 0.84), or "-" for a missing or non-finite value."""
    return num(100 * x if x is not None else None, ".0f")


def fidelity_cells(overall: dict, memorisation: dict | None = None) -> str:
    """The generator studies' table cells: "FID | KID x1e3 | precision | recall | probe % | memorisation p |"
    (the memorisation cell empty for a row without one, e.g. the real floor)."""
    o, mem = overall, memorisation
    cells = (f"{num(o.get('fid'))} | {num((o.get('kid') or float('nan')) * 1e3)} | {num(o.get('precision'), '.2f')} | "
             f"{num(o.get('recall'), '.2f')} | {pct(o.get('c2st'))} | ")
    if mem is None:
        return cells + "|"
    return cells + f"{num(mem.get('p_value'), '.3f')}{' FLAGGED' if mem.get('flagged') else ''} |"


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
