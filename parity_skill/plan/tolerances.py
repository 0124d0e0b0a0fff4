"""Default tolerances per dtype (in the spirit of torch.testing's table) and per comparison level."""
from __future__ import annotations

from parity_skill.spec import Tolerance

# torch.testing.assert_close defaults: fp16 (1e-3, 1e-5), bf16 (1.6e-2, 1e-5), fp32 (1.3e-6, 1e-5), fp64 (1e-7, 1e-7)
BASE = {
    "fp64": Tolerance(atol=1e-7, rtol=1e-7),
    "fp32": Tolerance(atol=1e-5, rtol=1.3e-6),
    "fp16": Tolerance(atol=1e-5, rtol=1e-3),
    "bf16": Tolerance(atol=1e-5, rtol=1.6e-2),
}
# layer: one op or layer; chain: a few layers; model: a whole stack. atol scales 1x / 10x / 100x.
LEVELS = {"layer": 1.0, "chain": 10.0, "model": 100.0}


def tolerance_table(level: str = "layer", atol: float | None = None, rtol: float | None = None) -> dict[str, Tolerance]:
    factor = LEVELS[level]
    table = {k: Tolerance(t.atol * factor, t.rtol) for k, t in BASE.items()}
    if atol is not None or rtol is not None:
        t = table["fp32"]
        table["fp32"] = Tolerance(t.atol if atol is None else atol, t.rtol if rtol is None else rtol)
    return table
