"""Forward arguments a caller computes with another module of the same file: a rotary embedding's (cos, sin)
passed as `position_embeddings` (transformers attention and decoder layers). The side builds that module with
the layer's own config and calls it per forward, as the model around the layer would."""
from __future__ import annotations

import os
import re
from typing import Any

from parity_skill.analyze.model import FileAnalysis, Symbol
from parity_skill.analyze.vocabulary import IDS_NAMES, ROTARY_CLASS
from parity_skill.plan.construct import constructor_args, environment
from parity_skill.spec import Builder, Companion, Config, InputSpec

ROTARY_ARG = re.compile(r"^(position_embeddings?|pos_embs?|rotary_pos_emb|rotary_emb|freqs_cis|cos_sin)$")
# what a model computes once and hands each layer: rotary tables (one per attention kind), time embeddings
MODEL_ARG = re.compile(r"^(position_embeddings?_\w+|\w*rotary\w*|\w*freqs\w*|temb|time_emb\w*|pos_emb\w*)$")
POSITION_NAMES = re.compile(r"^(position_ids|positions|pos_ids|pos)$")
LENGTH_NAMES = re.compile(r"^(seq_len|seqlen|seq_length|length|max_seq_len)$")
HEAD_DIM_NAMES = re.compile(r"^(dim|head_dim|rotary_dim|dims|rope_dim)$")


def _call_plan(rot: Symbol) -> tuple[str, ...] | None:
    """What each of the rotary module's forward arguments gets, in order; None when one cannot be filled."""
    plan: list[str] = []
    for arg in rot.call_args:
        if arg.kind not in ("positional", "kwonly"):
            continue
        if POSITION_NAMES.match(arg.name):
            plan.append("position_ids")
        elif LENGTH_NAMES.match(arg.name):
            plan.append("seq_len")
        elif arg.required:
            if "x" in plan:
                return None
            plan.append("x")
        else:
            break
    return tuple(plan) if plan else None


def rotary_class(fa: FileAnalysis, sym: Symbol) -> Symbol | None:
    """The file's module that computes (cos, sin): a rotary/rope class that takes no query or key; the one
    sharing the longest name prefix with `sym` first."""
    found = [s for s in fa.symbols if s.kind == "module" and s is not sym and ROTARY_CLASS.search(s.name)
             and not any(a.name in ("q", "k", "query", "key") for a in s.call_args) and _call_plan(s)]
    found.sort(key=lambda s: -len(os.path.commonprefix([s.name, sym.name])))
    return found[0] if found else None


def enclosing_model(fa: FileAnalysis, sym: Symbol) -> tuple[Symbol, str] | None:
    """(the file's model class that builds `sym` in its __init__, directly or through the classes it builds (a model
    builds decoder layers that build attentions), and the token-ids argument it is called with)."""
    builders = {s.name: [m for m in fa.symbols if m.kind == "module" and any(c[0] == s.name for c in m.constructs)]
                for s in fa.symbols}
    frontier, seen = [sym.name], {sym.name}
    for _ in range(4):  # model -> layer stack -> layer -> attention
        found = []
        for name in frontier:
            for model in builders.get(name, []):
                if model.name in seen:
                    continue
                seen.add(model.name)
                first = next((a for a in model.call_args if a.kind in ("positional", "kwonly")), None)
                if first is not None and IDS_NAMES.match(first.name):
                    return model, first.name
                found.append(model.name)
        frontier = found
    return None


def companion_args(sym: Symbol, fa: FileAnalysis, given: set[str]) -> dict[str, Symbol]:
    """Argument -> the module that computes it, for the forward's position-embedding arguments the user did not
    give: the enclosing model (which hands the layer exactly what it computes), else the file's rotary class."""
    if sym.kind != "module":
        return {}
    names = [a.name for a in sym.call_args if a.kind in ("positional", "kwonly") and a.name not in given
             and (ROTARY_ARG.match(a.name) or MODEL_ARG.match(a.name))]
    if not names:
        return {}
    found = enclosing_model(fa, sym)
    rot = rotary_class(fa, sym)
    if found is None:
        return {n: rot for n in names if ROTARY_ARG.match(n)} if rot is not None else {}
    return {n: found[0] for n in names}


