"""PyTorch: modules via forward hooks and autograd; every dtype; channels-first conventions."""
from __future__ import annotations

import contextlib
import copy
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np
import torch

from parity_skill.runtime.adapters.enclosing import enclosing_fn
from parity_skill.runtime.adapters.base import Flat, causal_mask_fn, companion_fn, flatten, flatten_native, invoke

DT = {"fp64": torch.float64, "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _np(t: torch.Tensor) -> np.ndarray:
    """To numpy in the tensor's own precision (bfloat16, which numpy lacks, as float32: exact); comparisons cast
    to float64 themselves."""
    t = t.detach().cpu()
    return t.float().numpy() if t.dtype == torch.bfloat16 else t.numpy()


def _is(t: Any) -> bool:
    return isinstance(t, torch.Tensor)


class _AsNumpy(Mapping):
    """Parameter gradients as numpy arrays, converted one at a time when read (bfloat16 becomes float32: twice the
    memory if done for a whole model at once)."""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        self._tensors = tensors

    def __getitem__(self, name: str) -> np.ndarray:
        return _np(self._tensors[name])

    def __contains__(self, name) -> bool:  # Mapping's would convert the tensor to answer
        return name in self._tensors

    def __iter__(self):
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)


_RANDOM_INITS = ("uniform_", "normal_", "trunc_normal_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_",
                 "xavier_normal_", "orthogonal_", "sparse_")


@contextlib.contextmanager
def _parameters_zeroed():
    """torch.nn.init's random fills write zeros into trainable parameters instead: every one of them is drawn
    afresh from the seed right after building (runtime/data/init.py), so the constructor's draws were wasted work
    (half a second for 85 M parameters). Buffers and frozen parameters are initialised as the code says."""
    saved = {name: getattr(torch.nn.init, name) for name in _RANDOM_INITS if hasattr(torch.nn.init, name)}

    def skipping(original):
        def init(tensor, *args, **kwargs):
            if isinstance(tensor, torch.nn.Parameter) and tensor.requires_grad:
                with torch.no_grad():
                    return tensor.zero_()
            return original(tensor, *args, **kwargs)
        return init

    for name, original in saved.items():
        setattr(torch.nn.init, name, skipping(original))
    try:
        yield
    finally:
        for name, original in saved.items():
            setattr(torch.nn.init, name, original)


