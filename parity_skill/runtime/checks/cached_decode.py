"""Cached decoding on one side: the prompt in one call, then one token per call through the side's own KV cache.

The generate check compares these logits with the same side recomputing the whole sequence at every step: the two
paths of one implementation must agree, and a port that gets positions, the mask or the cache update wrong on the
cached path passes every full-sequence check. How a cache is passed is read from the live forward:
- a parameter named like a cache (`past_key_values`, `cache`, `kv_cache`, `layer_past`...), with `use_cache=True`
  where the forward takes it, and a position offset (`start_pos`, `offset`...) where it takes one;
- the cache itself: the model's own `make_cache()`, else a `KVCache()` per layer (the model's module's class, or
  mlx-lm's for an MLX model), else None and the cache the forward hands back (transformers, GPT-2 style tuples);
- or no cache argument but a `start_pos` (Meta's reference Llama): the cache lives in the layers.
"""
from __future__ import annotations

import dataclasses
import inspect
import re
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from parity_skill.spec import CACHE_PARAM as CACHE_PATTERN

CACHE_PARAM = re.compile(CACHE_PATTERN)
OFFSET_PARAM = re.compile(r"^(start_pos|offset|seqlen_offset|past_length|position_offset|start_index)$")
RETURNED = re.compile(r"past|cache|presents")


