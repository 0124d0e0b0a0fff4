"""Infer each forward argument's shape and type from the code that first consumes it."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from parity_skill.analyze import module_class
from parity_skill.analyze.model import Arg, FileAnalysis, Symbol
from parity_skill.analyze.vocabulary import op_for
from parity_skill.plan.construct import BATCH, SEQ, choose, environment, evaluate, role_of
from parity_skill.spec import InputSpec

INT_NAMES = re.compile(r"(^|_)(ids|tokens?|idx|indices|labels|input_ids|token_ids)$")
QKV_NAMES = re.compile(r"^(q|k|v|query|key|value|queries|keys|values)$")
SCALAR_ANN = ("int", "float", "bool", "str")
SCALAR_ROLES = ("seq", "channels", "offset", "heads", "head_dim", "kv_heads", "layer_index", "top_p", "top_k",
                "min_p", "temperature", "penalty", "guidance")


@dataclass(frozen=True)
class Guess:
    shape: tuple[int, ...]
    dtype: str = "float32"
    high: int = 0
    seq_axis: int | None = None
    layout: str = ""  # "channels_first" | "channels_last" for conv-consumed inputs
    reason: str = ""
    fallback: bool = False  # no code said anything about this input: the default shape


def _sizes(env: dict[str, Any]) -> dict[str, int]:
    """Role -> value among the constructor's known names (dim, heads, vocab...): its own arguments and
    attributes first, then the fields of a config object it takes."""
    out: dict[str, int] = {}
    for key, value in env.items():
        r = role_of(key.split(".")[-1])
        if r and isinstance(value, int) and not isinstance(value, bool):
            out.setdefault(r[0], value)
    for value in env.values():
        if isinstance(value, dict):
            for k, v in value.items():
                r = role_of(k)
                if r and isinstance(v, int) and not isinstance(v, bool):
                    out.setdefault(r[0], v)
    return out


def _rank(hints, sizes: dict[str, int]) -> int | None:
    """Rank from `B, T, C = x.shape`; `x.shape[-2]` in a module with a head_dim means (B, H, T, head_dim)."""
    for h in hints:
        if h.kind == "unpack":
            return int(h.value)
    indexed = [int(h.value) for h in hints if h.kind == "index" and h.value.lstrip("-").isdigit()]
    if any(i >= 0 for i in indexed):
        return max(i for i in indexed if i >= 0) + 1 if max(indexed) >= 3 else None
    if -2 in indexed and "head_dim" in sizes:
        return 4
    return None


def _image_size(env: dict[str, Any]) -> int | None:
    """The image size the module was built for (`self.image_size`, an `image_size` argument or config field)."""
    for value in (env.get("self.image_size"), env.get("image_size"),
                  *(v.get("image_size") for v in env.values() if isinstance(v, dict))):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _from_layer(type_name: str, args: tuple[str, ...], kwargs: dict[str, str], fw: str, env: dict[str, Any],
                where: str) -> Guess | None:
    op = op_for(type_name)

    def size(i: int, *names: str) -> int | None:
        src = next((kwargs[n] for n in names if n in kwargs), args[i] if i < len(args) else None)
        value = evaluate(src, env) if src else None
        if isinstance(value, (tuple, list)) and value:
            value = value[-1]
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    if op in ("linear", "layer_norm", "rms_norm"):
        d = size(0, "in_features", "input_dims", "normalized_shape", "dims")
        if d:
            return Guess((BATCH, SEQ, d), seq_axis=1, reason=f"first consumed by {where} ({op}, {d} features)")
    if op == "embedding":
        n = size(0, "num_embeddings")
        if n:
            return Guess((BATCH, SEQ), "int64", n, 1, reason=f"token ids for {where} (embedding of {n})")
    if op in ("conv1d", "conv_transpose1d", "conv2d", "batch_norm", "group_norm"):
        c = size(1 if op == "group_norm" else 0, "in_channels", "num_features", "num_channels", "dims")
        if c:
            k = size(2, "kernel_size") if op.startswith("conv") else None
            lo = (max(12, 3 * k),) if k else (12,)  # a patchifying conv (kernel 14) needs several patches
            spatial = lo if op in ("conv1d", "conv_transpose1d", "batch_norm", "group_norm") else \
                ((max(10, 2 * k), max(12, 3 * k)) if k else (10, 12))
            image = _image_size(env)
            if op == "conv2d" and image and (not k or image % k == 0):  # the model's own image size: its position
                spatial = (image, image)  # table has one row per patch of exactly that image
            if fw == "mlx":
                return Guess((BATCH, *spatial, c), seq_axis=1, layout="channels_last",
                             reason=f"channels-last input of {where} ({c} channels)")
            return Guess((BATCH, c, *spatial), seq_axis=2 if len(spatial) == 1 else None, layout="channels_first",
                         reason=f"channels-first input of {where} ({c} channels)")
    return None


def guess_module_input(sym: Symbol, fa: FileAnalysis, arg: str, env: dict[str, Any], depth: int = 0) -> Guess | None:
    sizes = _sizes(env)
    hints = [h for h in sym.input_hints if h.arg == arg]
    rank = _rank(hints, sizes)
    for h in hints:
        if h.kind == "consumer":
            sub = next((s for s in sym.submodules if s.attr == h.value), None)
            if sub is None:
                continue
            if sub.children:
                sub = sub.children[0]
            found = module_class(fa, sub.type_name)
            if found is not None and depth < 4:
                local, sub_fa = found
                bound = {}
                positional = [a for a in local.init_args if a.kind == "positional"]
                for a, src in zip(positional, sub.args):
                    bound[a.name] = evaluate(src, env)
                bound.update({k: evaluate(v, env) for k, v in sub.kwargs})
                child_env = environment(local, {k: v for k, v in bound.items() if v is not None})
                first = next((a.name for a in local.call_args if a.kind == "positional"), None)
                if first:
                    g = guess_module_input(local, sub_fa, first, child_env, depth + 1)
                    if g and not g.fallback:  # a submodule that says nothing leaves it to this module's sizes
                        return g
                continue
            g = _from_layer(sub.type_name, sub.args, dict(sub.kwargs), sym.framework, env, f"self.{sub.attr} ({h.location})")
            if g:
                return g
        elif h.kind == "op":
            if h.value == "embedding" and sizes.get("vocab"):
                return Guess((BATCH, SEQ), "int64", sizes["vocab"], 1, reason=f"ids for {h.value} at {h.location}")
    return _by_name_and_rank(arg, rank, sizes)


def _by_name_and_rank(arg: str, rank: int | None, sizes: dict[str, int], function: bool = False) -> Guess:
    dim = sizes.get("dim", 32)
    heads = sizes.get("heads", 4)
    head_dim = sizes.get("head_dim") or (dim // heads if dim % heads == 0 else 8)
    if INT_NAMES.search(arg.lower()):
        return Guess((BATCH, SEQ), "int64", sizes.get("vocab", 64), 1, reason="integer ids (by name)")
    if rank == 4 or (rank is None and function and QKV_NAMES.match(arg.lower())):
        why = "rank 4 read from the code" if rank == 4 else f"'{arg}' names a query/key/value"
        return Guess((BATCH, heads, SEQ, head_dim), seq_axis=2, reason=f"(batch, heads, seq, head_dim): {why}")
    if rank == 2:
        return Guess((BATCH, dim), reason="rank 2 from the code (batch, features)")
    if rank is not None and rank != 3:
        return Guess((BATCH, *([SEQ] * (rank - 2)), dim), reason=f"rank {rank} from the code")
    return Guess((BATCH, SEQ, dim), seq_axis=1, reason="(batch, seq, features)" + ("" if rank else " by default"),
                 fallback=not rank)


# required arguments a caller passes None to in the plain run: masks (random numbers are never a mask) and caches
NONE_NAMES = re.compile(r"(^|_)mask$|^key_padding_mask$|(^|_)(cache|kv_cache|past_key_values?|layer_past)$")


def _optional_annotation(arg: Arg) -> bool:
    ann = (arg.annotation or "").replace(" ", "")
    return ann.startswith("Optional[") or ann.endswith("|None") or ann.startswith("None|") or \
        bool(NONE_NAMES.search(arg.name))


def scalar_value(arg: Arg, siblings: tuple[str, ...], notes: list[str], where: str, primary: bool = False
                 ) -> tuple[bool, Any]:
    """(is fixed?, value) for a required forward argument that is not an array: None where its annotation
    allows it (`attention_mask: Optional[Tensor]` with no default; never the `primary`, first, argument), a small value by role for scalars
    (`start_pos` 0, `length` 6, `channels` 16) or by annotation (`scale: float`)."""
    if not arg.required:
        return False, None
    if _optional_annotation(arg) and not primary:
        return True, None
    role = role_of(arg.name, siblings)
    if role and role[0] in SCALAR_ROLES:
        return True, role[1]
    ann = (arg.annotation or "").replace("'", "")
    if ann in ("int", "float", "bool"):
        return True, choose(arg, notes, where, siblings)[1]
    return False, None


def is_array_arg(arg: Arg, primary: bool = False) -> bool:
    if arg.kind in ("vararg", "varkw") or arg.default is not None or (_optional_annotation(arg) and not primary):
        return False
    role = role_of(arg.name)
    if role and role[0] in SCALAR_ROLES and arg.annotation is None:
        return False
    ann = (arg.annotation or "").replace("'", "")
    return not any(ann == s for s in SCALAR_ANN)


def fixed_args(sym: Symbol, skip: set[str], notes: list[str]) -> dict[str, Any]:
    """Required forward arguments that get one value in every call instead of an input array."""
    siblings = tuple(a.name for a in sym.call_args)
    out: dict[str, Any] = {}
    for i, arg in enumerate(sym.call_args):
        if arg.name in skip:
            continue
        fixed, value = scalar_value(arg, siblings, notes, f"{sym.name}(", primary=i == 0)
        if fixed:
            out[arg.name] = value
    if out:
        notes.append(f"{sym.name}: called with " + ", ".join(f"{k}={v!r}" for k, v in out.items()) +
                     " in every check (override with --input for arrays)")
    return out


def _optional_array(arg: Arg) -> bool:
    ann = (arg.annotation or "").replace("'", "")
    return arg.default == "None" and arg.kind in ("positional", "kwonly") and \
        not any(s in ann for s in SCALAR_ANN if s != "None") and not re.search(r"cache|past|state", arg.name)


def exercised_optionals(sym: Symbol, wanted: set[str]) -> set[str]:
    """Optional (default None) array arguments to feed anyway: those the other side requires by name, or, when
    the forward requires no array at all (`input_ids=None, inputs_embeds=None`), the first one."""
    optional = [a for a in sym.call_args if _optional_array(a)]
    chosen = {a.name for a in optional if a.name in wanted}
    if not chosen and optional and not any(is_array_arg(a, k == 0) for k, a in enumerate(sym.call_args)):
        chosen = {optional[0].name}
    return chosen


def plan_inputs(sym: Symbol, fa: FileAnalysis, init: dict[str, Any], overrides: dict[str, InputSpec],
                notes: list[str], wanted: set[str] = frozenset(), derived: set[str] = frozenset()
                ) -> tuple[tuple[InputSpec, ...], dict[str, Guess]]:
    """Inputs for the required array arguments of `sym`'s forward (or the function's arguments), plus the
    optional ones `exercised_optionals` picks; `derived` arguments are computed by the side, never fed."""
    env = environment(sym, init) if sym.kind == "module" else {}
    specs: list[InputSpec] = []
    guesses: dict[str, Guess] = {}
    optional = exercised_optionals(sym, wanted)
    for i, arg in enumerate(sym.call_args):
        if arg.name in derived:
            continue
        if arg.name in overrides:
            specs.append(overrides[arg.name])
            continue
        if arg.name in optional:
            arg = Arg(arg.name, arg.annotation, None, arg.kind, arg.location)
        if not is_array_arg(arg, primary=i == 0):
            if arg.required and not scalar_value(arg, (), [], "", primary=i == 0)[0]:
                notes.append(f"{sym.name}: required argument '{arg.name}' ({arg.annotation}) is not an array; "
                             f"give it with --input {arg.name}=...")
            continue
        if sym.kind == "module":
            g = guess_module_input(sym, fa, arg.name, env)
        else:
            ranks = [int(h.value) for h in sym.input_hints if h.arg == arg.name and h.kind == "unpack"]
            g = _by_name_and_rank(arg.name, ranks[0] if ranks else None, _sizes(env), function=True)
        guesses[arg.name] = g
        kind = f"ids in [0, {g.high})" if g.dtype.startswith("int") else g.dtype
        notes.append(f"input '{arg.name}': shape {g.shape} {kind}, {g.reason} (override with --input)")
        specs.append(InputSpec(arg.name, g.shape, g.dtype, 0, g.high, g.seq_axis))
    fed = {s.name for s in specs} | set(derived)
    idle = [a.name for a in sym.call_args if a.name not in fed and a.kind in ("positional", "kwonly") and a.default]
    if idle:
        notes.append(f"{sym.name}: not exercised (left at their defaults): {', '.join(idle)}")
    return tuple(specs), guesses


def parse_input_override(text: str) -> InputSpec:
    """`name=2,8,64[:int64]` (ints may add a range: `ids=2,8:int64:0-100`)."""
    name, _, rest = text.partition("=")
    if not name or not rest:
        raise ValueError(f"--input {text!r}: expected name=2,8,64[:dtype]")
    parts = rest.split(":")
    shape = tuple(int(s) for s in parts[0].split(",") if s.strip())
    dtype = parts[1] if len(parts) > 1 else "float32"
    low, high = 0, 0
    if len(parts) > 2:
        low, high = (int(v) for v in parts[2].split("-"))
    elif not dtype.startswith("float"):
        high = 64
    seq_axis = 1 if len(shape) >= 2 else None
    return InputSpec(name, shape, dtype, low, high, seq_axis)
