"""Give A fresh seeded parameters and load them into B through the weight map."""
from __future__ import annotations

import re

import numpy as np

from parity_skill.plan.map_rules import expand, parse_rules
from parity_skill.runtime.data.convert import convert_state
from parity_skill.plan.weight_map import ParamInfo, apply_shape, match_parameters
from parity_skill.runtime.data.init import fresh_state
from parity_skill.runtime.sides.failures import describe
from parity_skill.runtime.sides.side import Side
from parity_skill.spec import MapEntry


_JOINED = re.compile(r"^(split|concat)(\d+):([\d,]+)$")  # fused tensors, split or joined along an axis


def transform(value: np.ndarray, how: str) -> list[np.ndarray]:
    """A's value -> the value(s) for B (a list: a split yields several)."""
    if how == "identity":
        return [value]
    if how == "transpose":
        return [np.ascontiguousarray(value.T)]
    if how == "conv_to_channels_last":
        return [np.moveaxis(value, 1, -1)]
    if how == "conv_to_channels_first":
        return [np.moveaxis(value, -1, 1)]
    if how == "unstack":  # one stacked tensor -> its slices along the first axis
        return [np.ascontiguousarray(v) for v in value]
    m = _JOINED.match(how)
    if m and m.group(1) == "split":
        sizes = [int(s) for s in m.group(3).split(",")]
        return np.split(value, np.cumsum(sizes)[:-1], axis=int(m.group(2)))
    raise ValueError(f"unknown transform '{how}'")


def gather(values: dict[str, np.ndarray], entry: MapEntry) -> np.ndarray:
    """A's value for an entry (concat entries join several A parameters; weight_norm computes g * v / |v|)."""
    names = entry.a.split("+")
    m = _JOINED.match(entry.transform)
    if m and m.group(1) == "concat":
        return np.concatenate([values[n] for n in names], axis=int(m.group(2)))
    if entry.transform == "stack":
        return np.stack([values[n] for n in names], axis=0)
    if entry.transform == "sum":
        return sum(np.asarray(values[n]) for n in names)
    if entry.transform.startswith("weight_norm>"):
        g, v = (np.asarray(values[n], dtype=np.float64) for n in names)
        norm = np.sqrt(np.sum(v * v, axis=tuple(range(1, v.ndim)), keepdims=True))
        return (g * v / norm).astype(np.asarray(values[names[1]]).dtype)
    return values[names[0]]


def b_values(values_a: dict[str, np.ndarray], entries: list[MapEntry]) -> dict[str, np.ndarray]:
    out = {}
    for e in entries:
        how = "identity" if e.transform.startswith("concat") or e.transform in ("sum", "stack") else \
            e.transform.split(">")[-1]
        for name, v in zip(e.b.split("+"), transform(gather(values_a, e), how)):
            out[name] = v
    return out