def init_for(rot: Symbol, fa: FileAnalysis, init: dict[str, Any], env: dict[str, Any],
              overrides: dict[str, Any]) -> dict[str, Any]:
    """The rotary module's constructor values: the layer's own config object where it takes one, the layer's
    head size for its `dim`, and otherwise its defaults."""
    rot_init = constructor_args(rot, fa, overrides, [])
    configs = [v for v in init.values() if isinstance(v, Config)]
    heads = next((v for k, v in env.items() if k.split(".")[-1] in ("head_dim", "head_size") and isinstance(v, int)),
                 None)
    for name, value in list(rot_init.items()):
        if name in init:
            rot_init[name] = init[name]
        elif isinstance(value, Config) and configs:
            same = [c for c in configs if c.cls == value.cls]
            rot_init[name] = (same or configs)[0]
        elif HEAD_DIM_NAMES.match(name) and heads:
            rot_init[name] = heads
    return rot_init


def plan_companions(sym: Symbol, fa: FileAnalysis, init: dict[str, Any], found: dict[str, Symbol],
                    inputs: tuple[InputSpec, ...], overrides: dict[str, Any], notes: list[str]) -> tuple[Companion, ...]:
    if not found:
        return ()
    floats = [i for i, s in enumerate(inputs) if s.is_float]
    source = next((i for i in floats if inputs[i].seq_axis is not None), floats[0] if floats else None)
    if source is None:
        notes.append(f"{sym.name}: {', '.join(found)} not exercised: no floating input to derive positions from")
        return ()
    env = environment(sym, init)
    out = []
    rot = rotary_class(fa, sym)
    for arg, maker in found.items():
        axis = inputs[source].seq_axis or 1
        fallback = Companion(arg, rot.name, init_for(rot, fa, init, env, overrides), _call_plan(rot), source,
                             axis) if rot is not None and ROTARY_ARG.match(arg) else None
        if maker is not rot and enclosing_model(fa, sym) is not None:  # the enclosing model: record what it passes
            ids = enclosing_model(fa, sym)[1]
            out.append(Companion(arg, maker.name, init_for(maker, fa, init, env, overrides),
                                 ("model", sym.name, ids), source, axis, fallback))
            notes.append(f"{sym.name}: '{arg}' recorded per call from the model around it: {maker.name} run small "
                         f"on token ids of input '{inputs[source].name}''s batch and length hands it to its first "
                         f"{sym.name} ({maker.location})")
            continue
        out.append(fallback)
        notes.append(f"{sym.name}: '{arg}' computed per call by {maker.name}({', '.join(fallback.call)}) from input "
                     f"'{inputs[source].name}', as the model around it would ({maker.location})")
    return tuple(out)


def built_by(sym: Symbol, fa: FileAnalysis, init: dict[str, Any], guessed: list[str], overrides: dict[str, Any],
             notes: list[str]) -> Builder | None:
    """Where the plan guessed constructor arguments of `sym` and a model of its file builds it: build that model
    and take its first `sym` (the model passes what it derives, such as `is_local` from its layer pattern). The
    guesses' notes move into the Builder (restored if the model cannot be built)."""
    found = enclosing_model(fa, sym) if guessed and sym.kind == "module" else None
    if found is None:
        return None
    model = found[0]
    for note in guessed:
        if note in notes:
            notes.remove(note)
    args = ", ".join(n.split("(", 1)[1].split(":", 1)[0] for n in guessed)
    notes.append(f"{sym.name}: taken from {model.name} built small ({model.location}), its first {sym.name} as the "
                 f"model builds it: {args} would otherwise be guessed")
    return Builder(model.name, init_for(model, fa, init, environment(sym, init), overrides), tuple(guessed))
