"""The first statement that differs: A's and B's recorded values (diagnosis/lines.py) aligned by order, shape and
value up to a scale; the first A value with a counterpart in B that differs, after everything before it agreed."""
from __future__ import annotations

import itertools

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
    """{a, b, a_location, b_location, relation, agreed, a_since, b_since} for the first differing statement, or
    None; `*_since`: where the statements recorded after the last agreeing one and before it are (no counterpart
    on the other side: a value computed there may be where the difference comes from).

    A same-shaped B value below MIN_COSINE is another quantity; when no statement differs otherwise, the first A
    value that B never computes, whose next same-shaped B value is unrelated to anything A computes afterwards,
    is the answer (a port that reads the wrong tensor: B's `values` made from the keys), with the earlier A value
    B's equals, if any."""
    a = [(label, flat[0][1]) for label, _, flat in rows_a if flat]
    b = [(label, flat[0][1]) for label, _, flat in rows_b if flat]
    last, agreed, a_agreed = -1, 0, -1
    unrelated = None
    for k, (label_a, va) in enumerate(a):
        match = next((j for j in range(last + 1, len(b)) if _close(va, b[j][1], atol)), None)
        if match is not None:
            last, agreed, a_agreed = match, agreed + 1, k
            continue
        if any(_close(va, v, atol) for _, v in b[:last + 1]):
            continue  # a value B already computed, recorded again by A (`residual = x`, then x as an argument)
        candidates = [(j, *_relation(va, b[j][1])) for j in range(last + 1, len(b)) if b[j][1].shape == va.shape]
        if unrelated is None and candidates and not any(_close(va, v, atol) for _, v in b) \
                and not any(_close(x, b[candidates[0][0]][1], atol) for _, x in a[k + 1:]):
            j, cosine, _ = candidates[0]
            same = next((x for x, v in a[:k] if _close(v, b[j][1], atol)), None)
            unrelated = _found(a, b, k, j, f"is unrelated (cosine {cosine:.2f}) to", cosine, (last, agreed, a_agreed),
                               f"; it equals A's `{same.split(' ', 1)[1]}` at {same.split(' ', 1)[0]}" if same else "")
            _origin(unrelated, b, j, va, atol)
        candidates = [c for c in candidates if c[1] >= MIN_COSINE]
        if not candidates:
            continue  # a value only A computes (a cast, a temporary): not a difference by itself
        j, cosine, how = max(candidates, key=lambda c: c[1])
        return _origin(_found(a, b, k, j, how, cosine, (last, agreed, a_agreed)), b, j, va, atol)
    return unrelated


def _found(a: list, b: list, k: int, j: int, how: str, cosine: float, state: tuple[int, int, int],
           more: str = "") -> dict:
    last, agreed, a_agreed = state
    loc_a, name_a = a[k][0].split(" ", 1)
    loc_b, name_b = b[j][0].split(" ", 1)
    since_a = [x.split(" ", 1)[0] for x, _ in a[a_agreed + 1:k]]
    since_b = [x.split(" ", 1)[0] for x, _ in b[last + 1:j]]
    return {"a": name_a, "b": name_b, "a_location": loc_a, "b_location": loc_b, "agreed": agreed,
            "cosine": cosine, "relation": f"B's `{name_b}` at {loc_b} {how} A's `{name_a}` at {loc_a}{more}",
            "a_since": list(dict.fromkeys(since_a)), "b_since": list(dict.fromkeys(since_b))}


def _origin(found: dict, b: list, j: int, va: np.ndarray, atol: float) -> dict:
    """Where B made its differing value: an earlier B statement whose value holds the same elements in another
    shape or order (a reshape or transpose since) made it, unless some arrangement of that value is A's (then the
    arrangement, the statement itself, is what differs)."""
    mine = np.sort(b[j][1].reshape(-1))
    earlier = [(label.split(" ", 1), v) for label, v in b[:j] if v.size == mine.size and v.shape != b[j][1].shape
               and np.array_equal(np.sort(v.reshape(-1)), mine)]
    if not earlier:
        return found
    name = b[j][0].split(" ", 1)[1]
    (loc, made), value = next((e for e in earlier if e[0][1] == name), earlier[0])
    if value.ndim <= 5 and any(_close(va, np.transpose(value, axes).reshape(va.shape), atol)
                               for axes in itertools.permutations(range(value.ndim))):
        return found
    found["relation"] += f"; B made it at {loc} (`{made}`, reshaped since)"
    found["b_location"] = loc
    return found
