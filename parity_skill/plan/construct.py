"""Choose constructor arguments: defaults where given, small consistent values by role where required."""
from __future__ import annotations

import ast
import re
from typing import Any

from parity_skill.analyze import configs
from parity_skill.analyze.model import Arg, ConfigClass, FileAnalysis, Symbol
from parity_skill.roles import BATCH, SEQ, SIZE_ROLES, role_of  # noqa: F401 - BATCH/SEQ re-exported
from parity_skill.plan.config_sizes import MAX_SOURCE, consistent_sizes, fix_divisibility, literal  # noqa: F401 - re-exported
from parity_skill.spec import Config


GUESS_END = " (override with --init)"
_DEVICE_KERNELS = re.compile(r"use_\w*(kernel|cuda|triton)s?$")  # a switch to compiled GPU kernels


def choose(arg: Arg, notes: list[str], where: str, siblings: tuple[str, ...] = ()) -> tuple[bool, Any]:
    """(include?, value) for one argument; defaults are kept unless they are large sizes."""
    ann = (arg.annotation or "").replace("'", "").strip()
    role = None if ann in ("bool", "str") else role_of(arg.name, siblings)  # `tie_word_embeddings: bool`
    ok, value = literal(arg.default)
    if arg.default is not None:
        if ok and value is None and role and role[0] == "layer_index":  # `layer_idx=None` breaks `layer_idx % n`
            return True, role[1]
        if ok and value is None and role and role[0] == "kv_heads":  # None: one per head; fewer exercises GQA
            notes.append(f"{where}{arg.name}: default None (one kv head per head) set to {role[1]} so grouped "
                         f"heads are checked")
            return True, role[1]
        if ok and role and role[0] == "token_id" and isinstance(value, int) and value >= SIZE_ROLES["vocab_small"]:
            small = value % SIZE_ROLES["vocab_small"]  # ids of special tokens stay distinct, inside the small vocab
            notes.append(f"{where}{arg.name}: default {value} replaced by {small} to fit the small vocabulary")
            return True, small
        if ok and value is True and _DEVICE_KERNELS.match(arg.name):  # Jamba's use_mamba_kernels: CUDA only
            notes.append(f"{where}{arg.name}: default True set to False: compiled kernels this CPU machine lacks; "
                         "the library's own reference path runs on both sides")
            return True, False
        if ok and role and role[0] in SIZE_ROLES and isinstance(value, int) and not isinstance(value, bool):
            if value > SIZE_ROLES[role[0]] or (value <= 0 and role[0] in ("vocab", "dim", "hidden")):
                notes.append(f"{where}{arg.name}: default {value} replaced by {role[1]} to keep the check small")
                return True, role[1]
        return False, None
    if role:
        return True, role[1]
    ann = ann.lower()
    guess: Any = "" if "str" in ann else 1.0 if "float" in ann else False if "bool" in ann else \
        False if re.match(r"(use|is|add|output|return|has|enable|with)_", arg.name) else 8
    notes.append(f"{where}{arg.name}: required and of unknown role; guessed {guess!r}{GUESS_END}")
    return True, guess


def config_value(cfg: ConfigClass, overrides: dict[str, Any], notes: list[str], used: set[str],
                 param: str = "", real: dict[str, Any] | None = None) -> Config:
    """The config built small by role, or from `real` (--config FILE.json: the user's real config, not shrunk),
    with --init fields over either."""
    kwargs: dict[str, Any] = {}
    given: set[str] = set()
    if real:
        names = {f.name for f in cfg.fields}
        kwargs = {k: v for k, v in real.items() if k in names or cfg.accepts_any}
        given = set(kwargs)
        left = sorted(set(real) - set(kwargs))
        notes.append(f"{cfg.name}: built from --config ({len(kwargs)} fields, not shrunk)"
                     + (f"; {cfg.name} takes no {', '.join(left[:8])}" if left else ""))
    for f in cfg.fields:
        if f.kind in ("vararg", "varkw"):
            continue
        key = next((k for k in (f"{param}.{f.name}", f.name) if k in overrides), None)
        if key is None and f.name in given:
            continue
        if key is not None:
            kwargs[f.name] = overrides[key]
            used.add(key)
            given.add(f.name)
            continue
        include, value = choose(f, notes, f"{cfg.name}.", tuple(x.name for x in cfg.fields))
        if include:
            kwargs[f.name] = value
    consistent_sizes(cfg, kwargs, given, notes)
    defaults = {}
    for f in cfg.fields:
        ok, value = literal(f.default)
        if ok and f.name not in kwargs:
            defaults[f.name] = value
    for alias, target in cfg.aliases:  # config.hidden_size reads n_embd
        value = kwargs.get(target, defaults.get(target))
        if value is not None and alias not in kwargs:
            defaults[alias] = value
    return Config(cfg.name, kwargs, defaults=defaults)


