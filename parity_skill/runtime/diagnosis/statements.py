"""The first statement that differs: A's and B's recorded values (diagnosis/lines.py) aligned by order, shape and
value up to a scale; the first A value with a counterpart in B that differs, after everything before it agreed."""
from __future__ import annotations

import numpy as np

MIN_COSINE = 0.5  # below this a same-shaped B value is another quantity, not A's computed differently


def _close(a: np.ndarray, b: np.ndarray, atol: float) -> bool:
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= atol * max(1.0, float(np.max(np.abs(a))))))


def _relation(a: np.ndarray, b: np.ndarray) -> tuple[float, str]:
    """(cosine, how B relates to A): a scale when B is one, else the largest difference."""
    fa, fb = a.reshape(-1), b.reshape(-1)
    na, nb = float(np.linalg.norm(fa)), float(np.linalg.norm(fb))
    if na == 0 or nb == 0:
        return (1.0 if na == nb else 0.0), f"differs by up to {float(np.max(np.abs(fa - fb))):.3g}"
    cosine = float(fa @ fb) / (na * nb)
    scale = float(fa @ fb) / (na * na)
    if cosine > 1 - 1e-9 and abs(scale - 1) > 1e-4:
        return cosine, f"is {scale:.4g} x"
    return cosine, f"differs by up to {float(np.max(np.abs(fa - fb))):.3g} from"


def first_difference(rows_a: list, rows_b: list, atol: float) -> dict | None:
    """{a, b, a_location, b_location, relation, agreed} for the first differing statement, or None."""
    a = [(label, flat[0][1]) for label, _, flat in rows_a if flat]
    b = [(label, flat[0][1]) for label, _, flat in rows_b if flat]
    last, agreed = -1, 0
    for label_a, va in a:
        match = next((j for j in range(last + 1, len(b)) if _close(va, b[j][1], atol)), None)
        if match is not None:
            last, agreed = match, agreed + 1
            continue
        candidates = [(j, *_relation(va, b[j][1])) for j in range(last + 1, len(b)) if b[j][1].shape == va.shape]
        candidates = [c for c in candidates if c[1] >= MIN_COSINE]
        if not candidates:
            continue  # a value only A computes (a cast, a temporary): not a difference by itself
        j, cosine, how = max(candidates, key=lambda c: c[1])
        label_b = b[j][0]
        loc_a, name_a = label_a.split(" ", 1)
        loc_b, name_b = label_b.split(" ", 1)
        return {"a": name_a, "b": name_b, "a_location": loc_a, "b_location": loc_b, "agreed": agreed,
                "cosine": cosine, "relation": f"B's `{name_b}` at {loc_b} {how} A's `{name_a}` at {loc_a}"}
    return None
