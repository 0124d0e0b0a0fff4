"""Where the classes of a live model are defined, and where the user's code builds a framework layer: file:line
answers for the report (read from source text; a framework file is never parsed whole)."""
from __future__ import annotations

import functools
import inspect
import linecache
import os
import re
from typing import Any


def class_of(obj: Any) -> dict:
    """{class, location}: the object's class name and where it is defined (relative when under the cwd)."""
    return dict(_class_location(type(obj)))


@functools.lru_cache(maxsize=1024)
def _class_location(cls: type) -> dict:
    """class_of for a class (read once: a 12-layer model has 12 instances of each of its classes). The line is the
    first `class Name` statement of its file (inspect.getsourcelines parses the whole file into a syntax tree,
    a tenth of a second per framework file)."""
    try:
        path = inspect.getsourcefile(cls)
    except TypeError:
        path = None
    line = _class_line(path, cls.__name__) if path else None
    return {"class": cls.__name__, "location": None if line is None else _shown(path, line)}


def _shown(path: str, line: int) -> str:
    """path:line, relative when under the working directory."""
    rel = os.path.relpath(path)
    return f"{path if rel.startswith('..') else rel}:{line}"


def _class_line(path: str, name: str) -> int | None:
    pattern = re.compile(rf"^\s*class\s+{re.escape(name)}\b")
    return next((k + 1 for k, text in enumerate(linecache.getlines(path)) if pattern.match(text)), None)


@functools.lru_cache(maxsize=1024)
def _assigned_at(cls: type, attr: str) -> str | None:
    """file:line where `cls.__init__` assigns `self.<attr>`."""
    try:
        lines, first = inspect.getsourcelines(cls.__init__)
        path = inspect.getsourcefile(cls.__init__)
    except (OSError, TypeError):
        return None
    at = next((first + k for k, line in enumerate(lines) if re.search(rf"self\.{re.escape(attr)}\s*[:=]", line)), None)
    return None if at is None else _shown(path, at)


def framework_file(location: str | None) -> bool:
    return bool(location) and any(f"{os.sep}{pkg}{os.sep}" in location for pkg in ("torch", "mlx"))


def built_at(name: str, modules: dict[str, Any]) -> str | None:
    """file:line where the nearest enclosing module of the user's own code assigns the attribute holding `name`
    (`self.layer_norm1 = nn.LayerNorm(...)`), for a framework layer whose class lives in the framework."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, -1, -1):
        owner = modules.get(".".join(parts[:cut]))
        attr = parts[cut]
        if owner is None or framework_file(class_of(owner).get("location")) or attr.isdigit():
            continue
        return _assigned_at(type(owner), attr)
    return None