class TorchAdapter:
    arg_names: tuple[str, ...] = ()  # per input: the keyword it is passed as ('' = by position)
    derived: tuple = ()  # (argument, fn(inputs)) computed per call, e.g. a rotary embedding's (cos, sin)
    name = "torch"
    differentiable = True
    dtypes = ("fp64", "fp32", "fp16", "bf16")

    def companion(self, module: Any, call: tuple[str, ...], source: int, seq_axis: int) -> Callable:
        def frozen(fn):
            with torch.no_grad():
                return fn()

        if isinstance(module, torch.nn.Module):
            module.eval()
        return companion_fn(module, call, source, seq_axis,
                            lambda n, t: torch.arange(t).unsqueeze(0).expand(n, t), frozen)

    def enclosing(self, model: Any, arg: str, layer_class: str, ids_arg: str, source: int, seq_axis: int,
                  cache: dict) -> Callable:
        """fn(xs): `arg` as the enclosing `model` hands it to its first `layer_class` (adapters/enclosing.py)."""
        def frozen(fn):
            with torch.no_grad():
                return fn()

        def cast_like(value, like):
            if isinstance(value, torch.Tensor) and value.is_floating_point() and like.is_floating_point():
                return value.to(like.dtype)
            if isinstance(value, (tuple, list)):
                return type(value)(cast_like(v, like) for v in value)
            return value

        model.eval()
        return enclosing_fn(model, arg, layer_class, ids_arg, source, seq_axis, list(model.modules()), "forward",
                            lambda n, t: (torch.arange(n * t).reshape(n, t) % 3 + 1), frozen, cast_like, cache)

    def build(self, factory: Callable, kwargs: dict[str, Any], drawn_afresh: bool = False) -> Any:
        """`drawn_afresh`: every trainable parameter is overwritten after building, so its random init is skipped."""
        with _parameters_zeroed() if drawn_afresh else contextlib.nullcontext():
            model = factory(**kwargs)
        if isinstance(model, torch.nn.Module):
            model.eval()
        return model

    def mask(self, form: str, source: int, seq_axis: int) -> Callable:
        def build(t: int, rank: int, kind: str, dtype):
            dtype = dtype if dtype.is_floating_point else torch.float32
            above = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)
            m = {"keep": ~above, "masked": above}.get(kind)
            if m is None:
                m = torch.zeros(t, t, dtype=dtype).masked_fill(above, torch.finfo(dtype).min)
            return m[None, None] if rank == 4 else m
        return causal_mask_fn(form, source, seq_axis, build)

    def native(self, value: np.ndarray) -> Any:
        return torch.from_numpy(np.asarray(value, order="C"))

    def numpy(self, value: Any) -> np.ndarray:
        return _np(value) if isinstance(value, torch.Tensor) else np.asarray(value)

    def state(self, model: Any) -> dict[str, np.ndarray]:
        if not isinstance(model, torch.nn.Module):
            return {}
        return {k: _np(v) for k, v in model.state_dict().items()}

    def load(self, model: Any, values: dict[str, np.ndarray]) -> None:
        sd = model.state_dict()
        with torch.no_grad():
            for k, v in values.items():
                target = sd[k]
                if tuple(target.shape) != v.shape:
                    raise ValueError(f"'{k}' has shape {tuple(target.shape)}, the mapped value {v.shape}")
                target.copy_(torch.from_numpy(np.asarray(v, order="C")).to(target.dtype))

    def names(self, model: Any) -> list[str]:
        return list(model.state_dict()) if isinstance(model, torch.nn.Module) else []

    def trainable(self, model: Any) -> list[str]:
        if not isinstance(model, torch.nn.Module):
            return []
        return [n for n, p in model.named_parameters() if p.requires_grad]

    def cast(self, model: Any, dtype: str, keep: tuple[str, ...] = ()) -> Any:
        """A copy in `dtype`; the submodules named in `keep` stay in float32."""
        if isinstance(model, torch.nn.Module):
            memo: dict[int, Any] = {}  # hand deepcopy converted tensors: no float32 copy of the weights on the way
            for t in [*model.parameters(), *model.buffers()]:
                if t.is_floating_point() and id(t) not in memo:
                    new = t.detach().to(DT[dtype])
                    memo[id(t)] = torch.nn.Parameter(new, t.requires_grad) if isinstance(t, torch.nn.Parameter) \
                        else new
            model = copy.deepcopy(model, memo)
            for name in keep:
                model.get_submodule(name).float()
        return model

    def retype(self, model: Any, dtype: str, keep: tuple[str, ...] = ()) -> None:
        """Convert in place (float32 <-> float64 round-trips exactly, so no copy of the model is needed)."""
        if isinstance(model, torch.nn.Module):
            model.to(DT[dtype])
            for name in keep:
                model.get_submodule(name).float()

    def culprit(self, model: Any, args: list[np.ndarray], dtype: str) -> str | None:
        """The innermost submodule whose forward raises on these inputs ("" for the top level; None if none does)."""
        if not isinstance(model, torch.nn.Module):
            return None
        stack: list[str] = []
        failed: list[str] = []
        handles = []
        for name, mod in self.submodules(model):
            handles.append(mod.register_forward_pre_hook(lambda m, i, name=name: stack.append(name)))
            handles.append(mod.register_forward_hook(lambda m, i, o: stack.pop()))
        try:
            with torch.no_grad():
                invoke(model, self._args(args, dtype), self.arg_names, self.derived)
        except Exception:  # noqa: BLE001 - the failure is what we are locating
            failed = stack[-1:] or [""]  # "": the top-level forward itself
        finally:
            for h in handles:
                h.remove()
        return failed[0] if failed else None

    def _args(self, args: list[np.ndarray], dtype: str, grad: bool = False) -> list[torch.Tensor]:
        out = []
        for a in args:
            if np.issubdtype(a.dtype, np.floating):
                out.append(torch.tensor(a, dtype=DT[dtype], requires_grad=grad))
            elif isinstance(a, np.ndarray) and a.ndim == 0 and a.dtype == object:
                out.append(a.item())
            else:
                out.append(torch.from_numpy(np.asarray(a, order="C")))
        return out

    def call(self, model: Any, args: list[np.ndarray], dtype: str) -> Flat:
        with torch.no_grad():
            return flatten(invoke(model, self._args(args, dtype), self.arg_names, self.derived), _is, _np)

    def decode(self, model: Any, ids: np.ndarray, more: dict) -> tuple[np.ndarray | None, Any]:
        """One decoding call with token ids and keyword arguments (a cache): (its first output array, the raw
        output, which may hand back the cache)."""
        with torch.no_grad():
            out = invoke(model, [torch.from_numpy(np.asarray(ids, order="C"))], self.arg_names[:1], self.derived, more)
        flat = flatten_native(out, _is)
        return (_np(flat[0][1]) if flat else None), out

    def grads(self, model: Any, args: list[np.ndarray], dtype: str, upstream: dict[str, np.ndarray]):
        xs = self._args(args, dtype, grad=True)
        params = dict(model.named_parameters()) if isinstance(model, torch.nn.Module) else {}
        for p in params.values():
            p.grad = None
        out = flatten_native(invoke(model, xs, self.arg_names, self.derived), _is)
        pairs = [(t, torch.tensor(upstream[k], dtype=t.dtype)) for k, t in out
                 if k in upstream and t.is_floating_point() and t.requires_grad]
        if pairs:  # sum(t * g) has the same gradient as backward(t, g), without autograd.backward's lazy imports
            sum((t * g).sum() for t, g in pairs).backward()
        in_grads = {i: _np(x.grad) for i, x in enumerate(xs) if isinstance(x, torch.Tensor) and x.grad is not None}
        p_grads = _AsNumpy({n: p.grad for n, p in params.items() if p.grad is not None})
        for p in params.values():
            p.grad = None  # the mapping above holds them now
        return [(k, _np(t)) for k, t in out], in_grads, p_grads

    def seed(self, seed: int) -> None:
        torch.random.default_generator.manual_seed(seed)  # checks run on the CPU; manual_seed also touches CUDA

    def submodules(self, model: Any) -> list[tuple[str, Any]]:
        if not isinstance(model, torch.nn.Module):
            return []
        return [(n, m) for n, m in model.named_modules() if n]

    def call_order(self, model: Any, args: list[np.ndarray], dtype: str) -> list[str]:
        """The submodules in the order one call starts them (each once): trace's order, recording nothing else."""
        names: dict[str, None] = {}
        handles = [mod.register_forward_pre_hook(lambda m, inp, name=name: names.setdefault(name))
                   for name, mod in self.submodules(model)]
        try:
            with torch.no_grad():
                invoke(model, self._args(args, dtype), self.arg_names, self.derived)
        finally:
            for h in handles:
                h.remove()
        return list(names)

    def trace(self, model: Any, args: list[np.ndarray], dtype: str, feed: dict[str, list] | None = None,
              more: dict | None = None):
        """Run once, recording [name, inputs, outputs] per submodule call, in the order calls start.

        `feed[name][k]` replaces the positional inputs of the k-th call of `name` (teacher forcing)."""
        records: list[list] = []
        open_calls: dict[str, list[int]] = {}
        handles = []
        for name, mod in self.submodules(model):
            def pre(m, inp, name=name):
                k = sum(1 for r in records if r[0] == name)
                new = None
                fed = (feed or {}).get(name)
                if fed and k < len(fed) and len(fed[k]) == len(inp) and all(isinstance(t, torch.Tensor) for t in inp):
                    new = tuple(self._args(fed[k], dtype))
                open_calls.setdefault(name, []).append(len(records))
                records.append([name, flatten(new if new is not None else inp, _is, _np), []])
                return new

            def post(m, inp, out, name=name):
                records[open_calls[name].pop()][2] = flatten(out, _is, _np)
            handles.append(mod.register_forward_pre_hook(pre))
            handles.append(mod.register_forward_hook(post))
        try:
            with torch.no_grad():
                invoke(model, self._args(args, dtype), self.arg_names, self.derived, more)
        finally:
            for h in handles:
                h.remove()
        return records

    def grad_trace(self, model: Any, args: list[np.ndarray], dtype: str, upstream: dict[str, np.ndarray]):
        """One backward pass recording [name, input grads, output grads] per submodule call (start order): the
        gradient reaching each call's outputs, and what that call alone passes back to its floating inputs."""
        records: list[list] = []
        handles = []

        def keep(slot: list, i: int):
            def hook(g):
                slot[i] = g.detach().clone()
            return hook

        def watched(values: tuple, slot: list, wrap: bool) -> tuple:
            """Hooks on the floating tensors among `values`; slot i holds the gradient of the i-th array."""
            out = []
            for x in values:
                if isinstance(x, torch.Tensor):
                    slot.append(None)
                    if x.is_floating_point() and x.requires_grad:
                        x = x.view_as(x) if wrap else x  # a view of its own: only this call's use of the input
                        x.register_hook(keep(slot, len(slot) - 1))
                out.append(x)
            return tuple(out)

        for name, mod in self.submodules(model):
            def pre(m, inp, name=name):
                records.append([name, [], []])
                return watched(inp, records[-1][1], True)

            def post(m, inp, out, name=name):
                rec = next(r for r in reversed(records) if r[0] == name)
                watched(tuple(t for _, t in flatten_native(out, _is)), rec[2], False)
            handles.append(mod.register_forward_pre_hook(pre))
            handles.append(mod.register_forward_hook(post))
        try:
            xs = self._args(args, dtype, grad=True)
            out = flatten_native(invoke(model, xs, self.arg_names, self.derived), _is)
            pairs = [(t, torch.tensor(upstream[k], dtype=t.dtype)) for k, t in out
                     if k in upstream and t.is_floating_point() and t.requires_grad]
            if pairs:
                sum((t * g).sum() for t, g in pairs).backward()
        finally:
            for h in handles:
                h.remove()
            for p in model.parameters():
                p.grad = None
        return [[name, _flat(gin), _flat(gout)] for name, gin, gout in records]


def _flat(grads: list) -> Flat:
    """Captured gradients by position; one never reached (an unused input) is zeros of no shape: left out."""
    return [(f"[{i}]", _np(g)) for i, g in enumerate(grads) if g is not None]
