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


def _similarity(a: Symbol, b: Symbol) -> float:
    if a.kind != b.kind:
        return 0.0
    ops_a, ops_b = {o.op for o in a.ops if o.op != "call"}, {o.op for o in b.ops if o.op != "call"}
    union = ops_a | ops_b
    ops = len(ops_a & ops_b) / len(union) if union else 1.0
    arity = 1.0 if len(a.call_args) == len(b.call_args) else 0.5
    return ops * arity


def pair_symbols(fa_a: FileAnalysis, fa_b: FileAnalysis, name_a: str | None,
                 name_b: str | None) -> list[tuple[Symbol, Symbol, str]]:
    """[(A symbol, B symbol, how)]. Raises InputError when a named symbol is missing or nothing pairs."""
    if name_a or name_b:
        sa = lookup(fa_a, name_a or name_b)
        sb = lookup(fa_b, name_b or name_a)
        return [(sa, sb, "explicit")]
    rest_a = [s for s in fa_a.symbols if not s.name.startswith("_")]
    rest_b = [s for s in fa_b.symbols if not s.name.startswith("_")]
    pairs: list[tuple[Symbol, Symbol, str]] = []
    for sa in list(rest_a):
        match = next((sb for sb in rest_b if sb.name == sa.name), None) or \
            next((sb for sb in rest_b if normalise(sb.name) == normalise(sa.name) and sb.kind == sa.kind), None)
        if match:
            pairs.append((sa, match, "name"))
            rest_a.remove(sa)
            rest_b.remove(match)
    for sa in [s for s in rest_a if s.kind == "module"]:
        scored = sorted(((_similarity(sa, sb), sb) for sb in rest_b), key=lambda t: -t[0])
        if scored and scored[0][0] >= 0.6 and (len(scored) == 1 or scored[1][0] < scored[0][0]):
            pairs.append((sa, scored[0][1], "structure"))
            rest_b.remove(scored[0][1])
    if not pairs:
        names_a = ", ".join(s.name for s in fa_a.symbols) or "nothing"
        names_b = ", ".join(s.name for s in fa_b.symbols) or "nothing"
        raise InputError(f"{fa_a.path} vs {fa_b.path}: nothing to pair ({fa_a.path} defines {names_a}; "
                         f"{fa_b.path} defines {names_b}); name the symbols with a.py::Name vs b.py::Name")
    return pairs
