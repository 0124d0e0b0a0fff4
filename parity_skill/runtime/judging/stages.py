"""A recorded stage of A against B's (two artifacts compared stage by stage, or a streamed model block by block):
the row of a stage table, with the criterion that failed named."""
from __future__ import annotations

import numpy as np

from parity_skill.runtime.judging.metrics import compare, scaled_atol


def stage_row(name: str, a_items, b_items, atol: float, cosine_min: float, min_correlation: float | None,
              b_name: str | None = None) -> dict:
    """One recorded stage judged: A's and B's [(tensor name, array)] held to max abs <= atol x max(1, max|A|) and
    cosine >= cosine_min, or to Pearson >= min_correlation when given (a stage of another scale or offset)."""
    check = {"name": f"stage:{name}", "status": "pass", "message": "", "max_abs_diff": None, "mean_abs_diff": None,
             **({"b_stage": b_name} if b_name and b_name != name else {}),
             "cosine": None, "pearson": None, "tolerance": {"atol": atol, "cosine": cosine_min,
                                                            "min_correlation": min_correlation}}
    if b_items is None or any(v is None for _, v in b_items):
        return dict(check, status="skip", message="missing in B's artifact")
    notes, failing = [], []
    if not a_items or any(a is None for _, a in a_items):  # nothing of A's to measure: never a pass
        return dict(check, status="skip", message="no recorded output in A's artifact")
    max_rule = f"max abs <= {atol:g} x max(1, max|A|)"
    for (tname, a), (_, b) in zip(a_items, b_items):
        if a.shape != b.shape:
            return dict(check, status="fail", message=f"{tname}: shape A {a.shape} vs B {b.shape}")
        if a.dtype != b.dtype:
            notes.append(f"dtype A {a.dtype}, B {b.dtype} (compared in float64)")
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        c = compare(a64, b64, scaled_atol(atol, a64), 0.0)
        both = np.isfinite(a64) & np.isfinite(b64)
        mean = float(np.mean(np.abs(a64[both] - b64[both]))) if both.any() else None
        if check["max_abs_diff"] is None or (c.get("max_abs_diff") or 0) > check["max_abs_diff"]:
            check.update(max_abs_diff=c.get("max_abs_diff"), mean_abs_diff=mean, cosine=c.get("cosine"),
                         pearson=c.get("pearson"), nonfinite_a=c.get("nonfinite_a"), nonfinite_b=c.get("nonfinite_b"),
                         undefined=c.get("undefined"))
        metric, bound = ("pearson", min_correlation) if min_correlation is not None else ("cosine", cosine_min)
        why = (c.get("undefined") or {}).get(metric)
        if why:  # a zero or constant stage: the correlation says nothing, the elementwise rule still does
            notes.append(f"{metric} undefined for {tname} ({why}): judged by {max_rule} alone")
            failing += [max_rule] if not c["ok"] else []
        elif metric == "pearson":
            failing += [] if c.get("pearson") is not None and c["pearson"] >= bound and both.all() else \
                [f"Pearson >= {bound:g}" + ("" if both.all() else " on finite values only")]
        else:
            failing += [max_rule] if not c["ok"] else []
            failing += [f"cosine >= {bound:g}"] if c.get("cosine") is None or c["cosine"] < bound else []
    failing = list(dict.fromkeys(failing))
    rule = (f"Pearson >= {min_correlation:g}" if min_correlation is not None else f"{max_rule} and cosine >= {cosine_min:g}")
    cos = "undefined" if check["cosine"] is None and "cosine" in (check.get("undefined") or {}) else \
        "-" if check["cosine"] is None else f"{check['cosine']:.6f}"
    figures = f"max abs {check['max_abs_diff']:.3g}, cosine {cos}" if check["max_abs_diff"] is not None \
        else "no finite values"
    check["message"] = "; ".join([figures, ("fails " + " and ".join(failing)) if failing else "within " + rule] + notes)
    failed = bool(failing)
    check["status"] = "fail" if failed else "pass"
    return check
