"""Constructor settings of both sides, made consistent: B takes A's value for every setting that matches by name
or by role (hidden size, heads, eps, rope theta, ...), and declared defaults that differ become static findings."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from parity_skill.analyze.model import FileAnalysis, Symbol
from parity_skill.plan.construct import config_class_for, literal, role_of
from parity_skill.spec import Config

REPORTED_ROLES = ("eps", "base", "heads", "kv_heads", "head_dim", "max_seq", "activation")


@dataclass(frozen=True)
class Setting:
    path: str  # `eps` or `config.layer_norm_eps`
    value: Any
    origin: str  # default (declared in the code) | chosen (by the tool) | given (--init)
    location: str = ""
    role: str = ""

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def settings(sym: Symbol, fa: FileAnalysis, init: dict[str, Any], overrides: dict[str, Any]) -> list[Setting]:
    """Every constructor value a side is built with: chosen, given, or left at a literal default."""
    out: list[Setting] = []
    top = tuple(a.name for a in sym.init_args)

    def role(name: str, siblings: tuple[str, ...]) -> str:
        return (role_of(name, siblings) or ("",))[0]

    for arg in sym.init_args:
        value = init.get(arg.name)
        if isinstance(value, Config):
            _, cfg = config_class_for(arg, sym, fa)
            fields = {f.name: f for f in cfg.fields} if cfg else {}
            names = tuple(fields) or tuple(value.kwargs)
            for name, v in value.kwargs.items():
                origin = "given" if name in overrides or f"{arg.name}.{name}" in overrides else "chosen"
                loc = fields[name].location if name in fields else ""
                out.append(Setting(f"{arg.name}.{name}", v, origin, loc, role(name, names)))
            for name, f in fields.items():
                ok, v = literal(f.default)
                if name not in value.kwargs and ok:
                    out.append(Setting(f"{arg.name}.{name}", v, "default", f.location, role(name, names)))
        elif arg.name in init:
            out.append(Setting(arg.name, value, "given" if arg.name in overrides else "chosen", arg.location,
                               role(arg.name, top)))
        else:
            ok, v = literal(arg.default)
            if ok:
                out.append(Setting(arg.name, v, "default", arg.location, role(arg.name, top)))
    return out


def _counterpart(s: Setting, theirs: list[Setting], read: set[str] = frozenset()) -> Setting | None:
    """A's setting for B's `s`: same path, same name, else the one A setting of the same role (among the config
    fields A's code reads, when it reads several of that role: d_model, not classifier_proj_size)."""
    same = [t for t in theirs if t.path == s.path] or [t for t in theirs if t.name == s.name and
                                                       ("." in t.path) == ("." in s.path)] or \
        [t for t in theirs if t.name == s.name]
    if same:
        return same[0]
    if not s.role:
        return None
    alike = [t for t in theirs if t.role == s.role]
    alike = [t for t in alike if t.name in read] or alike
    values = {repr(t.value) for t in alike}
    return alike[0] if len(values) == 1 else None


def _effective(found: list[Setting]) -> list[Setting]:
    """Settings left None that a config resolves from others, as every transformers-style config does:
    `num_key_value_heads=None` means one kv head per head, `head_dim=None` means hidden size / heads."""
    by_role = {s.role: s.value for s in found if _number(s.value)}
    out = []
    for s in found:
        if s.value is None and s.role == "kv_heads" and "heads" in by_role:
            s = replace(s, value=by_role["heads"], origin="chosen")
        elif s.value is None and s.role == "head_dim" and by_role.get("heads") and "dim" in by_role:
            s = replace(s, value=by_role["dim"] // by_role["heads"], origin="chosen")
        out.append(s)
    return out


def _set(init: dict[str, Any], path: str, value: Any) -> None:
    head, _, field = path.partition(".")
    if field:
        cfg = init[head]
        init[head] = replace(cfg, kwargs={**cfg.kwargs, field: value})
    else:
        init[head] = value


def harmonize(set_a: list[Setting], set_b: list[Setting], init_b: dict[str, Any],
              sym_b: str, read_a: set[str] = frozenset()) -> tuple[dict[str, Any], list[tuple[str, dict]], list[str]]:
    """(B's constructor values with A's where they correspond, (role, finding) pairs, notes).

    Values the tool chose take A's. Declared defaults that differ are findings; a config object's field takes A's
    value (in use both sides load one config file), a layer's own keyword default stays B's (callers that rely on
    it get B's behaviour, so the checks must see it)."""
    init_b = dict(init_b)
    set_a = _effective(set_a)
    findings: list[tuple[str, dict]] = []
    changed: list[str] = []
    for s in set_b:
        if s.origin == "given":
            continue
        a = _counterpart(s, set_a, read_a)
        if a is not None and isinstance(a.value, bool) and isinstance(s.value, bool) and a.value != s.value \
                and a.name == s.name and "." in s.path:  # tie_word_embeddings, attention_bias: one config file
            if s.origin == "default" and a.origin == "default":
                findings.append((s.name, {"kind": "setting", "message": f"{s.name} differs: A declares "
                                          f"{a.path}={a.value!r}, B declares {s.path}={s.value!r}; both ran with "
                                          "A's value (load one config into both if this is not intended)",
                                          "a_location": a.location or None, "b_location": s.location or None}))
            _set(init_b, s.path, a.value)
            changed.append(f"{s.path}={a.value!r}")
            continue
        if a is None or not _number(a.value) or a.value == s.value:
            continue
        if s.value is None and "." in s.path:  # a config field B leaves unset (`rope_theta=None`) takes A's
            _set(init_b, s.path, a.value)
            changed.append(f"{s.path}={a.value!r}")
            continue
        if not _number(s.value):
            continue
        if isinstance(s.value, int) and isinstance(a.value, float) and not a.value.is_integer():
            continue
        role = s.role
        both_declared = s.origin == "default" and a.origin == "default"
        in_config = "." in s.path
        if both_declared and (role in REPORTED_ROLES or a.name == s.name):
            ran = "both ran with A's value (load one config into both if this is not intended)" if in_config \
                else "each side ran with its own default"
            findings.append((role, {"kind": "setting", "message": f"{role or s.name} differs: A declares "
                                    f"{a.path}={a.value!r}, B declares {s.path}={s.value!r}; {ran}",
                                    "a_location": a.location or None, "b_location": s.location or None}))
        if both_declared and not in_config:
            continue
        _set(init_b, s.path, type(s.value)(a.value))
        changed.append(f"{s.path}={a.value!r}")
    notes = [f"{sym_b}: built with A's values for {', '.join(changed)}"] if changed else []
    return init_b, findings, notes


def _dims(params) -> set[int] | None:
    shapes = [p.shape for p in params]
    if not shapes or any(shape is None for shape in shapes):
        return None
    return {d for shape in shapes for d in shape}


def match_widths(set_x: list[Setting], init_x: dict[str, Any], params_x, params_y, sym_x: str,
                 read_x: set[str] = frozenset()) -> tuple[dict[str, Any], list[str]]:
    """A feed-forward width the tool chose on side X, where side Y derives its own from the model width
    (`n_mlp = n_state * 4`): X takes Y's, so both build the same layer (else no weight could map)."""
    dims_x, dims_y = _dims(params_x), _dims(params_y)
    if dims_x is None or dims_y is None or len(dims_y - dims_x) != 1:
        return init_x, []
    width = next(iter(dims_y - dims_x))
    for s in sorted(set_x, key=lambda s: "." in s.path and s.name not in read_x):  # fields the code reads first
        if s.role == "hidden" and s.origin == "chosen" and s.value in dims_x - dims_y:
            init_x = dict(init_x)
            _set(init_x, s.path, width)
            return init_x, [f"{sym_x}: {s.path}={width}, the width the other side derives for the same layer"]
    return init_x, []
