"""A torch model held one module's parameters at a time: built with every parameter on the meta device (shapes,
no memory), each module's own parameters made real just before its forward runs and dropped when it returns.

Between its module's calls a parameter is a placeholder: NaN, broadcast to its shape (no memory). A parameter a
module reads outside its own forward (a parent using `self.child.weight`) reads that NaN, never uninitialised
memory (which a meta tensor would give on CPU), so the run ends with A not finite and that reason, never with a
wrong number. Buffers stay real (masks and frequency tables are computed by the constructor and small)."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

CONTAINERS = (torch.nn.ModuleList, torch.nn.Sequential, torch.nn.ModuleDict)


@contextlib.contextmanager
def parameters_on_meta() -> Iterator[None]:
    """While open, every parameter a module registers is replaced by a meta tensor of its shape: a model of any
    size is built in the memory of one layer (its init runs on the meta tensors, costing nothing)."""

    def to_meta(module, name, param):
        if param is None or param.device.type == "meta":
            return None
        return torch.nn.Parameter(torch.empty_like(param, device="meta"), requires_grad=False)

    handle = torch.nn.modules.module.register_module_parameter_registration_hook(to_meta)
    try:
        yield
    finally:
        handle.remove()


def placeholder(like: torch.Tensor) -> torch.nn.Parameter:
    """NaN in the shape and dtype of `like`, one element of memory: what an unloaded parameter reads as."""
    dtype = like.dtype if like.dtype.is_floating_point else torch.float32
    return torch.nn.Parameter(torch.full((), float("nan"), dtype=dtype).expand(like.shape), requires_grad=False)


def unload_all(model: torch.nn.Module) -> list[str]:
    """Every meta parameter and buffer replaced by its NaN placeholder; returns the buffers that were on the meta
    device (derived from a parameter at construction: they have no value to keep)."""
    meta_buffers = []
    for module_name, module in model.named_modules():
        for n, p in list(module._parameters.items()):
            if p is not None and p.device.type == "meta":
                module._parameters[n] = placeholder(p)
        for n, b in list(module._buffers.items()):
            if b is not None and b.device.type == "meta":
                module._buffers[n] = placeholder(b).detach()
                meta_buffers.append(f"{module_name}.{n}" if module_name else n)
    return meta_buffers


def shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    """{state name: shape} of the state dict (parameters, tied ones under each name, and persistent buffers: what
    a loaded checkpoint holds), without touching their values."""
    return {k: tuple(v.shape) for k, v in model.state_dict(keep_vars=True).items()}


def owners(model: torch.nn.Module) -> dict[str, str]:
    """{module name: class name}, the role hints fresh values are drawn with."""
    return {n: type(m).__name__ for n, m in model.named_modules()}


def blocks(model: torch.nn.Module, prefix: str = "") -> list[tuple[str, torch.nn.Module]]:
    """The units a streamed comparison reports: the elements of the model's layer containers, and its other
    children; a child holding most of the parameters (a trunk: `model` inside `ForCausalLM`) is looked into."""
    children = list(model.named_children())
    if not children:
        return [(prefix, model)] if prefix else []
    total = _count(model)
    out = []
    for name, child in children:
        full = f"{prefix}.{name}" if prefix else name
        if isinstance(child, CONTAINERS):
            out += [(f"{full}.{n}", c) for n, c in child.named_children()]
        elif total and _count(child) > total / 2 and list(child.children()):
            out += blocks(child, full)
        else:
            out.append((full, child))
    return out


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def load_on_call(model: torch.nn.Module, value: Callable[[str], np.ndarray]) -> list:
    """Hooks on every module that owns parameters: `value(full name)` is loaded into them before the module's
    forward and the meta tensors are put back after it. Returns the hook handles."""
    handles = []
    for prefix, module in model.named_modules():
        own = [n for n, _ in module.named_parameters(recurse=False)]
        if not own:
            continue

        def load(mod, args, prefix=prefix, own=own):
            for n in own:
                full = f"{prefix}.{n}" if prefix else n
                mod._parameters[n] = torch.nn.Parameter(torch.from_numpy(np.asarray(value(full), order="C")),
                                                        requires_grad=False)

        def drop(mod, args, out, own=own):
            for n in own:
                mod._parameters[n] = placeholder(mod._parameters[n])

        handles += [module.register_forward_pre_hook(load), module.register_forward_hook(drop)]
    return handles


def first_tensor(value: Any) -> torch.Tensor | None:
    """The first tensor of a call's arguments or result (the hidden state a block passes on)."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        for v in value:
            found = first_tensor(v)
            if found is not None:
                return found
    return None


def replace_first(value: Any, new: torch.Tensor) -> Any:
    """`value` with its first tensor replaced by `new` (the structure kept: tuple, list, dict, ModelOutput)."""
    if isinstance(value, torch.Tensor):
        return new
    if isinstance(value, dict):
        out, done = type(value)() if type(value) is dict else value.__class__(**value), False
        for k, v in value.items():
            if not done and first_tensor(v) is not None:
                out[k], done = replace_first(v, new), True
            else:
                out[k] = v
        return out
    if isinstance(value, (tuple, list)):
        items, done = [], False
        for v in value:
            if not done and first_tensor(v) is not None:
                items.append(replace_first(v, new))
                done = True
            else:
                items.append(v)
        return type(value)(items) if type(value) in (tuple, list) else type(value)(*items)
    return value
