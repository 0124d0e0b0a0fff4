"""Match parameters of A to parameters of B: by name; then module by module, the two module trees aligned in call
order; then by declaration order and shape; then fused projections split or joined.

Pure and framework-free: the plan calls it with shapes it derived from the code, the runtime with the shapes the
built modules really have, for whatever the plan's table does not cover.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from parity_skill.plan.shapes import apply_shape, squeezed, transform_for  # noqa: F401 - re-exported
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


def owner(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else ""


def _groups(params: list[ParamInfo], order: list[str]) -> list[tuple[str, list[ParamInfo]]]:
    """Parameters by the module that owns them, modules in call order (never-called ones last, as declared)."""
    groups: dict[str, list[ParamInfo]] = {}
    for p in params:
        groups.setdefault(owner(p.name), []).append(p)
    rank = {n: i for i, n in enumerate(dict.fromkeys(order))}
    return sorted(groups.items(), key=lambda kv: rank.get(kv[0], len(rank)))


def _pair_leaves(pa: list[ParamInfo], pb: list[ParamInfo], layout_change: bool) -> list[tuple] | None:
    """Every parameter of one module paired with one of the other (by leaf name, else in order), or None."""
    if len(pa) != len(pb) or any(p.shape is None for p in pa + pb):
        return None
    by_leaf = {leaf(p.name): p for p in pb}
    if set(by_leaf) == {leaf(p.name) for p in pa}:
        pairs = [(p, by_leaf[leaf(p.name)]) for p in pa]
    else:
        pairs = list(zip(pa, pb))
    transforms = [transform_for(x.shape, y.shape, layout_change) for x, y in pairs]
    return None if None in transforms else pairs


_ROLES = (("q", r"q|query|q_proj|query_proj|wq|to_q"), ("k", r"k|key|k_proj|key_proj|wk|to_k"),
          ("v", r"v|value|v_proj|value_proj|wv|to_v"), ("gate", r"gate|gate_proj|w1"), ("up", r"up|up_proj|w3"),
          ("down", r"down|down_proj|w2"))


def module_role(name: str) -> str | None:
    """q/k/v, gate/up/down from a module's own name (`attn.query_proj` -> q), else None."""
    last = name.rsplit(".", 1)[-1].lower()
    return next((role for role, pattern in _ROLES if re.fullmatch(pattern, last)), None)


def _match_modules(rest_a: list[ParamInfo], rest_b: list[ParamInfo], order_a: list[str], order_b: list[str],
                   take, layout_change: bool) -> set[str]:
    """Align the two module trees first: each A module that owns parameters, in call order, takes the first
    unused B module whose parameters all correspond (same block index). Returns the aligned owners of both."""
    aligned: set[str] = set()
    free_b = _groups(rest_b, order_b)
    for oa, pa in _groups(rest_a, order_a):
        role = module_role(oa)
        fits = [(k, ob, pairs) for k, (ob, pb) in enumerate(free_b)
                if same_block(f"{oa}.x", f"{ob}.x") and (pairs := _pair_leaves(pa, pb, layout_change)) is not None
                and not (role and module_role(ob) and module_role(ob) != role)]
        best = next((f for f in fits if role and module_role(f[1]) == role), fits[0] if fits else None)
        if best is None:
            continue
        k, ob, pairs = best
        for x, y in pairs:
            take(x, y, "module")
        aligned |= {f"a:{oa}", f"b:{ob}"}
        del free_b[k]
    return aligned


_NORMED = re.compile(r"^(.*)\.parametrizations\.(\w+)\.original([01])$|^(.*)\.(\w+)_([gv])$")


def _weight_norm(params: list[ParamInfo]) -> tuple[list[ParamInfo], dict[str, str]]:
    """A weight-normed layer's (g, v) pair as the one weight it computes (`conv.weight`, shaped like v), for
    matching against a port that stores the computed weight. Returns the params and {virtual name: 'g+v'}."""
    parts: dict[str, dict[str, ParamInfo]] = {}
    for p in params:
        m = _NORMED.match(p.name)
        if m:
            owner_, leaf_, which = (m.group(1), m.group(2), m.group(3)) if m.group(1) else \
                (m.group(4), m.group(5), "0" if m.group(6) == "g" else "1")
            parts.setdefault(f"{owner_}.{leaf_}", {})[which] = p
    virtual = {name: f"{pair['0'].name}+{pair['1'].name}" for name, pair in parts.items() if set(pair) == {"0", "1"}}
    hidden = {n for joined in virtual.values() for n in joined.split("+")}
    out = [p for p in params if p.name not in hidden]
    out += [ParamInfo(name, parts[name]["1"].shape) for name in virtual]
    return out, virtual


