"""fp16/bf16 (judged against fp64 ground truth), batch independence and edge-case inputs."""
from __future__ import annotations

import numpy as np

from parity_skill.runtime.checks.basic import gradients, is_deterministic, verdict_from
from parity_skill.runtime.checks.conditioning import low_precision_floor
from parity_skill.runtime.checks.context import PairRun, result
from parity_skill.runtime.data.inputs import HOT_SCALE, batch_inputs, edge_inputs, hot_inputs
from parity_skill.runtime.sides.failures import backend_limit, describe
from parity_skill.runtime.judging.metrics import compare, rms, rmse, rmses, scaled_atol
from parity_skill.runtime.judging.outputs import first_nonfinite, judge, label, match_outputs
from parity_skill.thresholds import UNIT_ROUNDOFF


def relative_error(a: np.ndarray, b: np.ndarray, ref: np.ndarray, mult: float, floor: float,
                   conditioned: float = 0.0) -> dict:
    """The precision rule: B's RMSE against the reference may be at most `mult` x A's own plus `floor`, or, when A
    is more exact than rounding its input alone allows (a fused kernel), `mult` x `conditioned`, the RMS error
    that rounding causes (conditioning.low_precision_floor). Non-finite values in B make B's error infinite."""
    nonfinite_b = int(np.sum(~np.isfinite(b)))
    err_a, err_b = rmses(ref, a, b) if not nonfinite_b else (rmse(a, ref), float("inf"))
    ratio = err_b / err_a if err_a > 0 else (0.0 if err_b == 0 else float("inf"))
    allowed = max(mult * err_a + floor, mult * conditioned)
    out = dict(ok=nonfinite_b == 0 and err_b <= allowed, a_error=err_a, b_error=err_b, ratio=ratio, floor=floor,
               nonfinite_b=nonfinite_b)
    if conditioned:  # `decides`: the floor allowed more than the ratio rule (A is unusually exact here)
        out["condition"] = {"floor": conditioned, "factor": mult, "decides": bool(mult * conditioned > mult * err_a + floor)}
    return out


def reference(run: PairRun, key: str, xs: list[np.ndarray]):
    """Ground truth for an input set, computed once and never from B (the side under test): A in float64, or,
    where A cannot run in float64, A's own float32 output (named as such, and recorded as a limitation)."""
    if key not in run.cache:
        ref, name = None, None
        if run.a.supports("fp64"):
            try:
                ref, name = run.forward(run.a, xs, "fp64"), f"A ({run.a.impl.framework}) in float64"
            except Exception as exc:  # noqa: BLE001
                why = f"A cannot run in float64 ({describe(exc)})"
        else:
            why = f"A's framework ({run.a.impl.framework}) has no float64"
        if ref is None:
            ref, name = run.forward(run.a, xs), "A in float32"
            run.limit(f"precision judged against A's own float32 output: {why}")
        elif run.a.kept_fp32.get("fp64"):
            name += " (parts kept in float32)"
        run.cache[key] = (ref, name)
    return run.cache[key]


def _floor(run: PairRun, dtype: str, xs, ref, ref_name: str) -> dict | None:
    """The low-precision floor at the unit scale, where A ran wholly in float64 (conditioning.py)."""
    return low_precision_floor(run, dtype, ref) if xs is run.base and exact_reference(ref_name) else None


def exact_reference(name: str) -> bool:
    """A ran wholly in float64: the only reference that can tell ill-conditioning from a port difference."""
    return "float64" in name and "float32" not in name


def _errors(run: PairRun, dtype: str, xs: list[np.ndarray], ref, tol, mult: float, floors: dict | None = None):
    """Worst output of one input set: A's and B's error against the reference, or None if not comparable."""
    oa = run.forward(run.a, xs, dtype)
    ob = run.forward(run.b, xs, dtype)
    pa, _, _ = match_outputs(ref, oa)
    pb, _, _ = match_outputs(ref, ob)
    worst = None
    for (k, r, _, a), (_, _, _, b) in zip(pa, pb):
        if a.shape != r.shape or b.shape != r.shape:
            return {"key": k, "ok": False, "shape": (r.shape, a.shape, b.shape)}
        if not (np.isfinite(r).all() and np.isfinite(a).all()):
            continue  # the reference itself overflows here: nothing to hold B to
        entry = relative_error(a, b, r, mult, scaled_atol(tol.atol, r), (floors or {}).get(k, 0.0))
        with np.errstate(invalid="ignore", over="ignore"):
            diff = np.abs(b.astype(np.float64) - a.astype(np.float64))
        entry.update(key=k, max_abs_diff=float(np.nanmax(diff)) if a.size else 0.0)
        if worst is None or (not entry["ok"], entry["ratio"]) > (not worst["ok"], worst["ratio"]):
            worst = entry
    return worst


