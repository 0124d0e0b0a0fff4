"""Module classes a submodule is built from when they live in another file (read and analysed, never imported)."""
from __future__ import annotations

import os
from dataclasses import replace

from parity_skill.analyze import hierarchy
from parity_skill.analyze import vocabulary as V
from parity_skill.analyze.model import FileAnalysis, Symbol
from parity_skill.analyze.reader import analyze_file
from parity_skill.errors import InputError


def module_class(fa: FileAnalysis, type_name: str) -> tuple[Symbol, FileAnalysis] | None:
    """The module class a submodule is built from: one of `fa`'s, or one imported from another file (read and
    analysed the same way), or None (a framework layer)."""
    local = fa.symbol(type_name)
    if local is not None:
        return (local, fa) if local.kind == "module" else None
    if type_name.split(".")[0] in V.FRAMEWORK_ROOTS:
        return None
    found = hierarchy.find_class(type_name, fa.path)
    if found is None or os.path.abspath(found.path) == os.path.abspath(fa.path):
        return None
    other = _other_file(found.path, found.name)
    if other is None:
        return None
    sym = other.symbol(found.name)
    return (sym, other) if sym is not None and sym.kind == "module" else None


def _other_file(path: str, name: str) -> FileAnalysis | None:
    """What another file's class reaches, analysed (cached for the run: every Conv1D of a 12-layer GPT-2 asks for
    the same one)."""
    try:
        return analyze_file(path, (name,))
    except InputError:
        return None


def inherited_view(sym: Symbol, fa: FileAnalysis) -> tuple[Symbol, FileAnalysis]:
    """A class with no constructor of its own, built on a module class imported from another file (a port that
    subclasses a library's model to change its loading or one method): planned as that class (its constructor,
    config and submodules, read in its own file), under its own name and location, with its own forward where it
    has one. Anything else is returned as it is."""
    if sym.kind != "module" or sym.own_init:
        return sym, fa
    for base in sym.bases:
        if not base or base.split(".")[0] in V.FRAMEWORK_ROOTS or fa.symbol(base) is not None:
            continue
        found = module_class(fa, base)
        if found is None:
            continue
        inner, other = found
        inner, other = inherited_view(inner, other)
        view = replace(inner, name=sym.name, location=sym.location, bases=sym.bases)
        if sym.call_lines != (0, 0):  # its own forward
            view = replace(view, call_args=sym.call_args, ops=sym.ops, input_hints=sym.input_hints,
                           call_lines=sym.call_lines, findings=sym.findings)
        return view, other
    return sym, fa