def resolve_map(planned: tuple[MapEntry, ...], a, b: Side, notes: list[str], orders: tuple[list, list] = ([], []),
                rules: tuple[str, ...] = ()):
    """Validate the planned table against the real parameters; match whatever it leaves out. With the modules'
    call orders, positional guesses of the plan are redone on the aligned module trees. The user's --map rules
    come first and are never second-guessed (a rule that does not fit is an error)."""
    state_a, state_b = a.state(), b.state()
    shapes_a = {k: tuple(state_a[k].shape) for k in state_a}
    shapes_b = {k: tuple(v.shape) for k, v in state_b.items()}
    user = expand(parse_rules("\n".join(rules)), shapes_a, shapes_b) if rules else []
    for e in user:
        if "+" not in e.a + e.b and apply_shape(e.transform, shapes_a[e.a]) != shapes_b[e.b]:
            raise ValueError(f"--map: {e.a} {shapes_a[e.a]} -> {e.b} {shapes_b[e.b]} ({e.transform}) does not fit")
    taken = {n for e in user for n in e.a.split("+") + e.b.split("+")}
    planned = tuple(e for e in planned if not taken & {*e.a.split("+"), *e.b.split("+")})
    fixed = list(user)
    if orders[0] and orders[1]:  # the plan's guesses by position or by summed shapes are redone on live trees
        planned = tuple(e for e in planned if not e.how.startswith(("order+shape", "fused")))
    flips = (set(a.in_out_weights()), set(b.in_out_weights()))
    planned = tuple(e for e in planned if not ({*e.a.split("+")} & flips[0] or {*e.b.split("+")} & flips[1]))
    for e in planned:
        names_a, names_b = e.a.split("+"), e.b.split("+")
        if not all(n in shapes_a for n in names_a) or not all(n in shapes_b for n in names_b):
            continue  # the plan read `bias=config.attention_bias` as present: the live module decides
        if len(names_a) == 1 and len(names_b) == 1 and apply_shape(e.transform, shapes_a[e.a]) != shapes_b[e.b]:
            notes.append(f"weight map entry {e.a} {shapes_a[e.a]} -> {e.b} {shapes_b[e.b]} ({e.transform}) "
                         "does not fit; re-matched")
            continue
        fixed.append(e)
    layout_change = a.impl.framework != b.impl.framework
    entries, left_a, left_b = match_parameters(
        [ParamInfo(k, s) for k, s in shapes_a.items()], [ParamInfo(k, s) for k, s in shapes_b.items()],
        tuple(fixed), layout_change, *orders, flips=flips)
    return state_a, entries, left_a, left_b


def fresh(side: Side, seed: int, notes: list[str], only: set[str] | None = None) -> None:
    """Load fresh seeded values into `side` (all entries, or `only` those names)."""
    owners = {"": type(side.model).__name__}
    owners.update({n: type(m).__name__ for n, m in side.adapter.submodules(side.model)})
    kept: list[str] = []
    changed = False
    for name, value in fresh_state(side.state(), set(side.trainable()), owners, seed, kept):
        if only is None or name in only:
            side.adapter.load(side.model, {name: value})
            changed = True
    if changed:
        side.refresh()
    if kept and only is None:
        notes.append(f"{side.which.upper()}'s buffers {', '.join(kept)} keep their constructed values "
                     "(structural: masks, frequency tables)")


def load_b(a, b: Side, planned: tuple[MapEntry, ...], seed: int, notes: list[str],
           orders: tuple[list, list] = ([], []), rules: tuple[str, ...] = (), convert: str = ""):
    """A's values (live or from its artifact) copied through the map into B (or through B's own converter); B's
    unmapped entries get fresh values of their own. Returns (entries, unmapped A names, unmapped B names)."""
    if convert:
        values, entries, _ = convert_state(convert, a, b, notes)
        left_b = [k for k in b.state() if k not in values]
        if left_b:
            fresh(b, seed, notes, only=set(left_b))
        b.adapter.load(b.model, values)
        b.refresh()
        return entries, [], left_b
    state_a, entries, left_a, left_b = resolve_map(planned, a, b, notes, orders, rules)
    if (left_a or left_b) and not rules and callable(getattr(b.model, "sanitize", None)):
        tried: list[str] = []
        try:  # the port ships its converter: where names alone leave weights unmapped, it decides
            values, by_convert, _ = convert_state("sanitize", a, b, tried)
        except Exception as exc:  # noqa: BLE001 - user code: the aligned map stays, with the reason
            notes.append(f"B's sanitize could not map the weights the alignment left unmapped ({describe(exc)})")
        else:
            missing = [k for k in b.state() if k not in values]
            if not missing:
                notes += tried + [f"weights mapped through B's own sanitize (names and module trees left "
                                  f"{len(left_a)} of A's and {len(left_b)} of B's unmapped): the port's loading "
                                  "code is under test too"]
                b.adapter.load(b.model, values)
                b.refresh()
                return by_convert, [], []
            notes.append(f"B's sanitize left {len(missing)} of B's weights unset; the aligned map is used")
    if left_b:
        fresh(b, seed, notes, only=set(left_b))
    for e in entries:  # one entry at a time: A's weights may be read from disk as they are needed
        b.adapter.load(b.model, b_values({n: state_a[n] for n in e.a.split("+")}, [e]))
    b.refresh()
    return entries, left_a, left_b
