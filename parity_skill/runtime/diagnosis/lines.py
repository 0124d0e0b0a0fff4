"""Down to the line: a forward whose own code is the root cause is run once more as an instrumented copy that records
the value of every assignment and of its return, on both sides, from the same inputs and weights; the records are
aligned across A and B by order, shape and value (up to a scale), and the first statement whose value differs
while everything before it agreed names the line on each side.

The copy is made with the standard library's `ast` (the side processes never import the analysis stack): the
function's own source, each `x = expr` turned into `x = __ps__(("x",), LINE, expr)`, compiled with the original
file name and line numbers, and called in place of the original for this one call."""
from __future__ import annotations

import ast
import inspect
import os
import textwrap
from typing import Any, Callable

import numpy as np

MAX_BYTES = 32 * 2 ** 20  # what one side may record; a model's top level is small, a stack of layers is not


class _Record(ast.NodeTransformer):
    """Wraps assigned values, returned values and the arguments of `self.<submodule>(...)` calls in `__ps__`."""

    def __init__(self, offset: int) -> None:
        self.offset = offset  # from the dedented source's line numbers to the file's

    def _wrap(self, names: list[str], node: ast.AST, value: ast.expr) -> ast.expr:
        call = ast.Call(ast.Name("__ps__", ast.Load()), [ast.Tuple([ast.Constant(n) for n in names], ast.Load()),
                                                          ast.Constant(node.lineno + self.offset), value], [])
        return ast.copy_location(call, value)

    def visit_Call(self, node: ast.Call):
        self.generic_visit(node)  # inner calls first: records follow the order values are computed in
        f = node.func
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "self":
            node.args = [a if isinstance(a, ast.Starred) else self._wrap([f"{f.attr}(argument {i})"], node, a)
                         for i, a in enumerate(node.args)]
        return node

    def visit_FunctionDef(self, node):  # nested functions and lambdas keep their own code
        if getattr(self, "_inside", False):
            return node
        self._inside = True
        self.generic_visit(node)
        return node

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Assign(self, node: ast.Assign):
        self.generic_visit(node)
        target = node.targets[0]
        if len(node.targets) == 1 and isinstance(target, ast.Name):
            node.value = self._wrap([target.id], node, node.value)
        elif len(node.targets) == 1 and isinstance(target, ast.Tuple) and all(isinstance(e, ast.Name)
                                                                              for e in target.elts):
            node.value = self._wrap([e.id for e in target.elts], node, node.value)
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign):
        self.generic_visit(node)
        if node.value is not None and isinstance(node.target, ast.Name):
            node.value = self._wrap([node.target.id], node, node.value)
        return node

    def visit_Return(self, node: ast.Return):
        self.generic_visit(node)
        if node.value is not None:
            node.value = self._wrap(["return"], node, node.value)
        return node


def instrumented(fn: Callable, record: Callable) -> Callable | None:
    """A copy of `fn` that calls `record(names, line, value)` for each assignment and its return; None when its
    source cannot be read or compiled (a builtin, a lambda, a function made at run time)."""
    fn = inspect.unwrap(fn)  # a decorated forward (`@deprecate_kwarg`): its own code, in its own module's globals
    try:
        lines, first = inspect.getsourcelines(fn)
        path = inspect.getsourcefile(fn)
    except (OSError, TypeError, ValueError):
        return None
    tree = ast.parse(textwrap.dedent("".join(lines)))
    func = tree.body[0] if tree.body and isinstance(tree.body[0], (ast.FunctionDef, ast.AsyncFunctionDef)) else None
    if func is None:
        return None
    func.decorator_list = []
    _Record(first - 1).visit(func)
    # made inside a function taking __class__, so a zero-argument super() finds its class as in the original
    module = ast.parse(f"def __ps_make__(__class__, __ps__):\n    return {func.name}\n")
    module.body[0].body.insert(0, func)
    ast.fix_missing_locations(module)
    ast.increment_lineno(module, first - 1)
    namespace = dict(fn.__globals__)
    try:
        exec(compile(module, path or "<parity>", "exec"), namespace)  # noqa: S102 - the user's own code, re-compiled
    except SyntaxError:
        return None
    owner = _owner(fn)
    return namespace["__ps_make__"](owner, record)


