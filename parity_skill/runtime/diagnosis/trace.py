"""First divergent submodule: trace both sides, match submodules through the weight map, compare in call order."""
from __future__ import annotations

import numpy as np

from parity_skill.runtime.diagnosis import rootcause
from parity_skill.runtime.diagnosis.calls import aligned, compare_calls, differs
from parity_skill.runtime.checks.basic import gradients, upstreams
from parity_skill.runtime.checks.context import PairRun
from parity_skill.runtime.judging.metrics import compare, scaled_atol
from parity_skill.runtime.diagnosis.symptoms import log_bar

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


def locate(run: PairRun, isolate: bool, findings: list[dict] = ()) -> dict | None:
    """{first_divergence, root_cause, rows, profile, mode} or None when either side has no submodules to compare.

    Accumulated: one call of each side, every submodule compared. Teacher-forced (`isolate`): one level at a time,
    each B submodule of the level given A's inputs; then the same inside the first one that differs (feeding every
    level at once would hand a container's last child A's input and hide the container's own code)."""
    pairs = counterparts(run)
    if not pairs:
        return None
    tol = run.checks.tolerances["fp32"]
    rec_a = run.a.trace(run.base)
    if not isolate:
        run.cache["trace_b"] = run.b.trace(run.base)  # the call graph reads it again
        rows = compare_calls(rec_a, run.cache["trace_b"], pairs, tol)
    else:
        names = [n for n in dict.fromkeys(name for name, _, _ in rec_a) if n in pairs]
        level, rows = [n for n in names if _parent(n, names) is None], []
        while level:
            feed: dict[str, list] = {}
            for name, inp, _ in rec_a:
                if name in level:
                    feed.setdefault(pairs[name], []).append([x for _, x in inp])
            found = [r for r in compare_calls(rec_a, run.b.trace(run.base, feed), pairs, tol)
                     if rootcause.base(r["a"]) in level]
            rows += found
            first = next((r for r in found if r["differs"]), None)
            level = [n for n in names if first and _parent(n, names) == rootcause.base(first["a"])]
        order = {name: i for i, (name, _, _) in enumerate(rec_a)}
        rows.sort(key=lambda r: order.get(rootcause.base(r["a"]), 0))
    cause = rootcause.find(rows, run.a.module_classes(), run.b.module_classes(), findings)
    return {"first_divergence": rootcause.first_symptom(rows), "root_cause": cause, "rows": rows,
            "profile": profile(rows, cause), "mode": "teacher-forced" if isolate else "accumulated"}


def _parent(name: str, names: list[str]) -> str | None:
    """The nearest traced module that contains `name`."""
    inside = [n for n in names if name.startswith(n + ".")]
    return max(inside, key=len) if inside else None


def locate_backward(run: PairRun, findings: list[dict] = ()) -> dict | None:
    """{root_cause, rows} for a backward pass that differs: per submodule call, in the order backward reaches
    them, whether the gradient arriving at its outputs agrees ("input" here) and whether what it passes back to
    its inputs and its own parameters' gradients do."""
    pairs = counterparts(run)
    if not pairs:
        return None
    tol = run.checks.tolerances["fp32"]
    up_a, up_b = upstreams(run)
    rec_a, rec_b = run.a.grad_trace(run.base, up_a), run.b.grad_trace(run.base, up_b)
    bad_params = _differing_params(run, tol)
    owned = _owned(run.a.module_names(), run.a.param_names())
    rows = []
    for a_name, b_name, (gin, gout), (gin_b, gout_b) in aligned(rec_a, rec_b, pairs):
        name = rootcause.base(a_name)
        out_bad, out_err, out_rel = differs(gout, gout_b, tol) if gout else (False, 0.0, 0.0)
        in_bad, in_err, in_rel = differs(gin, gin_b, tol) if gin else (False, 0.0, 0.0)
        params = [bad_params[p] for p in owned.get(name, ()) if p in bad_params]
        rows.append({"a": a_name, "b": b_name, "input_differs": out_bad,
                     "input_max_abs_diff": out_err, "input_rel_diff": out_rel, "differs": in_bad or bool(params),
                     "max_abs_diff": max([e for e in [in_err, *(a for a, _ in params)] if e is not None], default=None),
                     "rel_diff": max([e for e in [in_rel, *(r for _, r in params)] if e is not None], default=None)})
    rows.reverse()  # backward reaches the last call first
    return {"root_cause": rootcause.find(rows, run.a.module_classes(), run.b.module_classes(), list(findings),
                                         "backward"), "rows": rows}


def _differing_params(run: PairRun, tol) -> dict[str, tuple[float, float]]:
    """A parameter name -> (max gradient difference, relative to A's largest), for each parameter whose gradient
    differs from B's."""
    ga, gb = gradients(run, "fp32")
    out = {}
    for key in ga:
        if not key.startswith("param grad '"):
            continue
        x, y = ga[key], gb.get(key)
        if x is None:
            continue
        c = compare(x, y, scaled_atol(tol.atol, x), tol.rtol) if y is not None and x.shape == y.shape else None
        if c is None or not c["ok"]:
            err = (c or {}).get("max_abs_diff") or float("inf")
            scale = float(np.max(np.abs(x))) if x.size else 0.0
            for name in key.split("'")[1].split("+"):
                out[name] = max(out.get(name, (0.0, 0.0)), (err, err / scale if scale else float("inf")))
    return out


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


def call_graph(run: PairRun) -> list[str]:
    """Submodules one side runs and the other never does, for modules both have (matched through the weights):
    "A never calls pos_embed; B calls pos_embed" is a difference in what runs, shown before any number."""
    pairs = counterparts(run)
    if not pairs:
        return []
    called_a = {rootcause.base(n) for n, _, _ in run.a.trace(run.base)}
    if "trace_b" not in run.cache:
        run.cache["trace_b"] = run.b.trace(run.base)
    called_b = {rootcause.base(n) for n, _, _ in run.cache["trace_b"]}
    out = []
    shared = {b for b in pairs.values() if list(pairs.values()).count(b) > 1}  # stacked experts: many A modules
    for a_name, b_name in pairs.items():
        if b_name in shared:
            continue  # one B module standing for several of A's (a routed mixture calls only some experts)
        if a_name not in called_a and b_name in called_b:
            out.append(f"A never calls {a_name}; B calls {b_name}")
        elif a_name in called_a and b_name not in called_b:
            out.append(f"B never calls {b_name}; A calls {a_name}")
    parents = [x.split(";")[0].split(" calls ")[1] for x in out]  # a submodule of a module not called is implied
    return [x for x, name in zip(out, parents) if not any(name.startswith(p + ".") for p in parents)]