def match_parameters(a: list[ParamInfo], b: list[ParamInfo], fixed: tuple[MapEntry, ...] = (),
                     layout_change: bool = False, order_a: list[str] | None = None,
                     order_b: list[str] | None = None,
                     flips: tuple[set, set] = (set(), set())) -> tuple[list[MapEntry], list[str], list[str]]:
    """Return (entries, unmapped A names, unmapped B names). `fixed` entries are kept as given.

    With the modules' call order (the live trace) the module trees are aligned before any leaf is matched, and
    no parameter is then mapped across aligned modules."""
    entries = list(fixed)
    a = [ParamInfo(p.name, p.shape[::-1]) if p.name in flips[0] and p.shape else p for p in a]  # as (out, in)
    b = [ParamInfo(p.name, p.shape[::-1]) if p.name in flips[1] and p.shape else p for p in b]
    normed = {}
    if not any(_NORMED.match(p.name) for p in b):  # B stores the computed weight: match A's (g, v) as one
        a, normed = _weight_norm(a)
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
        if pb is not None and pb in rest_b and not take(pa, pb, "name") and squeezed(pa.shape) == squeezed(pb.shape) \
                and pa.shape is not None and pb.shape is not None:
            entries.append(MapEntry(pa.name, pb.name, "reshape:" + ",".join(map(str, pb.shape)), "name"))
            rest_a.remove(pa)  # the same parameter with a size-1 axis more or less (XIELU's alpha: (1,) vs ())
            rest_b.remove(pb)

    _match_fused(rest_a, rest_b, entries, exclusive=True)  # q, k, v -> qkv before modules align one to one
    aligned = _match_modules(rest_a, rest_b, order_a, order_b, take, layout_change) \
        if order_a and order_b else set()
    for pa in list(rest_a):  # declaration order + shape, same leaf kind (weight <-> weight), never across roles
        role = module_role(owner(pa.name))
        fits = [pb for pb in rest_b if leaf(pa.name) == leaf(pb.name) and pa.shape is not None
                and pb.shape is not None and same_block(pa.name, pb.name) and f"a:{owner(pa.name)}" not in aligned
                and f"b:{owner(pb.name)}" not in aligned
                and not (role and module_role(owner(pb.name)) and module_role(owner(pb.name)) != role)]
        fits.sort(key=lambda pb: not (role and module_role(owner(pb.name)) == role))  # same role first
        for k, pb in enumerate(fits):
            rival = next((r for r in fits[k + 1:] if r.shape == pb.shape and
                          (module_role(owner(r.name)) == role) == (module_role(owner(pb.name)) == role)), None)
            if take(pa, pb, "order+shape" + (f"; ambiguous: {rival.name} fits as well" if rival else "")):
                break

    _match_fused(rest_a, rest_b, entries)
    _match_stacked(rest_a, rest_b, entries)
    _match_fused_by_name(rest_a, rest_b, entries)
    _match_recurrent(rest_a, rest_b, entries)
    _match_last_in_module(rest_a, rest_b, take)
    _match_unique_shape(rest_a, rest_b, take)
    entries = [MapEntry(e.a, e.b, "transpose", e.how) if e.transform == "identity" and
               (e.a in flips[0]) != (e.b in flips[1]) else e for e in entries]
    entries = [MapEntry(normed[e.a], e.b, f"weight_norm>{e.transform}", e.how) if e.a in normed else e
               for e in entries]
    left_a = [n for p in rest_a for n in normed.get(p.name, p.name).split("+")]
    return entries, left_a, [p.name for p in rest_b]


def _match_last_in_module(rest_a: list[ParamInfo], rest_b: list[ParamInfo], take) -> None:
    """The one parameter left in a module on each side, where the two modules have the same name (or are both
    the top level): `lambda1` vs `gamma` of a LayerScale."""
    for pa in list(rest_a):
        mine = [p for p in rest_a if owner(p.name) == owner(pa.name)]
        theirs = [p for p in rest_b if owner(p.name) == owner(pa.name)]
        if len(mine) == 1 and len(theirs) == 1 and pa.shape is not None and pa.shape == theirs[0].shape:
            take(pa, theirs[0], "last in module")


def _match_unique_shape(rest_a: list[ParamInfo], rest_b: list[ParamInfo], take) -> None:
    """Last resort: a shape that one parameter left on each side has, and no other (`embeddings.
    position_embeddings` (1, 5, 32) vs `pos_embed`), in the same block."""
    for pa in list(rest_a):
        if pa.shape is None or sum(p.shape == pa.shape for p in rest_a) != 1:
            continue
        fits = [pb for pb in rest_b if pb.shape == pa.shape]
        if len(fits) == 1 and same_block(pa.name, fits[0].name):
            take(pa, fits[0], "unique shape")