def namespace_value(fields: list[str], param: str, overrides: dict[str, Any], notes: list[str],
                    used: set[str]) -> Config:
    """An untyped config argument whose class is unknown: a namespace of the fields the code reads."""
    kwargs: dict[str, Any] = {}
    for name in fields:
        key = next((k for k in (f"{param}.{name}", name) if k in overrides), None)
        if key is not None:
            kwargs[name], _ = overrides[key], used.add(key)
        else:
            kwargs[name] = choose(Arg(name), notes, f"{param}.")[1]
    fix_divisibility(kwargs)
    if fields:
        notes.append(f"{param}: no config class found; a namespace of the {len(fields)} fields the code reads")
    return Config("", kwargs)


def _annotation_name(arg: Arg) -> str:
    ann = (arg.annotation or "").strip("'\"")
    ann = re.sub(r"^(typing\.)?Optional\[(.*)\]$", r"\2", ann)
    ann = re.sub(r"\s*\|\s*None$", "", ann)
    return ann if re.fullmatch(r"[A-Za-z_][\w.]*", ann) else ""


_BASE_CONFIGS = re.compile(r"(^|\.)(Pretrained|PreTrained)Config$")


def _union_members(arg: Arg) -> list[str]:
    """`Union[VisionCfg, TextCfg]` / `VisionCfg | TextCfg` -> the member names, in order ([] otherwise)."""
    ann = (arg.annotation or "").strip("'\"")
    m = re.fullmatch(r"(?:typing\.)?Union\[(.*)\]", ann)
    parts = m.group(1).split(",") if m else ann.split("|") if "|" in ann else []
    return [p.strip() for p in parts if re.fullmatch(r"[A-Za-z_][\w.]*", p.strip()) and p.strip() != "None"]


def config_class_for(arg: Arg, sym: Symbol, fa: FileAnalysis) -> tuple[bool, ConfigClass | None]:
    """(is this argument a config object?, its class if known). The candidates, nearest first: its annotation (a
    union: each config member; a framework base class such as `PretrainedConfig`: the class the file's models
    declare), then the classes the file's builders of `sym` hand it down (their annotations, up the chain), then
    the class the file's models declare. The first whose fields include every field the code reads wins: an
    annotation can be wrong (a port's `config: ModelArgs` layer really gets the VisionConfig its tower holds)."""
    candidates = _own_candidates(arg, fa)
    looks = bool(candidates) or bool(configs.CONFIG_PARAM.match(arg.name)) or \
        any(p == arg.name for p, _ in sym.config_uses)
    if not looks or (not candidates and (arg.default is not None or arg.kind not in ("positional", "kwonly"))):
        return False, None
    if arg.kind in ("positional", "kwonly"):
        candidates += _handed_down(sym, arg.name, fa, 0)
    if not candidates:
        name = configs.file_config_class(fa.path)
        found = configs.config_class(name, fa.path) if name else None
        candidates = [found] if found else []
    if not candidates:
        return True, None
    reads = set(read_fields(sym, arg.name, fa))
    fitting = [c for c in candidates if c.accepts_any or reads <= {f.name for f in c.fields} | dict(c.aliases).keys()]
    return True, (fitting or candidates)[0]


