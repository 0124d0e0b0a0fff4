"""The adapter interface every framework implements, and helpers they share."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Protocol

import numpy as np

from parity_skill.spec import NOT_GIVEN

Flat = list[tuple[str, np.ndarray]]


class Adapter(Protocol):
    name: str
    differentiable: bool
    dtypes: tuple[str, ...]  # of fp64, fp32, fp16, bf16

    def build(self, factory: Callable, kwargs: dict[str, Any], drawn_afresh: bool = False) -> Any: ...
    def state(self, model: Any) -> dict[str, np.ndarray]: ...
    def load(self, model: Any, values: dict[str, np.ndarray]) -> None: ...
    def names(self, model: Any) -> list[str]: ...
    def trainable(self, model: Any) -> list[str]: ...
    def cast(self, model: Any, dtype: str, keep: tuple[str, ...] = ()) -> Any: ...
    def call(self, model: Any, args: list[np.ndarray], dtype: str) -> Flat: ...
    def grads(self, model: Any, args: list[np.ndarray], dtype: str,
              upstream: dict[str, np.ndarray]) -> tuple[Flat, dict[int, np.ndarray], dict[str, np.ndarray]]: ...
    def seed(self, seed: int) -> None: ...
    def submodules(self, model: Any) -> list[tuple[str, Any]]: ...
    def trace(self, model: Any, args: list[np.ndarray], dtype: str,
              feed: dict[str, list] | None = None) -> list[list]: ...


def invoke(model: Any, xs: list, names: tuple[str, ...], derived: tuple = (), more: dict | None = None) -> Any:
    """Call with inputs by keyword where a name is given, by position otherwise (in order); each `derived`
    (argument, fn) adds `argument=fn(xs)` (a rotary embedding's (cos, sin), computed as a caller would); `more`
    adds keyword arguments as they are (a KV cache)."""
    extra = {arg: fn(xs) for arg, fn in derived} | (more or {})
    if NOT_GIVEN in names:  # an input only the other side takes (a token history)
        xs = [x for x, n in zip(xs, names) if n != NOT_GIVEN] + list(xs[len(names):])
        names = tuple(n for n in names if n != NOT_GIVEN)
    if not any(names):
        return model(*xs, **extra)
    positional = [x for x, n in zip(xs, names) if not n] + list(xs[len(names):])
    return model(*positional, **{n: x for x, n in zip(xs, names) if n}, **extra)


def companion_fn(module: Any, call: tuple[str, ...], source: int, seq_axis: int,
                 positions: Callable[[int, int], Any], frozen: Callable[[Callable[[], Any]], Any]) -> Callable:
    """fn(xs) calling `module` as its caller would: "x" is input `source`, "position_ids" (batch, seq) positions
    0..T-1 and "seq_len" T, with T read from that input's `seq_axis`; `frozen` runs it outside autograd."""
    def fn(xs: list) -> Any:
        x = xs[source]
        batch, length = int(x.shape[0]), int(x.shape[seq_axis])
        args = [x if c == "x" else positions(batch, length) if c == "position_ids" else length for c in call]
        return frozen(lambda: module(*args))
    return fn


def flatten(obj: Any, is_array: Callable[[Any], bool], to_numpy: Callable[[Any], np.ndarray], key: str = "") -> Flat:
    """Nested tuples/lists/dicts of arrays -> [(key, array)] with keys like '', '[0]', "['logits']"."""
    if obj is None:
        return []
    if is_array(obj):
        return [(key, to_numpy(obj))]
    if isinstance(obj, dict):
        return [kv for k in obj for kv in flatten(obj[k], is_array, to_numpy, f"{key}[{k!r}]")]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):  # BaseModelOutput(last_hidden_state=...)
        return [kv for f in dataclasses.fields(obj)
                for kv in flatten(getattr(obj, f.name), is_array, to_numpy, f"{key}[{f.name!r}]")]
    if isinstance(obj, (tuple, list)):
        return [kv for i, v in enumerate(obj) for kv in flatten(v, is_array, to_numpy, f"{key}[{i}]")]
    if isinstance(obj, (int, float, np.number)) and not isinstance(obj, bool):
        return [(key, np.asarray(obj, dtype=np.float64))]
    return []


def map_arrays(obj: Any, is_array: Callable[[Any], bool], fn: Callable[[int, Any], Any], count: list | None = None
               ) -> Any:
    """`obj` with its i-th array (in `flatten` order) replaced by fn(i, array); other structure kept."""
    count = count if count is not None else [0]
    if is_array(obj):
        count[0] += 1
        return fn(count[0] - 1, obj)
    if isinstance(obj, dict):
        return type(obj)({k: map_arrays(v, is_array, fn, count) for k, v in obj.items()})
    if isinstance(obj, (tuple, list)) and not hasattr(obj, "_fields"):
        return type(obj)(map_arrays(v, is_array, fn, count) for v in obj)
    return obj


def flatten_native(obj: Any, is_array: Callable[[Any], bool], key: str = "") -> list[tuple[str, Any]]:
    """Like `flatten` but keeps the framework arrays (for building a loss)."""
    return flatten(obj, is_array, lambda a: a, key)  # type: ignore[arg-type]



def causal_mask_fn(form: str, source: int, seq_axis: int, build: Callable[[int, int, str, Any], Any]) -> Callable:
    """fn(xs) giving a causal mask for input `source`'s sequence length. `form` is "causal:RANK:KIND": RANK 2 is
    (T, T), 4 is (1, 1, T, T); KIND `additive` (0 where a position may attend, the dtype's lowest value above
    the diagonal), `keep` (True where it may attend) or `masked` (True above the diagonal)."""
    _, rank, *kind = form.split(":")

    def fn(xs: list) -> Any:
        x = xs[source]
        return build(int(x.shape[seq_axis]), int(rank), kind[0] if kind else "additive", x.dtype)
    return fn
