"""`parity-skill compare A_DIR B_DIR`: two artifacts, no code. Every stage A recorded (submodule outputs in call
order, then the final outputs) is compared with the stage of the same name in B's artifact, which any program may
write (docs/fixtures.md). The result is an ordinary report whose checks are named `stage:<name>`."""
from __future__ import annotations

import numpy as np

from parity_skill.compare.stage_map import given, map_stages
from parity_skill.runtime.data.artifact import ArtifactError
from parity_skill.runtime.data.fixtures import read_fixture
from parity_skill.runtime.judging.stages import stage_row
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
    checks = fed + [stage_row(name, items, stages_b.get(mapping.get(name, "")), atol, cosine_min, min_correlation,
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
