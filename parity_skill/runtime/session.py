"""Run every planned check of one pair and return its report entry (a plain dict of the JSON schema)."""
from __future__ import annotations

import time
from dataclasses import asdict

from parity_skill.runtime import checks_basic as basic
from parity_skill.runtime import checks_matrix as matrix
from parity_skill.runtime.context import PairRun, result
from parity_skill.runtime.inputs import base_inputs
from parity_skill.runtime.loading import UserCodeError, describe
from parity_skill.runtime.side import Side
from parity_skill.runtime.weights import load_pair
from parity_skill.spec import PairSpec


def _side_json(impl) -> dict:
    return {"path": impl.file, "symbol": impl.symbol, "framework": impl.framework}


def _dispatch(run: PairRun, name: str) -> dict:
    if name == "forward":
        return basic.check_forward(run)
    if name == "backward":
        return basic.check_backward(run)
    if name in ("fp16", "bf16"):
        return matrix.check_precision(run, name)
    if name.startswith("backward_"):
        return matrix.check_backward_precision(run, name.split("_", 1)[1])
    if name == "batch":
        return matrix.check_batch(run)
    if name.startswith("edge:"):
        return matrix.check_edge(run, name[5:])
    if name.startswith("determinism:"):
        return basic.check_determinism(run, name.split(":")[1])
    return result(name, "skip", f"unknown check '{name}'")


def run_pair(spec: PairSpec) -> dict:
    entry = {"a": _side_json(spec.a), "b": _side_json(spec.b), "verdict": "error", "error": None, "checks": [],
             "diagnosis": [], "first_divergence": None, "static_findings": list(spec.static_findings),
             "notes": list(spec.notes), "inputs": [asdict(i) for i in spec.inputs]}
    notes = entry["notes"]
    try:
        a = Side("a", spec.a)
        layout = next((i.layout_b for i in spec.inputs if i.layout_b), None)
        b = Side("b", spec.b, layout)
        if spec.b.file is None:
            args = ", ".join(f"{k}={v!r}" for k, v in b.kwargs.items())
            notes.append(f"reference B built as {spec.b.symbol}({args}), arguments carried over from A by name/role")
        entries, left_a, left_b, _ = load_pair(a, b, spec.weight_map, spec.checks.seed, notes)
    except (UserCodeError, ValueError) as exc:
        entry["error"] = str(exc)
        return entry
    entry["weight_map"] = [asdict(e) for e in entries]
    entry["unmapped"] = {"a": left_a, "b": left_b}
    base = base_inputs(spec.inputs, spec.checks.seed)
    run = PairRun(a, b, spec.inputs, spec.checks, base, entries, left_a, left_b, notes=notes)
    for side, key in ((a, "fp32_a"), (b, "fp32_b")):
        try:
            run.cache[key] = run.forward(side, base)
        except Exception as exc:  # noqa: BLE001
            msg = describe(exc)
            if "cuda" in msg.lower() or "mps" in msg.lower():
                run.diagnose("device", f"{side.label} needs a device this machine lacks: {msg}", "forward")
            entry["error"] = f"{side.impl.display}: forward raised {msg}"
            entry["diagnosis"] = run.diagnosis
            return entry
    checks = [basic.check_weights(run)]
    for name in spec.checks.names:
        start = time.perf_counter()
        try:
            out = _dispatch(run, name)
        except Exception as exc:  # noqa: BLE001 - a check that cannot run is reported, not fatal
            out = result(name, "error", f"could not run: {describe(exc)}")
        out["seconds"] = round(time.perf_counter() - start, 4)
        run.cache.setdefault("status", {})[name] = out["status"]
        checks.append(out)
    entry["checks"] = checks
    entry["diagnosis"] = run.diagnosis
    statuses = {c["status"] for c in checks}
    entry["verdict"] = "fail" if "fail" in statuses else "error" if "error" in statuses else "pass"
    if entry["verdict"] == "error":
        entry["error"] = next(c["message"] for c in checks if c["status"] == "error")
    return entry
