"""Match parameters of A to parameters of B: by name, then by declaration order and shape, then by transform.

Pure and framework-free: the plan calls it with shapes it derived from the code, the runtime with the shapes the
built modules really have, for whatever the plan's table does not cover.
"""
from __future__ import annotations

from dataclasses import dataclass

from parity_skill.spec import MapEntry


@dataclass(frozen=True)
class ParamInfo:
    name: str
    shape: tuple[int, ...] | None  # None: not known statically


def leaf(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def block_index(name: str) -> tuple[int, ...]:
    """The container indices that place a parameter in a stack: `h.11.attn.qkv.bias` -> (11,). A numbered direct
    parent (`net.2.weight`, Sequential layouts differ freely) does not count."""
    parts = name.split(".")
    return tuple(int(p) for i, p in enumerate(parts) if p.isdigit() and i != len(parts) - 2)


def same_block(a: str, b: str) -> bool:
    """Parameters of differently indexed blocks of equally deep stacks never map onto each other."""
    ia, ib = block_index(a), block_index(b)
    return len(ia) != len(ib) or ia == ib


def transform_for(a: tuple[int, ...] | None, b: tuple[int, ...] | None, layout_change: bool) -> str | None:
    """The transform that turns an A-shaped array into a B-shaped one, or None if none applies."""
    if a is None or b is None or a == b:
        return "identity"
    if layout_change and len(a) >= 3 and b == (a[0], *a[2:], a[1]):
        return "conv_to_channels_last"
    if layout_change and len(a) >= 3 and a == (b[0], *b[2:], b[1]):
        return "conv_to_channels_first"
    return None


def apply_shape(transform: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    if transform == "conv_to_channels_last":
        return (shape[0], *shape[2:], shape[1])
    if transform == "conv_to_channels_first":
        return (shape[0], shape[-1], *shape[1:-1])
    return shape


def match_parameters(a: list[ParamInfo], b: list[ParamInfo], fixed: tuple[MapEntry, ...] = (),
                     layout_change: bool = False) -> tuple[list[MapEntry], list[str], list[str]]:
    """Return (entries, unmapped A names, unmapped B names). `fixed` entries are kept as given."""
    entries = list(fixed)
    used_a = {n for e in fixed for n in e.a.split("+")}
    used_b = {n for e in fixed for n in e.b.split("+")}
    rest_a = [p for p in a if p.name not in used_a]
    rest_b = [p for p in b if p.name not in used_b]

    def take(pa: ParamInfo, pb: ParamInfo, how: str) -> bool:
        t = transform_for(pa.shape, pb.shape, layout_change)
        if t is None:
            return False
        entries.append(MapEntry(pa.name, pb.name, t, how))
        rest_a.remove(pa)
        rest_b.remove(pb)
        return True

    by_name = {p.name: p for p in rest_b}
    for pa in list(rest_a):
        pb = by_name.get(pa.name)
        if pb is not None and pb in rest_b:
            take(pa, pb, "name")

    for pa in list(rest_a):  # declaration order + shape, same leaf kind (weight <-> weight)
        for pb in rest_b:
            if leaf(pa.name) == leaf(pb.name) and pa.shape is not None and pb.shape is not None \
                    and same_block(pa.name, pb.name) and take(pa, pb, "order+shape"):
                break

    _match_fused(rest_a, rest_b, entries)
    return entries, [p.name for p in rest_a], [p.name for p in rest_b]


def _match_fused(rest_a: list[ParamInfo], rest_b: list[ParamInfo], entries: list[MapEntry]) -> None:
    """One fused projection (e.g. qkv of 3*d rows) on one side vs consecutive separate ones on the other."""
    for big_side, small_side, flip in ((rest_a, rest_b, False), (rest_b, rest_a, True)):
        for big in list(big_side):
            if not big.shape:
                continue
            same_leaf = [p for p in small_side if leaf(p.name) == leaf(big.name) and p.shape
                         and same_block(p.name, big.name)]
            group = _consecutive_group(big, same_leaf)
            if group is None:
                continue
            names = "+".join(g.name for g in group)
            sizes = ",".join(str(g.shape[0]) for g in group)
            if flip:
                entries.append(MapEntry(names, big.name, f"concat0:{sizes}", "fused"))
            else:
                entries.append(MapEntry(big.name, names, f"split0:{sizes}", "fused"))
            big_side.remove(big)
            for g in group:
                small_side.remove(g)


def _consecutive_group(big: ParamInfo, candidates: list[ParamInfo]) -> list[ParamInfo] | None:
    for k in (3, 2):
        for start in range(len(candidates) - k + 1):
            group = candidates[start:start + k]
            parents = {g.name.rsplit(".", 2)[0] if g.name.count(".") >= 2 else "" for g in group}  # one module
            if len(parents) == 1 and sum(g.shape[0] for g in group) == big.shape[0] \
                    and all(g.shape[1:] == big.shape[1:] for g in group):
                return group
    return None