def forward_parameters(model: Any) -> dict[str, inspect.Parameter]:
    fn = model.forward if callable(getattr(model, "forward", None)) else model
    try:
        return dict(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return {}


def cache_parameter(model: Any) -> str | None:
    return next((n for n in forward_parameters(model) if CACHE_PARAM.match(n)), None)


def _is_array(v: Any) -> bool:
    return hasattr(v, "shape") and hasattr(v, "dtype")


def _layers(model: Any) -> Any:
    for owner in (model, getattr(model, "model", None), getattr(model, "transformer", None)):
        layers = getattr(owner, "layers", None) if owner is not None else None
        if layers is not None and hasattr(layers, "__len__"):
            return layers
    return None


def _cache_class(model: Any, framework: str) -> type | None:
    cls = getattr(sys.modules.get(type(model).__module__), "KVCache", None)
    if isinstance(cls, type):
        return cls
    if framework == "mlx":
        try:
            from mlx_lm.models.cache import KVCache
        except ImportError:
            return None
        return KVCache
    return None


def initial_cache(model: Any, framework: str) -> tuple[Any, str]:
    """(the cache to pass first, how it was made)."""
    make = getattr(model, "make_cache", None)
    if callable(make):
        return make(), "from its make_cache()"
    layers, cls = _layers(model), _cache_class(model, framework)
    if layers is not None and cls is not None:
        try:
            return [cls() for _ in range(len(layers))], f"a {cls.__name__}() per layer"
        except TypeError:  # a cache class that needs sizes: let the forward make its own
            pass
    return None, "handed back by the forward"


def returned_cache(out: Any, name: str) -> Any:
    """The cache an output hands back: a `past_key_values`-like field, or the non-array after a tuple's logits."""
    if isinstance(out, Mapping):
        keys = [k for k in out if isinstance(k, str) and (k == name or RETURNED.search(k))]
        return out[keys[0]] if keys else None
    if dataclasses.is_dataclass(out) and not isinstance(out, type):
        fields = [f.name for f in dataclasses.fields(out) if f.name == name or RETURNED.search(f.name)]
        return getattr(out, fields[0]) if fields else None
    if isinstance(out, (tuple, list)) and len(out) >= 2 and _is_array(out[0]):
        rest = [v for v in out[1:] if v is not None and not _is_array(v)]
        return rest[-1] if rest else None
    return None


class NoCache(Exception):
    """The side's forward takes a cache argument, yet no cache could be made or got back: why, in one line."""


class Decoder:
    """The keyword arguments of each cached call, and the cache carried from one call to the next."""

    def __init__(self, adapter: Any, model: Any, impl: Any) -> None:
        params = forward_parameters(model)
        self.name = next((n for n in params if CACHE_PARAM.match(n)), None)
        self.offset = next((n for n in params if OFFSET_PARAM.match(n)), None)
        if self.name is None and self.offset != "start_pos":
            raise NoCache("no cache argument")
        if impl.companions or impl.masks:
            given = ", ".join([c.arg for c in impl.companions] + list(impl.masks))
            raise NoCache(f"`{self.name}` not checked: its forward is given {given}, computed here for whole "
                          "sequences")
        if not hasattr(adapter, "decode"):
            raise NoCache(f"`{self.name}` not checked: the {adapter.name} adapter cannot decode")
        self.adapter, self.model = adapter, model
        self.more = {"use_cache": True} if "use_cache" in params else {}
        self.length = 0
        if self.name is None:  # Meta's reference Llama: caches kept in the layers, the call says where it starts
            self.cache, self.how = None, "kept inside the model, positioned by `start_pos`"
            return
        self.cache, how = initial_cache(model, adapter.name)
        self.how = f"`{self.name}` {how}" + "".join(f", {k}={v!r}" for k, v in self.more.items()) + \
            (f", {self.offset}=<position>" if self.offset else "")

    def kwargs(self) -> dict:
        return {**self.more, **({self.name: self.cache} if self.name else {}),
                **({self.offset: self.length} if self.offset else {})}

    def step(self, ids: np.ndarray) -> np.ndarray:
        """One cached call: its last position's logits (float64); the cache moves on."""
        logits, out = self.adapter.decode(self.model, ids, self.kwargs())
        self.advance(out, ids.shape[1])
        if logits is None:
            raise NoCache(f"`{self.name}` not checked: the cached call returned no array")
        return np.asarray(logits, dtype=np.float64).reshape(-1, logits.shape[-1])[-1]

    def advance(self, out: Any, n: int) -> None:
        back = returned_cache(out, self.name) if self.name else None
        if back is not None:
            self.cache = back
        elif self.cache is None and self.name:
            raise NoCache(f"`{self.name}` not checked: given None it handed back no cache, and the model has no "
                          "make_cache()")
        self.length += n


def _chunks(prompt: np.ndarray, tokens: np.ndarray) -> list[np.ndarray]:
    """What each cached call is fed: the prompt, then tokens[:-1] one at a time."""
    return [prompt] + [np.asarray(tokens[k - 1:k], dtype=prompt.dtype)[None] for k in range(1, len(tokens))]


def cached_logits(adapter: Any, model: Any, impl: Any, prompt: np.ndarray, tokens: np.ndarray) -> dict:
    """{"how": how the cache was passed (or why it was not), "logits": (steps, vocab) float64 or None}: the last
    position's logits for the prompt, then after each of tokens[:-1] fed one at a time."""
    try:
        decoder = Decoder(adapter, model, impl)
        rows = [decoder.step(ids) for ids in _chunks(prompt, tokens)]
    except NoCache as why:
        return {"how": str(why), "logits": None}
    return {"how": decoder.how, "logits": np.stack(rows)}


def _last_positions(full: list, cached: list) -> tuple[list, list]:
    """The arrays of one submodule call that can be compared: equal shapes as they are; a full-sequence array
    against a cached call's shorter one, cut to its last positions along the one axis where they differ."""
    keep_full, keep_cached = [], []
    by_key = dict(cached)
    for key, x in full:
        y = by_key.get(key)
        if y is None:
            continue
        if x.shape != y.shape:
            axes = [i for i, (m, n) in enumerate(zip(x.shape, y.shape)) if m != n] if x.ndim == y.ndim else []
            if len(axes) != 1 or y.shape[axes[0]] > x.shape[axes[0]]:
                continue
            x = np.take(x, range(x.shape[axes[0]] - y.shape[axes[0]], x.shape[axes[0]]), axis=axes[0])
        keep_full.append((key, x))
        keep_cached.append((key, y))
    return keep_full, keep_cached


def cache_trace(adapter: Any, model: Any, impl: Any, prompt: np.ndarray, tokens: np.ndarray, step: int
                ) -> tuple[list, list]:
    """(full, cached) submodule traces at decoding step `step`: the whole sequence recomputed, cut to the positions
    the cached call computes, and the cached call itself, after the earlier steps filled the cache."""
    decoder = Decoder(adapter, model, impl)
    chunks = _chunks(prompt, tokens)
    for ids in chunks[:step]:
        decoder.step(ids)
    seq = np.concatenate([prompt, np.asarray(tokens[:step], dtype=prompt.dtype)[None]], axis=1)
    full = adapter.trace(model, [seq], "fp32")
    cached = adapter.trace(model, [chunks[step]], "fp32", None, decoder.kwargs())
    calls: dict[str, list] = {}
    for name, inp, out in cached:
        calls.setdefault(name, []).append((inp, out))
    seen: dict[str, int] = {}
    kept_full, kept_cached = [], []
    for name, inp, out in full:
        k = seen.get(name, 0)
        seen[name] = k + 1
        if k >= len(calls.get(name, [])):
            continue
        inp_f, inp_c = _last_positions(inp, calls[name][k][0])
        out_f, out_c = _last_positions(out, calls[name][k][1])
        if out_f:
            kept_full.append([name, inp_f, out_f])
            kept_cached.append([name, inp_c, out_c])
    return kept_full, kept_cached
