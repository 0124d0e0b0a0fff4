"""`parity-skill compare A_DIR B_DIR`: two artifacts, no code. Every stage A recorded (submodule outputs in call
order, then the final outputs) is compared with the stage of the same name in B's artifact, which any program may
write (docs/fixtures.md). The result is an ordinary report whose checks are named `stage:<name>`."""
from __future__ import annotations

import numpy as np

from parity_skill.compare.stage_map import given, map_stages
from parity_skill.runtime.data.artifact import ArtifactError
from parity_skill.runtime.data.fixtures import read_fixture
from parity_skill.runtime.judging.metrics import compare, scaled_atol
from parity_skill.thresholds import STAGE_COSINE as COSINE

LEVELS = {"layer": 1e-5, "chain": 1e-4, "model": 1e-3}


def _stages(manifest: dict, tensors: dict) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Stage name -> [(tensor name, array)] in the artifact's call order; the final outputs come last."""
    out: dict[str, list] = {}
    for stage in manifest.get("stages", []):
        names = [f"stages/{stage['name']}/out/{i}" for i in range(len(stage.get("out", [""])))]
        out[stage["name"]] = [(n, tensors.get(n)) for n in names]
    for i, key in enumerate(manifest.get("outputs", [])):
        out[f"output{key}"] = [(f"outputs/{i}", tensors.get(f"outputs/{i}"))]
    return out


def _side(folder: str, manifest: dict) -> dict:
    side = manifest.get("side", {})
    return {"path": folder, "symbol": side.get("symbol") or "(artifact)", "framework": side.get("framework") or "-"}


def _row(name: str, a_items, b_items, atol: float, cosine_min: float, min_correlation: float | None,
         b_name: str | None = None) -> dict:
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


def compare_artifacts(dir_a: str, dir_b: str, level: str = "layer", atol: float | None = None,
                      cosine_min: float | None = None, min_correlation: float | None = None,
                      rules: tuple[str, ...] = (), strict: bool = False) -> dict:
    """The pair entry of two artifacts or fixtures compared stage by stage (ArtifactError for an unusable one).
    Inputs and weights both record are compared first; stages map by name, `rules` (--map), then order and shape;
    `strict`: a stage of A that B lacks fails."""
    ma, ta = read_fixture(dir_a)
    mb, tb = read_fixture(dir_b)
    atol = atol if atol is not None else LEVELS[level]
    cosine_min = cosine_min if cosine_min is not None else COSINE
    stages_a, stages_b = _stages(ma, ta), _stages(mb, tb)
    try:
        mapping, notes = map_stages(stages_a, stages_b, rules)
    except ValueError as exc:
        raise ArtifactError(str(exc)) from None
    fed = given(ma, ta, mb, tb, mapping, rules, atol)
    checks = fed + [_row(name, items, stages_b.get(mapping.get(name, "")), atol, cosine_min, min_correlation,
                         mapping.get(name)) for name, items in stages_a.items()]
    if strict:
        for c in checks:
            if c["status"] == "skip" and c["message"] == "missing in B's artifact":
                c.update(status="fail", message="missing in B's artifact (--strict)")
    extra = [n for n in stages_b if n not in set(mapping.values())]
    first = _first_divergence([c["name"][6:] for c in checks if c["status"] == "fail" and c["name"].startswith("stage:")])
    notes += [f"stages only in B's artifact (not compared): {', '.join(extra)}"] if extra else []
    if not stages_a:
        notes.append("A's artifact records no stages or outputs")
    diagnosis = [{"kind": "given", "message": f"{c['name']}: {c['message']}: the stages after it only carry a "
                  "difference A and B were given, not one they computed", "location": None, "check": c["name"]}
                 for c in fed if c["status"] == "fail"]
    ran = [c for c in checks if c["status"] != "skip" and c["name"].startswith("stage:")]
    verdict = "fail" if first or diagnosis else ("pass" if ran else "error")
    limits = [f"{c['name']} not checked: {c['message']}" for c in checks if c["status"] == "skip"]
    return {"a": _side(dir_a, ma), "b": _side(dir_b, mb), "verdict": verdict,
            "error": None if ran else "no stage of A's artifact is in B's", "checks": checks, "diagnosis": diagnosis,
            "first_divergence": first, "static_findings": [], "notes": notes, "limitations": limits,
            "stage_map": {a: b for a, b in mapping.items() if a != b}}


def _first_divergence(failing: list[str]) -> str | None:
    """The first failing stage in call order, then its first failing descendant, as deep as they go."""
    if not failing:
        return None
    current = failing[0]
    while True:
        deeper = [n for n in failing if n.split("#")[0].startswith(current.split("#")[0] + ".")]
        if not deeper:
            return current
        current = deeper[0]
