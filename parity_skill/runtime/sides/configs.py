"""One configuration, each side's own config path: A's config object, once its own class has resolved every derived
field (`head_dim` from the sizes, `"auto"` ranks, rope settings, layer types), is written as a plain dict, and B's
config is built from that dict through B's own path (`ModelArgs.from_dict`, a dataclass, keyword arguments), as one
`config.json` drives both implementations in use.

A writes `config.json` into its artifact folder as soon as it is built, so B (which is built while A runs its
checks) waits only for that, not for the whole capture."""
from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

EARLY = "config.json"
NOTES: list[str] = []  # what building a config had to settle; taken (and emptied) by the pair that built it


def take_notes() -> list[str]:
    """The notes of the configs built since the last call: a side process may build several pairs."""
    taken = list(NOTES)
    NOTES.clear()
    return taken
_SCALARS = (str, int, float, bool, type(None))


def plain(value: Any, depth: int = 0) -> Any:
    """A JSON value, or None where the value is not data (a tensor, a function, a class)."""
    if isinstance(value, _SCALARS):
        return value
    if depth > 8:
        return None
    if isinstance(value, (list, tuple)):
        items = [plain(v, depth + 1) for v in value]
        return items if all(i is not None or v is None for i, v in zip(items, value)) else None
    if isinstance(value, dict):
        out = {str(k): plain(v, depth + 1) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not None or value.get(k) is None}
    as_dict = config_dict(value) if _is_config(value) else None
    return as_dict


def _is_config(obj: Any) -> bool:
    return hasattr(obj, "to_dict") or dataclasses.is_dataclass(obj) and not isinstance(obj, type) or \
        type(obj).__name__ == "SimpleNamespace"


def config_dict(obj: Any) -> dict[str, Any] | None:
    """The fields of a config object as its own class resolved them, JSON values only (private fields dropped)."""
    try:
        if hasattr(obj, "to_dict"):
            raw = obj.to_dict()
        elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            raw = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        else:
            raw = dict(vars(obj))
    except Exception:  # noqa: BLE001 - user code: a config we cannot read is simply not shared
        return None
    if not isinstance(raw, dict):
        return None
    out = {}
    for key, value in raw.items():
        if isinstance(key, str) and not key.startswith("_"):
            v = plain(value)
            if v is not None or value is None:
                out[key] = v
    return out


def config_args(impl) -> list[str]:
    """The constructor arguments of an Implementation that are config objects."""
    from parity_skill.spec import Config

    return [k for k, v in impl.init.items() if isinstance(v, Config)]


def resolved(kwargs: dict[str, Any], config_args: list[str]) -> dict[str, dict]:
    """{constructor argument: its config's resolved fields} for the arguments that were config objects."""
    out = {}
    for name in config_args:
        d = config_dict(kwargs.get(name)) if name in kwargs else None
        if d is not None:
            out[name] = d
    return out


def write_early(folder: str, configs: dict[str, dict]) -> None:
    """A's resolved configs beside its artifact, before its checks run (atomic: B never reads half a file)."""
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / (EARLY + ".tmp")
    tmp.write_text(json.dumps(configs, sort_keys=True, default=str), encoding="utf-8")
    os.replace(tmp, path / EARLY)


def wait_for_a(folder: str, done_marker, timeout: float | None) -> dict[str, dict] | None:
    """A's resolved configs: from its early file, or its finished manifest; None when A wrote none (or failed)."""
    from parity_skill.runtime.data.artifact import MANIFEST, ArtifactError, read_manifest

    early, manifest = Path(folder) / EARLY, Path(folder) / MANIFEST
    deadline = time.monotonic() + (timeout if timeout is not None else 0.0)
    while True:
        if manifest.exists():  # a finished artifact: its manifest is the record (validated, and hashed files)
            try:
                side = read_manifest(folder).get("side", {})
            except ArtifactError:
                return None
            found = side.get("config") if isinstance(side, dict) else None
            return found if isinstance(found, dict) else None
        if early.is_file():
            try:
                found = json.loads(early.read_text(encoding="utf-8"))
                return found if isinstance(found, dict) else None
            except (OSError, ValueError):
                pass  # being replaced: read again
        if timeout is None or time.monotonic() > deadline or (done_marker is not None and done_marker.exists()):
            return None
        time.sleep(0.02)