def _own_candidates(arg: Arg, fa: FileAnalysis) -> list[ConfigClass]:
    out = []
    for member in _union_members(arg) or [_annotation_name(arg)]:
        if not member:
            continue
        if _BASE_CONFIGS.search(member):
            name = configs.file_config_class(fa.path)
            member = name or member
        cfg = configs.config_class(member, fa.path) or fa.config(member.rsplit(".", 1)[-1])
        if cfg is not None:
            out.append(cfg)
    return out


def _handed_down(sym: Symbol, param: str, fa: FileAnalysis, depth: int) -> list[ConfigClass]:
    """The config classes the file's builders of `sym` hand its `param` (their own candidates, up the chain):
    `SiglipEncoderLayer(config: Union[SiglipVisionConfig, ...])` builds `SiglipAttention(config)`."""
    if depth > 4:
        return []
    positional = [a.name for a in sym.init_args if a.kind == "positional"]
    index = positional.index(param) if param in positional else None
    out: list[ConfigClass] = []
    for owner in fa.symbols:
        rebound = {n for n, _ in owner.init_locals}  # `config = config.vision_config`: not the argument any more
        for name, args, kwargs in owner.constructs:
            if name != sym.name or owner is sym:
                continue
            sources = ([args[index]] if index is not None and index < len(args) else []) + \
                [v for k, v in kwargs if k == param]
            for source in sources:
                mine = next((a for a in owner.init_args if a.name == source and source not in rebound), None)
                if mine is not None:
                    out += [c for c in _own_candidates(mine, fa) + _handed_down(owner, mine.name, fa, depth + 1)
                            if c not in out]
    return out


def read_fields(sym: Symbol, param: str, fa: FileAnalysis, seen: set | None = None) -> list[str]:
    """Fields of `param` the code reads, here and in the same-file classes it hands the object to."""
    seen = seen if seen is not None else set()
    if (sym.name, param) in seen:
        return []
    seen.add((sym.name, param))
    out = [f for p, f in sym.config_uses if p == param]
    for name, args, kwargs in sym.constructs:
        local = fa.symbol(name.rsplit(".", 1)[-1])
        if local is None or local.kind != "module":
            continue
        positional = [a for a in local.init_args if a.kind == "positional"]
        targets = [a.name for a, src in zip(positional, args) if src == param]
        targets += [k for k, src in kwargs if src == param]
        for target in targets:
            out += read_fields(local, target, fa, seen)
    return list(dict.fromkeys(out))


def constructor_args(sym: Symbol, fa: FileAnalysis, overrides: dict[str, Any], notes: list[str],
                     used: set[str] | None = None, real: dict[str, Any] | None = None,
                     guessed: list[str] | None = None) -> dict[str, Any]:
    """Keyword arguments for `sym`'s constructor; config-object arguments become Config values. The override
    keys that matched something are added to `used`; the notes of arguments guessed for lack of any role, to
    `guessed`."""
    used = used if used is not None else set()
    init: dict[str, Any] = {}
    built_as = _as_built(sym, fa)
    for arg in sym.init_args:
        if arg.kind in ("vararg", "varkw"):
            continue
        if arg.name in overrides:
            init[arg.name] = overrides[arg.name]
            used.add(arg.name)
            continue
        if arg.name in built_as:  # the value the model around it builds it with (`Attention(..., bias=True)`)
            init[arg.name] = built_as[arg.name]
            notes.append(f"{sym.name}({arg.name}={built_as[arg.name]!r}): as the classes of its file build it")
            continue
        is_config, cfg = config_class_for(arg, sym, fa)
        if cfg is not None:
            init[arg.name] = config_value(cfg, overrides, notes, used, arg.name, real)
        elif is_config:
            init[arg.name] = namespace_value(read_fields(sym, arg.name, fa), arg.name, overrides, notes, used)
        else:
            before = len(notes)
            include, value = choose(arg, notes, f"{sym.name}(", tuple(x.name for x in sym.init_args))
            if guessed is not None and len(notes) > before and notes[-1].endswith(GUESS_END):
                guessed.append(notes[-1])
            if include:
                init[arg.name] = value
    fix_divisibility(init)
    return init


