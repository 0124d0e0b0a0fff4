"""Pair symbols of two files: explicitly, by normalised name, then by structure."""
from __future__ import annotations

import difflib
import re

from parity_skill.analyze.model import FileAnalysis, Symbol
from parity_skill.errors import InputError

_AFFIXES = re.compile(r"^(torch|mlx|np|numpy|ref|reference|naive|fused|fast|my|new|old)|(torch|mlx|np|numpy|ref|impl|port|v\d)$")


def normalise(name: str) -> str:
    low = name.lower().replace("_", "")
    stripped = _AFFIXES.sub("", low)
    return stripped or low


def lookup(fa: FileAnalysis, name: str) -> Symbol:
    sym = fa.symbol(name)
    if sym is not None:
        return sym
    known = [s.name for s in fa.symbols]
    close = difflib.get_close_matches(name, known + list(fa.helpers), n=3, cutoff=0.5)
    if not close:
        close = [k for k in known if normalise(k) == normalise(name)]
    hint = f"; did you mean {', '.join(close)}?" if close else (f"; it defines {', '.join(known)}" if known else
                                                               "; it defines no module class or public function")
    if fa.config(name):
        hint = "; it is a config class, not a module or function"
    raise InputError(f"{fa.path}::{name}: no such class or function{hint}")


def _words(name: str) -> list[str]:
    """CamelCase words, digits kept with the word before them: GPT2MLP -> GPT2, MLP; Qwen2Model -> Qwen2, Model."""
    return re.findall(r"[A-Z]+(?![a-z])\d*|[A-Z]?[a-z]+\d*|\d+", name)


def _with_version(name: str, first: str) -> str:
    """The first word with the `_5` of a versioned model name (`Ernie4_5` in Ernie4_5DecoderLayer)."""
    m = re.match(r"(?:_\d+)+", name[len(first):])
    return first + m.group(0) if m else first


def model_prefix(fa: FileAnalysis) -> str:
    """The model name most module classes of a file start with (`Llama` in LlamaAttention, LlamaMLP...)."""
    firsts = [_with_version(s.name, w[0]) for s in fa.symbols if s.kind == "module" and len(w := _words(s.name)) > 1]
    if len(firsts) < 2:
        return ""
    best = max(sorted(set(firsts)), key=firsts.count)
    if not (firsts.count(best) >= 2 and firsts.count(best) * 2 >= len(firsts)):
        return ""
    named = [s.name for s in fa.symbols if s.kind == "module" and s.name.startswith(best) and s.name != best]
    while True:  # SeedOss in SeedOssAttention, SeedOssMLP...: the words every such class shares
        nexts = {(_words(n[len(best):]) or [""])[0] for n in named}
        longer = [n for n in named if len(n) > len(best) + len(next(iter(nexts)))] if len(nexts) == 1 else []
        if len(nexts) != 1 or not next(iter(nexts)) or len(longer) != len(named):
            return best
        best += next(iter(nexts))


def _bare(name: str, *prefixes: str) -> str:
    """The name without a model prefix (either file's: LlamaModel on an mlx-lm side is `model` too)."""
    for prefix in prefixes:
        if prefix and name.startswith(prefix) and name != prefix:
            return normalise(name[len(prefix):])
    low = name.lower().replace("_", "")
    for prefix in prefixes:  # the same model name written without its separator (Ernie45Model for Ernie4_5)
        plain = prefix.lower().replace("_", "")
        if plain and low.startswith(plain) and low != plain:
            return normalise(low[len(plain):])
    return normalise(name)


def _jaccard(a: set, b: set) -> float | None:
    return len(a & b) / len(a | b) if a | b else None


_NOISE = {"dropout", "call", "cast", "identity"}


def _signature(sym: Symbol, prefixes: tuple[str, ...]) -> set[str]:
    """What a module is made of: the kinds of layers it builds (its own file's classes without the model name)
    and the ops it calls, spelled alike (`RMSNorm` layer, `rms_norm` op)."""
    kinds = {_bare(s.type_name.rsplit(".", 1)[-1], *prefixes) for s in sym.submodules}
    ops = {normalise(o.op) for o in sym.ops}
    for fused, parts in _FUSED_OPS.items():  # a fused kernel is made of what it fuses
        if any(fused in op for op in ops):
            ops |= parts
    return (kinds | ops) - _NOISE


# fused ops and the explicit ops they stand for (SDPA = scaled scores, softmax, matmul)
_FUSED_OPS = {"scaleddotproductattention": {"softmax", "matmul", "attnscale"}, "rmsnorm": {"rsqrt", "mean"},
              "layernorm": {"mean", "var"}}


def _similarity(a: Symbol, b: Symbol, prefix_a: str = "", prefix_b: str = "") -> float:
    """Structure: the layers and ops it is made of, helped by the children's attribute names when they agree
    (renamed children still pair on what they are)."""
    if a.kind != b.kind:
        return 0.0
    made = _jaccard(_signature(a, (prefix_a, prefix_b)), _signature(b, (prefix_b, prefix_a))) or 0.0
    attrs = _jaccard({s.attr.lower() for s in a.submodules}, {s.attr.lower() for s in b.submodules})
    score = max(made, (made + attrs) / 2) if attrs is not None else made
    required = sum(x.required for x in a.call_args), sum(x.required for x in b.call_args)
    return score * (1.0 if required[0] == required[1] else 0.8)


