"""Number formatting shared by the benchmark's reports and the studies' tables (one definition, not one per file)."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["num", "ci_pp"]


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