def precision_sets(run: PairRun, dtype: str) -> list[tuple[str, list[np.ndarray]]]:
    """The input sets a low-precision check judges (its float64 references are keyed `ref:<label>`)."""
    sets = [("unit scale", run.base)]
    hot = hot_inputs(run.inputs, run.base) if dtype == "fp16" else None
    if hot is not None:
        sets.append((f"activation scale x{HOT_SCALE:g}", hot))
    return sets


def planned_references(run: PairRun) -> list[tuple[str, list[np.ndarray]]]:
    """Every float64 reference the planned checks may ask A for, as (key, inputs)."""
    out: dict[str, list[np.ndarray]] = {}
    for name in run.checks.names:
        if name in ("fp16", "bf16"):
            out.update((f"ref:{label_}", xs) for label_, xs in precision_sets(run, name))
        elif name.startswith("edge:"):
            xs, _ = edge_inputs(name[5:], run.inputs, run.base)
            if xs is not None:
                out[f"ref:{name}"] = xs
    return list(out.items())


def check_precision(run: PairRun, dtype: str) -> dict:
    tol, mult = run.checks.tolerances[dtype], run.checks.precision_multiplier
    for side in (run.a, run.b):
        if not side.supports(dtype):
            return result(dtype, "skip", f"{side.label}: {side.impl.framework} has no {dtype}")
    parts, worst, stressed, ref_name = [], None, None, ""
    for label_, xs in precision_sets(run, dtype):
        ref, ref_name = reference(run, f"ref:{label_}", xs)
        try:
            run.forward(run.a, xs, dtype)
        except Exception as exc:  # noqa: BLE001
            parts.append(f"{label_}: A itself fails in {dtype} ({describe(exc)})")
            continue
        try:
            w = _errors(run, dtype, xs, ref, tol, mult, _floor(run, dtype, xs, ref, ref_name))
        except Exception as exc:  # noqa: BLE001
            why = describe(exc)
            if backend_limit(why):  # the framework lacks the op in this dtype here: not the port's doing
                return result(dtype, "skip", f"B's framework has no {dtype} kernel for an op B uses, on this "
                                             f"machine: {why}")
            return result(dtype, "fail", f"B raises in {dtype} at {label_} (A does not): {why}")
        if w is None:
            parts.append(f"{label_}: A itself is not finite in {dtype}; not judged")
            run.limit(f"{dtype} at {label_} not judged: A itself is not finite in {dtype} there")
            continue
        if "shape" in w:
            return result(dtype, "fail", f"{label(w['key'])}: shapes in {dtype} differ {w['shape']}")
        w["set"] = label_
        parts.append(f"{label_}: A {w['a_error']:.3g}, B {w['b_error']:.3g} (B/A {w['ratio']:.2f})"
                     + (f", B non-finite x{w['nonfinite_b']}" if w["nonfinite_b"] else ""))
        if label_ != "unit scale":  # the stress point only warns: its realism for this layer is unknown
            stressed = w if not w["ok"] else stressed
        elif worst is None or (not w["ok"], w["ratio"]) > (not worst["ok"], worst["ratio"]):
            worst = w
    if worst is None:
        return result(dtype, "skip", "; ".join(parts) or "no comparable outputs")
    fields = dict(a_error=worst["a_error"], b_error=worst["b_error"], ratio=worst["ratio"], reference=ref_name,
                  max_abs_diff=worst["max_abs_diff"], scale=worst["set"],
                  tolerance={"atol": tol.atol, "rtol": tol.rtol, "multiplier": mult, "atol_floor": worst["floor"]})
    msg = f"RMSE vs {ref_name}, allowed B <= {mult:g}x A + {worst['floor']:.1g}"
    if worst.get("condition"):
        fields["condition"] = worst["condition"]
        msg += (f" or {mult:g}x the error rounding the input to {dtype} causes, {worst['condition']['floor']:.2g}"
                + (" (which decides: A is unusually exact here)" if worst["condition"]["decides"] else ""))
    msg += ": " + "; ".join(parts)
    if worst["ok"] and stressed is not None:
        warning = stress_warning(dtype, stressed)
        if not run.checks.strict:
            return result(dtype, "pass", f"{msg}; warning: {warning}", warning=warning, **fields)
        worst, msg = stressed, f"{msg}; --strict: {warning}"  # judged as a failure, with its diagnosis
        fields.update(a_error=worst["a_error"], b_error=worst["b_error"], ratio=worst["ratio"], scale=worst["set"])
    if worst["ok"]:
        return result(dtype, "pass", msg, **fields)
    if run.cache.get("status", {}).get("forward") == "pass":
        if worst["nonfinite_b"]:
            run.diagnose("nan_inf", f"B overflows in {dtype} at {worst['set']}: {worst['nonfinite_b']} non-finite "
                                    f"values in {label(worst['key'])} where A is finite", dtype)
        run.diagnose("precision", f"in {dtype} B's error is {worst['ratio']:.3g}x A's at {worst['set']} "
                                  f"({worst['b_error']:.3g} vs {worst['a_error']:.3g} RMSE against {ref_name}): B "
                                  "computes something in lower precision than A (e.g. a norm or softmax without A's "
                                  "float32 upcast)", dtype, a_error=worst["a_error"], b_error=worst["b_error"])
    else:
        msg += " (fp32 forward already differs)"
    return result(dtype, "fail", msg, min_tolerance={"multiplier": worst["ratio"]}, **fields)


