"""Follow a class's bases across files, by reading source (never importing it): the same file, sibling modules,
packages of the checkout, and installed packages found on `sys.path`.

Used for what libcst sees in one file but cannot decide alone: is a class that derives from an imported
`GradientCheckpointingLayer` a module of some framework, and which fields does an imported config class take.
Python's `ast` reads these other files (a quick outline is all that is needed from them)."""
from __future__ import annotations

import ast
import functools
import os
import sys
from dataclasses import dataclass

from parity_skill.analyze import vocabulary as V
from parity_skill.safe_io import read_source

MAX_HOPS = 12  # base-class and re-export hops followed before giving up
LAYER_ROOTS = ("torch.nn.", "mlx.nn.")


@dataclass(frozen=True)
class ClassInfo:
    """A class as another file declares it."""

    path: str
    name: str
    bases: tuple[str, ...]  # resolved through that file's imports
    node: ast.ClassDef


@dataclass(frozen=True)
class _Outline:
    aliases: dict[str, str]
    classes: dict[str, ast.ClassDef]
    functions: dict[str, ast.FunctionDef]


def _imports(tree: ast.Module) -> dict[str, str]:
    aliases: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            for a in node.names:
                if a.name != "*":
                    aliases[a.asname or a.name] = f"{base}.{a.name}" if not base.endswith(".") else base + a.name
        elif isinstance(node, ast.Try):  # `try: from x import Y` in package __init__ files
            for inner in node.body:
                if isinstance(inner, ast.ImportFrom):
                    aliases.update(_imports(ast.Module([inner], [])))
    return aliases


@functools.lru_cache(maxsize=512)
def outline(path: str) -> _Outline | None:
    try:
        tree = ast.parse(read_source(path), filename=path)
    except (OSError, ValueError, SyntaxError, RecursionError, MemoryError):
        return None
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    return _Outline(_imports(tree), classes, functions)


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    if isinstance(node, ast.Subscript):  # Generic[T], nn.Module[...]
        return _dotted(node.value)
    return None


def resolve_name(name: str, aliases: dict[str, str]) -> str:
    head, _, rest = name.partition(".")
    return aliases[head] + (f".{rest}" if rest else "") if head in aliases else name


def _candidates(parts: list[str], root: str) -> list[str]:
    base = os.path.join(root, *parts)
    return [base + ".py", os.path.join(base, "__init__.py")]


_SEARCH: dict[str, tuple[str, ...]] = {}  # a side's file -> the import path of the interpreter that runs it


def run_by(path: str | None, python: str | None) -> None:
    """`path` (a side's file) runs in the interpreter `python` (`--python-b`): its absolute imports, and those of
    the files they lead to, are read where that interpreter finds them (transformers 5 beside this 4.57)."""
    import json
    import subprocess

    if not path or not python or os.path.realpath(python) == os.path.realpath(sys.executable):
        return
    try:
        out = subprocess.run([python, "-c", "import json, sys; print(json.dumps(sys.path))"], capture_output=True,
                             text=True, timeout=60).stdout
        _SEARCH[os.path.abspath(path)] = tuple(p for p in json.loads(out) if isinstance(p, str))
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return  # the run reports an interpreter that cannot start; reading falls back to this one's path


def module_file(module: str, from_path: str) -> str | None:
    """The source file of `module` (dotted, possibly relative) as imported from `from_path`, or None."""
    search = _SEARCH.get(os.path.abspath(from_path))
    found = _module_file(module, from_path, sys.path if search is None else search)
    if found is not None and search is not None:
        _SEARCH.setdefault(os.path.abspath(found), search)
    return found


def _module_file(module: str, from_path: str, search) -> str | None:
    dots = len(module) - len(module.lstrip("."))
    parts = [p for p in module.lstrip(".").split(".") if p]
    folder = os.path.dirname(os.path.abspath(from_path))
    if dots:
        for _ in range(dots - 1):
            folder = os.path.dirname(folder)
        roots = [folder]
    else:  # the checkout's own package roots first (walking up), then the interpreter's path
        roots, up = [], folder
        while True:
            roots.append(up)
            if not os.path.isfile(os.path.join(up, "__init__.py")) or os.path.dirname(up) == up:
                break
            up = os.path.dirname(up)
        roots += [p for p in search if p and os.path.isdir(p)]
    for root in roots:
        for path in (_candidates(parts, root) if parts else [os.path.join(root, "__init__.py")]):
            if os.path.isfile(path):
                return _like(path, from_path)
    return None


def _like(path: str, from_path: str) -> str:
    """Relative to the working directory when the importing file was named that way (findings stay readable)."""
    if os.path.isabs(from_path) or not path.startswith(os.getcwd() + os.sep):
        return path
    return os.path.relpath(path)


def find_class(name: str, path: str, hops: int = 0) -> ClassInfo | None:
    """The class that `name` (as written in `path`) refers to, following imports and re-exports."""
    info = outline(path)
    if info is None or hops > MAX_HOPS:
        return None
    if "." not in name and name in info.classes:
        node = info.classes[name]
        return ClassInfo(path, name, tuple(resolve_name(d, info.aliases) for d in map(_dotted, node.bases) if d),
                         node)
    target = resolve_name(name, info.aliases)
    if target == name and "." not in name:
        return None
    module, _, cls = target.rpartition(".")
    if not module or module.split(".")[0] in V.FRAMEWORK_ROOTS:
        return None
    where = module_file(module, path)
    if where is None:
        return None
    return find_class(cls, where, hops + 1)


def function_params(name: str, path: str, hops: int = 0) -> tuple[str, ...] | None:
    """The positional parameter names of the function `name` (as written in `path`), following imports."""
    info = outline(path)
    if info is None or hops > MAX_HOPS:
        return None
    if "." not in name and name in info.functions:
        a = info.functions[name].args
        return tuple(x.arg for x in a.posonlyargs + a.args)
    target = resolve_name(name, info.aliases)
    module, _, fn = target.rpartition(".")
    if target == name and "." not in name or not module or module.split(".")[0] in V.FRAMEWORK_ROOTS:
        return None
    where = module_file(module, path)
    return function_params(fn, where, hops + 1) if where else None


def framework_of(name: str, path: str, hops: int = 0) -> str | None:
    """The framework whose module class `name` (as written in `path`) derives from, or None."""
    info = outline(path)
    resolved = resolve_name(name, info.aliases) if info else name
    if resolved in V.MODULE_BASES:
        return V.MODULE_BASES[resolved]
    last = resolved.rsplit(".", 1)[-1]
    if resolved.startswith(LAYER_ROOTS) and last[:1].isupper():
        return resolved.split(".")[0]  # a framework layer: nn.LayerNorm, nn.Conv1d
    if hops > MAX_HOPS:
        return None
    found = find_class(name, path)
    if found is None:
        return None
    for base in found.bases:
        fw = framework_of(base, found.path, hops + 1)
        if fw:
            return fw
    return None