def _match_fused(rest_a: list[ParamInfo], rest_b: list[ParamInfo], entries: list[MapEntry],
                 exclusive: bool = False) -> None:
    """One fused projection (e.g. qkv of 3*d rows) on one side vs consecutive separate ones on the other;
    `exclusive`: only where no parameter on the other side has the fused one's shape."""
    for big_side, small_side, flip in ((rest_a, rest_b, False), (rest_b, rest_a, True)):
        for big in list(big_side):
            if not big.shape:
                continue
            if exclusive and any(p.shape == big.shape for p in small_side):
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


def _numbered_groups(params: list[ParamInfo]) -> dict[tuple[str, str], list[ParamInfo]]:
    """(prefix, suffix) -> the parameters `prefix.<i>.suffix` for i = 0..n-1 (n >= 2, one known shape): the
    separate experts of a mixture, say, that another implementation keeps as one stacked tensor."""
    groups: dict[tuple[str, str], dict[int, ParamInfo]] = {}
    for p in params:
        for m in re.finditer(r"(?:^|\.)(\d+)\.", p.name):
            prefix, suffix = p.name[:m.start()], p.name[m.end():]
            groups.setdefault((prefix, suffix), {})[int(m.group(1))] = p
    out = {}
    for key, members in groups.items():
        shapes = {m.shape for m in members.values()}
        if len(members) >= 2 and sorted(members) == list(range(len(members))) and len(shapes) == 1 \
                and None not in shapes:
            out[key] = [members[i] for i in range(len(members))]
    return out


def _match_stacked(rest_a: list[ParamInfo], rest_b: list[ParamInfo], entries: list[MapEntry]) -> None:
    """Separate per-index tensors on one side (`experts.{i}.gate_proj.weight`, each (I, H)) vs one stacked tensor
    on the other (`switch_mlp.gate_proj.weight`, (E, I, H)): same leaf, same role, same enclosing block."""
    for small_side, big_side, flip in ((rest_a, rest_b, False), (rest_b, rest_a, True)):
        for (prefix, suffix), group in sorted(_numbered_groups(small_side).items(), key=lambda kv: kv[0]):
            if any(g not in small_side for g in group):
                continue
            shape = (len(group), *group[0].shape)
            role = module_role(owner(suffix)) if "." in suffix else None
            outer = block_index(prefix + ".x") if prefix else ()
            fits = [b for b in big_side if b.shape == shape and leaf(b.name) == leaf(suffix)
                    and block_index(b.name) == outer
                    and not (role and module_role(owner(b.name)) and module_role(owner(b.name)) != role)]
            if role:
                fits = [b for b in fits if module_role(owner(b.name)) == role] or fits
            if len(fits) != 1:
                continue
            names = "+".join(g.name for g in group)
            entries.append(MapEntry(fits[0].name, names, "unstack", "stacked") if flip else
                           MapEntry(names, fits[0].name, "stack", "stacked"))
            big_side.remove(fits[0])
            for g in group:
                small_side.remove(g)


def _roles_in(name: str) -> tuple[str, ...] | None:
    """The fused roles a tensor's own name spells, in fused order: `gate_up_proj` -> (gate, up), `qkv` ->
    (q, k, v), `w13`/`wqkv` likewise; None for a name of one role or none."""
    last = leaf(name).lower()
    tokens = [t for t in re.split(r"[_.]", last) if t not in ("proj", "weight", "bias", "w", "in")]
    joined = "".join(tokens).removeprefix("w")
    for combo in FUSED_ROLES:
        if tokens[:len(combo)] == list(combo) or joined == "".join(combo) or \
                (combo == ("gate", "up") and joined in ("13", "gateup")):
            return combo
    return None


