"""Turn failing checks into diagnosis entries: output symptoms, and static findings where a check confirms them."""
from __future__ import annotations

import re

from parity_skill.runtime.checks.context import PairRun
from parity_skill.runtime.judging.outputs import label, match_outputs
from parity_skill.runtime.diagnosis.symptoms import classify

# static finding kind -> the checks whose failure confirms it
CONFIRMED_BY = {
    "approximation": ("forward", "backward", "batch"),
    "permutation": ("forward", "backward"),
    "scale": ("forward", "backward"),
    "eps": ("forward", "edge:tiny", "edge:zeros", "backward"),
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
        both = f.get("a_location") and f.get("b_location")
        existing = next((d for d in run.diagnosis if d["kind"] == f["kind"] and not d.get("location")), None)
        if existing is not None:
            existing["location"] = location
            existing["message"] += f"; the code shows: {f['message']}"
        else:
            checks = ", ".join(failed) or "forward"
            lead = _EPS_LEAD if f["kind"] == "eps" and _narrow(statuses) else ""
            where = f"; A at {f['a_location']}, B at {f['b_location']}" if both else ""
            run.diagnose(f["kind"], f"{lead}{f['message']} (explains the failing {checks}{where})",
                         failed[0] if failed else "forward", location, a_location=f.get("a_location"),
                         b_location=f.get("b_location"))


_EPS_LEAD = "forward agrees while backward does not, and a norm's eps moves its gradients more than its outputs: "
NORM_WORDS = ("norm",)


def _narrow(statuses: dict[str, str]) -> bool:
    return statuses.get("forward") == "pass" and statuses.get("backward") == "fail" or \
        statuses.get("edge:tiny") == "fail"


def suggest_eps(run: PairRun, findings: list[dict], statuses: dict[str, str]) -> None:
    """Backward fails where forward passes (or tiny inputs fail) and a norm is in the path, but the code shows no
    eps difference: eps is still the first thing to compare, before a custom backward or a stop-gradient."""
    if not _narrow(statuses) or any(f["kind"] == "eps" for f in findings) or \
            any(d["kind"] == "frozen_rows" for d in run.diagnosis):
        return
    norms = sorted({c["class"] for side in (run.a, run.b) for c in side.module_classes().values()
                    if any(w in c["class"].lower() for w in NORM_WORDS)})
    if not norms:
        return
    what = "backward fails while forward passes" if statuses.get("edge:tiny") != "fail" else "tiny inputs fail"
    run.diagnose("eps", f"{what} and the path has normalisation layers ({', '.join(norms[:4])}): compare their eps "
                        "values first (a constructor's or config's eps against the framework default); then look for "
                        "a custom backward, a detached statistic or a stop-gradient",
                 "backward" if statuses.get("backward") == "fail" else "edge:tiny")


_GUESSED = re.compile(r"^(.+?): required and of unknown role; guessed (.+) \(override with --init\)$")


def guessed(run: PairRun, notes: list[str]) -> None:
    """A failing forward where constructor arguments were guessed: they may be the difference (a block built as
    a global layer where the model builds it as a local one), so they are named first."""
    found = [f"{m.group(1).replace('(', '.')}={m.group(2)}" for n in notes if (m := _GUESSED.match(n))]
    if found:
        run.diagnose("guessed_arguments", "the difference may come from arguments guessed for lack of a config or "
                     f"a model building this layer: {', '.join(found[:6])}" + (" ..." if len(found) > 6 else "")
                     + " (give them with --init, or the model's config.json with --config)", "forward")
