"""What a request reaches in one file, found with Python's `ast` (fast), so libcst reads only that code.

A run names one class or function per side. The plan needs that symbol, what it reaches (its base classes, the
classes it builds, its config classes and helpers, all of the same file), the classes that build it up to the
enclosing model (their `__init__` hands it arguments and tells the model it lives in; classes above the model
that takes token ids, the task heads, are not read), and the file's rotary
classes (a layer's companions). Everything else of the file is blanked, line numbers kept, before libcst parses
it: a 6,000-line file whose request reaches 300 lines costs about what a 300-line file does."""
from __future__ import annotations

import ast

from parity_skill.analyze import vocabulary as V

BUILDER_DEPTH = 4  # model -> layer stack -> layer -> attention: how far up the classes that build a symbol go


def imports(tree: ast.Module) -> dict[str, str]:
    """{local name: dotted target} of every import in the file, nested ones too, later ones winning (as a
    reader of the code sees them in source order)."""
    nodes = sorted((n for n in _statements(tree) if isinstance(n, (ast.Import, ast.ImportFrom))),
                   key=lambda n: (n.lineno, n.col_offset))
    aliases: dict[str, str] = {}
    for node in nodes:
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname is not None:
                    aliases[a.asname] = a.name
                else:
                    head = a.name.split(".")[0]
                    aliases.setdefault(head, head)
            continue
        base = "." * node.level + (node.module or "")
        for a in node.names:
            if a.name == "*":
                continue
            aliases[a.asname or a.name] = f"{base}.{a.name}" if not base.endswith(".") else f"{base}{a.name}"
    return aliases


def _statements(tree: ast.Module):
    """Every statement of the file, nested ones too, without walking expressions (imports are statements)."""
    todo: list = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.stmt):
            yield node
        for name in ("body", "orelse", "finalbody", "handlers", "cases"):
            todo.extend(x for x in getattr(node, name, ()) if isinstance(x, (ast.stmt, ast.excepthandler,
                                                                               ast.match_case)))


def depth(nodes) -> int:
    """Nesting depth of syntax trees, measured without recursion."""
    deepest, stack = 0, [(node, 1) for node in nodes]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        stack.extend((child, d + 1) for child in ast.iter_child_nodes(node))
    return deepest


def kept_nodes(tree: ast.Module, level: dict[str, int]) -> list[ast.stmt]:
    """The top-level statements libcst will read for this request."""
    return [node for node in tree.body if _kept(node, level)]


def _names(node: ast.AST) -> set[str]:
    """Every bare identifier a definition mentions (calls, annotations, bases, defaults, string annotations)."""
    out: set[str] = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            out.add(n.id)
        elif isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.isidentifier():
            out.add(n.value)  # `config: "LlamaConfig"`
    return out


def _constructs(cls: ast.ClassDef) -> set[str]:
    """Names a class's `__init__` calls (what it builds, among other calls), as the analysis records them."""
    init = next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
    return {n.func.id for n in ast.walk(init) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)} \
        if init is not None else set()


def _takes_ids(cls: ast.ClassDef) -> bool:
    """The class's forward/__call__ takes token ids first (the enclosing model: nothing above it is read)."""
    for node in cls.body:
        if isinstance(node, ast.FunctionDef) and node.name in ("forward", "__call__"):
            args = [a.arg for a in (*node.args.posonlyargs, *node.args.args)][1:] or [a.arg for a in node.args.kwonlyargs]
            return bool(args) and bool(V.IDS_NAMES.match(args[0]))
    return False


WHOLE, CORE, INIT = 3, 2, 1  # how much of a definition is read: all; __init__/forward/__call__; __init__
KEEP = {CORE: ("__init__", "forward", "__call__"), INIT: ("__init__",)}


