"""Stage 2: turn two analyses and the user's options into a ParityPlan (pure data, no user code runs)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from parity_skill.analyze import FileAnalysis, Symbol, analyze_file
from parity_skill.analyze.imported import inherited_view
from parity_skill.errors import InputError
from parity_skill.plan.weight_map import match_parameters
from parity_skill.plan.companions import built_by, companion_args, plan_companions
from parity_skill.plan.config_sizes import layer_period
from parity_skill.plan.construct import constructor_args, environment, read_fields
from parity_skill.plan.inputs import INT_NAMES, QKV_NAMES, fixed_args, is_array_arg, plan_inputs
from parity_skill.plan.pairing import pair_symbols
from parity_skill.plan.params import static_parameters
from parity_skill.plan.settings import harmonize, match_widths, settings
from parity_skill.plan.static_diff import static_diff
from parity_skill.plan.tolerances import tolerance_table
from parity_skill.plan import processors
from parity_skill.plan.variants import cross_variant, mask_variant
from parity_skill.spec import ALL_EDGES, DEFAULT_DTYPES, Checks, Config, Implementation, InputSpec, PairSpec


@dataclass(frozen=True)
class Target:
    """`path::symbol`, `path` (every symbol), or a dotted reference such as torch.nn.LayerNorm (path None)."""

    path: str | None
    symbol: str | None = None

    @property
    def display(self) -> str:
        return f"{self.path}::{self.symbol}" if self.path and self.symbol else (self.path or self.symbol or "")


@dataclass(frozen=True)
class PlanOptions:
    init: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, InputSpec] = field(default_factory=dict)
    atol: float | None = None
    rtol: float | None = None
    level: str = "layer"
    cosine: float | None = None
    dtypes: tuple[str, ...] = DEFAULT_DTYPES
    batch_sizes: tuple[int, ...] = (1, 4)
    edges: tuple[str, ...] = ALL_EDGES
    backward: bool = True
    quick: bool = False
    seed: int = 0
    layout_b: tuple[int, ...] | None = None  # () = same as A; (0, 2, 1) = B takes channels-last
    isolate: bool = False
    map_rules: tuple[str, ...] = ()  # --map FILE, one rule per line
    convert: str = ""  # --convert sanitize: B's own state-dict converter
    sampling: tuple[tuple[str, float], ...] = ()  # --sampling temperature=0.8,top_p=0.95 (or --logits: T=1)
    generate: int = 0  # --generate N
    strict: bool = False  # --strict: warnings fail
    config: dict[str, Any] = field(default_factory=dict)  # --config FILE.json: the real config, for both sides
    stream: bool = False  # --stream: one block at a time (runtime/stream/)


@dataclass(frozen=True)
class ParityPlan:
    pairs: tuple[PairSpec, ...]
    notes: tuple[str, ...] = ()
    unpaired: dict[str, tuple[str, ...]] = field(default_factory=lambda: {"a": (), "b": ()})  # whole files


def check_names(opts: PlanOptions) -> tuple[str, ...]:
    if opts.stream:  # the per-block table is the check
        return ("stream",)
    names = ["forward"] + (["backward"] if opts.backward else []) + (["sampling"] if opts.sampling else []) + \
        (["generate"] if opts.generate else [])
    if opts.quick:
        return tuple(names)
    for dt in ("fp16", "bf16"):
        if dt in opts.dtypes:
            names += [dt] + ([f"backward_{dt}"] if opts.backward else [])
    if len(opts.batch_sizes) > 1 or max(opts.batch_sizes) > 1:
        names.append("batch")
    names += [f"edge:{e}" for e in opts.edges]
    return tuple(names + ["determinism:a", "determinism:b"])


_LEVEL_WHY = {"layer": "builds no module of its own file or framework", "chain": "builds modules",
              "model": "builds a stack of repeated modules"}


def auto_level(sym: Symbol) -> str:
    """--level auto for a pair: model when the symbol builds a stack of repeated modules (a comprehension or a
    container of them), chain when it builds modules, layer otherwise."""
    subs = list(sym.submodules)
    if any(s.elements or s.children for s in subs):
        return "model"
    return "chain" if subs else "layer"


def _implementation(target_path: str, sym: Symbol, init: dict[str, Any], companions: tuple = (),
                    fixed: dict[str, Any] | None = None) -> Implementation:
    return Implementation(target_path, sym.name, sym.framework, sym.kind, init, companions, fixed or {})


def plan_pair(fa_a: FileAnalysis, sa: Symbol, fa_b: FileAnalysis | None, sb: Symbol | None, opts: PlanOptions,
              reference: str | None = None, used: set[str] | None = None) -> PairSpec:
    """One pair's plan. A class built on a library's class without a constructor of its own is planned as that class
    (analyze/imported.py), and still built from its own file."""
    path_a, path_b = fa_a.path, fa_b.path if fa_b is not None else None
    sa, fa_a = inherited_view(sa, fa_a)
    if sb is not None and fa_b is not None:
        sb, fa_b = inherited_view(sb, fa_b)
    notes: list[str] = [f"{s.name}: no constructor of its own; planned as {f.path}'s class it derives from"
                        for s, f, path in ((sa, fa_a, path_a), (sb, fa_b, path_b)) if f is not None and f.path != path]
    used = used if used is not None else set()
    guessed_a: list[str] = []
    init_a = constructor_args(sa, fa_a, opts.init, notes, used, opts.config, guessed_a) if sa.kind == "module" else {}
    derived_a = companion_args(sa, fa_a, set(opts.inputs))
    derived_b = companion_args(sb, fa_b, set(opts.inputs)) if sb is not None else {}
    wanted = {x.name for k, x in enumerate(sb.call_args) if is_array_arg(x, k == 0) and x.name not in derived_b} if sb is not None \
        else set()
    inputs, guesses_a = plan_inputs(sa, fa_a, init_a, opts.inputs, notes, wanted, set(derived_a))
    a = _implementation(path_a, sa, init_a,
                        plan_companions(sa, fa_a, init_a, derived_a, inputs, opts.init, notes),
                        fixed_args(sa, set(derived_a) | set(opts.inputs), notes))
    level = auto_level(sa) if opts.level == "auto" else opts.level
    if opts.level == "auto":
        notes.append(f"--level auto: {level} ({_LEVEL_WHY[level]})")
    checks = Checks(check_names(opts), tolerance_table(level, opts.atol, opts.rtol), opts.batch_sizes,
                    opts.cosine, seed=opts.seed, isolate=opts.isolate, sampling=opts.sampling,
                    generate=opts.generate, strict=opts.strict, stream=opts.stream)
    set_a = settings(sa, fa_a, init_a, opts.init) if sa.kind == "module" else []
    if sb is None:  # reference mode: B is an importable dotted path; the runtime carries A's arguments over
        carried = {**{s.path: s.value for s in set_a if "." not in s.path}, **init_a}  # A's defaults too (eps)
        b = Implementation(None, reference or "", reference.split(".")[0] if reference else "torch",
                           sa.kind, carried)
        a = replace(a, built_by=built_by(sa, fa_a, a.init, guessed_a, opts.init, notes))
        return PairSpec(a, b, inputs, (), checks, (), tuple(notes))
    guessed_b: list[str] = []
    init_b = constructor_args(sb, fa_b, opts.init, notes, used, opts.config, guessed_b) if sb.kind == "module" else {}
    setting_findings: list = []
    values_a = {x.name: x.value for x in set_a}
    values_b: dict = {}
    if sb.kind == "module":
        init_b, setting_findings, more = harmonize(set_a, settings(sb, fa_b, init_b, opts.init), init_b, sb.name,
                                                   _read(sa, fa_a, init_a))
        notes += more
        if sa.kind == "module":
            init_a, init_b = _match_widths(sa, fa_a, init_a, sb, fa_b, init_b, opts, notes)
            init_a, init_b = layer_period(init_a, init_b, set(opts.init), notes)
            a = replace(a, init=init_a)
        values_b = {x.name: x.value for x in settings(sb, fa_b, init_b, opts.init)}
    findings = static_diff(sa, fa_a, sb, fa_b, values_a, values_b)
    reported = {f["kind"] for f in findings}
    setting_findings = [f for role, f in setting_findings if role not in reported]  # one finding per role
    b = replace(_implementation(path_b, sb, init_b,
                                plan_companions(sb, fa_b, init_b, derived_b, inputs, opts.init, notes),
                                fixed_args(sb, set(derived_b) | set(opts.inputs), notes)),
                built_by=built_by(sb, fa_b, init_b, guessed_b, opts.init, notes))
    inputs = _with_layout(inputs, guesses_a, plan_inputs(sb, fa_b, init_b, opts.inputs, [], set(), set(derived_b))[1],
                          opts.layout_b, notes)
    inputs = _keywords(inputs, sa, sb, set(derived_b))
    b = replace(b, aliases=_self_attention(sb, inputs, set(derived_b) | set(b.fixed), notes))
    entries = ()
    if sa.kind == "module" and sb.kind == "module":
        params_a = static_parameters(sa, fa_a, environment(sa, init_a))
        params_b = static_parameters(sb, fa_b, environment(sb, init_b))
        matched, _, _ = match_parameters(params_a, params_b, layout_change=sa.framework != sb.framework)
        entries = tuple(matched)
    findings += tuple(setting_findings)
    a = replace(a, built_by=built_by(sa, fa_a, a.init, guessed_a, opts.init, notes))
    return PairSpec(a, b, inputs, entries, checks, findings, tuple(dict.fromkeys(notes)), opts.map_rules,
                    opts.convert)


def _model_mask(spec: PairSpec | None) -> PairSpec | None:
    """In the causal-mask variant, a side whose position embeddings come from its enclosing model takes its mask
    from that model too: the model's own form (rank, dtype, sliding window), never a guess of it."""
    if spec is None:
        return None
    sides = {}
    for which in ("a", "b"):
        impl = getattr(spec, which)
        model = next((c for c in impl.companions if c.call[:1] == ("model",)), None)
        if model is None or not impl.masks:
            continue
        arg = next(iter(impl.masks))
        sides[which] = replace(impl, masks={k: v for k, v in impl.masks.items() if k != arg},
                               companions=impl.companions + (replace(model, arg=arg, fallback=None),))
    if not sides:
        return spec
    said = ", ".join(f"{w.upper()}'s {next(iter(getattr(spec, w).masks))} from "
                     f"{next(c.symbol for c in getattr(spec, w).companions if c.call[:1] == ('model',))}"
                     for w in sides)
    return replace(spec, **sides, notes=spec.notes + (f"variant: the causal mask in each model's own form ({said})",))


