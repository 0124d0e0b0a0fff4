"""Config sizes shrunk together: what one shrunk field implies for the others (feed-forward width as a multiple of
the width, key/value heads dividing the heads, an image a grid of patches, sizes that must divide)."""
from __future__ import annotations

import ast
import math
import re
from dataclasses import replace
from typing import Any

from parity_skill.analyze.model import ConfigClass
from parity_skill.roles import role_of
from parity_skill.spec import Config


def consistent_sizes(cfg: ConfigClass, kwargs: dict[str, Any], given: set[str], notes: list[str]) -> None:
    """Every rule below, in order, on the config's shrunk keyword arguments (fields given with --init stay)."""
    _kv_as_heads(cfg, kwargs, given, notes)
    _kv_default_fits(cfg, kwargs, given, notes)
    fix_divisibility(kwargs)
    _keep_ffn_ratio(cfg, kwargs, given, notes)
    _keep_patch_grid(cfg, kwargs, given, notes)


MAX_SOURCE = 500  # a literal longer than this is not a size or a setting: not evaluated


def literal(source: str | None) -> tuple[bool, Any]:
    if source is None or len(source) > MAX_SOURCE:
        return False, None
    try:
        return True, ast.literal_eval(source)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False, None


def _keep_patch_grid(cfg: ConfigClass, kwargs: dict[str, Any], given: set[str], notes: list[str]) -> None:
    """A shrunk image size stays a multiple of the patch size with a grid of 3 x 3 patches (SigLIP: 224 shrunk to
    28 beside a patch of 16 would leave one patch, and a position table of one row)."""
    fields = {f.name: f for f in cfg.fields}
    image = next((k for k in kwargs if k in fields and (role_of(k) or ("",))[0] == "image_size"), None)
    patch = next((n for n in ("patch_size", "patch", "patch_len") if n in fields), None)
    if image is None or patch is None or image in given or not isinstance(kwargs[image], int):
        return
    ok, size = (True, kwargs[patch]) if patch in kwargs else literal(fields[patch].default)
    if not ok or not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        return
    if kwargs[image] % size == 0 and kwargs[image] // size >= 2:
        return
    old, kwargs[image] = kwargs[image], 3 * size
    notes[:] = [n.replace(f"{cfg.name}.{image}: default", f"{cfg.name}.{image}: default", 1).replace(
        f"replaced by {old} to keep the check small", f"replaced by {kwargs[image]} (3 x {patch} {size}: a grid of "
        "3 x 3 patches) to keep the check small") if n.startswith(f"{cfg.name}.{image}:") else n for n in notes]


def _keep_ffn_ratio(cfg: ConfigClass, kwargs: dict[str, Any], given: set[str], notes: list[str]) -> None:
    """A feed-forward width shrunk with the model width keeps its default multiple of it (GPT-NeoX: 4 x 6144): a
    port that hard-codes `4 * hidden_size` then builds the same layer. Fields given with --init stay as given."""
    fields = {f.name: f for f in cfg.fields}
    names = tuple(fields)
    roles = {role_of(k, names)[0]: k for k in kwargs if role_of(k, names) and k in fields}
    dim, ffn = roles.get("dim"), roles.get("hidden")
    if not dim or not ffn or ffn in given:
        return
    ok_d, default_dim = literal(fields[dim].default)
    ok_f, default_ffn = literal(fields[ffn].default)
    if not (ok_d and ok_f and isinstance(default_dim, int) and isinstance(default_ffn, int) and default_dim > 0):
        return
    shrunk = kwargs[dim] != default_dim and kwargs[ffn] != default_ffn
    ratio = default_ffn // default_dim
    if shrunk and default_ffn % default_dim == 0 and 1 < ratio <= 8 and isinstance(kwargs[dim], int):
        old = kwargs[ffn]
        kwargs[ffn] = ratio * kwargs[dim]
        notes[:] = [n.replace(f"{cfg.name}.{ffn}: default {default_ffn} replaced by {old} ",
                              f"{cfg.name}.{ffn}: default {default_ffn} replaced by {kwargs[ffn]} ({ratio} x {dim}, as "
                              "its defaults) ") for n in notes]


def _kv_as_heads(cfg: ConfigClass, kwargs: dict[str, Any], given: set[str], notes: list[str]) -> None:
    """As many key/value heads as heads by default (no grouping; DeepSeek-V3's attention requires it): kept equal
    to the shrunk head count."""
    names = tuple(f.name for f in cfg.fields)
    fields = {f.name: f for f in cfg.fields}
    heads = next((k for k in kwargs if (role_of(k, names) or ("",))[0] == "heads" and isinstance(kwargs[k], int)), None)
    if heads is None or heads in given or heads not in fields:
        return
    ok_h, default_heads = literal(fields[heads].default)
    for f in cfg.fields:
        ok, value = literal(f.default)
        if (role_of(f.name, names) or ("",))[0] != "kv_heads" or f.name in given or not (ok and ok_h) \
                or value != default_heads or not isinstance(value, int) or kwargs.get(f.name) == kwargs[heads]:
            continue
        old = kwargs.get(f.name)
        kwargs[f.name] = kwargs[heads]
        notes[:] = [n for n in notes if not n.startswith(f"{cfg.name}.{f.name}: default {value} replaced by {old} ")]
        notes.append(f"{cfg.name}.{f.name}: default {value} replaced by {kwargs[heads]}, equal to {heads} as their "
                     "defaults are (to keep the check small)")