def needed(tree: ast.Module, only: set[str]) -> dict[str, int] | None:
    """{top-level definition: how much of it is read} for a request for `only`, or None when one of `only` is not
    defined at the top level of this file (the caller then analyses the whole file, so its messages list every
    symbol).

    WHOLE: the request, the file's rotary classes, and every class or function their bodies mention. CORE: their
    same-file base classes, whose constructor and forward the request inherits. INIT: the classes that build the
    request, up to the model that takes token ids (and their bases): the plan reads what they build and with what,
    and how they are called, never their forward's body."""
    defs = {n.name: n for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))}
    if not only or any(name not in defs for name in only):
        return None
    classes = {name: node for name, node in defs.items() if isinstance(node, ast.ClassDef)}
    builds = {name: _constructs(node) & defs.keys() for name, node in classes.items()}
    level: dict[str, int] = {}
    todo = [(name, WHOLE) for name in set(only) | {n for n in classes if V.ROTARY_CLASS.search(n)}]
    frontier = set(only)
    for _ in range(BUILDER_DEPTH):  # up: the classes that build the request, up to the model taking token ids
        frontier = {owner for owner, built in builds.items() if built & frontier} - set(only)
        todo += [(name, INIT) for name in frontier]
        frontier = {name for name in frontier if not _takes_ids(classes[name])}
    while todo:
        name, want = todo.pop()
        if level.get(name, 0) >= want:
            continue
        level[name] = want
        node = defs[name]
        if not isinstance(node, ast.ClassDef):  # a function: read whole where it runs, else only its signature
            todo += [(n, WHOLE) for n in _names(node) & defs.keys()] if want >= CORE else []
            continue
        todo += [(b.id, min(want, CORE)) for b in node.bases if isinstance(b, ast.Name) and b.id in classes]
        read = [stmt for stmt in node.body if want == WHOLE or not isinstance(stmt, (ast.FunctionDef,
                ast.AsyncFunctionDef)) or stmt.name in KEEP[want]]
        mentioned = set().union(*(_names(stmt) for stmt in read)) & defs.keys() if read else set()
        todo += [(n, WHOLE if want >= CORE else INIT) for n in mentioned - {name}]  # code that runs is read whole
    return level


def reduced(source: str, tree: ast.Module, level: dict[str, int]) -> tuple[str, list[int]]:
    """(`source` without every top-level statement other than imports and the needed definitions, and without the
    methods a class is not read for, or with only their signature; the file's line number of each line left), so
    every location libcst reports is mapped back to the file's own."""
    lines = source.splitlines(keepends=True)
    spans = [(node, _first(node), node.end_lineno or node.lineno) for node in tree.body]
    kept = {i for node, first, last in spans if _kept(node, level) for i in range(first - 1, last)}
    for node, first, last in spans:
        if not _kept(node, level):
            _blank(lines, set(range(first - 1, last)) - kept)  # a line shared with a kept statement (`a; b`) stays
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and level[node.name] < CORE:
            _skim(lines, node)
        elif isinstance(node, ast.ClassDef) and level[node.name] < WHOLE:
            _cut_methods(lines, node, level[node.name])
    kept_lines = [(n + 1, line) for n, line in enumerate(lines) if line is not None]
    return "".join(line for _, line in kept_lines), [n for n, _ in kept_lines]


def _cut_methods(lines: list[str], cls: ast.ClassDef, level: int) -> None:
    """Methods the class is not read for are blanked; at INIT its forward/__call__ keeps its signature (how the
    model is called); a class left with no statement keeps its first method's signature (valid syntax)."""
    drop = [m for m in cls.body if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef)) and m.name not in KEEP[level]]
    signature = ("forward", "__call__") if level == INIT else ()
    left = len(cls.body) - len(drop) + sum(1 for m in drop if m.name in signature)
    for i, method in enumerate(drop):
        if method.name in signature or (left == 0 and i == 0):
            _skim(lines, method)
        else:
            _blank(lines, range(_first(method) - 1, method.end_lineno or method.lineno))


def _first(node: ast.stmt) -> int:
    return min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])


def _blank(lines: list, indices) -> None:
    """Lines dropped from what libcst reads (None), whole: a statement never shares them with a kept one."""
    for i in indices:
        lines[i] = None


def _skim(lines: list[str], fn: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
    """The function's body replaced by `...` on its first line (the signature stays)."""
    body = fn.body[0]
    if body.lineno <= fn.lineno:  # a one-line function
        return
    prefix = lines[body.lineno - 1][:body.col_offset]
    if prefix.strip():  # the body starts on a line it shares with the signature's end (`) -> int: x = 1`)
        return
    lines[body.lineno - 1] = prefix + "...\n"
    _blank(lines, range(body.lineno, fn.end_lineno or body.lineno))


def _kept(node: ast.stmt, keep: dict[str, int]) -> bool:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return True
    return isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in keep
