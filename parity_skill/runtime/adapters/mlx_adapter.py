"""MLX: modules are trees of arrays, called through __call__; gradients with mx.grad; channels-last convs."""
from __future__ import annotations

import copy
from typing import Any, Callable

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten, tree_map, tree_unflatten

from parity_skill.runtime.adapters.enclosing import enclosing_fn
from parity_skill.runtime.adapters.base import Flat, causal_mask_fn, companion_fn, flatten, flatten_native, invoke, map_arrays

DT = {"fp64": mx.float64, "fp32": mx.float32, "fp16": mx.float16, "bf16": mx.bfloat16}


def _np(a: mx.array) -> np.ndarray:
    """To numpy in the array's own precision (bfloat16 as float32: exact); comparisons cast to float64."""
    if a.dtype == mx.bfloat16:
        a = a.astype(mx.float32)
    return np.array(a)


def _is(a: Any) -> bool:
    return isinstance(a, mx.array)


class MLXAdapter:
    arg_names: tuple[str, ...] = ()  # per input: the keyword it is passed as ('' = by position)
    derived: tuple = ()  # (argument, fn(inputs)) computed per call, e.g. a rotary embedding's (cos, sin)
    name = "mlx"
    differentiable = True
    dtypes = ("fp64", "fp32", "fp16", "bf16")

    def companion(self, module: Any, call: tuple[str, ...], source: int, seq_axis: int) -> Callable:
        def frozen(fn):
            return tree_map(lambda v: mx.stop_gradient(v) if isinstance(v, mx.array) else v, fn())

        if isinstance(module, nn.Module):
            module.eval()
        return companion_fn(module, call, source, seq_axis,
                            lambda n, t: mx.broadcast_to(mx.arange(t)[None], (n, t)), frozen)

    def enclosing(self, model: Any, arg: str, layer_class: str, ids_arg: str, source: int, seq_axis: int,
                  cache: dict) -> Callable:
        """fn(xs): `arg` as the enclosing `model` hands it to its first `layer_class` (adapters/enclosing.py)."""
        def cast_like(value, like):
            if isinstance(value, mx.array) and mx.issubdtype(value.dtype, mx.floating) and \
                    mx.issubdtype(like.dtype, mx.floating):
                return mx.stop_gradient(value.astype(like.dtype))
            if isinstance(value, (tuple, list)):
                return type(value)(cast_like(v, like) for v in value)
            return value

        model.eval()
        return enclosing_fn(model, arg, layer_class, ids_arg, source, seq_axis,
                            [m for _, m in model.named_modules()], "__call__",
                            lambda n, t: mx.arange(n * t).reshape(n, t) % 3 + 1, lambda fn: fn(), cast_like, cache)

    def build(self, factory: Callable, kwargs: dict[str, Any], drawn_afresh: bool = False) -> Any:
        model = factory(**kwargs)
        if isinstance(model, nn.Module):
            model.eval()
        return model

    def mask(self, form: str, source: int, seq_axis: int) -> Callable:
        def build(t: int, rank: int, kind: str, dtype):
            dtype = dtype if mx.issubdtype(dtype, mx.floating) else mx.float32
            above = mx.triu(mx.ones((t, t), dtype=mx.bool_), k=1)
            m = {"keep": mx.logical_not(above), "masked": above}.get(kind)
            if m is None:
                m = mx.where(above, mx.array(mx.finfo(dtype).min, dtype=dtype), mx.array(0, dtype=dtype))
            return m[None, None] if rank == 4 else m
        return causal_mask_fn(form, source, seq_axis, build)

    def native(self, value: np.ndarray) -> Any:
        return mx.array(value)

    def numpy(self, value: Any) -> np.ndarray:
        return _np(value) if isinstance(value, mx.array) else np.asarray(value)

    def state(self, model: Any) -> dict[str, np.ndarray]:
        if not isinstance(model, nn.Module):
            return {}
        return {k: _np(v) for k, v in tree_flatten(model.parameters())}

    def load(self, model: Any, values: dict[str, np.ndarray]) -> None:
        current = dict(tree_flatten(model.parameters()))
        update = []
        for k, v in values.items():
            if k not in current:
                raise ValueError(f"'{k}' is not a parameter")
            if tuple(current[k].shape) != v.shape:
                raise ValueError(f"'{k}' has shape {tuple(current[k].shape)}, the mapped value {v.shape}")
            update.append((k, mx.array(v).astype(current[k].dtype)))
        model.update(tree_unflatten(update))
        mx.eval(model.parameters())

    def names(self, model: Any) -> list[str]:
        return [k for k, _ in tree_flatten(model.parameters())] if isinstance(model, nn.Module) else []

    def trainable(self, model: Any) -> list[str]:
        if not isinstance(model, nn.Module):
            return []
        return [k for k, _ in tree_flatten(model.trainable_parameters())]

    def cast(self, model: Any, dtype: str, keep: tuple[str, ...] = ()) -> Any:
        if isinstance(model, nn.Module):
            model = copy.deepcopy(model)
            model.set_dtype(DT[dtype])
        return model

    def _args(self, args: list[np.ndarray], dtype: str) -> list[Any]:
        return [mx.array(a).astype(DT[dtype]) if np.issubdtype(a.dtype, np.floating) else mx.array(a) for a in args]

    def call(self, model: Any, args: list[np.ndarray], dtype: str) -> Flat:
        out = invoke(model, self._args(args, dtype), self.arg_names, self.derived)
        mx.eval(out)
        return flatten(out, _is, _np)

    def decode(self, model: Any, ids: np.ndarray, more: dict) -> tuple[np.ndarray | None, Any]:
        """One decoding call with token ids and keyword arguments (a cache): (its first output array, the raw
        output, which may hand back the cache)."""
        out = invoke(model, [mx.array(ids)], self.arg_names[:1], self.derived, more)
        flat = flatten_native(out, _is)
        return (_np(flat[0][1]) if flat else None), out

    def grads(self, model: Any, args: list[np.ndarray], dtype: str, upstream: dict[str, np.ndarray]):
        xs = self._args(args, dtype)
        float_idx = [i for i, a in enumerate(args) if np.issubdtype(a.dtype, np.floating)]
        is_module = isinstance(model, nn.Module)
        params = model.trainable_parameters() if is_module else {}
        outputs: list = []

        def loss(params, *floats):
            full = list(xs)
            for i, f in zip(float_idx, floats):
                full[i] = f
            if is_module:
                model.update(params)
            flat = flatten_native(invoke(model, full, self.arg_names, self.derived), _is)
            outputs[:] = flat
            total = mx.array(0.0, dtype=mx.float32)
            for k, t in flat:
                if k in upstream and mx.issubdtype(t.dtype, mx.floating):
                    total = total + (t * mx.array(upstream[k]).astype(t.dtype)).astype(mx.float32).sum()
            return total

        if not float_idx and not tree_flatten(params):  # sinusoids(length, channels): nothing to differentiate
            return self.call(model, args, dtype), {}, {}
        argnums = tuple(range(1 + len(float_idx)))
        grads = mx.grad(loss, argnums=argnums)(params, *[xs[i] for i in float_idx])
        if len(argnums) == 1:  # a single argnum returns the gradient itself, not a tuple
            grads = (grads,)
        mx.eval(grads)
        in_grads = {i: _np(g) for i, g in zip(float_idx, grads[1:])}
        p_grads = {k: _np(v) for k, v in tree_flatten(grads[0])} if is_module else {}
        if is_module:
            model.update(params)
        out = self.call(model, args, dtype)
        return out, in_grads, p_grads

    def seed(self, seed: int) -> None:
        mx.random.seed(seed)

    def submodules(self, model: Any) -> list[tuple[str, Any]]:
        if not isinstance(model, nn.Module):
            return []
        return [(n, m) for n, m in reversed(model.named_modules()) if n]

    def trace(self, model: Any, args: list[np.ndarray], dtype: str, feed: dict[str, list] | None = None,
              more: dict | None = None):
        """Record [name, inputs, outputs] per child-module call (start order) by swapping in a recording
        subclass; `feed[name][k]` replaces the positional inputs of the k-th call (teacher forcing)."""
        records: list[list] = []
        swapped = []
        adapter = self
        for name, mod in self.submodules(model):
            cls = type(mod)

            def call(self_, *a, __name=name, __cls=cls, **kw):
                k = sum(1 for r in records if r[0] == __name)
                fed = (feed or {}).get(__name)
                if fed and k < len(fed) and len(fed[k]) == len(a) and all(isinstance(t, mx.array) for t in a):
                    a = tuple(adapter._args(fed[k], dtype))
                index = len(records)
                records.append([__name, flatten(a, _is, _np), []])
                out = __cls.__call__(self_, *a, **kw)
                mx.eval(out)
                records[index][2] = flatten(out, _is, _np)
                return out
            mod.__class__ = type(cls.__name__, (cls,), {"__call__": call})
            swapped.append((mod, cls))
        try:
            mx.eval(invoke(model, self._args(args, dtype), self.arg_names, self.derived, more))
        finally:
            for mod, cls in swapped:
                mod.__class__ = cls
        return records

    def grad_trace(self, model: Any, args: list[np.ndarray], dtype: str, upstream: dict[str, np.ndarray]):
        """[name, input grads, output grads] per submodule call (start order): zero probes are added to each call's
        floating inputs and outputs, and the loss differentiated with respect to them."""
        shapes = [(name, [v.shape for _, v in inp], [v.shape for _, v in out])
                  for name, inp, out in self.trace(model, args, dtype)]
        probes = {f"{c}/{io}/{i}": mx.zeros(shape, dtype=DT[dtype]) for c, (_, ins, outs) in enumerate(shapes)
                  for io, group in (("in", ins), ("out", outs)) for i, shape in enumerate(group)}
        counter, swapped, live = [0], [], {}  # live: the probes of the call being differentiated

        def probed(c: int, io: str):
            def add(i, x):
                key = f"{c}/{io}/{i}"
                return x + live[key] if key in live and mx.issubdtype(x.dtype, mx.floating) else x
            return add

        for name, mod in self.submodules(model):
            cls = type(mod)

            def call(self_, *a, __cls=cls, **kw):
                c = counter[0]
                counter[0] += 1
                a = map_arrays(a, _is, probed(c, "in"))
                return map_arrays(__cls.__call__(self_, *a, **kw), _is, probed(c, "out"))
            mod.__class__ = type(cls.__name__, (cls,), {"__call__": call})
            swapped.append((mod, cls))
        xs = self._args(args, dtype)

        def loss(given):
            counter[0] = 0
            live.clear()
            live.update(given)
            total = mx.array(0.0, dtype=mx.float32)
            for k, t in flatten_native(invoke(model, xs, self.arg_names, self.derived), _is):
                if k in upstream and mx.issubdtype(t.dtype, mx.floating):
                    total = total + (t * mx.array(upstream[k]).astype(t.dtype)).astype(mx.float32).sum()
            return total
        try:
            grads = mx.grad(loss)(probes)
            mx.eval(grads)
        finally:
            live.clear()
            for mod, cls in swapped:
                mod.__class__ = cls
        return [[name, [(f"[{i}]", _np(grads[f"{c}/in/{i}"])) for i in range(len(ins))],
                 [(f"[{i}]", _np(grads[f"{c}/out/{i}"])) for i in range(len(outs))]]
                for c, (name, ins, outs) in enumerate(shapes)]