def stress_warning(dtype: str, w: dict) -> str:
    """What failing at the stress scale means: the port holds at the operating point, not at 128x it."""
    where = f"{w['set']} (the unit scale agrees)"
    if w["nonfinite_b"]:
        return (f"B overflows in {dtype} at {where} where A does not ({w['nonfinite_b']} non-finite values in "
                f"{label(w['key'])}): the usual cause is scores or squares kept in fp16 where A accumulates in float32")
    return (f"in {dtype} B's error is {w['ratio']:.3g}x A's at {where}: B keeps less precision than A at large "
            "activations")


# One rounding unit of each low-precision dtype. A gradient that is zero in exact arithmetic (a key bias under
# softmax) is rounding noise in every dtype; the backward precision rule allows one unit at the scale of the
# largest gradient (its RMS) on top of the multiplier, so noise is never judged relative to noise.


def check_backward_precision(run: PairRun, dtype: str) -> dict:
    name = f"backward_{dtype}"
    for side in (run.a, run.b):
        if not side.differentiable:
            return result(name, "skip", f"{side.label}: {side.impl.framework} has no automatic differentiation")
        if not side.supports(dtype):
            return result(name, "skip", f"{side.label}: {side.impl.framework} has no {dtype}")
    ref, ref_name = _reference_grads(run)  # recorded once on A's side; not kept: a model's worth of memory
    try:
        ga, gb = gradients(run, dtype)
    except Exception as exc:  # noqa: BLE001 - e.g. MLX's CPU convolution has no fp16 backward
        return result(name, "skip", f"backward in {dtype} is not supported here: {describe(exc)}")
    if not ga:
        return result(name, "skip", "nothing to differentiate")
    if run.recording:
        return result(name, "skip", f"A's {dtype} gradients recorded")
    tol, mult = run.checks.tolerances[dtype], run.checks.precision_multiplier
    errors, scale = [], 0.0  # one pass: each of A's gradients is read once (from disk in phase 2)
    for key, r in ref.items():
        a, b = ga.get(key), gb.get(key)
        if r is None or a is None or b is None or a.shape != b.shape:
            continue
        e = relative_error(a, b, r, mult, scaled_atol(tol.atol, r))
        errors.append((key, e))
        scale = max(scale, rms(r))
    if not errors:
        return result(name, "skip", "no comparable gradients")
    noise = UNIT_ROUNDOFF[dtype] * scale
    worst = None
    for key, e in errors:
        floor = max(e["floor"], noise)
        ok = e["nonfinite_b"] == 0 and e["b_error"] <= mult * e["a_error"] + floor
        if worst is None or (not ok, e["ratio"]) > (not worst[1], worst[2]):
            worst = (key, ok, e["ratio"], e["a_error"], e["b_error"], floor)
    key, ok, ratio, err_a, err_b, floor = worst
    msg = (f"worst {key}: RMSE vs {ref_name} gradients A {err_a:.3g}, B {err_b:.3g} (B/A {ratio:.2f}, allowed "
           f"{mult:g}x + {floor:.2g}" + (f", one {dtype} rounding unit at the gradients' scale)" if floor == noise
                                         else ")"))
    fields = dict(a_error=err_a, b_error=err_b, ratio=ratio,
                  tolerance={"atol": tol.atol, "rtol": tol.rtol, "multiplier": mult, "atol_floor": floor})
    if not ok:
        fields["min_tolerance"] = {"multiplier": ratio}
    if not ok and run.cache.get("status", {}).get("backward") == "pass":
        run.diagnose("precision", f"{dtype} gradients: B's error is {ratio:.3g}x A's in {key}", name)
    elif not ok:
        msg += " (fp32 backward already differs)"
    return result(name, "pass" if ok else "fail", msg, **fields)