def _kv_default_fits(cfg: ConfigClass, kwargs: dict[str, Any], given: set[str], notes: list[str]) -> None:
    """A key/value head count left at its default must still divide the shrunk head count (Mixtral: 32 heads shrunk
    to 4 beside 8 kv heads would give 4 // 8 = 0 groups): it is set to the role's small value (2) where that divides
    the heads, so grouped-query attention is still checked, else to their greatest common divisor."""
    names = tuple(f.name for f in cfg.fields)
    heads = next((k for k in kwargs if (role_of(k, names) or ("",))[0] == "heads" and isinstance(kwargs[k], int)), None)
    for f in cfg.fields:
        role = role_of(f.name, names)
        if heads is None or not role or role[0] != "kv_heads" or f.name in kwargs or f.name in given:
            continue
        ok, value = literal(f.default)
        if ok and isinstance(value, int) and not isinstance(value, bool) and value > 0 and \
                (value > kwargs[heads] or kwargs[heads] % value):
            fewer = role[1] if role[1] < kwargs[heads] and kwargs[heads] % role[1] == 0 else None
            kwargs[f.name] = fewer or math.gcd(kwargs[heads], value)  # fewer than the heads: grouping is checked
            notes.append(f"{cfg.name}.{f.name}: default {value} set to {kwargs[f.name]} so it divides "
                         f"{heads}={kwargs[heads]} (shrunk)")


def fix_divisibility(kwargs: dict[str, Any]) -> None:
    """Keep dim % heads == 0, heads % kv_heads == 0 and head_dim even after shrinking."""
    roles = {role_of(k, tuple(kwargs))[0]: k for k in kwargs if role_of(k, tuple(kwargs))}
    dim, heads, kv = roles.get("dim"), roles.get("heads"), roles.get("kv_heads")
    if dim and heads and isinstance(kwargs[dim], int) and isinstance(kwargs[heads], int) and kwargs[heads] > 0:
        if kwargs[dim] % kwargs[heads] or (kwargs[dim] // kwargs[heads]) % 2:
            kwargs[heads] = math.gcd(kwargs[dim] // 2, kwargs[heads]) or 1
    if heads and kv and isinstance(kwargs.get(kv), int) and kwargs[kv] > 0 and isinstance(kwargs[heads], int):
        if kwargs[heads] % kwargs[kv]:
            kwargs[kv] = math.gcd(kwargs[heads], kwargs[kv])


PERIOD = re.compile(r"(pattern|period|every|interval)$")  # `sliding_window_pattern = 6`: a global layer every 6
LEADING = re.compile(r"^first_k_\w+$|dense_replace$|^num_dense_layers$")  # DeepSeek: 3 dense layers, then MoE


def layer_period(init_a: dict[str, Any], init_b: dict[str, Any], given: set[str],
                 notes: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both sides' layer counts raised to the longest layer period either config declares (Gemma 3: a global
    attention layer every 6; a port that indexes its caches by that period needs 6 layers), or past its leading
    layers of another kind (DeepSeek-V3: 3 dense layers before the MoE ones), so every kind of layer runs and one
    config still drives both. Counts given with --init stay."""
    values = [(k, v) for init in (init_a, init_b) for cfg in init.values() if isinstance(cfg, Config)
              for k, v in {**cfg.defaults, **cfg.kwargs}.items() if isinstance(v, int) and not isinstance(v, bool)]
    periods = [(v, f"one whole {k} period") for k, v in values if PERIOD.search(k) and 1 < v <= 64]
    periods += [(v + 1, f"one past the {k}={v} leading layers") for k, v in values if LEADING.search(k) and 0 < v < 64]
    if not periods:
        return init_a, init_b
    need, field = max(periods)
    out = []
    for init in (init_a, init_b):
        new = dict(init)
        for name, cfg in init.items():
            if not isinstance(cfg, Config):
                continue
            layers = next((k for k, v in cfg.kwargs.items() if (role_of(k) or ("",))[0] == "layers"
                           and isinstance(v, int) and not isinstance(v, bool)), None)
            if layers and cfg.kwargs[layers] < need and not {layers, f"{name}.{layers}"} & given:
                new[name] = replace(cfg, kwargs={**cfg.kwargs, layers: need})
                notes.append(f"{cfg.cls}.{layers}: {cfg.kwargs[layers]} raised to {need}, {field}, so every kind "
                             "of layer runs")
        out.append(new)
    return out[0], out[1]
