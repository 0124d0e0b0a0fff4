"""What a differing statement reads from its module's constructor: the `self.<attr>` values (not submodules) the
statement uses and the `__init__` line that sets each (`self.scale = head_dim ** -0.5`), so a difference caused by
a setting is located where the setting is made, not only where it is used. Read with `ast` from the file."""
from __future__ import annotations

import ast
import functools

from parity_skill.safe_io import read_source


@functools.lru_cache(maxsize=32)
def _tree(path: str) -> tuple[ast.Module, str] | None:
    try:
        source = read_source(path)
        return ast.parse(source), source
    except (OSError, SyntaxError, ValueError):
        return None


def _enclosing(nodes, line: int, kind):
    """The innermost node of `kind` among `nodes` (walked) that spans `line`."""
    found = None
    for node in nodes:
        if isinstance(node, kind) and node.lineno <= line <= (node.end_lineno or node.lineno):
            if found is None or node.lineno >= found.lineno:
                found = node
    return found


def _constructed(value: ast.expr) -> bool:
    """`nn.Linear(...)`, `RMSNorm(...)`, `[Block() for ...]`: a submodule, not a setting."""
    if isinstance(value, ast.Call):
        f = value.func
        name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
        return name[:1].isupper()
    return isinstance(value, (ast.ListComp, ast.List)) and any(isinstance(n, ast.Call) for n in ast.walk(value))


def settings_read(location: str | None) -> list[dict]:
    """[{attr, location, source}] for each constructor setting the statement at `location` (path:line) reads."""
    if not location or ":" not in location:
        return []
    path, _, line_text = location.rpartition(":")
    parsed = _tree(path)
    if parsed is None or not line_text.isdigit():
        return []
    tree, source = parsed
    line = int(line_text)
    nodes = list(ast.walk(tree))
    cls = _enclosing(nodes, line, ast.ClassDef)
    if cls is None:
        return []
    stmt = _enclosing(list(ast.walk(cls)), line, ast.stmt)
    reads = [n.attr for n in ast.walk(stmt) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
             and n.value.id == "self" and isinstance(n.ctx, ast.Load)] if stmt is not None else []
    init = next((f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"), None)
    if init is None or not reads:
        return []
    sets: dict[str, ast.stmt] = {}
    for node in ast.walk(init):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign) and node.value is not None else []
        for t in targets:
            if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self" \
                    and not _constructed(node.value):
                if t.attr not in sets or node.lineno > sets[t.attr].lineno:
                    sets[t.attr] = node
    out = []
    for attr in dict.fromkeys(reads):
        if attr in sets:
            text = ast.get_source_segment(source, sets[attr]) or ""
            out.append({"attr": attr, "location": f"{path}:{sets[attr].lineno}", "source": " ".join(text.split())})
    return out