def _plausible(a: Symbol, b: Symbol, pa: str, pb: str) -> bool:
    """A name match between two composite modules (submodules on both sides, two or more on one) that share nothing
    of what they are made of is a coincidence of names (Mamba's `MambaBlock`, a residual block in transformers, a mixer in
    mlx-lm; a multimodal `Gemma3Model` against a text-only one): structure decides those instead."""
    sizes = sorted((len(a.submodules), len(b.submodules)))
    if a.kind != "module" or b.kind != "module" or sizes[0] < 1 or sizes[1] < 2:
        return True
    return _similarity(a, b, pa, pb) >= 0.2


def _by_name(rest_a: list[Symbol], rest_b: list[Symbol], same, pa: str, pb: str,
             ambiguous: list[str]) -> list[tuple[Symbol, Symbol]]:
    """Pairs whose names match under `same`, whatever the classes' order: a name matching several on the other side
    is settled by structure, and left unpaired (recorded in `ambiguous`) when structure cannot tell either."""
    out = []
    for sa in sorted(rest_a, key=lambda s: s.name):
        rivals_b = [sb for sb in rest_b if same(sa, sb) and _plausible(sa, sb, pa, pb)]
        for sb in sorted(rivals_b, key=lambda s: s.name):
            rivals_a = [x for x in rest_a if same(x, sb) and _plausible(x, sb, pa, pb)]
            if len(rivals_a) == 1 and len(rivals_b) == 1:
                out.append((sa, sb))
                continue
            score = {(x.name, y.name): _similarity(x, y, pa, pb) for x in rivals_a for y in [sb]} | \
                {(sa.name, y.name): _similarity(sa, y, pa, pb) for y in rivals_b}
            mine = score[(sa.name, sb.name)]
            others = [v for k, v in score.items() if k != (sa.name, sb.name)]
            if others and mine > max(others) + 1e-9:
                out.append((sa, sb))
            elif len(rivals_a) > 1:
                ambiguous.append(f"{', '.join(sorted(x.name for x in rivals_a))} (A) all match {sb.name} (B) by "
                                 "name and structure does not tell them apart: name one with a.py::Name")
    taken_a, taken_b, unique = set(), set(), []
    for sa, sb in out:
        if sa.name not in taken_a and sb.name not in taken_b:
            unique.append((sa, sb))
            taken_a.add(sa.name)
            taken_b.add(sb.name)
    return unique


def pair_symbols(fa_a: FileAnalysis, fa_b: FileAnalysis, name_a: str | None, name_b: str | None,
                 ambiguous: list[str] | None = None) -> list[tuple[Symbol, Symbol, str]]:
    """[(A symbol, B symbol, how)], the same whatever the order of the classes in either file; `ambiguous` receives
    the name matches structure could not settle. Raises InputError when a named symbol is missing or nothing
    pairs."""
    ambiguous = ambiguous if ambiguous is not None else []
    if name_a or name_b:
        sa = lookup(fa_a, name_a or name_b)
        sb = lookup(fa_b, name_b or name_a)
        return [(sa, sb, "explicit")]
    rest_a = [s for s in fa_a.symbols if not s.name.startswith("_")]
    rest_b = [s for s in fa_b.symbols if not s.name.startswith("_")]
    pa, pb = model_prefix(fa_a), model_prefix(fa_b)
    prefixes = tuple(dict.fromkeys(p for p in (pa, pb, pa.rstrip("0123456789"), pb.rstrip("0123456789"),
                                               *(_words(pa)[:1]), *(_words(pb)[:1])) if p))  # SeedModel ~ SeedOssModel
    pairs: list[tuple[Symbol, Symbol, str]] = []
    for same in (lambda x, y: x.name == y.name,
                 lambda x, y: x.kind == y.kind and normalise(x.name) == normalise(y.name),
                 lambda x, y: x.kind == y.kind and _bare(x.name, *prefixes) == _bare(y.name, *prefixes)):  # LlamaMLP ~ MLP
        for sa, sb in _by_name(rest_a, rest_b, same, pa, pb, ambiguous):
            pairs.append((sa, sb, "name"))
            rest_a.remove(sa)
            rest_b.remove(sb)
    # by structure, best pairs first whatever the classes' order; a pair must be clearly the best for both
    scored = sorted(((round(_similarity(sa, sb, pa, pb), 6), sa.name, sb.name, sa, sb)
                     for sa in rest_a if sa.kind == "module" for sb in rest_b if sb.kind == "module"),
                    key=lambda t: (-t[0], t[1], t[2]))
    taken: set[str] = set()
    for score, na, nb, sa, sb in scored:
        if score < 0.6 or f"a:{na}" in taken or f"b:{nb}" in taken:
            continue
        rivals = [t for t in scored if t[0] == score and (t[1] == na) != (t[2] == nb)
                  and f"a:{t[1]}" not in taken and f"b:{t[2]}" not in taken]
        if rivals:  # as good a match elsewhere: ambiguous, left unpaired
            continue
        pairs.append((sa, sb, "structure"))
        taken |= {f"a:{na}", f"b:{nb}"}
    if not pairs:
        names_a = ", ".join(s.name for s in fa_a.symbols) or "nothing"
        names_b = ", ".join(s.name for s in fa_b.symbols) or "nothing"
        raise InputError(f"{fa_a.path} vs {fa_b.path}: nothing to pair ({fa_a.path} defines {names_a}; "
                         f"{fa_b.path} defines {names_b}); name the symbols with a.py::Name vs b.py::Name")
    return pairs
