"""forward, backward, determinism and the weight-map check."""
from __future__ import annotations

import functools
from collections.abc import Mapping

import numpy as np

from parity_skill.runtime.checks.conditioning import conditioned, said
from parity_skill.runtime.checks.context import PairRun, result
from parity_skill.runtime.sides.failures import describe
from parity_skill.runtime.judging.metrics import compare, scaled_atol
from parity_skill.runtime.judging.outputs import (cosine_text, describe_mismatch, figures, first_nonfinite, judge, label,
                                                  match_outputs)
from parity_skill.runtime.data.weights import b_values


def flag_output_problems(run: PairRun, name: str, j: dict) -> None:
    for c in j["outputs"]:
        if c.get("shape_mismatch"):
            run.diagnose("shape", f"{label(c['key'])}: A {tuple(c['shape_a'])} vs B {tuple(c['shape_b'])}", name)
        else:
            for side, other in (("a", "b"), ("b", "a")):
                n = c.get(f"nonfinite_{side}")
                if n:
                    idx = c[f"first_nonfinite_{side}"]
                    context = "non-finite too" if c.get(f"nonfinite_{other}") else "finite"
                    run.diagnose("nan_inf", f"{side.upper()} gives {n} non-finite values in {label(c['key'])}, first "
                                            f"at {tuple(idx)}, where {other.upper()} is {context} ({name})", name,
                                 side=side.upper(), count=n, index=idx)
    if j.get("missing_outputs"):
        run.diagnose("shape", "; ".join(j["notes"]), name)


def verdict_from(name: str, j: dict, tol) -> dict:
    w = j["worst"]
    if j["ok"]:
        msg = f"max abs diff {w['max_abs_diff']:.3g} ({label(w['key'])}), {cosine_text(w)}" if w else "no outputs"
        return result(name, "pass", msg, tol, **figures(w))
    msg = describe_mismatch(w, label(w["key"])) if w else "; ".join(j["notes"])
    if w and w.get("cosine_failed"):
        msg += f"; cosine {w['cosine']} below the required minimum"
    return result(name, "fail", msg, tol, **figures(w))


def check_weights(run: PairRun) -> dict:
    trainable_a = set(run.a.trainable())
    missing = [n for n in run.unmapped_a if n in trainable_a]
    for n in run.unmapped_a:
        kind = "missing_parameter" if n in trainable_a else "unmapped_parameter"
        run.diagnose(kind, f"A's {'parameter' if n in trainable_a else 'buffer'} '{n}' has no counterpart in B",
                     "weights")
    for n in run.unmapped_b:
        run.diagnose("unmapped_parameter", f"B's '{n}' was not loaded from A (it keeps B's own initial value)",
                     "weights")
    mapped = f"{len(run.entries)} mapped"
    if missing:
        return result("weights", "fail", f"{mapped}; A parameters missing in B: {', '.join(missing)}")
    extra = f"; unmapped: A {run.unmapped_a or '-'} B {run.unmapped_b or '-'}" if run.unmapped_a or run.unmapped_b else ""
    return result("weights", "pass", mapped + extra)


def check_forward(run: PairRun) -> dict:
    tol = run.checks.tolerances["fp32"]
    fa = run.cache["fp32_a"]
    fb = run.cache["fp32_b"]
    j = judge(fa, fb, tol, run.checks.cosine)
    flag_output_problems(run, "forward", j)
    run.notes.extend(n for n in j["notes"] if n not in run.notes)
    if j.get("uncompared"):
        run.limit(f"forward: A's outputs {', '.join(label(k) for k in j['uncompared'])} have no counterpart in B "
                  "and were not compared")
    run.cache["forward_judgement"] = j
    out = verdict_from("forward", j, tol)
    w = j["worst"]
    if not j["ok"] and w and not (w.get("shape_mismatch") or w.get("nonfinite_b") or j.get("missing_outputs")):
        got = conditioned(run, j, run.base, fa)
        if got:  # beyond the tolerance, within what float32 itself costs on this input
            out.update(status=got[0], message=f"{said(got[1], w['max_abs_diff'])} ({label(w['key'])})",
                       condition=got[1])
    return out


