"""Static pre-flight diff: op arguments and constants that commonly break ports, with both file:line locations.

Findings explain failing checks; they never decide a verdict on their own."""
from __future__ import annotations

import builtins
import re

from parity_skill.plan import attention_scale
from parity_skill.analyze.model import FileAnalysis, OpCall, Symbol
from parity_skill.analyze.hierarchy import function_params
from parity_skill.analyze.vocabulary import DEFAULT_EPS
from parity_skill.plan.weight_map import module_role

NORMS = ("layer_norm", "rms_norm", "group_norm", "batch_norm")
ACTIVATIONS = ("gelu", "silu", "relu", "tanh", "sigmoid")


def _reachable(sym: Symbol, fa: FileAnalysis, seen: set[str] | None = None) -> list[Symbol]:
    """The symbol and every module class of the same file it builds (recursively)."""
    seen = seen if seen is not None else set()
    if sym.name in seen:
        return []
    seen.add(sym.name)
    out = [sym]
    stack = list(sym.submodules)
    while stack:
        sub = stack.pop(0)
        stack.extend(sub.children + sub.elements)
        local = fa.symbol(sub.type_name)
        if local is not None and local.kind == "module":
            out += _reachable(local, fa, seen)
    for op in sym.ops:  # helpers of the same file it calls: apply_rotary_pos_emb -> rotate_half
        helper = fa.symbol(op.name) if "." not in op.name else None  # a call, or a recognised helper (apply_rope)
        if helper is not None and helper.kind == "function":
            out += _reachable(helper, fa, seen)
    return out


def _ops(syms: list[Symbol]) -> list[OpCall]:
    return [o for s in syms for o in s.ops]


def _forward_ops(syms: list[Symbol]) -> list[OpCall]:
    return [o for s in syms for o in s.ops if s.in_call(o.location)]


def _finding(kind: str, message: str, a: str | None, b: str | None) -> dict:
    return {"kind": kind, "message": message, "a_location": a, "b_location": b}


MLX_APPROX = {"none": "exact", "precise": "tanh", "tanh": "tanh", "fast": "sigmoid"}  # mlx.nn.GELU(approx=...)


def _gelu_kind(op: OpCall) -> tuple[str, str]:
    """(which GELU: exact | tanh | sigmoid | unknown, how the code says it). `unknown`: the approximation is an
    argument whose value the caller decides (`nn.GELU(approx=approx)`), never assumed exact."""
    source = op.kwarg("approximate") or op.kwarg("approx") or ""
    approx = source.strip("'\"")
    short = op.name if op.name.startswith("ACT2FN[") else op.name.rsplit(".", 1)[-1]
    if op.name.startswith("ACT2FN["):
        return approx or "exact", f"{approx + ' approximation' if approx else 'exact (erf)'} ({short})"
    if source and approx == source:  # not a string literal: a name or an expression
        return "unknown", f"{short}({source})"
    if op.kwarg("approx") is not None and approx in MLX_APPROX:
        kind = MLX_APPROX[approx]
        return kind, (f"{kind} approximation" if kind != "exact" else "exact (erf)") + f" ({short}(approx={approx!r}))"
    if approx and approx != "none":
        return "tanh", f"tanh approximation ({short}(approximate={approx!r}))"
    if op.name.endswith("gelu_fast_approx"):
        return "sigmoid", f"sigmoid approximation ({short})"
    if op.name.endswith("gelu_approx"):
        return "tanh", f"tanh approximation ({short})"
    return "exact", "exact (erf)"


def _literal_float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _resolved(text: str | None, values: dict) -> tuple[float | None, str]:
    """A literal, or `config.layer_norm_eps` / `args.norm_eps` read from the values the side is built with."""
    value = _literal_float(text)
    if value is None and text and re.fullmatch(r"[A-Za-z_][\w.]*\.(\w+)", text):
        field = text.rsplit(".", 1)[-1]
        v = values.get(field)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v), f"{text}={v:g}"
    return value, ""


_CHOSEN_ACTIVATION = re.compile(r"ACT2FN\[|get_activation\(|ACT2CLS\[|getattr\(\s*(F|nn|torch|mx)\b")


