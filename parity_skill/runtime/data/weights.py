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
_STACKED_JOIN = re.compile(r"^stack:concat(\d+):([\d,]+)$")  # a stack whose slices each join A parameters


def transform(value: np.ndarray, how: str) -> list[np.ndarray]:
    """A's value -> the value(s) for B (a list: a split yields several)."""
    if how == "identity":
        return [value]
    if how == "transpose":
        return [np.asarray(value.T, order="C")]
    if how.startswith("reshape:"):  # a size-1 axis more or less
        return [np.asarray(value, order="C").reshape(tuple(int(d) for d in how.partition(":")[2].split(",") if d))]
    if how == "conv_to_channels_last":
        return [np.moveaxis(value, 1, -1)]
    if how == "conv_to_channels_first":
        return [np.moveaxis(value, -1, 1)]
    if how.endswith("|T"):  # ... each piece then transposed (a converter that splits experts, then transposes)
        return [np.asarray(piece.T, order="C") for piece in transform(value, how[:-2])]
    if how == "unstack":  # one stacked tensor -> its slices along the first axis
        return [np.asarray(v, order="C") for v in value]
    if how.startswith("unstack:"):  # ... each slice split in row blocks (a fused [gate; up] per expert)
        inner = how.partition(":")[2]
        return [piece for v in value for piece in transform(np.asarray(v, order="C"), inner)]
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
    m = _STACKED_JOIN.match(entry.transform)
    if m:  # each slice of the stack joins len(sizes) consecutive A parameters
        k = len(m.group(2).split(","))
        return np.stack([np.concatenate([values[n] for n in names[i:i + k]], axis=int(m.group(1)))
                         for i in range(0, len(names), k)], axis=0)
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
        how = "identity" if e.transform.startswith(("concat", "stack")) or e.transform == "sum" else \
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
    if (left_a or left_b) and not rules:
        converted = _through_own_converter(a, b, notes, len(left_a), len(left_b))
        if converted is not None:
            return converted, [], []
    if left_b:
        fresh(b, seed, notes, only=set(left_b))
    for e in entries:  # one entry at a time: A's weights may be read from disk as they are needed
        b.adapter.load(b.model, b_values({n: state_a[n] for n in e.a.split("+")}, [e]))
    b.refresh()
    return entries, left_a, left_b


def _own_converters(b: Side) -> list[tuple[str, object]]:
    """What the port ships to load a checkpoint: `sanitize` (mlx-lm and its kin), its library's `from_pretrained`."""
    from parity_skill.runtime.data.checkpoint import loader

    found = []
    if callable(getattr(b.model, "sanitize", None)):
        found.append(("sanitize", None))
    if b.impl.framework == "torch" and (load := loader(b.model)) is not None:
        found.append((f"{type(b.model).__name__}.from_pretrained", load))
    return found


def _through_own_converter(a, b: Side, notes: list[str], left_a: int, left_b: int) -> list[MapEntry] | None:
    """Where names and module trees leave weights unmapped, the port's own converter decides: B loaded with its
    output, the entries traced back to A; None (and a note) when none converts every weight B has."""
    for name, fn in _own_converters(b):
        tried: list[str] = []
        try:
            values, entries, _ = convert_state(name, a, b, tried, fn)
        except Exception as exc:  # noqa: BLE001 - user code: the aligned map stays, with the reason
            notes.append(f"B's {name} could not map the weights the alignment left unmapped ({describe(exc)})")
            continue
        if fn is not None:  # a loaded model holds every weight; only those traced back to A came from A
            values = {k: v for k, v in values.items() if k in {n for e in entries for n in e.b.split("+")}}
        missing = [k for k in (b.trainable() if fn is not None else b.state()) if k not in values]
        if missing:
            notes.append(f"B's {name} left {len(missing)} of B's weights unset; the aligned map is used")
            continue
        notes += tried + [f"weights mapped through B's own {name} (names and module trees left {left_a} of A's "
                          f"and {left_b} of B's unmapped): the port's loading code is under test too"]
        b.adapter.load(b.model, values)
        b.refresh()
        return entries
    return None