def _read(sym: Symbol, fa: FileAnalysis, init: dict) -> set[str]:
    """The config fields `sym`'s code reads (through the objects it builds)."""
    return {f for arg, v in init.items() if isinstance(v, Config) for f in read_fields(sym, arg, fa)}


def _match_widths(sa: Symbol, fa_a: FileAnalysis, init_a: dict, sb: Symbol, fa_b: FileAnalysis, init_b: dict,
                  opts: PlanOptions, notes: list[str]) -> tuple[dict, dict]:
    params_a = static_parameters(sa, fa_a, environment(sa, init_a))
    params_b = static_parameters(sb, fa_b, environment(sb, init_b))
    init_a, more = match_widths(settings(sa, fa_a, init_a, opts.init), init_a, params_a, params_b, sa.name,
                                _read(sa, fa_a, init_a))
    if not more:
        init_b, more = match_widths(settings(sb, fa_b, init_b, opts.init), init_b, params_b, params_a, sb.name,
                                    _read(sb, fa_b, init_b))
    notes += more
    return init_a, init_b


def _with_layout(inputs: tuple[InputSpec, ...], ga: dict, gb: dict, forced: tuple[int, ...] | None,
                 notes: list[str]) -> tuple[InputSpec, ...]:
    """Channels-first A vs channels-last B (torch conv vs MLX conv): B gets its inputs permuted; outputs of the
    same rank are permuted back, so every comparison happens in A's layout."""
    out = []
    b_guesses = list(gb.values())  # B's arguments may be named differently: match by position
    for i, spec in enumerate(inputs):
        axes = forced
        a, b = ga.get(spec.name), (b_guesses[i] if i < len(b_guesses) else None)
        if axes is None and a and b and a.layout == "channels_first" and b.layout == "channels_last":
            rank = len(spec.shape)
            axes = (0, *range(2, rank), 1)
        if axes:
            notes.append(f"input '{spec.name}': A is channels-first, B channels-last; B gets the input permuted "
                         f"{axes} and outputs are compared in A's layout")
            spec = replace(spec, layout_b=tuple(axes))
        out.append(spec)
    return tuple(out)