def for_b(a_configs: dict[str, dict] | None, b_config_args: list[str]) -> dict[str, dict]:
    """Which of A's configs each of B's config arguments is built from: the one of the same name, else A's only
    config for B's only config argument."""
    if not a_configs or not b_config_args:
        return {}
    out = {name: a_configs[name] for name in b_config_args if name in a_configs}
    if not out and len(a_configs) == 1 and len(b_config_args) == 1:
        out[b_config_args[0]] = next(iter(a_configs.values()))
    given = {name: with_rope_fields(d) for name, d in out.items()}
    added = sorted({k for name, d in given.items() for k in d if k not in out[name]})
    note = (f"B's config also given {', '.join(added)} from A's rope_parameters (transformers 5 keeps them there; a "
            "config.json and the ports that read it have them at top level)")
    if added and note not in NOTES:
        NOTES.append(note)
    return given


_ROPE_OWN = ("rope_theta", "partial_rotary_factor")


def with_rope_fields(d: dict) -> dict:
    """A's resolved config with its rotary settings also where a `config.json` written before transformers 5 has
    them, which is what ports read: transformers 5 keeps them only in `rope_parameters` (`{rope_type, rope_theta,
    partial_rotary_factor, factor...}`) and itself reads the older top-level `rope_theta`, `partial_rotary_factor`
    and `rope_scaling` into it. Fields A's config already has at top level are kept; per-layer-type tables
    (`{"full_attention": {...}, ...}`) are left as they are."""
    rope = d.get("rope_parameters") if isinstance(d, dict) else None
    if not isinstance(rope, dict) or not rope or any(isinstance(v, dict) for v in rope.values()):
        return d
    out = dict(d)
    for key in _ROPE_OWN:
        if key in rope and out.get(key) is None:
            out[key] = rope[key]
    scaling = {k: v for k, v in rope.items() if k not in _ROPE_OWN}
    if rope.get("rope_type", "default") != "default" and out.get("rope_scaling") is None:
        out["rope_scaling"] = {**scaling, "type": rope["rope_type"]}
    return out


_SCALARS = (bool, int, float, str)


def declared_mismatches(cls: type, values: dict[str, Any]) -> list[tuple[str, str]]:
    """Fields of a dataclass config whose declared scalar type (`Optional[str]`...) the shared value does not have
    (A's `sliding_window_pattern=4` where mlx-lm's Exaone 4 declares a string like "LLLG"): one config cannot
    drive both sides there, and B's code may fail far from the cause. (field, why) for each."""
    import typing

    if not dataclasses.is_dataclass(cls):
        return []
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - annotations the class's own module cannot resolve: nothing to say
        return []
    out = []
    for name, hint in hints.items():
        if name not in values or values[name] is None:
            continue
        allowed = tuple(t for t in (typing.get_args(hint) or (hint,)) if t is not type(None))
        if not allowed or any(t not in _SCALARS for t in allowed):
            continue  # not a plain scalar field (a list, a dict, a class): not judged
        v = values[name]
        fits = isinstance(v, allowed) and not (isinstance(v, bool) and bool not in allowed) or \
            (float in allowed and isinstance(v, int) and not isinstance(v, bool))
        if not fits:
            shown = " or ".join(t.__name__ for t in allowed)
            out.append((name, f"{cls.__name__}.{name} is declared {shown}, A's config gives {v!r} "
                               f"({type(v).__name__})"))
    return out


def consistent(cls: type, kwargs: dict[str, Any], error: Exception) -> Any:
    """The config class refused the shrunk sizes (`hidden_size * expand must equal num_heads * head_dim`): shrink
    every shrunk size by one common factor of its own default instead, so the products the class checks keep
    their proportions; the largest factor that leaves every shrunk count above 1 and that the class accepts."""
    import inspect

    try:
        defaults = {k: p.default for k, p in inspect.signature(cls).parameters.items()}
    except (TypeError, ValueError):
        raise error from None
    shrunk = {k: (defaults[k], v) for k, v in kwargs.items() if isinstance(v, int) and not isinstance(v, bool)
              and isinstance(defaults.get(k), int) and not isinstance(defaults[k], bool) and 0 < v < defaults[k]}
    factors = sorted({d // v for d, v in shrunk.values() if d % v == 0}, reverse=True)
    for k in factors:
        trial = dict(kwargs)
        for name, (default, planned) in shrunk.items():
            if default % k == 0:
                trial[name] = default // k
        if any(trial[n] < 2 <= planned for n, (_, planned) in shrunk.items()):
            continue
        try:
            obj = cls(**trial)
        except (ValueError, AssertionError):
            continue
        changed = ", ".join(f"{n}={trial[n]}" for n in shrunk if trial[n] != kwargs[n])
        NOTES.append(f"{cls.__name__} refused the shrunk sizes ({str(error).splitlines()[0][:160]}); built with "
                     f"every size 1/{k} of its default instead: {changed}")
        return obj
    raise error
