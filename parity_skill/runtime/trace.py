"""First divergent submodule: trace both sides, match submodules through the weight map, compare in call order."""
from __future__ import annotations

import numpy as np

from parity_skill.runtime import rootcause
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


def locate(run: PairRun, isolate: bool, findings: list[dict] = ()) -> dict | None:
    """{first_divergence, root_cause, rows, profile, mode} or None when either side has no submodules to compare."""
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
        in_bad, in_err = _differs(inp, inp_b, tol) if inp and inp_b else (False, 0.0 if not inp else None)
        rows.append({"a": name + (f"#{k}" if k else ""), "b": b_name, "max_abs_diff": err, "differs": bad,
                     "input_differs": in_bad, "input_max_abs_diff": in_err})
    cause = rootcause.find(rows, run.a.module_classes(), run.b.module_classes(), findings)
    return {"first_divergence": rootcause.first_symptom(rows), "root_cause": cause, "rows": rows,
            "profile": profile(rows, cause), "mode": "teacher-forced" if isolate else "accumulated"}


def profile(rows: list[dict], cause: dict | None) -> list[str]:
    """One line per submodule call: error, a log bar, and whether it starts or only carries a difference."""
    def state(r):
        if not r["differs"]:
            return "ok"
        if r["input_differs"]:
            return "differs (carried: its input already differed)"
        return "DIFFERS <- root cause" if cause and rootcause.base(r["a"]) == cause["a"] else "DIFFERS"
    out = [f"{r['a']:<28} {_num(r['max_abs_diff'])} |{log_bar(r['max_abs_diff'])}| {state(r)}"
           for r in rows[:MAX_PROFILE]]
    if len(rows) > MAX_PROFILE:
        out.append(f"... {len(rows) - MAX_PROFILE} more submodules")
    return out


def _num(x: float | None) -> str:
    return f"{x:9.2e}" if x is not None and np.isfinite(x) else "      n/a"