def _prefix_positional(names: list[str]) -> list[str]:
    """Inputs by position may only lead; otherwise every input goes by position, as before names were known."""
    first_named = next((i for i, n in enumerate(names) if n), len(names))
    return names if all(names[first_named:]) else [""] * len(names)


def _keywords(inputs: tuple[InputSpec, ...], sa: Symbol, sb: Symbol, derived_b: set[str] = frozenset()
              ) -> tuple[InputSpec, ...]:
    """Each input goes to the argument of the same name on each side (`mask` never lands in B's `xa`); an
    input B has no argument of that name for goes to B's array argument in the same place."""
    keyword = ("positional", "kwonly")
    names_a = [i.name if any(x.name == i.name and x.kind in keyword for x in sa.call_args) else "" for i in inputs]
    b_args = {x.name for x in sb.call_args if x.kind in keyword}
    b_arrays = [x.name for k, x in enumerate(sb.call_args) if (is_array_arg(x, k == 0) or x.name in {i.name for i in inputs})
                and x.name not in derived_b]
    names_b: list[str] = []
    for k, spec in enumerate(inputs):
        free = [n for n in b_arrays if n not in {i.name for i in inputs} and n not in names_b]
        same_kind = [n for n in free if bool(INT_NAMES.search(n)) != spec.is_float]
        here = b_arrays[k] if k < len(b_arrays) and b_arrays[k] in free else ""
        if spec.name in b_args:
            names_b.append(spec.name)
        elif here and (here in same_kind or not same_kind):
            names_b.append(here)
        else:  # logits never go to B's token ids (`__call__(input_ids, scores)`), nor ids to its floats
            names_b.append(same_kind[0] if same_kind else here)
    names_a, names_b = _prefix_positional(names_a), _prefix_positional(names_b)
    return tuple(replace(i, arg_a=na, arg_b=nb) for i, na, nb in zip(inputs, names_a, names_b))


