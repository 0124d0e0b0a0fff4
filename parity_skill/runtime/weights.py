"""Give A's parameters distinctive random values and load them into B through the weight map."""
from __future__ import annotations

import numpy as np

from parity_skill.mapping import ParamInfo, apply_shape, match_parameters
from parity_skill.runtime.side import Side
from parity_skill.spec import MapEntry


def perturb(state: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """New floating values around the initial ones, so ones/zeros init (norm weights, biases) cannot hide a bug."""
    rng = np.random.default_rng(seed + 7)
    out = {}
    for name in sorted(state):
        v = state[name]
        if not np.issubdtype(v.dtype, np.floating) or v.size == 0:
            continue
        spread = float(v.std()) if v.size > 1 else 0.0
        spread = max(spread, 0.1 * float(np.abs(v).mean()), 0.05)
        out[name] = v + rng.standard_normal(v.shape) * spread
    return out


def transform(value: np.ndarray, how: str) -> list[np.ndarray]:
    """A's value -> the value(s) for B (a list: a split yields several)."""
    if how == "identity":
        return [value]
    if how == "conv_to_channels_last":
        return [np.moveaxis(value, 1, -1)]
    if how == "conv_to_channels_first":
        return [np.moveaxis(value, -1, 1)]
    if how.startswith("split0:"):
        sizes = [int(s) for s in how.split(":")[1].split(",")]
        return np.split(value, np.cumsum(sizes)[:-1], axis=0)
    raise ValueError(f"unknown transform '{how}'")


def gather(values: dict[str, np.ndarray], entry: MapEntry) -> np.ndarray:
    """A's value for an entry (concat0 entries join several A parameters)."""
    names = entry.a.split("+")
    if entry.transform.startswith("concat0:"):
        return np.concatenate([values[n] for n in names], axis=0)
    return values[names[0]]


def b_values(values_a: dict[str, np.ndarray], entries: list[MapEntry]) -> dict[str, np.ndarray]:
    out = {}
    for e in entries:
        how = "identity" if e.transform.startswith("concat0:") else e.transform
        for name, v in zip(e.b.split("+"), transform(gather(values_a, e), how)):
            out[name] = v
    return out


def resolve_map(planned: tuple[MapEntry, ...], a: Side, b: Side, notes: list[str]):
    """Validate the planned table against the real parameters; match whatever it leaves out."""
    state_a, state_b = a.adapter.state(a.model), b.adapter.state(b.model)
    shapes_a = {k: tuple(v.shape) for k, v in state_a.items()}
    shapes_b = {k: tuple(v.shape) for k, v in state_b.items()}
    fixed = []
    for e in planned:
        names_a, names_b = e.a.split("+"), e.b.split("+")
        if not all(n in shapes_a for n in names_a) or not all(n in shapes_b for n in names_b):
            notes.append(f"weight map entry {e.a} -> {e.b} names a parameter that does not exist; re-matched")
            continue
        if len(names_a) == 1 and len(names_b) == 1 and apply_shape(e.transform, shapes_a[e.a]) != shapes_b[e.b]:
            notes.append(f"weight map entry {e.a} {shapes_a[e.a]} -> {e.b} {shapes_b[e.b]} ({e.transform}) "
                         "does not fit; re-matched")
            continue
        fixed.append(e)
    layout_change = a.impl.framework != b.impl.framework
    entries, left_a, left_b = match_parameters(
        [ParamInfo(k, s) for k, s in shapes_a.items()], [ParamInfo(k, s) for k, s in shapes_b.items()],
        tuple(fixed), layout_change)
    return state_a, entries, left_a, left_b


def load_pair(a: Side, b: Side, planned: tuple[MapEntry, ...], seed: int, notes: list[str]):
    """Perturb A, copy through the map into B. Returns (entries, unmapped A names, unmapped B names)."""
    state_a, entries, left_a, left_b = resolve_map(planned, a, b, notes)
    new = perturb(state_a, seed)
    if new:
        a.adapter.load(a.model, new)
        state_a = a.adapter.state(a.model)  # read back: values now exactly representable in A's dtype
    load_b = b_values(state_a, entries)
    if load_b:
        b.adapter.load(b.model, load_b)
    a.refresh()
    b.refresh()
    return entries, left_a, left_b, state_a
