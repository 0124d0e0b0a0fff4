"""Classify how B's output differs from A's, with the evidence: the seed's "common issues" table, computed."""
from __future__ import annotations

import itertools
import math

import numpy as np


def _close(a: np.ndarray, b: np.ndarray, scale: float) -> bool:
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= 1e-4 * scale + 1e-6))


def _factor_hint(c: float) -> str:
    for k, label in ((c * c, "sqrt({:g})"), (1 / (c * c) if c else 0, "1/sqrt({:g})")):
        if k > 1.5 and abs(k - round(k)) < 1e-3 * k:
            return " = " + label.format(round(k))
    return ""


def classify(a: np.ndarray, b: np.ndarray) -> list[tuple[str, str]]:
    """[(kind, message)] for B vs A (same output). Empty when nothing simple explains the difference."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return []
    scale = float(np.max(np.abs(a))) if a.size else 0.0
    if a.shape != b.shape:
        if sorted(a.shape) == sorted(b.shape) and a.ndim <= 5:
            for perm in itertools.permutations(range(b.ndim)):
                if perm != tuple(range(b.ndim)) and b.transpose(perm).shape == a.shape and _close(a, b.transpose(perm), scale):
                    return [("transpose", f"B's output {b.shape} is A's {a.shape} with axes permuted: "
                                          f"B.transpose{perm} equals A (a missing transpose back?)")]
        return []
    if scale == 0.0 or a.size < 2:
        return []
    if not np.any(b):
        return [("zeros", "B's output is all zeros where A's is not: a weight not loaded, or a branch never taken")]
    denom = float(np.sum(a * a))
    c = float(np.sum(a * b)) / denom if denom else 0.0
    deviation = float(np.max(np.abs(b - c * a)))
    if deviation <= 1e-4 * max(scale, float(np.max(np.abs(b)))) + 1e-6 and abs(c - 1.0) > 1e-3:
        if abs(c + 1.0) <= 1e-3:
            return [("sign_flip", f"B = -A (max deviation {deviation:.2g}): a sign flipped")]
        return [("scale", f"B = {c:.4g} * A{_factor_hint(c)} (max deviation {deviation:.2g}): a missing or wrong "
                          "factor")]
    out = []
    d = b - a
    if a.shape[-1] >= 2:  # the same shift across the last axis in each row: softmax(B) == softmax(A)
        row = d.mean(axis=-1, keepdims=True)
        spread = float(np.max(np.abs(d - row)))
        shift = float(np.max(np.abs(row)))
        if shift > 1e-5 * max(scale, 1.0) and spread <= 1e-4 * max(scale, 1.0) + 1e-6:
            out.append(("softmax_invariant", f"B - A is constant along the last axis within each row (shifts up to "
                                          f"{shift:.3g}, spread {spread:.2g}): a softmax over that axis is unchanged, "
                                          "so as logits this is harmless to the probabilities; a bug only if the "
                                          "values themselves are used"))
    if a.ndim >= 2:
        axes = tuple(range(a.ndim - 1))
        mean = d.mean(axis=axes, keepdims=True)
        spread = float(np.max(np.abs(d - mean)))
        offset = float(np.max(np.abs(mean)))
        if offset > 1e-5 * max(scale, 1.0) and spread <= 1e-3 * offset + 1e-6:
            out.append(("constant_offset", f"B - A is the same for every position (a per-feature offset, max "
                                           f"{offset:.3g}; spread {spread:.2g}): a bias not loaded or dropped"))
    for i, j in itertools.combinations(range(a.ndim), 2):
        if a.shape[i] == a.shape[j] and _close(a, np.swapaxes(b, i, j), scale):
            out.append(("transpose", f"B equals A with axes {i} and {j} swapped"))
    perm = _permutation(a, b, scale)
    if perm:
        out.append(perm)
    return out


def _permutation(a: np.ndarray, b: np.ndarray, scale: float) -> tuple[str, str] | None:
    """B equals A up to a reordering of slices along one axis (heads, channels)."""
    for axis in range(a.ndim):
        n = a.shape[axis]
        if n < 2 or n > 256:
            continue
        sa = np.moveaxis(a, axis, 0).reshape(n, -1)
        sb = np.moveaxis(b, axis, 0).reshape(n, -1)
        order = []
        for i in range(n):
            hits = [j for j in range(n) if _close(sa[j], sb[i], scale)]
            if not hits:
                break
            order.append(hits[0])
        if len(order) == n and sorted(order) != order and len(set(order)) == n:
            shown = ", ".join(str(o) for o in order[:8]) + (", ..." if n > 8 else "")
            return ("permutation", f"B equals A reordered along axis {axis}: B[{axis}=i] = A[{axis}=p(i)], "
                                   f"p = [{shown}] (heads or channels in another order)")
    return None


def log_bar(err: float | None, width: int = 20) -> str:
    """A bar whose length is log10 of the error from 1e-9 (empty) to 1e+1 (full)."""
    if err is None or not math.isfinite(err):
        return "#" * width
    if err <= 0:
        return "." * width
    filled = int(round((min(max(math.log10(err), -9.0), 1.0) + 9.0) / 10.0 * width))
    return "#" * filled + "." * (width - filled)
