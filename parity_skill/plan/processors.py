"""Logits processors (top-p, top-k, min-p, temperature, repetition penalty, guidance) compared as pairs of
functions: judged by the distribution they leave (softmax of the output, so -inf is an exact 0), on the edge cases
that break real implementations (ties at the cut-off, all but one logit at -inf), again with the settings that sit
at a boundary (top_p = 1.0, temperature near 0, top_k = 1), and with a static finding when the two sides filter and
apply the temperature in a different order."""
from __future__ import annotations

import re
from dataclasses import replace

from parity_skill.analyze.model import Symbol
from parity_skill.roles import SAMPLING_ROLES, role_of
from parity_skill.safe_io import read_source
from parity_skill.plan.inputs import INT_NAMES
from parity_skill.spec import CACHE_PARAM, NOT_GIVEN, PROCESSOR_EDGES, InputSpec, PairSpec

LOGITS_ARG = re.compile(r"^(logits|scores|next_token_logits|next_token_scores|logprobs|log_probs)$")
BOUNDARY = {"top_p": 1.0, "temperature": 1e-4, "top_k": 1}  # role -> the setting at its boundary
_FILTER = re.compile(r"cumsum|topk|top_k|\bsort\(|argsort|\.sort\(")
_TEMPERATURE = re.compile(r"/\s*\(?\s*(self\.)?temp(erature)?\b")


def _settings(sym: Symbol) -> dict[str, str]:
    """role -> argument name, for the sampling settings the function takes (a processor class: its constructor)."""
    out = {}
    for a in (sym.init_args if sym.kind == "module" else sym.call_args):
        role = role_of(a.name)
        if role and role[0] in SAMPLING_ROLES:
            out.setdefault(role[0], a.name)
    return out


def _one(s: Symbol) -> bool:
    """A function whose first argument is logits, or a class called with logits (a transformers logits warper:
    `__call__(input_ids, scores)`) whose constructor takes a decoding setting."""
    if s.kind == "function":
        return bool(s.call_args) and bool(LOGITS_ARG.match(s.call_args[0].name))
    return any(LOGITS_ARG.match(a.name) for a in s.call_args) and bool(_settings(s)) and not s.submodules


def is_processor(sa: Symbol, sb: Symbol) -> bool:
    """Both sides are logits processors and at least one takes a decoding setting."""
    return _one(sa) and _one(sb) and bool(_settings(sa) or _settings(sb))


HISTORY = 8  # length of the token histories a processor gets (repetition penalty)


def _processor_inputs(spec: PairSpec, given: set[str]) -> tuple[tuple, tuple[str, ...]]:
    """Processors take logits as (batch, vocab) and token histories as (batch, HISTORY) ids of that vocabulary
    (the default (batch, seq, features) would index past the vocabulary); inputs given with --input stay."""
    floats = [i for i in spec.inputs if i.is_float and i.name not in given]
    vocab = floats[0].shape[-1] if floats else 32
    out, notes = [], []
    for i in spec.inputs:
        if i.name in given or len(i.shape) < 2:
            out.append(i)
            continue
        if i.is_float:
            i = replace(i, shape=(i.shape[0], i.shape[-1]), seq_axis=None)
            notes.append(f"input '{i.name}': shape {i.shape} {i.dtype}, logits as (batch, vocab) (override with --input)")
        else:
            i = replace(i, shape=(i.shape[0], HISTORY), low=0, high=vocab, seq_axis=1)
            only = " (B only)" if i.arg_a == NOT_GIVEN else " (A only)" if i.arg_b == NOT_GIVEN else ""
            notes.append(f"input '{i.name}': shape {i.shape} ids in [0, {vocab}), a token history per row{only} "
                         "(override with --input)")
        out.append(i)
    return tuple(out), tuple(notes)


def _one_sided_history(spec: PairSpec, sa: Symbol, sb: Symbol) -> tuple[tuple, tuple[str, ...]]:
    """A token history one side requires and no input reaches (transformers' `__call__(input_ids, scores)` against
    a top-p function): an input given to that side only; ignoring it is what the other side does."""
    fed_b = {i.arg_b or i.name for i in spec.inputs}
    fed_a = {i.arg_a or i.name for i in spec.inputs}
    batch = next((i.shape[0] for i in spec.inputs if i.shape), 3)
    extra, notes = [], []
    for side, sym, fed in (("a", sa, fed_a), ("b", sb, fed_b)):
        for arg in sym.call_args:
            if arg.kind == "positional" and arg.default is None and INT_NAMES.search(arg.name) and arg.name not in fed \
                    and arg.name not in {i.name for i in spec.inputs}:
                extra.append(InputSpec(arg.name, (batch, HISTORY), "int64", seq_axis=1,
                                       arg_a=arg.name if side == "a" else NOT_GIVEN,
                                       arg_b=arg.name if side == "b" else NOT_GIVEN))
                notes.append(f"input '{arg.name}': a token history for {side.upper()} only (the other side takes none)")
    return tuple(extra), tuple(notes)


