"""The power of the head size an attention scales its scores by, read from the code: `q @ k.T / sqrt(d)`,
`q * d ** -0.25` and `k * d ** -0.25`, `scale=self.head_dim ** -0.5`, SDPA's default. Equal powers written
differently are the same computation; different powers are a finding."""
from __future__ import annotations

import re

from parity_skill.analyze.model import OpCall, Symbol

_POWER = re.compile(r"\*\*\(?(-?\d*\.?\d+)\)?")
_NAME = re.compile(r"(?:self\.)?(\w+)")
_SDPA = ("scaled_dot_product_attention",)


def _power(text: str, assigns: dict[str, str], depth: int = 0) -> float | None:
    """The power of the head size `text` is, or None: `d ** -0.5` -0.5, `1 / math.sqrt(d)` -0.5, `rsqrt(d)`
    -0.5, `sqrt(d)` 0.5, `self.scale` through its assignment in `__init__`."""
    t = text.replace(" ", "")
    name = _NAME.fullmatch(t)
    if name and name.group(1) in assigns and depth < 3:
        return _power(assigns[name.group(1)], assigns, depth + 1)
    inverse = bool(re.match(r"1(\.0)?/", t))
    if "rsqrt(" in t:
        return -0.5
    m = _POWER.search(t)
    if m:
        p = float(m.group(1))
        return -p if inverse else p
    if "sqrt(" in t:
        return -0.5 if inverse else 0.5
    return None


def _of_op(op: OpCall, assigns: dict[str, str]) -> float | None:
    left, right = op.args if len(op.args) == 2 else ("", "")
    if op.name.startswith("/ "):
        p = _power(right, assigns)
        if p is None and re.search(r"(head_dim|head_size|d_k|dk|dim_head|\bd)\)?$", right):
            p = 1.0
        return -p if p is not None else None
    for side in (right, left):
        if re.search(r"\*\*\s*\(?-|rsqrt|scal(e|ing)\b", side):
            return _power(side, assigns)
    return None


def score_power(sym: Symbol) -> tuple[float, str, str] | None:
    """(power of the head size on the scores, how the code says it, location) for an attention symbol (softmax and a
    matmul, or SDPA, in its forward), or None where that cannot be read."""
    ops = [o for o in sym.ops if sym.in_call(o.location)]
    assigns = dict(sym.self_assigns)
    sdpa = next((o for o in ops if o.op in _SDPA), None)
    if sdpa is not None:
        given = sdpa.kwarg("scale")
        if given is None:
            return -0.5, "SDPA default 1/sqrt(d)", sdpa.location
        p = _power(given, assigns)
        return (p, f"scale={given}", sdpa.location) if p is not None else None
    if not (any(o.op == "softmax" for o in ops) and any(o.op in ("matmul", "einsum") for o in ops)):
        return None
    scaled = [o for o in ops if o.op == "attn_scale"]
    if not scaled:
        return None
    powers = [_of_op(o, assigns) for o in scaled]
    if any(p is None for p in powers):
        return None
    return sum(powers), " and ".join(o.name for o in scaled), scaled[0].location


def compare(syms_a: list[Symbol], syms_b: list[Symbol]) -> dict | None:
    """A `scale` finding when the first attention of each side scales its scores by a different power."""
    a = next((p for p in map(score_power, syms_a) if p), None)
    b = next((p for p in map(score_power, syms_b) if p), None)
    if a is None or b is None or abs(a[0] - b[0]) < 1e-9:
        return None
    return {"kind": "scale", "message": f"attention scales its scores differently: A by d^{a[0]:g} ({a[1]}) vs B by "
                                        f"d^{b[0]:g} ({b[1]}), d the head size", "a_location": a[2],
            "b_location": b[2]}
