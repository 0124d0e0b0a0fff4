"""Read one Python file with libcst (never importing it) into a FileAnalysis."""
from __future__ import annotations

import ast
import os
import re
import sys
from collections.abc import Iterable

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from parity_skill.analyze import hierarchy, reach
from parity_skill.analyze import vocabulary as V
from parity_skill.analyze.body import BodyVisitor, Context, dotted
from parity_skill.analyze.init_body import ConfigUses, InitVisitor
from parity_skill.analyze.model import Arg, ConfigClass, FileAnalysis, Symbol
from parity_skill.errors import InputError
from parity_skill.safe_io import read_source



MAX_DEPTH = 300  # syntax-tree nesting; real code stays far below, a generated 10,000-term sum does not
RECURSION_LIMIT = 20_000  # libcst's visitors recurse a few frames per level


class Positions:
    """libcst's start and end line of a node, as line numbers of the file (reach.reduced drops lines)."""

    def __init__(self, positions, line_map: list[int] | None) -> None:
        self._positions, self._map = positions, line_map

    def lines(self, node: cst.CSTNode) -> tuple[int, int]:
        span = self._positions[node]
        if self._map is None:
            return span.start.line, span.end.line
        return self._map[span.start.line - 1], self._map[min(span.end.line, len(self._map)) - 1]


def parse(path: str, only: frozenset[str] = frozenset()) -> tuple[cst.Module, Positions, dict[str, str]]:
    """(libcst module, positions, import aliases) of `path`; with `only`, the module holds just the code those
    top-level symbols reach (reach.py), every line number still the file's own."""
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    if os.path.isdir(path):
        py = sorted(f for f in os.listdir(path) if f.endswith(".py"))[:3]
        hint = f"name a file in it ({', '.join(os.path.join(path, f) for f in py)})" if py else "name a .py file"
        raise InputError(f"{path}: is a folder: {hint}; to compare two artifact folders use "
                         f"`parity-skill compare A_DIR B_DIR`")
    try:
        source = read_source(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    try:  # Python's own parser first: fast, and its message names the real problem and line
        tree = ast.parse(source, filename=path)
        keep = reach.needed(tree, set(only)) if only else None
        depth = reach.depth(reach.kept_nodes(tree, keep) if keep is not None else [tree])
    except SyntaxError as py:
        raise InputError(f"{path}:{py.lineno}: syntax error: {py.msg}") from None
    except (RecursionError, MemoryError):
        tree, depth = None, MAX_DEPTH + 1
    if depth > MAX_DEPTH:
        raise InputError(f"{path}: code nested more than {MAX_DEPTH} levels deep; too deep to analyze")
    line_map = None
    if keep is not None:
        source, line_map = reach.reduced(source, tree, keep)
    module = _parse_cst(path, source, tree)
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    aliases = reach.imports(tree) if tree is not None else _cst_imports(module)
    return module, Positions(wrapper.resolve(PositionProvider), line_map), aliases


MAX_BLANKED = 20


def _parse_cst(path: str, source: str, tree: ast.Module) -> cst.Module:
    """libcst's parse. Its grammar lags Python's on a few rare forms (`(x): int = 1`): the statement it rejects is
    blanked (line numbers kept) and parsing retried, so valid Python always analyzes."""
    lines = source.splitlines(keepends=True)
    for _ in range(MAX_BLANKED):
        try:
            return cst.parse_module("".join(lines))
        except cst.ParserSyntaxError as exc:
            at = re.search(r"error at (\d+):", str(exc))  # raw_line points past the error; the message does not
            stmt = _statement_at(tree, int(at.group(1)) if at else exc.raw_line)
            if stmt is None or not lines[stmt.lineno - 1].strip():
                raise InputError(f"{path}:{exc.raw_line}: valid Python that libcst cannot parse: "
                                 f"{exc.message}") from None
            first = lines[stmt.lineno - 1]
            lines[stmt.lineno - 1] = first[:len(first) - len(first.lstrip())] + "pass\n"
            for i in range(stmt.lineno, stmt.end_lineno):
                lines[i] = "\n"
    raise InputError(f"{path}: libcst cannot parse more than {MAX_BLANKED} statements of this file")


def _statement_at(tree: ast.Module, line: int) -> ast.stmt | None:
    """The innermost statement spanning `line`."""
    found = None
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt) and node.lineno <= line <= (node.end_lineno or node.lineno):
            if found is None or node.lineno >= found.lineno and (node.end_lineno or 0) <= (found.end_lineno or 0):
                found = node
    return found


