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


def compare(a: np.ndarray, b: np.ndarray, atol: float, rtol: float) -> dict:
    """Compare B against reference A elementwise: |b - a| <= atol + rtol * |a|.

    Non-finite values must agree exactly (NaN where A is NaN, the same infinity). Returns the figures for the
    report, including the smallest atol (at this rtol) and rtol (at this atol) that would have passed."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return {"ok": False, "shape_mismatch": True, "shape_a": list(a.shape), "shape_b": list(b.shape),
                "total": int(a.size)}
    total = int(a.size)
    if total == 0:
        return {"ok": True, "total": 0, "mismatched": 0, "max_abs_diff": 0.0, "max_rel_diff": 0.0}
    fin_a, fin_b = np.isfinite(a), np.isfinite(b)
    both = fin_a & fin_b
    nonfinite_b = int(np.sum(fin_a & ~fin_b))
    nonfinite_a = int(np.sum(~fin_a & fin_b))
    same_nonfinite = (~fin_a & ~fin_b) & ((np.isnan(a) & np.isnan(b)) | (a == b))
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(both, np.abs(a - b), 0.0)
    absa = np.abs(np.where(both, a, 0.0))
    bad = (diff > atol + rtol * absa) | (fin_a != fin_b) | ((~fin_a & ~fin_b) & ~same_nonfinite)
    mismatched = int(np.sum(bad))
    rel = np.where(absa > 0, diff / np.where(absa > 0, absa, 1.0), np.where(diff > 0, np.inf, 0.0))
    worst = np.unravel_index(int(np.argmax(np.where(bad, diff + 1.0, diff) if mismatched else diff)), a.shape)
    fa, fb = a[both].ravel(), b[both].ravel()
    out = {
        "ok": mismatched == 0,
        "total": total,
        "mismatched": mismatched,
        "max_abs_diff": _f(diff.max()),
        "max_rel_diff": _f(rel[both].max()) if both.any() else None,
        "worst_index": [int(i) for i in worst],
        "worst_a": _f(a[worst]),
        "worst_b": _f(b[worst]),
        "cosine": cosine(fa, fb),
        "pearson": pearson(fa, fb),
        "rmse": _f(np.sqrt(np.mean((fa - fb) ** 2))) if fa.size else None,
        "min_tolerance": {
            "atol": _f(max(0.0, float(np.max(diff - rtol * absa)))),
            "rtol": _f(max(0.0, float(np.max(np.where(absa > 0, (diff - atol) / np.where(absa > 0, absa, 1), 0))))),
        },
        "nonfinite_b": nonfinite_b,
        "nonfinite_a": nonfinite_a,
    }
    return out


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

