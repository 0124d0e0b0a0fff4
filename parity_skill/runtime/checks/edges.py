"""Edge-case inputs (zeros, very large and tiny values, a DC offset, sequence length 1): A and B at the fp32
tolerance, where an ill-conditioned input is judged against float64 A or against A's conditioning floor."""
from __future__ import annotations

import numpy as np

from parity_skill.runtime.checks.basic import flag_output_problems, verdict_from
from parity_skill.runtime.checks.conditioning import conditioned, said
from parity_skill.runtime.checks.context import PairRun, result
from parity_skill.runtime.checks.matrix import exact_reference, reference, relative_error
from parity_skill.runtime.data.inputs import edge_inputs
from parity_skill.runtime.judging.metrics import scaled_atol
from parity_skill.thresholds import FP32_UNIT
from parity_skill.runtime.judging.outputs import first_nonfinite, judge, match_outputs
from parity_skill.runtime.sides.failures import describe


def check_edge(run: PairRun, edge: str) -> dict:
    name = f"edge:{edge}"
    tol = run.checks.tolerances["fp32"]
    xs, why = edge_inputs(edge, run.inputs, run.base)
    if xs is None:
        return result(name, "skip", why)
    try:
        fa = run.forward(run.a, xs)
    except Exception as exc:  # noqa: BLE001
        return result(name, "skip", f"A itself raises on this input ({why}): {describe(exc)}")
    try:
        fb = run.forward(run.b, xs)
    except Exception as exc:  # noqa: BLE001
        msg = describe(exc)
        if any(w in msg.lower() for w in ("shape", "size", "dimension", "broadcast")):
            run.diagnose("shape", f"B raises on {why} where A does not: {msg}", name)
        return result(name, "fail", f"B raises on {why} (A does not): {msg}", tol)
    j = judge(fa, fb, tol, run.checks.cosine)
    w = j["worst"]
    bad_a = first_nonfinite(fa)
    if bad_a:
        truth = _finite_truth(run, f"ref:{name}", xs, fa)
        if truth is not True:
            return result(name, "skip", f"{why}: A itself is not finite ({bad_a}) and "
                                        f"{truth or 'float64 A is not finite there either'}: not comparable")
        flag_output_problems(run, name, j)
        out = verdict_from(name, j, tol)
        out["message"] = (f"{why}: A itself is not finite ({bad_a}) where float64 A is: the reference overflows on "
                          f"this input, so it cannot vouch for B; {out['message']}")
        return out
    if not j["ok"] and w and not w.get("shape_mismatch") and not w.get("nonfinite_b") and not j.get("missing_outputs"):
        within = _within_reference_error(run, f"ref:{name}", xs, fa, fb, tol)
        if within:
            out = verdict_from(name, j, tol)
            out.update(status="pass", message=f"{why}: A and B differ by {w['max_abs_diff']:.3g} (beyond the fp32 "
                                              f"tolerance), but {within}")
            return out
        conditioned = _conditioned(run, name, why, j, tol, xs, fa)
        if conditioned:
            return conditioned
    if not j["ok"] and run.b.impl.reads == "probabilities" and _same_up_to_ties(xs, fa, fb, tol):
        ranked = [[(k, np.sort(np.asarray(v), axis=-1))] for k, v in (fa[0], fb[0])]
        out = verdict_from(name, judge(ranked[0], ranked[1], tol, None), tol)  # figures on each row sorted
        out["message"] = (f"{why}: the two sides keep different tokens among logits that tie (max diff "
                          f"{w['max_abs_diff']:.3g} before sorting), but each row keeps the same probabilities: "
                          "ties are broken another way, not a different distribution")
        return out
    flag_output_problems(run, name, j)
    out = verdict_from(name, j, tol)
    out["message"] = f"{why}: {out['message']}"
    return out


def _same_up_to_ties(xs, fa, fb, tol) -> bool:
    """A logits processor's rows agree once sorted, and they differ only at logits that tie in the input."""
    logits = next((np.asarray(x, np.float64) for x in xs if np.issubdtype(np.asarray(x).dtype, np.floating)), None)
    (_, a), (_, b) = fa[0], fb[0]
    if logits is None or a.shape != b.shape or a.shape != logits.shape:
        return False
    if not np.allclose(np.sort(a, axis=-1), np.sort(b, axis=-1), rtol=tol.rtol, atol=tol.atol):
        return False
    differs = ~np.isclose(a, b, rtol=tol.rtol, atol=tol.atol)
    for row, bad in zip(logits.reshape(-1, logits.shape[-1]), differs.reshape(-1, differs.shape[-1])):
        values = row[bad]
        if values.size and not all(np.sum(row == v) > 1 for v in values):
            return False
    return True


def _finite_truth(run: PairRun, key: str, xs, fa) -> bool | str:
    """True when A's float64 output is finite wherever A's float32 output is not; else the reason it is not known."""
    if not run.a.supports("fp64"):
        return f"{run.a.impl.framework} has no float64 to tell"
    try:
        ref, _ = reference(run, key, xs)
    except Exception as exc:  # noqa: BLE001
        return f"float64 A cannot run ({describe(exc)})"
    if ref is None:
        return "float64 A cannot run"
    pairs, _, _ = match_outputs(ref, fa)
    for _, r, _, a in pairs:
        if r.shape == a.shape and not np.isfinite(r[~np.isfinite(a)]).all():
            return False
    return True




def _conditioned(run: PairRun, name: str, why: str, j: dict, tol, xs, fa) -> dict | None:
    """The edge check judged against the conditioning floor of A on this input, or None (the strict rule)."""
    got = conditioned(run, j, xs, fa)
    if got is None:
        return None
    outcome, figure = got
    out = verdict_from(name, j, tol)  # an inconclusive check is listed among the pair's limitations
    out.update(status=outcome, message=f"{why}: {said(figure, j['worst']['max_abs_diff'])}", condition=figure)
    return out


def _within_reference_error(run: PairRun, key: str, xs, fa, fb, tol) -> str | None:
    """On ill-conditioned inputs fp32 itself is inexact: B passes if its error against A's float64 output stays
    within the precision multiplier of A's own float32 error. Returns the evidence, or None."""
    try:
        ref, ref_name = reference(run, key, xs)
    except Exception:  # noqa: BLE001
        return None
    if not exact_reference(ref_name):
        return None  # A's float32 cannot tell ill-conditioning from a port difference: the strict rule stands
    mult = run.checks.precision_multiplier
    pa, _, _ = match_outputs(ref, fa)
    pb, _, _ = match_outputs(ref, fb)
    quantum = FP32_UNIT * max((float(np.max(np.abs(x))) for x in xs if np.issubdtype(np.asarray(x).dtype,
                                                                                      np.floating)), default=0.0)
    worst = None
    for (k, r, _, a), (_, _, _, b) in zip(pa, pb):
        if r.shape != a.shape or r.shape != b.shape or not np.isfinite(r).all():
            return None
        e = relative_error(a, b, r, mult, max(scaled_atol(tol.atol, r) * 0.1, quantum))
        if not e["ok"]:
            return None
        worst = max(worst or (0, 0, 0, 0), (e["ratio"], e["a_error"], e["b_error"], e["floor"]))
    if worst is None:
        return None
    ratio, err_a, err_b, floor = worst
    plus = f" + {floor:.2g} (one float32 rounding unit at the input's magnitude)" if floor == quantum else ""
    return (f"against {ref_name} B's RMSE {err_b:.3g} is within {mult:g}x A's own float32 error {err_a:.3g}{plus} "
            f"(ratio {ratio:.2f}): the input is ill-conditioned for float32, not a port difference")
