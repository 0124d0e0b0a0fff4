"""First divergent submodule: trace both sides, match submodules through the weight map, compare in call order."""
from __future__ import annotations

import numpy as np

from parity_skill.runtime.context import PairRun
from parity_skill.runtime.metrics import compare, scaled_atol
from parity_skill.runtime.outputs import match_outputs
from parity_skill.runtime.symptoms import log_bar

MAX_PROFILE = 60


def _owned(names: list[str], params: list[str]) -> dict[str, frozenset[str]]:
    return {n: frozenset(p for p in params if p.startswith(n + ".")) for n in names}


def counterparts(run: PairRun) -> dict[str, str]:
    """A submodule -> B submodule: the B module owning exactly the mapped parameters; parameterless modules
    by identical name."""
    names_a, names_b = run.a.module_names(), run.b.module_names()
    owned_a = _owned(names_a, run.a.param_names())
    owned_b = _owned(names_b, run.b.param_names())
    to_b: dict[str, set[str]] = {}
    for e in run.entries:
        for a_name in e.a.split("+"):
            to_b.setdefault(a_name, set()).update(e.b.split("+"))
    by_params: dict[frozenset[str], list[str]] = {}
    for n in names_b:
        if owned_b[n]:
            by_params.setdefault(owned_b[n], []).append(n)
    out = {}
    for n in names_a:
        if owned_a[n]:
            target = frozenset(b for p in owned_a[n] for b in to_b.get(p, ()))
            if len(target) and all(p in to_b for p in owned_a[n]) and target in by_params:
                candidates = by_params[target]
                out[n] = min(candidates, key=lambda c: (c.split(".")[-1] != n.split(".")[-1], -c.count(".")))
        elif n in owned_b and not owned_b[n]:
            out[n] = n
    taken = set(out.values())
    for n in names_a:  # parameters differ (e.g. a dropped bias): fall back to the same name
        if n not in out and n in owned_b and n not in taken:
            out[n] = n
    return out


def _differs(fa, fb, tol) -> tuple[bool, float | None]:
    """Compared per element, as matched by key or shape: `(out, attn)` vs `out` is judged on `out` alone, and a
    module never differs for its output's structure while its first output has a counterpart."""
    if not fa:
        return True, None
    pairs, _, _ = match_outputs(fa, fb)
    if not pairs or pairs[0][0] != fa[0][0]:
        return True, None
    worst, bad = 0.0, False
    for _, x, _, y in pairs:
        if x.shape != y.shape:
            return True, None
        c = compare(x, y, scaled_atol(tol.atol, x), tol.rtol)
        bad |= not c["ok"]
        worst = max(worst, c.get("max_abs_diff") if c.get("max_abs_diff") is not None else float("inf"))
    return bad, worst


def locate(run: PairRun, isolate: bool) -> dict | None:
    """{first_divergence, rows, profile, mode} or None when either side has no submodules to compare."""
    pairs = counterparts(run)
    if not pairs:
        return None
    tol = run.checks.tolerances["fp32"]
    rec_a = run.a.trace(run.base)
    feed = None
    if isolate:
        feed = {}
        for name, inp, _ in rec_a:
            if name in pairs:
                feed.setdefault(pairs[name], []).append([x for _, x in inp])
    rec_b = run.b.trace(run.base, feed)
    calls_b: dict[str, list] = {}
    for name, inp, out in rec_b:
        calls_b.setdefault(name, []).append((inp, out))
    seen: dict[str, int] = {}
    rows = []
    for name, inp, out in rec_a:
        k = seen.get(name, 0)
        seen[name] = k + 1
        b_name = pairs.get(name)
        if b_name is None or k >= len(calls_b.get(b_name, [])):
            continue
        inp_b, out_b = calls_b[b_name][k]
        bad, err = _differs(out, out_b, tol)
        in_bad, _ = _differs(inp, inp_b, tol) if inp and inp_b else (False, None)
        rows.append({"a": name + (f"#{k}" if k else ""), "b": b_name, "max_abs_diff": err, "differs": bad,
                     "input_differs": in_bad})
    first = _first(rows)
    profile = [f"{r['a']:<28} {_num(r['max_abs_diff'])} |{log_bar(r['max_abs_diff'])}| "
               f"{'DIFFERS' if r['differs'] else 'ok'}{' (input already differed)' if r['input_differs'] else ''}"
               for r in rows[:MAX_PROFILE]]
    if len(rows) > MAX_PROFILE:
        profile.append(f"... {len(rows) - MAX_PROFILE} more submodules")
    return {"first_divergence": first, "rows": rows, "profile": profile,
            "mode": "teacher-forced" if isolate else "accumulated"}


def _num(x: float | None) -> str:
    return f"{x:9.2e}" if x is not None and np.isfinite(x) else "      n/a"


def _first(rows: list[dict]) -> str | None:
    """The first submodule (call order) whose output differs from an agreeing input; then its deepest such
    descendant."""
    fresh = [r for r in rows if r["differs"] and not r["input_differs"]]
    if not fresh:
        return None
    current = fresh[0]["a"].split("#")[0]
    while True:
        deeper = [r for r in fresh if r["a"].split("#")[0].startswith(current + ".")]
        if not deeper:
            return current
        current = deeper[0]["a"].split("#")[0]