# transformers' ACT2FN names -> (op, approximate) as the static diff compares them
NAMED_ACTIVATIONS = {"gelu": ("gelu", ""), "gelu_python": ("gelu", ""), "gelu_new": ("gelu", "tanh"),
                     "gelu_pytorch_tanh": ("gelu", "tanh"), "gelu_fast": ("gelu", "tanh"),
                     "gelu_python_tanh": ("gelu", "tanh"), "gelu_accurate": ("gelu", "tanh"),
                     "quick_gelu": ("gelu", "sigmoid"), "silu": ("silu", ""), "swish": ("silu", ""),
                     "relu": ("relu", ""), "tanh": ("tanh", ""), "sigmoid": ("sigmoid", "")}


def _attr_at(location: str, syms: list[Symbol]) -> str | None:
    """The `self.<attr> = ...` assigned at `location`, if any."""
    return next((attr for s in syms for attr, where in s.assign_locations if where == location), None)


def _walk(subs) -> list:
    return [x for sub in subs for x in (sub, *_walk(sub.children + sub.elements))]


def _chosen_activations(syms: list[Symbol], values: dict) -> tuple[list[OpCall], bool]:
    """Activations chosen by name (`self.act = ACT2FN[config.hidden_act]`), resolved through the values the side
    is built with into ops; and whether one could not be resolved (then a side is never said to use none)."""
    ops, unseen = [], False
    for s in syms:
        where = dict(s.assign_locations)
        for attr, src in s.self_assigns:
            if not _CHOSEN_ACTIVATION.search(src):
                continue
            m = re.search(r"\[\s*(?:[A-Za-z_][\w.]*\.)?(\w+)\s*\]|\[\s*['\"](\w+)['\"]\s*\]", src)
            name = (values.get(m.group(1)) if m and m.group(1) else m.group(2) if m else None)
            if isinstance(name, str) and name.lower() in NAMED_ACTIVATIONS:
                op, approx = NAMED_ACTIVATIONS[name.lower()]
                kwargs = (("approximate", repr(approx)),) if approx else ()
                ops.append(OpCall(op, f"ACT2FN[{name!r}]", where.get(attr, s.location), (), kwargs))
            else:
                unseen = True
    return ops, unseen


_BUILTINS = {"int", "float", "bool", "str", "len", "max", "min", "round", "abs", "sum", "tuple", "list", "dict", "set",
             "range", "super", "isinstance", "getattr", "hasattr"}


def _built_dynamically(syms: list[Symbol]) -> bool:
    """A submodule built from a class held in a variable or a table (`ffn_layer_class(config)`,
    `ATTENTION_CLASSES[impl](...)`, `layer_class = DECODER_LAYER_TYPES[kind]`): its code is not among the classes
    read, so its activations are unknown."""
    for s in syms:
        for _, src in s.self_assigns:
            m = re.match(r"([A-Za-z_]\w*)\(|[\w.]+\[[^\]]*\]\(", src.strip())
            if m and (m.group(1) is None or (m.group(1)[0].islower() and m.group(1) not in _BUILTINS)):
                return True
        if any(re.match(r"[A-Z][A-Z0-9_]*\[", src.strip()) for _, src in s.init_locals):  # a class from a table
            return True
    return False


def _calls_elsewhere(syms: list[Symbol], fa: FileAnalysis) -> bool:
    """A plain function imported from another module (mlx-lm's `swiglu` from `.activations`): its code is not
    among what was read, so the activation it may compute is unknown, never absent."""
    return any(op.op == "call" and op.name.isidentifier() and fa.symbol(op.name) is None
               and op.name not in _BUILTINS and not hasattr(builtins, op.name) for s in syms for op in s.ops)


