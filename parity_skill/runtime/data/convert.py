"""`--convert NAME`: B's own conversion function (`Model.sanitize(weights)`, a module-level `convert(weights)`)
turns A's state dict into B's, which puts that function under test too. Which A parameter each converted value
came from is found by value (A's parameters are distinct random draws), so gradients still compare."""
from __future__ import annotations

from typing import Callable

import numpy as np

from parity_skill.runtime.sides.failures import UserCodeError, describe
from parity_skill.runtime.sides.loading import load_file
from parity_skill.spec import MapEntry

# how a converted value can come from one A parameter, tried in this order
_LAYOUTS: tuple[tuple[str, Callable[[np.ndarray], np.ndarray]], ...] = (
    ("identity", lambda v: v),
    ("transpose", lambda v: v.T),
    ("conv_to_channels_last", lambda v: np.moveaxis(v, 1, -1)),
    ("conv_to_channels_first", lambda v: np.moveaxis(v, -1, 1)),
)


def converter(name: str, b) -> Callable:
    """`sanitize` (a method of B's model, else a function of B's file) or `file.py::fn`."""
    path, _, attr = name.rpartition("::")
    if not path and hasattr(b.model, attr):
        return getattr(b.model, attr)
    module = load_file(path) if path else load_file(b.impl.file) if b.impl.file else None
    fn = getattr(module, attr, None) if module is not None else None
    if not callable(fn):
        raise UserCodeError(f"--convert {name}: neither B's model nor {path or b.impl.file} has a callable {attr!r}")
    return fn


def _source(value: np.ndarray, state_a, by_size: dict[int, list[str]]) -> tuple[str, str] | None:
    for name in by_size.get(value.size, []):
        a = np.asarray(state_a[name])
        for transform, move in _LAYOUTS:
            if a.ndim == value.ndim and (transform == "identity" or a.ndim >= 2):
                moved = move(a)
                if moved.shape == value.shape and np.array_equal(moved, value):
                    return name, transform
    return None


def _stacked(value: np.ndarray, state_a, names: list[str]) -> list[str] | None:
    """The A parameters whose concatenation along axis 0 is `value` (a fused qkv built by the converter)."""
    parts = [n for n in names if np.asarray(state_a[n]).shape[1:] == value.shape[1:]
             and 0 < np.asarray(state_a[n]).shape[0] < value.shape[0]]
    found, offset = [], 0
    while offset < value.shape[0]:
        hit = next((n for n in parts if n not in found and offset + np.asarray(state_a[n]).shape[0] <= value.shape[0]
                    and np.array_equal(np.asarray(state_a[n]), value[offset:offset + np.asarray(state_a[n]).shape[0]])),
                   None)
        if hit is None:
            return None
        found.append(hit)
        offset += np.asarray(state_a[hit]).shape[0]
    return found if len(found) > 1 else None


def _stack_of(value: np.ndarray, state_a, by_size: dict[int, list[str]], free: list[str]) -> tuple | None:
    """A stacked tensor (experts as one (E, ...) tensor) whose every slice is one A parameter as it is ("stack") or
    the same concatenation of A parameters ("stack:concat0:sizes", transformers 5's fused `gate_up_proj`):
    (names in order, transform) or None."""
    names, parts = [], None
    for piece in value:
        found = _source(piece, state_a, by_size)
        if found and found[1] == "identity" and parts in (None, 1):
            names.append(found[0])
            parts = 1
            continue
        group = _stacked(piece, state_a, [n for n in free if n not in names])
        sizes = [np.asarray(state_a[n]).shape[0] for n in group] if group else None
        if group is None or parts not in (None, tuple(sizes)):
            return None
        names += group
        parts = tuple(sizes)
    if parts == 1:
        return names, "stack"
    return names, "stack:concat0:" + ",".join(str(s) for s in parts)


