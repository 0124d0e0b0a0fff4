"""`parity-skill compare A_DIR B_DIR`: two artifacts, no code. Every stage A recorded (submodule outputs in call
order, then the final outputs) is compared with the stage of the same name in B's artifact, which any program may
write (docs/fixtures.md). The result is an ordinary report whose checks are named `stage:<name>`."""
from __future__ import annotations

import fnmatch

import numpy as np

from parity_skill.compare.stage_map import given, map_stages
from parity_skill.runtime.data.artifact import ArtifactError
from parity_skill.runtime.data.fixtures import read_fixture
from parity_skill.runtime.judging.stages import stage_row
from parity_skill.safe_io import read_source
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


def stage_level(name: str, names: list[str]) -> str:
    """--level auto for one recorded stage: model for the final outputs, chain for a stage whose submodules were
    recorded too (a block), layer for the rest."""
    if name.startswith("output"):
        return "model"
    base = name.split("#")[0]
    return "chain" if any(n.split("#")[0].startswith(base + ".") for n in names) else "layer"


def read_tolerances(path: str | None) -> list[tuple[str, str, float]]:
    """--tolerances FILE: `PATTERN LEVEL|ATOL` per line (fnmatch patterns on A's stage names, `#` comments); the
    first matching line sets a stage's atol."""
    if not path:
        return []
    try:
        text = read_source(path)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"--tolerances {path}: cannot read: {exc}") from None
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        try:
            atol = LEVELS[parts[1]] if len(parts) == 2 and parts[1] in LEVELS else float(parts[1])
        except (IndexError, ValueError):
            atol = None
        if len(parts) != 2 or atol is None or not atol >= 0:
            raise ArtifactError(f"{path}:{n}: expected `PATTERN LEVEL` or `PATTERN ATOL` (e.g. `vae.* chain`, "
                                f"`encoder.layers.* 1e-4`), got {line!r}")
        out.append((parts[0], line, atol))
    return out


def compare_artifacts(dir_a: str, dir_b: str, level: str = "layer", atol: float | None = None,
                      cosine_min: float | None = None, min_correlation: float | None = None,
                      rules: tuple[str, ...] = (), strict: bool = False, tolerances: str | None = None,
                      layout: tuple[int, ...] = ()) -> dict:
    """The pair entry of two artifacts or fixtures compared stage by stage (ArtifactError for an unusable one).
    Inputs and weights both record are compared first; stages map by name, `rules` (--map), then order and shape;
    `strict`: a stage of A that B lacks fails. A stage's atol: --atol, else its line of `tolerances`, else its
    level (`auto`: stage_level)."""
    ma, ta = read_fixture(dir_a)
    mb, tb = read_fixture(dir_b)
    patterns = read_tolerances(tolerances)
    cosine_min = cosine_min if cosine_min is not None else COSINE
    stages_a, stages_b = _stages(ma, ta), _stages(mb, tb)
    if layout:
        stages_b, moved = _in_a_layout(stages_a, stages_b, layout)
    else:
        moved = []

    def atol_of(name: str) -> float:
        if atol is not None:
            return atol
        hit = next((a for pattern, _, a in patterns if fnmatch.fnmatchcase(name, pattern)), None)
        if hit is not None:
            return hit
        return LEVELS[stage_level(name, list(stages_a)) if level == "auto" else level]
    try:
        mapping, notes = map_stages(stages_a, stages_b, rules)
    except ValueError as exc:
        raise ArtifactError(str(exc)) from None
    fed = given(ma, ta, mb, tb, mapping, rules, atol if atol is not None else LEVELS["layer" if level == "auto"
                                                                                     else level])
    checks = fed + [stage_row(name, items, stages_b.get(mapping.get(name, "")), atol_of(name), cosine_min,
                              min_correlation, mapping.get(name)) for name, items in stages_a.items()]
    if moved:
        notes.append(f"--layout: B's {', '.join(moved[:8])}{' ...' if len(moved) > 8 else ''} moved to A's layout "
                     f"(axes {tuple(int(i) for i in np.argsort(layout))}) before comparing")
    if level == "auto" and atol is None:
        notes.append("--level auto: the final outputs at model level (1e-3), stages whose submodules were recorded "
                     "at chain level (1e-4), the others at layer level (1e-5)")
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


def _in_a_layout(stages_a: dict, stages_b: dict, layout: tuple[int, ...]) -> tuple[dict, list[str]]:
    """B's stage tensors of the layout's rank moved back to A's layout (--layout b=nlc: B channels-last), where
    that is what makes them A's shape; the names of the stages moved."""
    back = tuple(int(i) for i in np.argsort(layout))
    shapes_a = {tuple(np.shape(a)) for items in stages_a.values() for _, a in items if a is not None}
    out, moved = {}, []
    for name, items in stages_b.items():
        new = []
        for key, b in items:
            if b is not None and np.ndim(b) == len(back) and tuple(np.shape(b)) not in shapes_a \
                    and tuple(np.shape(b)[i] for i in back) in shapes_a:
                b = np.transpose(b, back)
                moved.append(name)
            new.append((key, b))
        out[name] = new
    return out, list(dict.fromkeys(moved))


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
