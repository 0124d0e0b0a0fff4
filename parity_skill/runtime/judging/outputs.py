"""Match the outputs of A and B (by key, position or shape) and judge them against a tolerance."""
from __future__ import annotations

import numpy as np

from parity_skill.runtime.adapters.base import Flat
from parity_skill.runtime.judging.metrics import compare, scaled_atol
from parity_skill.spec import Tolerance


def match_outputs(fa: Flat, fb: Flat) -> tuple[list[tuple[str, np.ndarray, str, np.ndarray]], list[str], list[str]]:
    """[(key A, A, key B, B)], unmatched A keys, unmatched B keys.

    Structures of the same size pair up in order. Otherwise the first outputs pair up (by shape), and the others
    only with the same key and shape: `(out, probs)` vs `(out, (k, v), qk)` compares `out` alone, never A's
    probabilities with B's raw scores because their shapes happen to agree."""
    if [k for k, _ in fa] == [k for k, _ in fb] or len(fa) == len(fb):
        return [(ka, a, kb, b) for (ka, a), (kb, b) in zip(fa, fb)], [], []
    pairs, rest_b = [], list(fb)
    extra_a = []
    for i, (ka, a) in enumerate(fa):
        hit = next(((kb, b) for kb, b in rest_b if kb == ka and b.shape == a.shape), None)
        if hit is None and i == 0:
            hit = next(((kb, b) for kb, b in rest_b if b.shape == a.shape), None)
        if hit is None:
            extra_a.append(ka)
            continue
        rest_b.remove(hit)
        pairs.append((ka, a, hit[0], hit[1]))
    return pairs, extra_a, [k for k, _ in rest_b]


def label(key: str) -> str:
    return f"output{key}" if key else "output"


def judge(fa: Flat, fb: Flat, tol: Tolerance, cosine_min: float | None = None) -> dict:
    """Compare every matched output; the result carries the worst output's figures.

    atol is scaled by max(1, max|A|) of each output, so large-magnitude outputs are judged relative to scale."""
    pairs, extra_a, extra_b = match_outputs(fa, fb)
    result: dict = {"ok": True, "outputs": [], "notes": []}
    if extra_b:
        result["notes"].append(f"B has extra outputs {', '.join(extra_b)} (not compared)")
    primary_paired = bool(pairs) and pairs[0][0] == fa[0][0]
    if extra_a and primary_paired:  # (out, attn_weights) vs out: the extra element is reported, never judged
        result["uncompared"] = extra_a
        result["notes"].append(f"A's outputs {', '.join(label(k) for k in extra_a)} have no counterpart in B "
                               f"(shapes {[list(a.shape) for k, a in fa if k in extra_a]}): not compared")
    elif extra_a or not pairs:
        result.update(ok=False, missing_outputs=extra_a or ["(all)"])
        result["notes"].append(f"A's outputs {', '.join(extra_a) or 'all'} have no counterpart of the same shape in B "
                               f"(B gives {[list(b.shape) for _, b in fb]})")
    worst = None
    for ka, a, kb, b in pairs:
        atol = scaled_atol(tol.atol, a)
        c = compare(a, b, atol, tol.rtol)
        c.update(key=ka, key_b=kb, atol=atol, rtol=tol.rtol)
        if c.get("min_tolerance") and c["min_tolerance"]["atol"] is not None:
            c["min_tolerance"]["atol"] /= scaled_atol(1.0, a)  # on the scale of the user's --atol
        if cosine_min is not None and not c.get("shape_mismatch"):
            if "cosine" in c.get("undefined", {}):
                result["notes"].append(f"cosine undefined for {label(ka)} ({c['undefined']['cosine']}): judged by the "
                                       "elementwise tolerance alone")
            elif c.get("cosine") is None or c["cosine"] < cosine_min:
                c["ok"] = False
                c["cosine_failed"] = True
        result["outputs"].append(c)
        if not c["ok"]:
            result["ok"] = False
        if worst is None or _badness(c) > _badness(worst):
            worst = c
    result["worst"] = worst
    return result


def _badness(c: dict) -> tuple:
    if c.get("shape_mismatch"):
        return (3, 0.0)
    nonfinite = bool(c.get("nonfinite_a") or c.get("nonfinite_b"))
    return (0 if c["ok"] else 2, nonfinite, c.get("max_abs_diff") or 0.0)


def figures(c: dict | None) -> dict:
    """The schema fields for a check from one comparison."""
    if not c or c.get("shape_mismatch"):
        return {}
    return {k: c.get(k) for k in ("max_abs_diff", "max_rel_diff", "mismatched", "total", "cosine", "pearson",
                                  "worst_index", "min_tolerance", "rmse", "excluded", "nonfinite_a", "nonfinite_b",
                                  "undefined")}


def cosine_text(c: dict) -> str:
    """'cosine 0.999998', or 'cosine undefined (A and B are all zeros)'."""
    if c.get("cosine") is not None:
        return f"cosine {c['cosine']:.6f}"
    why = c.get("undefined", {}).get("cosine")
    return f"cosine undefined ({why})" if why else "cosine -"


def nonfinite_text(c: dict) -> str | None:
    """'B is non-finite at 12/96 values (first at (0, 3))...' or None when both sides are finite."""
    parts = [f"{side} is non-finite at {c[f'nonfinite_{side.lower()}']}/{c['total']} values (first at "
             f"{tuple(c[f'first_nonfinite_{side.lower()}'])})" for side in ("A", "B") if c.get(f"nonfinite_{side.lower()}")]
    if not parts:
        return None
    return "; ".join(parts) + f"; figures on the {c['total'] - c['excluded']} values finite on both sides"


def _all_finite(x: np.ndarray) -> bool:
    """A finite sum of squares means every value is finite (BLAS, no mask of a model-sized tensor)."""
    flat = x.reshape(-1)
    return bool((x.itemsize >= 4 and np.isfinite(np.dot(flat, flat))) or np.isfinite(flat).all())


def first_nonfinite(flat: Flat, name=label) -> str | None:
    """'output[0]: 5 of 96 values (first at (0, 2))' for the first output with NaN/inf, else None."""
    for key, x in flat:
        x = np.asarray(x)
        if x.dtype.kind in "biu" or (x.dtype.kind == "f" and _all_finite(x)):
            continue
        bad = ~np.isfinite(np.asarray(x, dtype=np.float64))
        if bad.any():
            idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), bad.shape))
            return f"{name(key)}: {int(bad.sum())} of {bad.size} values are NaN/inf (first at {idx})"
    return None


def describe_mismatch(c: dict, what: str) -> str:
    if c.get("shape_mismatch"):
        return f"{what}: shape A {tuple(c['shape_a'])} vs B {tuple(c['shape_b'])}"
    idx = tuple(c.get("worst_index") or ())
    parts = [f"{what}: {c['mismatched']}/{c['total']} elements differ"]
    nonfinite = nonfinite_text(c)
    if nonfinite:
        parts.append(nonfinite)
    if c.get("max_abs_diff") is not None:
        parts.append(f"max abs diff {c['max_abs_diff']:.3g}" + (" on the finite values" if nonfinite else ""))
    if c.get("worst_a") is not None and c.get("worst_b") is not None:
        parts.append(f"worst at {idx}: A={c['worst_a']:.6g} B={c['worst_b']:.6g}")
    return "; ".join(parts)