def convert_state(name: str, a, b, notes: list[str], fn: Callable | None = None
                  ) -> tuple[dict[str, np.ndarray], list[MapEntry], list[str]]:
    """(B's values by name, the entries traced back to A, A parameters no converted value comes from). `fn`: the
    converter itself when it is not found by `name` (B's own checkpoint loading)."""
    state_a = a.state()
    fn = fn or converter(name, b)
    saved = getattr(a, "saved_state", lambda: None)()  # A's checkpoint as its library writes it, where it differs
    given = saved if saved is not None else state_a
    native = {k: b.adapter.native(np.asarray(given[k])) for k in given}
    try:
        out = fn(native)
    except Exception as exc:  # noqa: BLE001 - the port's converter failed on A's names: that is the finding
        raise UserCodeError(f"--convert {name} raised {describe(exc)} on A's state dict") from exc
    if not isinstance(out, dict):
        raise UserCodeError(f"--convert {name} returned {type(out).__name__}, not a dict of weights")
    values = {k: b.adapter.numpy(v) for k, v in out.items()}
    params_b = set(b.state())
    extra = sorted(set(values) - params_b)
    if extra:
        notes.append(f"--convert {name} produced names B has no parameter for (not loaded): {', '.join(extra[:8])}"
                     + (" ..." if len(extra) > 8 else ""))
    by_size: dict[int, list[str]] = {}
    for k in state_a:
        by_size.setdefault(int(np.asarray(state_a[k]).size), []).append(k)
    entries, traced = [], set()
    for k in sorted(set(values) & params_b):
        found = _source(values[k], state_a, by_size)
        if found:
            entries.append(MapEntry(found[0], k, found[1], "convert"))
            traced.add(found[0])
        elif values[k].ndim >= 1:
            free = [n for n in state_a if n not in traced]
            group = _stacked(values[k], state_a, free)
            if group:
                sizes = ",".join(str(np.asarray(state_a[n]).shape[0]) for n in group)
                entries.append(MapEntry("+".join(group), k, f"concat0:{sizes}", "convert"))
                traced.update(group)
            elif values[k].ndim >= 3 and (stacked := _stack_of(values[k], state_a, by_size, free)):
                entries.append(MapEntry("+".join(stacked[0]), k, stacked[1], "convert"))
                traced.update(stacked[0])
    left = [k for k in sorted(set(values) & params_b) if k not in {n for e in entries for n in e.b.split("+")}]
    for entry in _unstacked(values, left, state_a, traced):
        entries.append(entry)
        traced.add(entry.a)
    untraced = [k for k in state_a if k not in traced]
    if untraced:
        notes.append(f"--convert {name}: no converted value equals A's {', '.join(untraced[:8])}"
                     + (" ..." if len(untraced) > 8 else "") + " (combined or dropped by the converter: their "
                     "gradients are not compared)")
    return {k: v for k, v in values.items() if k in params_b}, entries, untraced


def _unstacked(values: dict[str, np.ndarray], left: list[str], state_a, traced: set[str]) -> list[MapEntry]:
    """B's tensors that are pieces of one fused A tensor, matched by exact value: its row or column blocks as they
    are ("split0" of a [q; k; v], "split1" of experts' [gate | up]) or their transposes ("split0:...|T": DBRX's
    experts' down projections, kept as one (E*F, D) matrix), its slices along the first axis ("unstack":
    A stacks experts as (E, ...), B keeps one module per expert), or the same row blocks of each slice
    ("unstack:split0:I,I")."""
    by_value: dict[tuple, list[str]] = {}
    for k in left:
        v = np.asarray(values[k], order="C")
        by_value.setdefault((v.shape, v.dtype.str, hash(v.tobytes())), []).append(k)
    taken: set[str] = set()

    def find(piece: np.ndarray) -> str | None:
        p = np.asarray(piece, dtype=values[left[0]].dtype, order="C")
        names = by_value.get((p.shape, p.dtype.str, hash(p.tobytes())), [])
        return next((n for n in names if n not in taken and np.array_equal(values[n], p)), None)

    def blocks(piece: np.ndarray, axis: int) -> list[str] | None:  # B tensors that join into `piece` along axis
        moved = {k: np.moveaxis(values[k], axis, 0) for k in left if k not in taken and values[k].ndim == piece.ndim}
        return _stacked(np.moveaxis(piece, axis, 0), moved, list(moved))

    def blocks_transposed(piece: np.ndarray) -> list[str] | None:  # B matrices whose transposes stack into it
        moved = {k: values[k].T for k in left if k not in taken and values[k].ndim == 2}
        return _stacked(piece, moved, list(moved))

    out: list[MapEntry] = []
    for name in state_a:
        a = np.asarray(state_a[name])
        if name in traced or a.ndim < 2 or not left:
            continue
        found = next(((axis, g) for axis in (0, 1)[:a.ndim - 1] if (g := blocks(a, axis))), None)
        if found:
            axis, group = found
            sizes = ",".join(str(values[n].shape[axis]) for n in group)
            out.append(MapEntry(name, "+".join(group), f"split{axis}:{sizes}", "convert"))
        elif a.ndim == 2 and (group := blocks_transposed(a)):
            sizes = ",".join(str(values[n].shape[1]) for n in group)
            out.append(MapEntry(name, "+".join(group), f"split0:{sizes}|T", "convert"))
        elif a.ndim >= 3 and all(whole := [find(piece) for piece in a]):
            group = whole
            out.append(MapEntry(name, "+".join(group), "unstack", "convert"))
        elif a.ndim >= 3 and (first := blocks(a[0], 0)):
            sizes = [values[n].shape[0] for n in first]
            group = [find(b) for piece in a for b in np.split(piece, np.cumsum(sizes)[:-1], axis=0)]
            if not all(group) or len(set(group)) != len(group):
                continue
            out.append(MapEntry(name, "+".join(group), "unstack:split0:" + ",".join(map(str, sizes)), "convert"))
        else:
            continue
        taken.update(group)
    return out
