"""Parameters a module will have, derived from its `__init__` and the chosen constructor arguments."""
from __future__ import annotations

from typing import Any

from parity_skill.analyze import module_class
from parity_skill.analyze.model import FileAnalysis, Submodule, Symbol
from parity_skill.analyze.vocabulary import op_for
from parity_skill.plan.weight_map import ParamInfo
from parity_skill.plan.construct import environment, evaluate, literal


def _arg(sub: Submodule, index: int, *names: str) -> str | None:
    kw = dict(sub.kwargs)
    for name in names:
        if name in kw:
            return kw[name]
    return sub.args[index] if index < len(sub.args) else None


def _flag(sub: Submodule, index: int, name: str, default: bool = True) -> bool:
    src = _arg(sub, index, name)
    ok, value = literal(src)
    return bool(value) if ok else default


def _size(src: str | None, env: dict[str, Any]) -> int | None:
    value = evaluate(src, env) if src else None
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _layer_params(sub: Submodule, fw: str, env: dict[str, Any]) -> list[tuple[str, tuple[int, ...] | None]] | None:
    op = op_for(sub.type_name)
    if op == "linear":
        n_in, n_out = _size(_arg(sub, 0, "in_features", "input_dims"), env), _size(_arg(sub, 1, "out_features", "output_dims"), env)
        shape = (n_out, n_in) if n_in and n_out else None
        bias = [("bias", (n_out,) if n_out else None)] if _flag(sub, 2, "bias") else []
        return [("weight", shape), *bias]
    if op == "embedding":
        n, d = _size(_arg(sub, 0, "num_embeddings"), env), _size(_arg(sub, 1, "embedding_dim", "dims"), env)
        return [("weight", (n, d) if n and d else None)]
    if op in ("layer_norm", "rms_norm", "group_norm", "batch_norm"):
        index = 1 if op == "group_norm" else 0
        d = _size(_arg(sub, index, "normalized_shape", "num_channels", "num_features", "dims"), env)
        shape = (d,) if d else None
        affine = _flag(sub, 99, "elementwise_affine") and _flag(sub, 99, "affine")
        if not affine:
            return []
        out = [("weight", shape)]
        if op != "rms_norm" and _flag(sub, 99, "bias"):
            out.append(("bias", shape))
        if op == "batch_norm" and fw == "torch":
            out += [("running_mean", shape), ("running_var", shape), ("num_batches_tracked", ())]
        return out
    if op and op.startswith("conv"):
        c_in = _size(_arg(sub, 0, "in_channels"), env)
        c_out = _size(_arg(sub, 1, "out_channels"), env)
        k = evaluate(_arg(sub, 2, "kernel_size") or "None", env)
        nd = int(op[-2]) if op[-2].isdigit() else 1
        ks = tuple(k) if isinstance(k, tuple) else (k,) * nd if isinstance(k, int) else None
        groups = _size(_arg(sub, 99, "groups"), env) or 1
        shape = None
        if c_in and c_out and ks:
            shape = (c_out, *ks, c_in // groups) if fw == "mlx" else (c_out, c_in // groups, *ks)
        bias = [("bias", (c_out,) if c_out else None)] if _flag(sub, 99, "bias") else []
        return [("weight", shape), *bias]
    if op in ("rope", "gelu", "silu", "relu", "tanh", "sigmoid", "dropout", "softmax"):
        return []
    return None


def _tensor_shape(init: str, env: dict[str, Any]) -> tuple[int, ...] | None:
    """`nn.Parameter(torch.ones(dim))`, `mx.zeros((dims,))` -> the shape, when it evaluates."""
    inner = init
    if "Parameter(" in inner:
        inner = inner[inner.index("Parameter(") + len("Parameter("):].rstrip(")")
    for ctor in ("ones(", "zeros(", "randn(", "rand(", "empty(", "full("):
        if ctor in inner:
            args = inner[inner.index(ctor) + len(ctor):]
            depth, end = 1, len(args)  # no closing parenthesis left: rstrip above took it
            for i, ch in enumerate(args):
                depth += ch == "("
                depth -= ch == ")"
                if depth == 0:
                    end = i
                    break
            args = args[:end]
            if ctor == "full(":
                args = args.rsplit(",", 1)[0]
            value = evaluate(f"({args},)" if not args.strip().startswith("(") else args, env)
            if isinstance(value, tuple):
                flat = value[0] if len(value) == 1 and isinstance(value[0], tuple) else value
                if all(isinstance(v, int) for v in flat):
                    return tuple(flat)
    return None


def _line(location: str) -> int:
    return int(location.rsplit(":", 1)[1])


def static_parameters(sym: Symbol, fa: FileAnalysis, env: dict[str, Any] | None = None,
                      prefix: str = "") -> list[ParamInfo]:
    """Copyable parameters in declaration order (torch: state_dict; mlx: public arrays). Best effort."""
    env = env if env is not None else environment(sym, {})
    items: list[tuple[int, list[ParamInfo]]] = []
    for t in sym.tensors:
        if t.persistent:
            items.append((_line(t.location), [ParamInfo(prefix + t.name, _tensor_shape(t.init, env))]))
    for sub in sym.submodules:
        items.append((_line(sub.location), _submodule_params(sub, sym.framework, fa, env, prefix + sub.attr + ".")))
    items.sort(key=lambda item: item[0])
    return [p for _, group in items for p in group]


def _submodule_params(sub: Submodule, fw: str, fa: FileAnalysis, env: dict[str, Any], prefix: str) -> list[ParamInfo]:
    if sub.children:
        return [p for child in sub.children
                for p in _submodule_params(child, fw, fa, env, f"{prefix}{child.attr}.")]
    found = module_class(fa, sub.type_name)
    if found is not None:
        local, fa = found
        bound: dict[str, Any] = {}
        positional = [a for a in local.init_args if a.kind == "positional"]
        for arg, src in zip(positional, sub.args):
            bound[arg.name] = evaluate(src, env)
        for key, src in sub.kwargs:
            bound[key] = evaluate(src, env)
        return static_parameters(local, fa, environment(local, {k: v for k, v in bound.items() if v is not None}),
                                 prefix)
    layer = _layer_params(sub, fw, env)
    return [ParamInfo(prefix + name, shape) for name, shape in (layer or [])]