def _eps_values(syms: list[Symbol], fw: str, values: dict | None = None) -> list[tuple[float, str, str]]:
    """(value, location, how) for every eps a norm uses: literal, argument default, a config field the side is
    built with, or the framework default."""
    out = []
    for s in syms:
        sites = [sub for other in syms for sub in _walk(other.submodules) if sub.type_name.rsplit(".", 1)[-1] == s.name]
        for i, arg in enumerate(s.init_args):
            if not re.search(r"eps|epsilon", arg.name) or _literal_float(arg.default) is None:
                continue
            passed = [dict(sub.kwargs).get(arg.name) or (sub.args[i] if len(sub.args) > i else None) for sub in sites]
            if sites and all(passed):  # every construction overrides the default: those values are the eps used
                for text, sub in zip(passed, sites):
                    value, how = _resolved(text, values or {})
                    if value is not None:
                        out.append((value, sub.location, how or f"{s.name}({arg.name}={text})"))
                continue
            out.append((_literal_float(arg.default), arg.location or s.location, f"{s.name}({arg.name}=...)"))
    for op in _ops(syms):
        if op.op not in NORMS or op.name.startswith(("self.", "<tensor>.")):  # calls a layer built elsewhere
            continue
        text = op.kwarg("eps")
        if text is None and op.op in ("layer_norm", "rms_norm") and len(op.args) >= 2 and "Norm" in op.name:
            text = op.args[1]
        if text is None and op.name.endswith(("rms_norm", "layer_norm")) and len(op.args) >= 3:
            text = op.args[2]  # mx.fast.rms_norm(x, w, eps)
        value, how = _resolved(text, values or {})
        if value is not None:
            out.append((value, op.location, how or op.name.rsplit(".", 1)[-1]))
        elif text is None and "Norm" in op.name and DEFAULT_EPS.get((fw, op.op)) not in (None, "None"):
            out.append((float(DEFAULT_EPS[(fw, op.op)]), op.location, f"{op.name.rsplit('.', 1)[-1]} default"))
    return out


MLX_ROPE_PARAMS = ("dims", "traditional", "base", "scale")  # mlx.nn.RoPE's positional order


def _flag(text: str | None, values: dict) -> bool | None:
    """True/False from a literal or from a config field the side is built with (`args.rope_traditional`)."""
    if text in ("True", "False"):
        return text == "True"
    if text and re.fullmatch(r"[A-Za-z_][\w.]*\.(\w+)", text):
        v = values.get(text.rsplit(".", 1)[-1])
        return v if isinstance(v, bool) else None
    return None


def _traditional(op: OpCall, values: dict) -> bool | None:
    text = op.kwarg("traditional")
    if text is None:
        name = op.name.split(" ")[0]
        root = name.split(".")[0]
        if name.endswith("RoPE") and root == "mlx":
            params: tuple[str, ...] | None = MLX_ROPE_PARAMS
        else:
            params = None if root in ("mlx", "torch", "<tensor>") else \
                function_params(name, op.location.rsplit(":", 1)[0])
        if params and "traditional" in params:
            i = params.index("traditional")
            text = op.args[i] if i < len(op.args) else ("False" if params is MLX_ROPE_PARAMS else None)
    return _flag(text, values)


def _rope_convention(syms: list[Symbol], values: dict | None = None) -> tuple[str, str] | None:
    """(convention, location): `traditional` of a RoPE layer or helper (keyword, positional, or a config field),
    a hand-written rotate-half/interleave, or a call to a `rotate_half` helper."""
    for op in _ops(syms):
        if op.op == "rope":
            flag = _traditional(op, values or {})
            if flag is not None:
                short = op.name.split(" ")[0].rsplit(".", 1)[-1]
                return (f"interleaved pairs ({short}: traditional=True)" if flag else
                        f"rotate-half ({short}: traditional=False)", op.location)
    for op in _ops(syms):
        if op.op == "call" and op.name.endswith("rotate_half"):
            return "rotate-half (rotate_half)", op.location
    return None