def _self_attention(sb: Symbol, inputs: tuple[InputSpec, ...], derived: set[str], notes: list[str]) -> dict:
    """B's required keys/values that no input reaches, when A takes one sequence: self-attention, so they get
    the input B's queries get (`Attention(queries, keys, values)` vs `SelfAttention(hidden_states)`)."""
    positional = iter([x.name for x in sb.call_args if x.kind == "positional"])
    fed = {i.arg_b or next(positional, "") for i in inputs}
    unfed = [x.name for k, x in enumerate(sb.call_args) if is_array_arg(x, k == 0) and x.name not in fed | derived]
    if not unfed or not all(QKV_NAMES.match(n.lower()) for n in unfed):
        return {}
    source = next((k for k, i in enumerate(inputs) if i.is_float), None)
    if source is None:
        return {}
    notes.append(f"{sb.name}: {', '.join(unfed)} get input '{inputs[source].name}' too (self-attention, as A "
                 f"takes one sequence)")
    return {n: source for n in unfed}


def _unmatched_init(opts: PlanOptions, used: set[str], specs: list[PairSpec]) -> None:
    """An --init that no constructor argument or config field took is an error, never silently ignored."""
    left = [k for k in opts.init if k not in used]
    if left:
        sides = "; ".join(dict.fromkeys(f"{s.a.symbol}({', '.join(s.a.init)})" for s in specs))
        raise InputError(f"--init {', '.join(left)}: matches no constructor argument or config field "
                         f"({sides}); config fields can be named config.field")


