"""Turn failing checks into diagnosis entries: output symptoms, and static findings where a check confirms them."""
from __future__ import annotations

from parity_skill.runtime.context import PairRun
from parity_skill.runtime.outputs import label, match_outputs
from parity_skill.runtime.symptoms import classify

# static finding kind -> the checks whose failure confirms it
CONFIRMED_BY = {
    "approximation": ("forward", "backward", "batch"),
    "permutation": ("forward", "backward"),
    "scale": ("forward", "backward"),
    "eps": ("forward", "edge:tiny", "edge:zeros"),
    "precision": ("fp16", "bf16", "backward_fp16", "backward_bf16"),
    "missing_parameter": ("weights", "forward"),
    "nondeterministic": ("determinism:a", "determinism:b", "forward"),
    "device": ("forward",),
    "dtype": ("forward", "fp16", "bf16"),
}


def symptoms(run: PairRun) -> None:
    """Classify the failing forward outputs (same shape or permuted)."""
    pairs, _, _ = match_outputs(run.cache["fp32_a"], run.cache["fp32_b"])
    for ka, a, _, b in pairs:
        for kind, message in classify(a, b):
            run.diagnose(kind, f"{label(ka)}: {message}", "forward")


def link_static(run: PairRun, findings: list[dict], statuses: dict[str, str]) -> None:
    """A static finding becomes (or locates) a diagnosis when a check it explains failed."""
    for f in findings:
        failed = [c for c in CONFIRMED_BY.get(f["kind"], ()) if statuses.get(c) == "fail"]
        if not failed and not (f["kind"] == "device" and statuses.get("forward") is None):
            continue
        location = f.get("b_location") or f.get("a_location")
        existing = next((d for d in run.diagnosis if d["kind"] == f["kind"] and not d.get("location")), None)
        if existing is not None:
            existing["location"] = location
            existing["message"] += f"; the code shows: {f['message']}"
        else:
            checks = ", ".join(failed) or "forward"
            run.diagnose(f["kind"], f"{f['message']} (explains the failing {checks})", failed[0] if failed else
                         "forward", location)
