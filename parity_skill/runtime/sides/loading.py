"""Import user code (package-aware), resolve symbols and configs, and say where user code failed."""
from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import re
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

from parity_skill.runtime.sides.configs import NOTES, consistent, declared_mismatches
from parity_skill.runtime.sides.failures import USER_FILES, UserCodeError, describe
from parity_skill.spec import Config, Implementation, Ref

_LOADED: dict[str, ModuleType] = {}


def _package_root(path: Path) -> tuple[Path, list[str]]:
    """(sys.path entry, [package, ..., file stem]) for a file; walks up through __init__.py folders."""
    parts = [path.stem]
    folder = path.parent
    while (folder / "__init__.py").is_file() and folder.name.isidentifier():
        parts.insert(0, folder.name)
        folder = folder.parent
    return folder, parts


def _exec_file(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_file(file: str) -> ModuleType:
    """Import a user file: as part of its package when it lies in one (so relative imports work), else alone
    under a private name. Any legal file name works (`layer.v2.py`, spaces, quotes, unicode, a leading dash)."""
    path = Path(file).resolve()
    key = str(path)
    if key in _LOADED:
        return _LOADED[key]
    USER_FILES.add(key)
    root, parts = _package_root(path)
    private = f"_parity_user_{len(_LOADED)}_" + re.sub(r"\W", "_", path.stem)
    try:
        if len(parts) > 1:
            if str(root) not in sys.path:
                sys.path.insert(0, str(root))
            package = ".".join(parts[:-1])
            if parts[-1].isidentifier():
                module = importlib.import_module(".".join(parts))
            else:  # not importable by name: load it under a private name inside its package
                importlib.import_module(package)
                module = _exec_file(f"{package}.{private}", path)
        else:
            if str(path.parent) not in sys.path:
                sys.path.insert(0, str(path.parent))
            module = _exec_file(private, path)
    except Exception as exc:  # noqa: BLE001 - user code may raise anything
        raise UserCodeError(f"import failed: {describe(exc)}") from exc
    _LOADED[key] = module
    return module


def resolve(impl: Implementation) -> tuple[Any, ModuleType | None]:
    """(the class or function, the module it lives in)."""
    if impl.file is None:
        module_name, _, attr = impl.symbol.rpartition(".")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise UserCodeError(f"cannot import {impl.symbol}: {exc}") from exc
        if not hasattr(module, attr):
            raise UserCodeError(f"cannot import {impl.symbol}: {module_name} has no {attr}"
                                + _did_you_mean(attr, dir(module), f"{module_name}."))
        return getattr(module, attr), module
    module = load_file(impl.file)
    try:
        return getattr(module, impl.symbol), module
    except AttributeError:
        raise UserCodeError(f"{impl.file} has no attribute {impl.symbol}"
                            + _did_you_mean(impl.symbol, dir(module), f"{impl.file}::")) from None


def _did_you_mean(name: str, names: list[str], prefix: str) -> str:
    close = difflib.get_close_matches(name, [n for n in names if not n.startswith("_")], n=3, cutoff=0.75)
    return f" (did you mean {' or '.join(prefix + c for c in close)}?)" if close else ""


def _config_class(name: str, module: ModuleType | None) -> Any:
    found = getattr(module, name, None) if module is not None else None
    if found is None and module is not None:  # imported under another name, or only by a module it imports
        for value in list(vars(module).values()):
            candidate = getattr(value, name, None) if isinstance(value, ModuleType) else None
            if isinstance(candidate, type):
                return candidate
    return found


def _as_a_model_would(config: Any, model_chooses: bool = False) -> None:
    """What a framework's top-level model does to its config before the layers read it: a transformers config
    gets its attention implementation chosen by the model's constructor, which a layer built alone never runs (it
    gets the plain, eager one). A whole model (`model_chooses`: a class that loads checkpoints) chooses itself, as in
    use (DBRX's eager path raises where its default one runs)."""
    if model_chooses:
        return
    try:
        if getattr(config, "_attn_implementation", "") is None:
            config._attn_implementation = "eager"
    except Exception:  # noqa: BLE001 - a read-only attribute: the layer sees the config as it is
        pass


def build_config(value: Config, module: ModuleType | None, owner: str, shared: dict | None = None,
                 model_chooses: bool = False) -> Any:
    """A config object: the class with the fields its constructor takes (the rest set as attributes), or a plain
    namespace when the class is unknown. `shared`: the other side's resolved config (runtime/sides/configs.py),
    whose values win over the planned ones and reach the class through its own `from_dict` where it has one."""
    if not value.cls:
        return SimpleNamespace(**{**value.kwargs, **value.attrs, **(shared or {})})
    cls = _config_class(value.cls, module)
    if cls is None:
        raise UserCodeError(f"config class {value.cls} not found next to {owner}")
    if shared:
        return _from_shared(cls, value, shared, model_chooses)
    kwargs, late = dict(value.kwargs), dict(value.attrs)
    try:
        params = inspect.signature(cls).parameters
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            late.update({k: kwargs.pop(k) for k in list(kwargs) if k not in params})
    except (TypeError, ValueError):
        pass
    try:
        try:
            obj = cls(**kwargs)
        except (ValueError, AssertionError) as exc:  # the class checks its sizes against each other
            obj = consistent(cls, kwargs, exc)
        for key, v in late.items():
            setattr(obj, key, v)
        _as_a_model_would(obj, model_chooses)
    except Exception as exc:  # noqa: BLE001 - user code
        raise UserCodeError(f"config {value.cls}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) raised "
                            f"{describe(exc)}") from exc
    return obj


def _from_shared(cls: type, value: Config, shared: dict, model_chooses: bool = False) -> Any:
    """The class built from one dict, the way it loads a config.json: `from_dict` (mlx-lm's ModelArgs, transformers
    configs), else the keyword arguments its constructor takes; planned fields the dict lacks are kept."""
    planned = {**value.kwargs, **value.attrs}
    merged = {**planned, **shared}
    for name, found in declared_mismatches(cls, shared):  # B's code reads it as its type says: B's own value
        merged.pop(name, None)
        if name in planned:
            merged[name] = planned[name]
        note = (f"{found}: one config cannot drive both sides there; B keeps "
                + (f"its planned {planned[name]!r}" if name in planned else "its own default")
                + " (give B's own config with --config)")
        if note not in NOTES:
            NOTES.append(note)
    from_dict = getattr(cls, "from_dict", None)
    try:
        if callable(from_dict):
            obj = from_dict(merged)
            obj = obj[0] if isinstance(obj, tuple) else obj
        else:
            try:
                params = inspect.signature(cls).parameters
                takes_all = any(p.kind == p.VAR_KEYWORD for p in params.values())
            except (TypeError, ValueError):
                params, takes_all = {}, True
            obj = cls(**{k: v for k, v in merged.items() if takes_all or k in params})
        for key, v in value.attrs.items():
            if not hasattr(obj, key):
                setattr(obj, key, v)
        _as_a_model_would(obj, model_chooses)
    except Exception as exc:  # noqa: BLE001 - user code
        raise UserCodeError(f"config {value.cls} built from A's resolved config raised {describe(exc)}") from exc
    return obj


def _config_home(name: str | None, factory: Any, module: ModuleType | None) -> ModuleType | None:
    """Where the config class is found: the user's file, else the module of the first class in the built class's
    ancestry that has it (a port subclassing a library model takes the library's config class)."""
    if not name or module is None or _config_class(name, module) is not None:
        return module
    for base in getattr(factory, "__mro__", ())[1:]:
        home = sys.modules.get(getattr(base, "__module__", ""))
        if home is not None and _config_class(name, home) is not None:
            return home
    return module


def constructor_kwargs(impl: Implementation, factory: Any, module: ModuleType | None,
                       shared: dict[str, dict] | None = None, compared: bool = True) -> dict[str, Any]:
    """Materialise Config and Ref values (a config argument in `shared` is built from that dict); fill required
    arguments the plan could not see (a constructor inherited from a framework layer) by role; in reference mode
    keep only the arguments the reference accepts. `compared`: the model under comparison, not one built to feed it
    (a model built to record a layer's inputs keeps the layer's plain attention, so its mask has the layer's form)."""
    kwargs: dict[str, Any] = {}
    for key, value in impl.init.items():
        if isinstance(value, Config):
            value = build_config(value, _config_home(value.cls, factory, module), impl.symbol,
                                 (shared or {}).get(key),
                                 compared and callable(getattr(factory, "from_pretrained", None)))
        elif isinstance(value, Ref):
            value = value.resolve()
        kwargs[key] = value
    if impl.file is None:
        return carry_over(factory, kwargs)
    return {**kwargs, **{k: v for k, v in carry_over(factory, kwargs).items() if k not in kwargs}}


def carry_over(factory: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Reference mode: pass A's arguments whose names the reference takes; fill its required size arguments
    from A's arguments of the same role (dim -> normalized_shape)."""
    from parity_skill.roles import role_of  # light: neither the analysis stack nor a framework

    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return kwargs
    out = {k: v for k, v in kwargs.items() if k in params}
    by_role = {}
    for k, v in kwargs.items():
        r = role_of(k)
        if r:
            by_role.setdefault(r[0], v)
    for name, p in params.items():
        if name in out or name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        r = role_of(name)
        if r and r[0] in by_role and (p.default is p.empty or r[0] == "eps"):
            out[name] = by_role[r[0]]
        elif r and p.default is p.empty:
            out[name] = r[1]
    return out