def upstream_a(run: PairRun) -> dict:
    """The fixed upstream gradient: a seeded normal draw for each floating output of A."""
    rng = np.random.default_rng(run.checks.seed + 3)
    return {k: rng.standard_normal(v.shape) for k, v in run.cache["fp32_a"] if np.issubdtype(v.dtype, np.floating)}


def primary_only(up_a: dict) -> dict:
    """The upstream gradient on A's first output alone (used when B lacks A's other outputs: `(out, attn)` vs
    `out`), so A's gradients carry nothing B cannot produce."""
    first = next(iter(up_a), None)
    return {first: up_a[first]} if first is not None else {}


def upstreams(run: PairRun) -> tuple[dict, dict]:
    up_a = upstream_a(run)
    pairs, extra_a, _ = match_outputs(run.cache["fp32_a"], run.cache["fp32_b"])
    if extra_a and len(up_a) > 1:
        up_a = primary_only(up_a)
    up_b = {kb: up_a[ka] for ka, a, kb, b in pairs if ka in up_a and a.shape == b.shape}
    return up_a, up_b


def gradients(run: PairRun, dtype: str, only_a: bool = False) -> tuple[dict, dict]:
    """{name: grad} for A and B, keyed 'input grad x' / 'param grad fc1.weight' (B's mapped to A's names)."""
    up_a, up_b = upstreams(run)
    gin_b, gp_b, failed_b = {}, {}, None
    if not only_a:  # B's first: while B computes, A's may still be on its way (runtime/data/live.py)
        run.b.seed(run.checks.seed)
        try:
            _, gin_b, gp_b = run.b.grads(run.base, dtype, up_b)
        except Exception as exc:  # noqa: BLE001 - raised after A's, so that A's own failure is the one told
            failed_b = exc
    run.a.seed(run.checks.seed)
    _, gin_a, gp_a = run.a.grads(run.base, dtype, up_a)
    if failed_b is not None:
        raise failed_b
    eager_a, eager_b, thunks_a, thunks_b = {}, {}, {}, {}
    for i, spec in enumerate(run.inputs):
        if i in gin_a or i in gin_b:
            eager_a[f"input grad '{spec.name}'"] = gin_a.get(i)
            eager_b[f"input grad '{spec.name}'"] = gin_b.get(i)
    for e in run.entries:
        names_a = e.a.split("+")
        if e.transform.startswith("weight_norm>"):  # A has gradients for (g, v), B for the weight they make
            run.limit(f"backward: gradients of A's weight-normed {e.a} and B's {e.b} are not comparable (only "
                      "input gradients and the other parameters are)")
            continue
        if not any(n in gp_a for n in names_a):
            continue
        unused = [n for n in names_a if n not in gp_a]  # e.g. an expert no token was routed to: its gradient is 0
        source = _with_zeros(gp_a, unused, run.a) if unused else gp_a
        for nb in e.b.split("+"):
            key = f"param grad '{e.a}'" + (f" -> '{nb}'" if nb != e.a else "")
            thunks_a[key] = functools.partial(_mapped, source, e, nb)
            thunks_b[key] = functools.partial(_get, gp_b, nb)
    return Gradients(eager_a, thunks_a), Gradients(eager_b, thunks_b)


class _with_zeros(Mapping):
    """A's gradients of a joined entry where some of its parameters took no part in the forward (zero); read as
    asked, like the gradients themselves."""

    def __init__(self, grads: Mapping, unused: list[str], side) -> None:
        self._grads, self._unused, self._side = grads, set(unused), side

    def __contains__(self, name) -> bool:
        return name in self._unused or name in self._grads

    def __getitem__(self, name: str):
        if name in self._unused:
            return np.zeros(np.asarray(self._side.state()[name]).shape, dtype=np.float32)
        return self._grads[name]

    def __iter__(self):
        yield from self._grads
        yield from self._unused

    def __len__(self) -> int:
        return len(self._grads) + len(self._unused)


