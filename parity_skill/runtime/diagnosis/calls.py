"""Submodule calls of two traces, aligned and compared: the k-th call of a module meets the k-th call of its
counterpart, and each pair says whether its output (and its input) differs, and by how much."""
from __future__ import annotations

import numpy as np

from parity_skill.runtime.judging.metrics import compare, scaled_atol
from parity_skill.runtime.judging.outputs import match_outputs


def differs(fa, fb, tol) -> tuple[bool, float | None, float | None]:
    """(differs, max abs diff, that diff relative to A's largest value), per element as matched by key or shape:
    `(out, attn)` vs `out` is judged on `out` alone, and a module never differs for its output's structure while
    its first output has a counterpart."""
    if not fa:
        return True, None, None
    pairs, _, _ = match_outputs(fa, fb)
    if not pairs or pairs[0][0] != fa[0][0]:
        return True, None, None
    worst, bad, scale = 0.0, False, 0.0
    for _, x, _, y in pairs:
        if x.shape != y.shape:
            return True, None, None
        c = compare(x, y, scaled_atol(tol.atol, x), tol.rtol)
        bad |= not c["ok"]
        worst = max(worst, c.get("max_abs_diff") if c.get("max_abs_diff") is not None else float("inf"))
        finite = np.abs(x[np.isfinite(x)]) if x.size else np.zeros(1)
        scale = max(scale, float(finite.max()) if finite.size else 0.0)
    return bad, worst, worst / scale if scale else (0.0 if worst == 0 else float("inf"))


def aligned(rec_a: list, rec_b: list, pairs: dict[str, str]):
    """(A's name with its call index, B's name, A's (first, second) arrays, B's) for each A submodule call whose
    counterpart B made as often: the k-th call of a module meets the k-th call of its counterpart."""
    calls_b: dict[str, list] = {}
    for name, first, second in rec_b:
        calls_b.setdefault(name, []).append((first, second))
    seen: dict[str, int] = {}
    for name, first, second in rec_a:
        k = seen.get(name, 0)
        seen[name] = k + 1
        b_name = pairs.get(name)
        if b_name is not None and k < len(calls_b.get(b_name, [])):
            yield name + (f"#{k}" if k else ""), b_name, (first, second), calls_b[b_name][k]


def compare_calls(rec_a: list, rec_b: list, pairs: dict[str, str], tol) -> list[dict]:
    """One row per aligned submodule call: whether its output and its input differ, and by how much."""
    rows = []
    for a_name, b_name, (inp, out), (inp_b, out_b) in aligned(rec_a, rec_b, pairs):
        bad, err, rel = differs(out, out_b, tol)
        in_bad, in_err, in_rel = differs(inp, inp_b, tol) if inp and inp_b else \
            (False, 0.0, 0.0) if not inp else (False, None, None)
        rows.append({"a": a_name, "b": b_name, "max_abs_diff": err, "differs": bad, "input_differs": in_bad,
                     "input_max_abs_diff": in_err, "rel_diff": rel, "input_rel_diff": in_rel})
    return rows