def _match_fused_by_name(rest_a: list[ParamInfo], rest_b: list[ParamInfo], entries: list[MapEntry]) -> None:
    """A tensor named for several roles (`experts.gate_up_proj`, (E, 2I, H)) vs one tensor per role on the other side
    (`switch_mlp.gate_proj.weight`, `switch_mlp.up_proj.weight`, (E, I, H) each), joined along whichever axis their
    shapes add up on, in the order the name gives."""
    for big_side, small_side, flip in ((rest_a, rest_b, False), (rest_b, rest_a, True)):
        for big in list(big_side):
            roles = _roles_in(big.name) if big.shape else None
            if not roles:
                continue
            outer = block_index(big.name)
            by_role = {}
            for r in roles:
                fits = [p for p in small_side if p.shape and len(p.shape) == len(big.shape)
                        and module_role(owner(p.name)) == r and block_index(p.name) == outer]
                if len(fits) != 1:
                    break
                by_role[r] = fits[0]
            if len(by_role) != len(roles):
                continue
            group = [by_role[r] for r in roles]
            axes = [ax for ax in range(len(big.shape)) if sum(g.shape[ax] for g in group) == big.shape[ax]
                    and all(g.shape[:ax] + g.shape[ax + 1:] == big.shape[:ax] + big.shape[ax + 1:] for g in group)]
            if len(axes) != 1:
                continue
            names = "+".join(g.name for g in group)
            sizes = ",".join(str(g.shape[axes[0]]) for g in group)
            entries.append(MapEntry(names, big.name, f"concat{axes[0]}:{sizes}", "fused") if flip else
                           MapEntry(big.name, names, f"split{axes[0]}:{sizes}", "fused"))
            big_side.remove(big)
            for g in group:
                small_side.remove(g)


_TORCH_RNN = re.compile(r"^(.*?)\.?(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)$")
_MLX_RNN = {"weight_ih": "Wx", "weight_hh": "Wh"}


def _match_recurrent(rest_a: list[ParamInfo], rest_b: list[ParamInfo], entries: list[MapEntry]) -> None:
    """torch.nn.LSTM/GRU/RNN (`lstm.weight_ih_l0`, two biases) vs MLX-style cells (`lstm.0.Wx`, `Wh`, one bias
    that is the sum of torch's two)."""
    layers: dict[tuple[str, str], dict[str, ParamInfo]] = {}
    for p in rest_a:
        m = _TORCH_RNN.match(p.name)
        if m:
            layers.setdefault((m.group(1), m.group(3)), {})[m.group(2)] = p
    by_name = {p.name: p for p in rest_b}
    for (prefix, k), parts in layers.items():
        heads = [f"{prefix}.{k}." if prefix else f"{k}.", f"{prefix}.layers.{k}." if prefix else f"layers.{k}."]
        if k == "0":
            heads.append(f"{prefix}." if prefix else "")
        head = next((h for h in heads if f"{h}Wx" in by_name), None)
        if head is None:
            continue
        for torch_name, mlx_name in _MLX_RNN.items():
            pa, pb = parts.get(torch_name), by_name.get(f"{head}{mlx_name}")
            if pa and pb and pa.shape == pb.shape and pa in rest_a and pb in rest_b:
                entries.append(MapEntry(pa.name, pb.name, "identity", "recurrent"))
                rest_a.remove(pa)
                rest_b.remove(pb)
        bias = by_name.get(f"{head}bias")
        if bias is not None and bias in rest_b and {"bias_ih", "bias_hh"} <= set(parts):
            entries.append(MapEntry(f"{parts['bias_ih'].name}+{parts['bias_hh'].name}", bias.name, "sum",
                                    "recurrent"))
            rest_a.remove(parts["bias_ih"])
            rest_a.remove(parts["bias_hh"])
            rest_b.remove(bias)


FUSED_ROLES = (("q", "k", "v"), ("k", "v"), ("gate", "up"))


def _consecutive_group(big: ParamInfo, candidates: list[ParamInfo]) -> list[ParamInfo] | None:
    """The parameters of one module's projections that `big` stacks: by role in fused order (q, k, v; gate,
    up), whatever order the names come in; else role-less ones of equal shapes, consecutive."""
    parents: dict[str, list[ParamInfo]] = {}
    for c in candidates:
        parents.setdefault(c.name.rsplit(".", 2)[0] if c.name.count(".") >= 2 else "", []).append(c)
    for members in parents.values():
        roles = {module_role(owner(m.name)): m for m in members}
        for combo in FUSED_ROLES:
            group = [roles[r] for r in combo if r in roles]
            if len(group) == len(combo) and _stacks(big, group):
                return group
    for k in (3, 2):
        for start in range(len(candidates) - k + 1):
            group = candidates[start:start + k]
            one_parent = len({g.name.rsplit(".", 2)[0] if g.name.count(".") >= 2 else "" for g in group}) == 1
            if one_parent and len({g.shape for g in group}) == 1 and not any(module_role(owner(g.name))
                                                                            for g in group) and _stacks(big, group):
                return group
    return None


def _stacks(big: ParamInfo, group: list[ParamInfo]) -> bool:
    return sum(g.shape[0] for g in group) == big.shape[0] and all(g.shape[1:] == big.shape[1:] for g in group)