def _owner(fn: Callable) -> type | None:
    """The class whose method `fn` is (its zero-argument super() needs it), or None for a plain function."""
    qual = getattr(fn, "__qualname__", "").split(".")
    if len(qual) < 2:
        return None
    obj = fn.__globals__.get(qual[0])
    for part in qual[1:-1]:
        obj = getattr(obj, part, None)
    return obj if isinstance(obj, type) else None


class Recorder:
    """Collects (label, array) per recorded value, as float64 numpy, within MAX_BYTES."""

    def __init__(self, path: str, to_numpy: Callable[[Any], np.ndarray | None], prefix: str = "",
                 rows: list | None = None) -> None:
        """`prefix` starts every label (`layers.0.attn|`); `rows`: a list shared by several recorders, so the
        statements of nested forwards stay in execution order."""
        self.path, self.to_numpy, self.prefix = path, to_numpy, prefix
        self.rows: list[list] = rows if rows is not None else []
        self.size = 0
        self.truncated = False

    def __call__(self, names: tuple, line: int, value: Any) -> Any:
        values = value if len(names) > 1 and isinstance(value, (tuple, list)) and len(value) == len(names) else \
            [value] * len(names) if len(names) == 1 else []
        for name, v in zip(names, values):
            for key, arr in self._arrays(v):
                if self.size + arr.nbytes > MAX_BYTES:
                    self.truncated = True
                    return value
                self.size += arr.nbytes
                self.rows.append([f"{self.prefix}{self.path}:{line} {name}{key}", [], [("", arr)]])
        return value

    def _arrays(self, value: Any, key: str = "") -> list[tuple[str, np.ndarray]]:
        if isinstance(value, (tuple, list)):
            return [kv for i, v in enumerate(value[:8]) for kv in self._arrays(v, f"{key}[{i}]")]
        arr = self.to_numpy(value)
        if arr is None or arr.size == 0 or not np.issubdtype(arr.dtype, np.floating):
            return []
        return [(key, np.asarray(arr, np.float64))]


def _to_numpy(adapter) -> Callable[[Any], np.ndarray | None]:
    def to_numpy(value):
        try:
            return adapter.numpy(value) if not isinstance(value, (str, bytes, type(None))) else None
        except Exception:  # noqa: BLE001 - not an array
            return None
    return to_numpy


def side_lines(side, args: list[np.ndarray], modules: tuple[str, ...], attr: str) -> list[list]:
    """Side.lines: the instrumented forward(s) swapped in for one run of the side (each copy only for its own
    instance: other instances of the class run their original code), then put back."""
    model = side.model_for("fp32")
    named = dict(side.adapter.submodules(model))
    targets = [(m, named[m]) for m in modules if m in named] if modules else [("", model)]
    copies: dict[type, dict] = {}  # class -> {instance id: (instance, its instrumented forward)}
    rows: list[list] = []
    for name, obj in targets:
        fn = obj if side.impl.kind == "function" else getattr(type(obj), attr, None)
        try:
            path = inspect.getsourcefile(inspect.unwrap(fn))
        except (TypeError, ValueError):
            continue
        if modules and any(f"{os.sep}{pkg}{os.sep}" in path for pkg in ("torch", "mlx")):
            continue  # a framework layer: its root cause is where the user's code builds it, not the framework's code
        rel = os.path.relpath(path)
        rec = Recorder(path if rel.startswith("..") else rel, _to_numpy(side.adapter), f"{name}|" if modules else "",
                       rows)
        copy = instrumented(fn, rec)
        if copy is not None:
            copies.setdefault(type(obj), {})[id(obj)] = (obj, copy)
    if not copies:
        return []
    if side.impl.kind == "function":
        side._models["fp32"] = next(iter(next(iter(copies.values())).values()))[1]
        try:
            side.run(args)
        finally:
            side._models["fp32"] = model
        return rows
    saved = {cls: (attr in vars(cls), vars(cls).get(attr)) for cls in copies}
    for cls, mine in copies.items():
        original = getattr(cls, attr)
        setattr(cls, attr, lambda this, *a, _m=mine, _o=original, **k:
                (_m[id(this)][1] if id(this) in _m and _m[id(this)][0] is this else _o)(this, *a, **k))
    try:
        side.run(args)
    finally:
        for cls, (had, old) in saved.items():
            setattr(cls, attr, old) if had else delattr(cls, attr)
    return rows