def _reference_grads(run: PairRun) -> tuple[dict, str]:
    """Ground truth for low-precision gradients: A's float32 gradients (the ones the backward check compares).
    float32 is about 1000x more precise than float16 and bfloat16, and a float64 backward would hold two float64
    copies of a model's weights (parameters and gradients)."""
    return gradients(run, "fp32", only_a=True)[0], "A's float32"


def _coupling(run: PairRun, side, xs: list[np.ndarray], n: int, tol) -> tuple[float, int | None, str | None]:
    """Largest difference between a sample inside the batch and the same sample alone (and which sample).

    Also records in run.cache the smallest fp32 atol at which this side would count as independent."""
    full = run.forward(side, xs)
    worst, worst_i, note = 0.0, None, None
    need = run.cache.setdefault("coupling_atol", {})
    for i in range(n):
        single = run.forward(side, [x[i:i + 1] for x in xs])
        for (k, f), (_, s) in zip(full, single):
            if f.ndim == 0 or f.shape[0] != n or s.shape[0] != 1:
                note = f"{label(k)} has no batch axis of size {n}; not checked per sample"
                continue
            c = compare(s[0], f[i], scaled_atol(tol.atol, s[0]), tol.rtol)
            if not c["ok"]:
                required = ((c.get("min_tolerance") or {}).get("atol") or float("inf")) / scaled_atol(1.0, s[0])
                need[side.which] = max(need.get(side.which, 0.0), required)
            if not c["ok"] and (c.get("max_abs_diff") or float("inf")) > worst:
                worst, worst_i = c.get("max_abs_diff") or float("inf"), i
    return worst, worst_i, note


def check_batch(run: PairRun) -> dict:
    n = max(run.checks.batch_sizes)
    if n < 2:
        return result("batch", "skip", "needs a batch size above 1 (--batch-sizes)")
    if not run.inputs:
        return result("batch", "skip", "the call takes no array input to batch")
    tol = run.checks.tolerances["fp32"]
    xs = batch_inputs(run.inputs, n, run.checks.seed)
    try:
        bad_a = first_nonfinite(run.forward(run.a, xs))
        if bad_a:
            return result("batch", "skip", f"A is not finite on the batch of {n} ({bad_a}): not comparable")
        ca = _coupling(run, run.a, xs, n, tol)
    except Exception as exc:  # noqa: BLE001
        return result("batch", "skip", f"A raises on a batch of {n}: {describe(exc)}")
    try:
        cb = _coupling(run, run.b, xs, n, tol)
    except Exception as exc:  # noqa: BLE001
        return result("batch", "fail", f"B raises on a batch of {n} or 1 (A does not): {describe(exc)}")
    j = judge(run.forward(run.a, xs), run.forward(run.b, xs), tol, run.checks.cosine)
    coupled = {"A": ca, "B": cb}
    for who, side in (("A", run.a), ("B", run.b)):
        if coupled[who][1] is not None and not is_deterministic(run, side):
            return result("batch", "skip", f"{side.label} is not deterministic, so batch coupling cannot be "
                                           "told apart from its noise (see determinism)")
    for who, (diff, i, _) in coupled.items():
        if i is not None:
            run.diagnose("batch_coupling", f"{who} mixes samples: sample {i} of a batch of {n} differs by {diff:.3g} "
                                           "from the same sample run alone (statistics over the batch axis?)", "batch")
    parts = [f"{who}: {'couples samples (max %.3g at sample %d)' % (d, i) if i is not None else 'samples independent'}"
             for who, (d, i, _) in coupled.items()]
    notes = {note for _, _, note in coupled.values() if note}
    summary = f"batch of {n} vs 1: " + "; ".join(parts) + (f" ({'; '.join(notes)})" if notes else "")
    mismatch = (ca[1] is None) != (cb[1] is None)
    if mismatch:
        required = max(run.cache["coupling_atol"].values())
        return result("batch", "fail", summary, tol, max_abs_diff=max(ca[0], cb[0]), min_tolerance={"atol": required})
    out = verdict_from("batch", j, tol)
    out["message"] = summary + "; A vs B at batch %d: %s" % (n, out["message"])
    return out