def _as_built(sym: Symbol, fa: FileAnalysis, depth: int = 0) -> dict[str, Any]:
    """Literal keyword values every class of the file that builds `sym` passes alike (a port's `Attention` whose
    own default is bias=False but which its layer always builds with bias=True), also through an argument the
    builder takes and is built with (`Encoder(config, approx="precise")` builds `EncoderLayer(config,
    approx=approx)`)."""
    seen: dict[str, set] = {}
    calls = [(owner, c) for owner in fa.symbols if owner is not sym for c in owner.constructs if c[0] == sym.name]
    for owner, (_, _, kwargs) in calls:
        passed = _as_built(owner, fa, depth + 1) if depth < 3 else {}
        for key, source in kwargs:
            ok, value = literal(source)
            if not ok and source in passed and source not in {n for n, _ in owner.init_locals}:
                ok, value = True, passed[source]
            seen.setdefault(key, set()).add(repr(value) if ok else "<expr>")
    out = {}
    for key, values in seen.items():
        if len(values) == 1 and "<expr>" not in values and all(any(k == key for k, _ in c[2]) for _, c in calls):
            out[key] = literal(next(iter(values)))[1]
    return out


def environment(sym: Symbol, init: dict[str, Any]) -> dict[str, Any]:
    """Names visible in `__init__` after construction: arguments (with defaults), config fields, self.x."""
    env: dict[str, Any] = {}
    for arg in sym.init_args:
        ok, value = literal(arg.default)
        if ok:
            env[arg.name] = value
    for key, value in init.items():
        env[key] = {**value.kwargs, **value.defaults} if isinstance(value, Config) else value
    for name, source in sym.init_locals:
        value = evaluate(source, env)
        if value is not None and name not in env:
            env[name] = value
    for attr, source in sym.self_assigns:
        value = evaluate(source, env)
        if value is not None:
            env[f"self.{attr}"] = value
    return env


def _pow(a, b):
    if abs(b) > 64 or abs(a) > 2 ** 32:
        raise ValueError("power too large to be a size")
    return a ** b


_BINOPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
           ast.FloorDiv: lambda a, b: a // b, ast.Div: lambda a, b: a / b, ast.Pow: _pow,
           ast.Mod: lambda a, b: a % b}
LIMIT = 2 ** 62  # a size expression past this is not a size: unknown


def _number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("not a number")
    if abs(value) > LIMIT:
        raise ValueError("too large to be a size")
    return value


def evaluate(source: str, env: dict[str, Any]) -> Any:
    """Evaluate a small size expression (`dim * 4`, `args.dim // args.n_heads`, `int(2 * h / 3)`); None if not.

    Arithmetic on numbers only, every intermediate bounded (a default of `10 ** 10 ** 8` is simply unknown): the
    analyzer never spends unbounded time or memory on a user's expression."""
    if len(source) > MAX_SOURCE:
        return None
    try:
        return _eval(ast.parse(source, mode="eval").body, env)
    except Exception:  # noqa: BLE001 - anything we cannot evaluate is simply unknown
        return None


def _eval(node: ast.AST, env: dict[str, Any]) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.Attribute):
        if isinstance(node.value, ast.Name) and node.value.id == "self":
            return env[f"self.{node.attr}"]
        base = _eval(node.value, env)
        return base[node.attr] if isinstance(base, dict) else getattr(base, node.attr)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = _number(_eval(node.left, env)), _number(_eval(node.right, env))
        return _number(_BINOPS[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_number(_eval(node.operand, env))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("int", "min", "max"):
        fn = {"int": int, "min": min, "max": max}[node.func.id]
        return fn(*(_eval(a, env) for a in node.args))
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
        for value in node.values:
            result = _eval(value, env)
            if result:
                return result
        return result
    if isinstance(node, (ast.Tuple, ast.List)):
        return tuple(_eval(e, env) for e in node.elts)
    raise ValueError(ast.dump(node))