class _Imports(cst.CSTVisitor):
    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}

    def visit_Import(self, node: cst.Import) -> None:
        for alias in node.names:
            full = dotted(alias.name) or ""
            if alias.asname is not None:
                self.aliases[alias.asname.name.value] = full
            else:
                self.aliases.setdefault(full.split(".")[0], full.split(".")[0])

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        base = dotted(node.module) if node.module is not None else ""
        base = "." * len(node.relative) + (base or "")
        if isinstance(node.names, cst.ImportStar):
            return
        for alias in node.names:
            name = dotted(alias.name) or ""
            local = alias.asname.name.value if alias.asname is not None else name
            self.aliases[local] = f"{base}.{name}" if not base.endswith(".") else f"{base}{name}"


def _args(params: cst.Parameters, ctx: Context, skip_self: bool) -> tuple[Arg, ...]:
    out: list[Arg] = []

    def add(p: cst.Param, kind: str) -> None:
        ann = ctx.code(p.annotation.annotation) if p.annotation is not None else None
        default = ctx.code(p.default) if p.default is not None else None
        out.append(Arg(p.name.value, ann, default, kind, ctx.loc(p)))

    for p in (*params.posonly_params, *params.params):
        add(p, "positional")
    if isinstance(params.star_arg, cst.Param):
        add(params.star_arg, "vararg")
    for p in params.kwonly_params:
        add(p, "kwonly")
    if params.star_kwarg is not None:
        add(params.star_kwarg, "varkw")
    return tuple(out[1:] if skip_self and out else out)


def _method(cls: cst.ClassDef, *names: str, classes: dict[str, cst.ClassDef] | None = None,
            depth: int = 0) -> cst.FunctionDef | None:
    """The first of `names` the class defines, else inherits from a base class of the same file (`classes`)."""
    for name in names:
        for stmt in cls.body.body:
            if isinstance(stmt, cst.FunctionDef) and stmt.name.value == name:
                return stmt
    for base in cls.bases if classes and depth < 8 else ():
        parent = classes.get(dotted(base.value) or "")
        found = _method(parent, *names, classes=classes, depth=depth + 1) if parent is not None else None
        if found is not None:
            return found
    return None


def _is_dataclass(cls: cst.ClassDef, ctx: Context) -> bool:
    for dec in cls.decorators:
        expr = dec.decorator.func if isinstance(dec.decorator, cst.Call) else dec.decorator
        if ctx.resolve(dotted(expr) or "").endswith("dataclass"):
            return True
    return False


def _config(cls: cst.ClassDef, ctx: Context) -> ConfigClass | None:
    fields: list[Arg] = []
    for stmt in cls.body.body:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, cst.AnnAssign) and isinstance(small.target, cst.Name):
                    default = ctx.code(small.value) if small.value is not None else None
                    fields.append(Arg(small.target.value, ctx.code(small.annotation.annotation), default,
                                      location=ctx.loc(small)))
        elif isinstance(stmt, cst.FunctionDef) and not _is_dataclass(cls, ctx):
            return None
    if not fields and not _is_dataclass(cls, ctx):
        return None
    return ConfigClass(cls.name.value, ctx.loc(cls), tuple(fields))


def _module_framework(cls: cst.ClassDef, ctx: Context, known: dict[str, str]) -> str | None:
    for base in cls.bases:
        name = dotted(base.value)
        if not name:
            continue
        if name in known:
            return known[name]
        fw = V.MODULE_BASES.get(ctx.resolve(name)) or hierarchy.framework_of(name, ctx.path)
        if fw:
            return fw
    return None


def _file_framework(aliases: dict[str, str]) -> str | None:
    roots = {v.split(".")[0] for v in aliases.values()}
    for fw in ("torch", "mlx", "numpy"):
        if fw in roots:
            return fw
    return None


_CACHE: dict[tuple, FileAnalysis] = {}
MAX_CACHED = 64


def analyze_file(path: str, only: Iterable[str] = ()) -> FileAnalysis:
    """Analyze `path`: every top-level symbol, or with `only` (names of the file's top-level classes or functions)
    those and what they reach (reach.py). Cached by file content for the run: the planner and the submodule
    lookups read a file once. Raises InputError for a missing, unreadable, invalid or pathologically deep file."""
    only = frozenset(n for n in only if n)
    try:
        st = os.stat(path)
        key = (os.path.realpath(path), st.st_mtime_ns, st.st_size, only)
    except OSError:
        key = None
    if key in _CACHE:
        return _CACHE[key]
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, RECURSION_LIMIT))
    try:
        out = _analyze(path, only)
    except RecursionError:
        raise InputError(f"{path}: nested too deeply to analyze") from None
    finally:
        sys.setrecursionlimit(limit)
    if key is not None:
        if len(_CACHE) >= MAX_CACHED:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = out
    return out


def _cst_imports(module: cst.Module) -> dict[str, str]:
    """Import aliases read by libcst, for the rare file Python's own parser could not read (too deep)."""
    imports = _Imports()
    module.visit(imports)
    return imports.aliases