def _mapped(grads: Mapping, entry, name_b: str) -> np.ndarray:
    if entry.transform == "sum":  # b = a1 + a2: B's gradient equals each of A's, not their sum
        return grads[entry.a.split("+")[0]]
    return b_values({n: grads[n] for n in entry.a.split("+")}, [entry])[name_b]


def _get(grads: Mapping, name: str) -> np.ndarray | None:
    return grads[name] if name in grads else None


class Gradients(Mapping):
    """A's gradients keyed like B's: input gradients held, parameter gradients made (read, split) when asked for
    and not kept, so comparing a large model's gradients holds one of A's at a time."""

    def __init__(self, eager: dict, thunks: dict) -> None:
        self._eager, self._thunks = eager, thunks

    def __getitem__(self, key):
        return self._eager[key] if key in self._eager else self._thunks[key]()

    def __contains__(self, key) -> bool:  # Mapping's would make the gradient to answer
        return key in self._eager or key in self._thunks

    def __iter__(self):
        yield from self._eager
        yield from self._thunks

    def __len__(self) -> int:
        return len(self._eager) + len(self._thunks)


def compare_grads(ga: dict, gb: dict, tol) -> tuple[bool, str | None, dict | None, list[str], str | None]:
    """(all agree, worst key, its figures, missing gradients, A's first non-finite gradient or None); each of A's
    gradients is read once (from disk in phase 2)."""
    worst_key, worst, problems = None, None, []
    ok = True
    for key in ga:
        a = ga[key]
        bad_a = first_nonfinite([(key, a)], name=str) if a is not None else None
        if bad_a:
            return False, None, None, [], bad_a
        b = gb.get(key)
        if a is None or b is None or (key.startswith("input grad") and not (_used(a) and _used(b))):
            if _used(a) != _used(b):  # one side's output depends on the input, the other's does not
                ok = False
                side, other = ("A", "B") if not _used(a) else ("B", "A")
                problems.append(f"{key}: {side} ignores the input ({other}'s output depends on it)"
                                if key.startswith("input grad") else f"{key}: {side} has no gradient")
            continue  # an input neither side uses is no gradient to compare
        c = compare(a, b, scaled_atol(tol.atol, a), tol.rtol)
        if not c["ok"]:
            ok = False
        if worst is None or _rank(c) > _rank(worst):
            worst_key, worst = key, c
    return ok, worst_key, worst, problems, None