def as_processor(spec: PairSpec, quick: bool, given: set[str] = frozenset(), sa: Symbol | None = None,
                 sb: Symbol | None = None) -> PairSpec:
    """Both sides read as probabilities; logits as (batch, vocab); the processor edge cases added to the checks."""
    names = spec.checks.names + (() if quick else tuple(f"edge:{e}" for e in PROCESSOR_EDGES))
    note = ("logits processors: each side is judged by the distribution it leaves (softmax of its output; -inf is "
            "an exact 0), on ties at the cut-off and rows with one finite logit too")
    if sa is not None and sb is not None:
        extra, extra_notes = _one_sided_history(spec, sa, sb)
        spec = replace(spec, inputs=spec.inputs + extra, notes=spec.notes + extra_notes)
    inputs, input_notes = _processor_inputs(spec, set(given))
    changed = {i.name for i, j in zip(inputs, spec.inputs) if i != j}
    kept = tuple(n for n in spec.notes if not any(n.startswith(f"input '{name}':") for name in changed))
    return replace(spec, a=replace(spec.a, reads="probabilities"), b=replace(spec.b, reads="probabilities"),
                   checks=replace(spec.checks, names=names), inputs=inputs, notes=kept + input_notes + (note,))


def _with_setting(impl, sym: Symbol, name: str, value: float):
    """The implementation called (a function) or built (a processor class) with setting `name` = value."""
    if sym.kind == "module":
        return replace(impl, init={**impl.init, name: value})
    return replace(impl, fixed={**impl.fixed, name: value})


def _has_setting(impl, sym: Symbol, name: str) -> bool:
    return name in (impl.init if sym.kind == "module" else impl.fixed)


def boundary_variants(spec: PairSpec, sa: Symbol, sb: Symbol) -> list[PairSpec]:
    """The pair again with each shared setting at its boundary (top_p=1.0, temperature=1e-4, top_k=1)."""
    set_a, set_b = _settings(sa), _settings(sb)
    out = []
    for role, value in BOUNDARY.items():
        na, nb = set_a.get(role), set_b.get(role)
        if na is None or nb is None or not _has_setting(spec.a, sa, na) or not _has_setting(spec.b, sb, nb):
            continue
        checks = replace(spec.checks, names=tuple(n for n in spec.checks.names if n == "forward" or n.startswith("edge:")))
        out.append(replace(spec, a=_with_setting(spec.a, sa, na, value), b=_with_setting(spec.b, sb, nb, value),
                           checks=checks, variant=f"{role}={value:g} ({na} / {nb})",
                           notes=spec.notes + (f"variant: both sides called with {role} = {value:g}, its boundary",)))
    return out


def _first_lines(sym: Symbol, path: str) -> tuple[int | None, int | None]:
    """(line of the first temperature division, line of the first filtering sort/cumsum/top-k) in its body."""
    try:
        lines = read_source(path).splitlines()
    except (OSError, ValueError):
        return None, None
    first, last = sym.call_lines
    body = list(enumerate(lines[first - 1:last], start=first))
    temp = next((n for n, text in body if _TEMPERATURE.search(text)), None)
    filt = next((n for n, text in body if _FILTER.search(text)), None)
    return temp, filt


def order_finding(sa: Symbol, path_a: str, sb: Symbol, path_b: str) -> dict | None:
    """A static finding when one side applies the temperature before filtering and the other after."""
    ta, fa = _first_lines(sa, path_a)
    tb, fb = _first_lines(sb, path_b)
    if None in (ta, fa, tb, fb) or (ta < fa) == (tb < fb):
        return None

    def say(t, f):
        return "temperature, then the filter" if t < f else "the filter, then temperature"
    return {"kind": "order", "message": f"order of operations differs: A applies {say(ta, fa)}; B applies "
                                        f"{say(tb, fb)} (top-p/min-p keep other tokens at another temperature)",
            "a_location": f"{path_a}:{min(ta, fa)}", "b_location": f"{path_b}:{min(tb, fb)}",
            "a_symbol": sa.name, "b_symbol": sb.name}


CACHE_ARG = re.compile(CACHE_PARAM)


def cache_note(sa: Symbol, sb: Symbol) -> str:
    """What --generate says about KV caches: each step recomputes the whole sequence on both sides, and a side whose
    forward takes a cache also decodes through it, compared with its own recomputation."""
    found = [f"{side} takes `{a.name}`" + (" (a cache kept in its layers)" if a.name == "start_pos" else "")
             for side, s in (("A", sa), ("B", sb)) for a in s.call_args
             if CACHE_ARG.search(a.name) or a.name == "start_pos"]
    if not found:
        return "generate: neither side's forward takes a cache argument; each step recomputes the whole sequence"
    return (f"generate: {', '.join(found)}; A and B are compared recomputing the whole sequence each step, and a "
            "side with a cache also decodes through it, compared with its own recomputation")


LM_HEAD = re.compile(r"^(lm_head|unembed|output_projection|logits|to_logits)$")


def ends_in_vocabulary(sym: Symbol) -> str | None:
    """How a module shows that its output is logits over a vocabulary: an `lm_head`-like layer, a Linear sized by a
    vocabulary, or a tied embedding used as the output projection (`embed_tokens.as_linear`); None otherwise."""
    if sym.kind != "module":
        return None
    for sub in sym.submodules:
        if LM_HEAD.match(sub.attr):
            return f"self.{sub.attr}"
        if sub.type_name.endswith("Linear") and len(sub.args) >= 2 and "vocab" in sub.args[1].lower():
            return f"self.{sub.attr} ({sub.args[1]} outputs)"
    tied = next((o for o in sym.ops if sym.in_call(o.location) and o.name.endswith("as_linear")), None)
    return f"{tied.name} (tied embedding)" if tied else None