def static_diff(sa: Symbol, fa_a: FileAnalysis, sb: Symbol, fa_b: FileAnalysis, values_a: dict | None = None,
                values_b: dict | None = None) -> tuple[dict, ...]:
    """Findings between two symbols; `values_*` are the constructor settings each side is built with (by field
    name), so `eps=config.layer_norm_eps` is compared as the number it is."""
    syms_a, syms_b = _reachable(sa, fa_a), _reachable(sb, fa_b)
    named_a, unseen_a = _chosen_activations(syms_a, values_a or {})
    named_b, unseen_b = _chosen_activations(syms_b, values_b or {})
    unseen_a = unseen_a or _built_dynamically(syms_a) or _calls_elsewhere(syms_a, fa_a)
    unseen_b = unseen_b or _built_dynamically(syms_b) or _calls_elsewhere(syms_b, fa_b)
    ops_a, ops_b = _ops(syms_a) + named_a, _ops(syms_b) + named_b
    found: list[dict] = []
    if not all(any(s.call_lines != (0, 0) for s in syms) for syms in (syms_a, syms_b)):
        # one side's computation is not in the code read (a subclass of a library class): what it does is
        # unknown, never "absent"
        return tuple(_with_owners(f, syms_a, syms_b) for f in _side_findings(syms_a, syms_b))

    gelu_a = [(o, _gelu_kind(o)) for o in ops_a if o.op == "gelu"]
    gelu_b = [(o, _gelu_kind(o)) for o in ops_b if o.op == "gelu"]
    for (oa, ka), (ob, kb) in zip(gelu_a, gelu_b):
        if ka[0] != kb[0] and "unknown" not in (ka[0], kb[0]):
            found.append(_finding("approximation", f"GELU differs: A {ka[1]} vs B {kb[1]}", oa.location,
                                  ob.location))

    acts_a = {o.op: o for o in ops_a if o.op in ACTIVATIONS}
    acts_b = {o.op: o for o in ops_b if o.op in ACTIVATIONS}
    only_a = [k for k in acts_a if k not in acts_b]
    only_b = [k for k in acts_b if k not in acts_a]
    if (only_a or only_b) and not (only_b and not acts_a and unseen_a) and not (only_a and not acts_b and unseen_b):
        found.append(_finding("approximation", f"activations differ: A uses {', '.join(only_a) or '-'}, "
                                               f"B uses {', '.join(only_b) or '-'}",
                              acts_a[only_a[0]].location if only_a else None,
                              acts_b[only_b[0]].location if only_b else None))

    eps_a, eps_b = _eps_values(syms_a, sa.framework, values_a), _eps_values(syms_b, sb.framework, values_b)
    if eps_a and eps_b and {v for v, _, _ in eps_a} != {v for v, _, _ in eps_b}:
        vb, lb, hb = next(((v, l, h) for v, l, h in eps_b if v not in {x for x, _, _ in eps_a}), eps_b[0])
        attr = _attr_at(lb, syms_b)  # A's norm of the same name, where there is one
        va, la, ha = next(((v, l, h) for v, l, h in eps_a if v != vb and attr and _attr_at(l, syms_a) == attr),
                          next((x for x in eps_a if x[0] != vb), eps_a[0]))
        found.append(_finding("eps", f"eps differs: A {va:g} ({ha}) vs B {vb:g} ({hb})", la, lb))

    rope_a, rope_b = _rope_convention(syms_a, values_a), _rope_convention(syms_b, values_b)
    if rope_a and rope_b and rope_a[0].split(" ")[0] != rope_b[0].split(" ")[0]:
        found.append(_finding("permutation", f"RoPE convention differs: A {rope_a[0]} vs B {rope_b[0]}",
                              rope_a[1], rope_b[1]))

    up_a, up_b = _upcast(_forward_ops(syms_a)), _upcast(_forward_ops(syms_b))
    if (up_a is None) != (up_b is None) and not _upcasts_internally(ops_b if up_a else ops_a):
        side, op = ("A", up_a) if up_a else ("B", up_b)
        how = "softmax(precise=True)" if op.op == "softmax" else op.name.replace("<tensor>", "")
        found.append(_finding("precision", f"only {side} computes in float32 ({how}); the other computes in the "
                                           "input dtype", op.location if side == "A" else None,
                              op.location if side == "B" else None))

    scaled_a, scaled_b = _attention_scale(ops_a), _attention_scale(ops_b)
    if scaled_a is not None and scaled_b is not None and bool(scaled_a) != bool(scaled_b):
        side, op = ("A", scaled_a) if scaled_a else ("B", scaled_b)
        found.append(_finding("scale", f"only {side} scales the attention scores ({op.name}); the other applies "
                                       "softmax to unscaled q.k", op.location if side == "A" else None,
                              op.location if side == "B" else None))
    elif scaled_a and scaled_b:
        differs = attention_scale.compare(syms_a, syms_b)
        found += [differs] if differs else []

    found += _bias_flags(syms_a, syms_b)
    found += _side_findings(syms_a, syms_b)
    return tuple(_with_owners(f, syms_a, syms_b) for f in found)