def frozen_rows(a, b, tol, most: int = 4) -> list[int] | None:
    """Rows of a 2-D gradient that alone differ, each exactly zero on A's side and not on B's (an embedding row
    A never trains: its padding_idx); None otherwise."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        return None
    bad = np.abs(b - a) > scaled_atol(tol.atol, a) + tol.rtol * np.abs(a)
    rows = [int(r) for r in np.flatnonzero(bad.any(axis=1))]
    if not rows or len(rows) > most or any(np.any(a[r] != 0) or not np.any(b[r] != 0) for r in rows):
        return None
    return rows


def _used(grad) -> bool:
    """Whether a side's output depends on what this gradient belongs to: torch gives None for an input the forward
    never reads, MLX zeros."""
    return grad is not None and bool(np.any(np.asarray(grad) != 0))


def _rank(c: dict) -> tuple:
    return (not c["ok"], bool(c.get("nonfinite_b")), c.get("max_abs_diff") or 0.0)


def check_backward(run: PairRun) -> dict:
    tol = run.checks.tolerances["fp32"]
    for side in (run.a, run.b):
        if not side.differentiable:
            return result("backward", "skip", f"{side.label}: {side.impl.framework} has no automatic differentiation")
    up_a, up_b = upstreams(run)
    if up_a and not up_b:  # no output of B has the shape of A's: one upstream gradient cannot be given to both
        return result("backward", "skip", "not compared: no output of B has the shape of A's (see forward)")
    ga, gb = gradients(run, "fp32")
    if not ga:
        return result("backward", "skip", "no floating input and no mapped trainable parameter to differentiate")
    if run.recording:
        return result("backward", "skip", "A's gradients recorded")
    ok, key, c, problems, bad_a = compare_grads(ga, gb, tol)
    if bad_a:
        return result("backward", "error", f"A's gradients are not finite on the default input ({bad_a}): nothing "
                                           "to compare B's against; choose other inputs with --input")
    n = f"{len(ga)} gradients"
    if c and c.get("nonfinite_b"):
        run.diagnose("nan_inf", f"B's {key} has {c['nonfinite_b']} non-finite values, first at "
                                f"{tuple(c['first_nonfinite_b'])}, where A's is finite (backward)", "backward",
                     side="B", count=c["nonfinite_b"], index=c["first_nonfinite_b"])
    if ok:
        return result("backward", "pass", f"{n}; max grad diff {c['max_abs_diff']:.3g} in {key}" if c else n,
                      tol, where=key, **figures(c))
    if not (c and not c["ok"]):  # only missing gradients failed: no figure to show for them
        return result("backward", "fail", f"{n}; " + "; ".join(problems), tol)
    msg = "; ".join([describe_mismatch(c, key)] + problems)
    rows = frozen_rows(ga[key], gb[key], tol) if key.startswith("param grad") else None
    if rows:
        run.diagnose("frozen_rows", f"{key} differs only in row{'s' if len(rows) > 1 else ''} "
                     f"{', '.join(map(str, rows))}, where A's gradient is exactly zero and B's is not: A never "
                     "updates those rows (an embedding's padding_idx, usually its config's pad_token_id), B does; "
                     "outputs are unaffected, training is not", "backward")
    elif run.cache.get("forward_judgement", {}).get("ok"):
        msg += " (forward agrees: look for a custom backward, a detached statistic or a stop-gradient)"
    return result("backward", "fail", f"{n}; {msg}", tol, where=key, **figures(c))


def self_difference(run: PairRun, side) -> float:
    """Largest difference between two identical calls made one after the other from one seed (cached)."""
    key = f"selfdiff:{side.which}"
    if key not in run.cache:
        side.seed(run.checks.seed)
        first, second = side.run_twice(run.base)
        worst = 0.0
        for (_, x), (_, y) in zip(first, second):
            if x.shape != y.shape:
                worst = float("inf")
            elif not np.array_equal(x, y, equal_nan=True):  # a call agreeing with itself on NaN is repeatable
                c = compare(x, y, 0.0, 0.0)
                worst = max(worst, c.get("max_abs_diff") or float("inf"))
        run.cache[key] = worst
    return run.cache[key]


def is_deterministic(run: PairRun, side) -> bool:
    try:
        return self_difference(run, side) == 0.0
    except Exception:  # noqa: BLE001
        return False


def check_determinism(run: PairRun, which: str) -> dict:
    side = run.a if which == "a" else run.b
    name = f"determinism:{which}"
    try:
        worst = self_difference(run, side)
    except Exception as exc:  # noqa: BLE001
        return result(name, "fail", f"{side.label} raised on a repeat call: {describe(exc)}")
    if worst == 0.0:
        return result(name, "pass", f"two calls of {side.label} agree bit for bit", max_abs_diff=0.0)
    run.diagnose("nondeterministic", f"{side.label} disagrees with itself between two identical calls (max diff "
                                     f"{worst:.3g}): random ops in forward or a nondeterministic kernel; the A-vs-B "
                                     "figures are not to be trusted", name)
    return result(name, "fail", f"{side.label} gives different outputs on two identical calls (max diff {worst:.3g})",
                  {"atol": 0.0, "rtol": 0.0}, max_abs_diff=worst, min_tolerance={"atol": worst})