def _streamable(sa: Symbol, path_a: str, sb: Symbol, path_b: str) -> None:
    """--stream builds torch modules one block at a time: anything else is refused, naming the side."""
    for sym, path in ((sa, path_a), (sb, path_b)):
        if sym.framework != "torch" or sym.kind != "module":
            raise InputError(f"{path}::{sym.name}: --stream compares torch modules ({sym.framework} {sym.kind})")


def build_plan(target_a: Target, target_b: Target, opts: PlanOptions) -> ParityPlan:
    fa_a = analyze_file(target_a.path, (target_a.symbol,))  # a named symbol: only what it reaches
    used: set[str] = set()
    if target_b.path is None:
        sa = pair_symbols(fa_a, fa_a, target_a.symbol, target_a.symbol)[0][0]
        spec = plan_pair(fa_a, sa, None, None, opts, reference=target_b.symbol, used=used)
        used |= set(opts.init)  # the reference takes A's arguments by name or role at run time
        return ParityPlan((spec,))
    fa_b = analyze_file(target_b.path, (target_b.symbol,))
    ambiguous: list[str] = []
    pairs = sorted(pair_symbols(fa_a, fa_b, target_a.symbol, target_b.symbol, ambiguous), key=lambda p: p[0].name)
    specs = []
    unpaired = ""
    left_a: list[str] = []
    left_b: list[str] = []
    if not (target_a.symbol or target_b.symbol):  # whole files: say what was left out on each side
        left_a = sorted((s.name for s in fa_a.symbols if s not in {p[0] for p in pairs} and not s.name.startswith("_")),
                        key=str.lower)
        left_b = sorted((s.name for s in fa_b.symbols if s not in {p[1] for p in pairs} and not s.name.startswith("_")),
                        key=str.lower)
        if left_a or left_b:
            unpaired = f"not paired: A {', '.join(left_a) or '-'}; B {', '.join(left_b) or '-'}"
        unpaired += "".join(f"; ambiguous: {line}" for line in dict.fromkeys(ambiguous))
    for sa, sb, how in pairs:
        spec = plan_pair(fa_a, sa, fa_b, sb, opts, used=used)
        if how == "structure":
            spec = replace(spec, notes=spec.notes + (f"paired {sa.name} with {sb.name} by structure",))
        if unpaired:
            spec = replace(spec, notes=spec.notes + (unpaired,))
        if processors.is_processor(sa, sb):
            order = processors.order_finding(sa, fa_a.path, sb, fa_b.path)
            spec = processors.as_processor(replace(spec, static_findings=spec.static_findings + ((order,) if order
                                                                                                  else ())), opts.quick,
                                            set(opts.inputs), sa, sb)
            specs += [spec] + processors.boundary_variants(spec, sa, sb)
            continue
        if opts.generate:
            spec = replace(spec, notes=spec.notes + (processors.cache_note(sa, sb),))
        head_a, head_b = processors.ends_in_vocabulary(sa), processors.ends_in_vocabulary(sb)
        if head_a and head_b and not (opts.quick or opts.stream) and "sampling" not in spec.checks.names:
            spec = replace(spec, checks=replace(spec.checks, names=spec.checks.names + ("sampling",)),
                           notes=spec.notes + (f"sampling: both sides end in a vocabulary projection (A {head_a}, "
                                               f"B {head_b}): their outputs are also compared as logits at "
                                               "temperature 1.0 (--sampling KEY=VALUE,... for your decoding settings)",))
        specs.append(spec)
        if opts.stream:
            _streamable(sa, fa_a.path, sb, fa_b.path)
        else:
            specs += [v for v in (_model_mask(mask_variant(spec, sa, sb)), cross_variant(spec, sa, sb)) if v is not None]
    _unmatched_init(opts, used, specs)
    return ParityPlan(tuple(specs), unpaired={"a": tuple(left_a), "b": tuple(left_b)})
