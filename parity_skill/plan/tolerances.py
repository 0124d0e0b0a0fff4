"""Default tolerances per dtype and per comparison level (the numbers and their derivation live in
parity_skill/thresholds.py)."""
from __future__ import annotations

from parity_skill.thresholds import LEVELS, TOLERANCES
from parity_skill.spec import Tolerance

BASE = {dtype: Tolerance(atol=atol, rtol=rtol) for dtype, (atol, rtol) in TOLERANCES.items()}


def tolerance_table(level: str = "layer", atol: float | None = None, rtol: float | None = None) -> dict[str, Tolerance]:
    factor = LEVELS[level]
    table = {k: Tolerance(t.atol * factor, t.rtol) for k, t in BASE.items()}
    if atol is not None or rtol is not None:
        t = table["fp32"]
        table["fp32"] = Tolerance(t.atol if atol is None else atol, t.rtol if rtol is None else rtol)
    return table
