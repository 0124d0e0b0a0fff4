"""Config classes a constructor takes, wherever they are defined: dataclasses, NamedTuples, plain classes with an
`__init__(self, hidden_size=768, ..., **kwargs)` (transformers configs), and their bases; read, never imported."""
from __future__ import annotations

import ast
import re

from parity_skill.analyze import hierarchy
from parity_skill.analyze.model import Arg, ConfigClass

CONFIG_NAME = re.compile(r"(Config|Configuration|Args|Arguments|Params|Parameters|Cfg|Hparams|HParams|Options|"
                         r"Settings)$")
CONFIG_PARAM = re.compile(r"^(config|cfg|conf|args|model_args|model_config|params|hparams|hp|opt|opts|"
                          r"\w+_config|\w+_args)$")


def _src(node: ast.AST | None) -> str | None:
    return ast.unparse(node) if node is not None else None


def _decorated_dataclass(node: ast.ClassDef) -> bool:
    for dec in node.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        name = ast.unparse(target)
        if name.endswith("dataclass"):
            return True
    return False


def _init_fields(init: ast.FunctionDef, path: str) -> tuple[list[Arg], bool]:
    a = init.args
    positional = [*a.posonlyargs, *a.args][1:]
    defaults = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    out = [Arg(p.arg, _src(p.annotation), _src(d), "positional", f"{path}:{p.lineno}")
           for p, d in zip(positional, defaults)]
    out += [Arg(p.arg, _src(p.annotation), _src(d), "kwonly", f"{path}:{p.lineno}")
            for p, d in zip(a.kwonlyargs, a.kw_defaults)]
    return out, a.kwarg is not None


def _annotated(node: ast.ClassDef, path: str) -> list[Arg]:
    out = []
    for stmt in node.body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) \
                and "ClassVar" not in ast.unparse(stmt.annotation):
            out.append(Arg(stmt.target.id, _src(stmt.annotation), _src(stmt.value), location=f"{path}:{stmt.lineno}"))
    return out


def _read(info: hierarchy.ClassInfo, hops: int) -> tuple[dict[str, Arg], bool, bool] | None:
    """(fields by name, looks like a config, accepts **kwargs) for one class and its bases."""
    node = info.node
    inherited: dict[str, Arg] = {}
    config_base = False
    for base in info.bases:
        if base.rsplit(".", 1)[-1] in ("NamedTuple", "object", "Generic"):
            config_base = config_base or base.endswith("NamedTuple")
            continue
        found = hierarchy.find_class(base, info.path) if hops < hierarchy.MAX_HOPS else None
        if found is None:
            config_base = config_base or bool(CONFIG_NAME.search(base))
            continue
        read = _read(found, hops + 1)
        if read:
            inherited.update(read[0])
            config_base = config_base or read[1]
    init = next((s for s in node.body if isinstance(s, ast.FunctionDef) and s.name == "__init__"), None)
    dataclass = _decorated_dataclass(node)
    looks = dataclass or config_base or bool(CONFIG_NAME.search(node.name))
    if init is not None and not dataclass:
        own, varkw = _init_fields(init, info.path)
        return {a.name: a for a in own}, looks, varkw
    fields = dict(inherited)
    fields.update((a.name, a) for a in _annotated(node, info.path))
    methods = any(isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) for s in node.body)
    return fields, looks or (bool(fields) and not methods), False


def config_class(name: str, path: str) -> ConfigClass | None:
    """The config class `name` (as written in `path`) refers to, with the fields its constructor takes."""
    found = hierarchy.find_class(name, path)
    if found is None:
        return None
    read = _read(found, 0)
    if read is None or not read[1]:
        return None
    fields, _, varkw = read
    return ConfigClass(found.name, f"{found.path}:{found.node.lineno}", tuple(fields.values()), varkw,
                       _attribute_map(found.node))


def _attribute_map(node: ast.ClassDef) -> tuple[tuple[str, str], ...]:
    """transformers' `attribute_map = {"hidden_size": "n_embd"}`: names that read another field."""
    for stmt in node.body:
        if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "attribute_map"
                                                for t in stmt.targets):
            try:
                mapping = ast.literal_eval(stmt.value)
            except (ValueError, SyntaxError, TypeError, RecursionError):
                return ()
            if isinstance(mapping, dict):
                return tuple((str(k), str(v)) for k, v in mapping.items())
    return ()


def file_config_class(path: str) -> str | None:
    """The config class a file's untyped `config` arguments are instances of: the one named by a
    `config_class = X` attribute (transformers), else the only config class the file defines or imports."""
    info = hierarchy.outline(path)
    if info is None:
        return None
    declared: list[str] = []  # `config_class = X` (transformers 4.x) or a class-level `config: X` (4.5x and 5.x)
    for node in info.classes.values():
        for stmt in node.body:
            if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "config_class"
                                                    for t in stmt.targets) and isinstance(stmt.value, ast.Name):
                declared.append(stmt.value.id)
            elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and \
                    stmt.target.id in ("config", "config_class") and isinstance(stmt.annotation, ast.Name):
                declared.append(stmt.annotation.id)
    if len(set(declared)) == 1:
        return declared[0]
    names = [n for n in [*info.classes, *info.aliases] if CONFIG_NAME.search(n) and n[:1].isupper()]
    found = [n for n in dict.fromkeys(names) if config_class(n, path) is not None]
    return found[0] if len(found) == 1 else None
