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

    def __init__(self, path: str, to_numpy: Callable[[Any], np.ndarray | None]) -> None:
        self.path, self.to_numpy = path, to_numpy
        self.rows: list[list] = []
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
                self.rows.append([f"{self.path}:{line} {name}{key}", [], [("", arr)]])
        return value

    def _arrays(self, value: Any, key: str = "") -> list[tuple[str, np.ndarray]]:
        if isinstance(value, (tuple, list)):
            return [kv for i, v in enumerate(value[:8]) for kv in self._arrays(v, f"{key}[{i}]")]
        arr = self.to_numpy(value)
        if arr is None or arr.size == 0 or not np.issubdtype(arr.dtype, np.floating):
            return []
        return [(key, np.asarray(arr, np.float64))]