def _analyze(path: str, only: frozenset[str] = frozenset()) -> FileAnalysis:
    module, positions, aliases = parse(path, only)
    ctx = Context(path, module, positions, aliases)
    file_fw = _file_framework(aliases)

    classes = [s for s in module.body if isinstance(s, cst.ClassDef)]
    module_fw: dict[str, str] = {}
    changed = True
    while changed:  # a class deriving from another module class of this file is a module too
        changed = False
        for cls in classes:
            if cls.name.value not in module_fw:
                fw = _module_framework(cls, ctx, module_fw)
                if fw:
                    module_fw[cls.name.value] = fw
                    changed = True

    symbols: list[Symbol] = []
    configs: list[ConfigClass] = []
    helpers: list[str] = []
    for stmt in module.body:
        if isinstance(stmt, cst.ClassDef):
            name = stmt.name.value
            if name in module_fw:
                symbols.append(_module_symbol(stmt, ctx, module_fw[name], set(module_fw),
                                              {c.name.value: c for c in classes}))
            elif _callable_class(stmt, file_fw, classes):  # a logits processor, a NumPy layer with __call__
                symbols.append(_module_symbol(stmt, ctx, file_fw, set(module_fw), {c.name.value: c for c in classes}))
            else:
                cfg = _config(stmt, ctx)
                if cfg:
                    configs.append(cfg)
        elif isinstance(stmt, cst.FunctionDef):
            if stmt.name.value.startswith("_"):
                helpers.append(stmt.name.value)
            else:
                symbols.append(_function_symbol(stmt, ctx, file_fw))
    return FileAnalysis(path, file_fw, tuple(sorted(aliases.items())), tuple(symbols), tuple(configs),
                        tuple(helpers))


def _callable_class(cls: cst.ClassDef, file_fw: str | None, classes: list[cst.ClassDef]) -> bool:
    """A public class of a torch/MLX/NumPy file that is not a framework module but is called like one: it defines
    `__call__` (itself or through a base class of the same file)."""
    if file_fw is None or cls.name.value.startswith("_"):
        return False
    return _method(cls, "__call__", classes={c.name.value: c for c in classes}) is not None


def _module_symbol(cls: cst.ClassDef, ctx: Context, fw: str, local_modules: set[str],
                   classes: dict[str, cst.ClassDef] | None = None) -> Symbol:
    init = _method(cls, "__init__", classes=classes)
    names = ("forward", "__call__") if fw == "torch" else ("__call__", "forward")
    call = _method(cls, *names, classes=classes)
    init_args = _args(init.params, ctx, True) if init else ()
    call_args = _args(call.params, ctx, True) if call else ()
    body = BodyVisitor(ctx)
    cls.visit(body)
    iv = InitVisitor(ctx, fw, local_modules)
    if init is not None:
        init.visit(iv)
    hints = BodyVisitor(ctx, tuple(a.name for a in call_args), frozenset(sub.attr for sub in iv.submodules))
    if call is not None:
        call.visit(hints)
    bases = tuple(dotted(b.value) or "" for b in cls.bases)
    params = {a.name for a in init_args}
    uses = ConfigUses(ctx, params, {attr: src for attr, src in iv.assigns if src in params})
    cls.visit(uses)
    own = {id(stmt) for stmt in cls.body.body}
    for inherited in (init, call):  # methods a same-file base class defines read the config too
        if inherited is not None and id(inherited) not in own:
            inherited.visit(uses)
    if init is not None:
        uses.record_calls(init)
    return Symbol(cls.name.value, "module", fw, ctx.loc(cls), init_args, call_args, tuple(iv.submodules),
                  tuple(iv.tensors), tuple(body.ops), tuple(body.findings), tuple(hints.hints),
                  tuple(iv.assigns), bases, _lines(call, ctx), tuple(dict.fromkeys(uses.uses)),
                  tuple(uses.constructs), tuple(iv.locals), tuple(iv.where), init is not None)


def _function_symbol(fn: cst.FunctionDef, ctx: Context, file_fw: str | None) -> Symbol:
    call_args = _args(fn.params, ctx, False)
    body = BodyVisitor(ctx, tuple(a.name for a in call_args))
    fn.visit(body)
    counts = {fw: body.frameworks.count(fw) for fw in ("torch", "mlx")}
    fw = max(counts, key=counts.get) if any(counts.values()) else (file_fw or "numpy")
    if fw != "torch" and fw != "mlx" and "numpy" in body.frameworks:
        fw = "numpy"
    return Symbol(fn.name.value, "function", fw, ctx.loc(fn), (), call_args, (), (), tuple(body.ops),
                  tuple(body.findings), tuple(body.hints), call_lines=_lines(fn, ctx))


def _lines(node: cst.CSTNode | None, ctx: Context) -> tuple[int, int]:
    if node is None:
        return (0, 0)
    return ctx.positions.lines(node)

