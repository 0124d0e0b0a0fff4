"""Array comparison in float64: the numbers every verdict is backed by."""
from __future__ import annotations

import math

import numpy as np


def _f(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def scaled_atol(atol: float, ref: np.ndarray) -> float:
    """atol relative to the reference's magnitude: atol * max(1, max|ref|) (finite values only)."""
    finite = ref[np.isfinite(ref)] if ref.size else ref
    peak = float(np.max(np.abs(finite))) if finite.size else 0.0
    return atol * max(1.0, peak)


def _first(mask: np.ndarray) -> list[int] | None:
    """Index of the first True element (C order), or None."""
    if not mask.any():
        return None
    return [int(i) for i in np.unravel_index(int(np.argmax(mask)), mask.shape)]


def compare(a: np.ndarray, b: np.ndarray, atol: float, rtol: float) -> dict:
    """Compare B against reference A elementwise: |b - a| <= atol + rtol * |a|.

    A non-finite value on either side is never agreement (NaN == NaN is a failure too). The figures (max abs/rel
    diff, cosine, Pearson, RMSE) are computed on the elements finite on both sides; `excluded` says how many were
    left out. Also returns the smallest atol (at this rtol) and rtol (at this atol) that would have passed."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return {"ok": False, "shape_mismatch": True, "shape_a": list(a.shape), "shape_b": list(b.shape),
                "total": int(a.size)}
    total = int(a.size)
    if total == 0:
        return {"ok": True, "total": 0, "mismatched": 0, "max_abs_diff": 0.0, "max_rel_diff": 0.0, "excluded": 0,
                "nonfinite_a": 0, "nonfinite_b": 0}
    fin_a, fin_b = np.isfinite(a), np.isfinite(b)
    both = fin_a & fin_b
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(both, np.abs(a - b), 0.0)
    absa = np.abs(np.where(both, a, 0.0))
    off = diff > atol + rtol * absa
    bad = off | ~both
    mismatched = int(np.sum(bad))
    rel = np.where(absa > 0, diff / np.where(absa > 0, absa, 1.0), np.where(diff > 0, np.inf, 0.0))
    if off.any():
        worst = np.unravel_index(int(np.argmax(np.where(off, diff, -1.0))), a.shape)
    elif not both.all():
        worst = tuple(_first(~both))
    else:
        worst = np.unravel_index(int(np.argmax(diff)), a.shape)
    fa, fb = a[both].ravel(), b[both].ravel()
    return {
        "ok": mismatched == 0,
        "total": total,
        "mismatched": mismatched,
        "excluded": int(total - np.sum(both)),
        "max_abs_diff": _f(diff.max()),
        "max_rel_diff": _f(rel[both].max()) if both.any() else None,
        "worst_index": [int(i) for i in worst],
        "worst_a": _f(a[worst]),
        "worst_b": _f(b[worst]),
        "cosine": cosine(fa, fb) if fa.size else None,
        "pearson": pearson(fa, fb),
        "rmse": _f(np.sqrt(np.mean((fa - fb) ** 2))) if fa.size else None,
        "min_tolerance": None if not both.all() else {  # no tolerance makes a NaN agree
            "atol": _f(max(0.0, float(np.max(diff - rtol * absa)))),
            "rtol": _f(max(0.0, float(np.max(np.where(absa > 0, (diff - atol) / np.where(absa > 0, absa, 1), 0))))),
        },
        "nonfinite_a": int(np.sum(~fin_a)),
        "nonfinite_b": int(np.sum(~fin_b)),
        "first_nonfinite_a": _first(~fin_a),
        "first_nonfinite_b": _first(~fin_b),
        "nonfinite_b_where_a_finite": int(np.sum(fin_a & ~fin_b)),
    }


def cosine(a: np.ndarray, b: np.ndarray) -> float | None:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 and nb == 0.0:
        return 1.0
    if na == 0.0 or nb == 0.0:
        return 0.0
    return _f(np.dot(a, b) / (na * nb))


def pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    if a.size < 2:
        return None
    sa, sb = float(a.std()), float(b.std())
    if sa == 0.0 or sb == 0.0:
        return 1.0 if sa == sb and np.allclose(a, b) else None
    return _f(np.mean((a - a.mean()) * (b - b.mean())) / (sa * sb))


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    both = np.isfinite(a) & np.isfinite(b)
    if not both.any():
        return math.inf
    return float(np.sqrt(np.mean((a[both] - b[both]) ** 2)))