def _owner(location: str | None, syms: list[Symbol]) -> str | None:
    """The class (or function) of `syms` whose code holds `location`: the last one defined above it."""
    if not location:
        return None
    path, line = location.rsplit(":", 1)
    above = [s for s in syms if s.location.rsplit(":", 1)[0] == path and int(s.location.rsplit(":", 1)[1]) <= int(line)]
    return max(above, key=lambda s: int(s.location.rsplit(":", 1)[1])).name if above else None


def _with_owners(f: dict, syms_a: list[Symbol], syms_b: list[Symbol]) -> dict:
    """`a_symbol`/`b_symbol`: the classes the finding lies in, so a root-cause module can claim it."""
    return {**f, "a_symbol": _owner(f["a_location"], syms_a), "b_symbol": _owner(f["b_location"], syms_b)}


def _side_findings(syms_a: list[Symbol], syms_b: list[Symbol]) -> list[dict]:
    found = []
    for side, syms in (("A", syms_a), ("B", syms_b)):
        for s in syms:
            for f in s.findings:
                if f.kind in ("device", "dtype") or (f.kind == "random" and "dropout" not in f.message
                                                       and s.in_call(f.location)):  # not a parameter's init
                    kind = {"random": "nondeterministic"}.get(f.kind, f.kind)
                    found.append(_finding(kind, f"{side}: {f.message}", f.location if side == "A" else None,
                                          f.location if side == "B" else None))
    return found


def _attention_scale(ops: list[OpCall]) -> OpCall | bool | None:
    """None: no attention here; the op that scales the scores (SDPA scales by default); False: unscaled."""
    sdpa = next((o for o in ops if o.op == "scaled_dot_product_attention"), None)
    if sdpa is not None:
        return sdpa
    if not (any(o.op == "softmax" for o in ops) and any(o.op in ("matmul", "einsum") for o in ops)):
        return None
    return next((o for o in ops if o.op == "attn_scale"), False)


def _upcast(forward_ops: list[OpCall]) -> OpCall | None:
    """The first explicit float32 upcast in forward: a cast to float32 or a softmax(precise=True)."""
    for o in forward_ops:
        if o.op == "cast" and "float32" in " ".join(o.args + tuple(v for _, v in o.kwargs)):
            return o
        if o.op == "softmax" and (o.kwarg("precise") or "").strip() == "True":
            return o
    return None


def _upcasts_internally(ops: list[OpCall]) -> bool:
    """Fused framework kernels (mx.fast.rms_norm, F.layer_norm, nn.LayerNorm, SDPA) accumulate in float32."""
    fused = ("layer_norm", "rms_norm", "group_norm", "scaled_dot_product_attention")
    return any(o.op in fused and not o.name.startswith("<tensor>") for o in ops)


def _bias_flags(syms_a: list[Symbol], syms_b: list[Symbol]) -> list[dict]:
    def layers(syms):
        out = []
        for s in syms:
            stack = list(s.submodules)
            while stack:
                sub = stack.pop(0)
                stack.extend(sub.children)
                if sub.type_name.rsplit(".", 1)[-1] in ("Linear", "Conv1d", "Conv2d"):
                    out.append(sub)
        return out

    found = []
    la, lb = layers(syms_a), layers(syms_b)
    pairs = []
    for x in list(la):  # q with q, k with k (declaration orders differ), the rest in order
        role = module_role(x.attr)
        y = next((y for y in lb if role and module_role(y.attr) == role), None)
        if y is not None:
            pairs.append((x, y))
            la.remove(x)
            lb.remove(y)
    if not any(module_role(x.attr) for x in la + lb):
        pairs += list(zip(la, lb))
    for sa, sb in pairs:
        ba, bb = dict(sa.kwargs).get("bias", "True"), dict(sb.kwargs).get("bias", "True")
        if {ba, bb} <= {"True", "False"} and ba != bb:  # `bias=config.attention_bias` is not known here
            found.append(_finding("missing_parameter", f"bias flag differs: A self.{sa.attr} bias={ba}, "
                                                       f"B self.{sb.attr} bias={bb}", sa.location, sb.location))
    return found
