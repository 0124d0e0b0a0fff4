"""The two phases as commands: `capture` runs side A alone into an artifact folder; `compare` runs side B alone
against one. Planning happens here, running in `run/processes.py`, printing in `cli/main.py`."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
from dataclasses import replace
from pathlib import Path

from parity_skill.errors import InputError, RunError
from parity_skill.plan.planner import ParityPlan, PlanOptions, Target, build_plan
from parity_skill.spec import Implementation, InputSpec


def plan_capture(target: Target, opts: PlanOptions) -> ParityPlan:
    """A's plan on its own: the pair A vs A, whose checks and inputs are what the artifact records."""
    plan = build_plan(target, target, opts)
    if len(plan.pairs) != 1:
        names = ", ".join(p.a.symbol for p in plan.pairs)
        raise InputError(f"{target.path}: defines {names}; capture one at a time ({target.path}::Name)")
    return plan


def prepare_folder(folder: str, force: bool) -> None:
    """An artifact folder must be new or empty; --force replaces an earlier artifact (and nothing else)."""
    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise InputError(f"{folder}: exists and is not a folder")
    if path.is_dir() and any(path.iterdir()):
        from parity_skill.runtime.data.artifact import MANIFEST, TENSORS

        if not force:
            raise InputError(f"{folder}: not empty; nothing was overwritten (use --force to replace an artifact)")
        if not (path / MANIFEST).exists():
            raise InputError(f"{folder}: not empty and not an artifact; refusing to replace it even with --force")
        try:
            listed = list(json.loads((path / MANIFEST).read_text(encoding="utf-8")).get("files", {}))
        except (OSError, ValueError, AttributeError):
            listed = []
        for name in {MANIFEST, TENSORS, "config.json", *listed}:
            if "/" not in name and "\\" not in name:  # only files of the artifact itself
                (path / name).unlink(missing_ok=True)
    path.mkdir(parents=True, exist_ok=True)


def read_capture(folder: str) -> dict:
    from parity_skill.runtime.data.artifact import ArtifactError, read_manifest
    from parity_skill.runtime.data.manifest import ManifestError, captured

    try:
        manifest = read_manifest(folder)
    except ArtifactError as exc:
        raise InputError(str(exc)) from None
    if manifest.get("error"):
        raise InputError(f"{folder}: side A could not be captured: {manifest['error']}")
    try:
        captured(manifest, folder)
    except ManifestError as exc:
        raise InputError(str(exc)) from None
    return manifest


def plan_compare(folder: str, target_b: Target, opts: PlanOptions) -> ParityPlan:
    """B against a captured A. With A's source at hand the plan is the one-shot plan (so the report is the same);
    without it, A's side of the plan comes from the manifest and B's from B's code."""
    manifest = read_capture(folder)
    side = manifest["side"]
    opts = replace(opts, seed=manifest["seed"], stream=opts.stream or "stream" in manifest)  # the capture decides
    source = _source_of_a(folder, side)
    if source:
        return build_plan(Target(source, side["symbol"]), target_b, opts)
    own = build_plan(target_b, target_b, opts)
    if len(own.pairs) != 1:
        raise InputError(f"{target_b.path}: defines several symbols; name one ({target_b.path}::Name)")
    spec = own.pairs[0]
    inputs = tuple(InputSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in i.items()})
                   for i in manifest["inputs"])
    a = Implementation(side["file"], side["symbol"], side["framework"], side["kind"])
    notes = spec.notes + (f"A's source {side['file']} is not here: A is known only from its artifact {folder}",)
    return ParityPlan((replace(spec, a=a, inputs=inputs, weight_map=(), static_findings=(), notes=notes),))


def _source_of_a(folder: str, side: dict) -> str | None:
    """A's source file if it is here: as recorded (from the capture's directory), or relative to the artifact."""
    if side.get("file") and Path(side["file"]).is_file():
        return side["file"]
    if side.get("file_from_artifact"):
        path = os.path.normpath(os.path.join(folder, side["file_from_artifact"]))
        if Path(path).is_file():
            return os.path.relpath(path)
    return None


def render_to(plan: ParityPlan, emit: str | None, debug: bool) -> tuple[str, str | None]:
    """(script path, temp folder to remove afterwards or None)."""
    from parity_skill.render.script import render_script

    tmp = None
    script = emit
    if not emit:
        tmp = tempfile.mkdtemp(prefix="parity-")
        script = os.path.join(tmp, "parity_check.py")
    Path(script).write_text(render_script(plan, script), encoding="utf-8")
    return script, (None if debug else tmp)


def cleanup(tmp: str | None) -> None:
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)


def run_capture(worker, script: str, folder: str, timeout: float) -> None:
    """Side A alone writes its artifact into `folder`."""
    import time

    worker.start([{"side": "a", "script": script, "args": ["--side", "a", "--artifacts", os.path.abspath(folder)]}])
    if not worker.wait(time.monotonic() + timeout):
        raise RunError(f"capture timed out after {timeout:g}s (raise --timeout)")
    manifest = read_capture(folder) if (Path(folder) / "manifest.json").exists() else None
    if manifest is None:
        tail = [ln for ln in worker.tail.text().splitlines() if ln.strip()]
        raise RunError(f"side A ended (exit {worker.proc.returncode}) without writing its artifact: "
                       f"{tail[-1] if tail else 'no output'}")
    runs = [c for c in manifest.get("calls", []) if c.get("kind") in ("run", "twice")]
    if runs and all("error" in c for c in runs):  # an artifact of nothing but errors is no capture
        raise RunError(f"{folder}: every call of A raised; the first: {runs[0]['error']} (nothing was captured "
                       "that B could be compared with)")


def run_compare(worker, script: str, folder: str, timeout: float) -> dict:
    """Side B alone against the artifact in `folder`; the report."""
    import time

    tmp = tempfile.mkdtemp(prefix="parity-report-")
    report = os.path.join(tmp, "report.json")
    try:
        worker.start([{"side": "b", "script": script,
                       "args": ["--side", "b", "--artifacts", os.path.abspath(folder), "--report", report]}])
        if not worker.wait(time.monotonic() + timeout):
            raise RunError(f"compare timed out after {timeout:g}s (raise --timeout)")
        try:
            return json.loads(Path(report).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            missing = worker.missing_runtime()
            if missing:
                raise RunError(f"side B's interpreter {worker.python} cannot run parity-skill's runtime ({missing}): "
                               "install parity-skill in that environment and run again") from None
            tail = [ln for ln in worker.tail.text().splitlines() if ln.strip()]
            raise RunError(f"side B ended (exit {worker.proc.returncode}) before a verdict: "
                           f"{tail[-1] if tail else 'no output'}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def compare_two(dir_a: str, dir_b: str, opts: dict, min_correlation: float | None, timeout: float,
                ref: str | None = None, tolerances: str | None = None) -> dict:
    """Two artifacts, stage by stage (levels: layer 1e-5, chain 1e-4, model 1e-3; cosine 0.999), within
    `timeout` seconds like every other command; `ref`, a third artifact, attributes each differing stage to the
    side that disagrees with the other two (compare/attribution.py)."""
    from parity_skill.report import report
    from parity_skill.runtime.data.artifact import ArtifactError
    from parity_skill.compare.stages import compare_artifacts

    flag = {"inputs": "--input", "config_file": "--config"}
    ignored = sorted(flag.get(k, f"--{k.replace('_', '-')}") for k, v in opts.items() if k not in TWO_ARTIFACT_OPTIONS
                     and v not in (None, False, (), "", 0) and v != PLAN_DEFAULTS.get(k))
    if ignored:
        raise InputError(f"{', '.join(ignored)}: not used when two artifacts are compared (they apply to running "
                         "code); two artifacts take --level, --atol, --cosine, --min-correlation, --map, --strict, "
                         "--tolerances, --layout, --ref")
    from parity_skill.plan.map_rules import read_rules

    def judged(x: str, y: str) -> dict:
        return compare_artifacts(x, y, opts.get("level") or "layer", opts.get("atol"), opts.get("cosine"),
                                 min_correlation, read_rules(opts.get("map_file")), bool(opts.get("strict")),
                                 tolerances, _stage_layout(opts.get("layout")))

    try:
        with _deadline(timeout, "compare"):
            entry = judged(dir_a, dir_b)
            if ref:
                from parity_skill.compare.attribution import attribute

                found = attribute(entry, judged(dir_a, ref), judged(dir_b, ref))
                entry["attribution"] = found
                entry["diagnosis"][:0] = [{"kind": "attribution", "message": f["message"], "location": None,
                                           "check": f"stage:{f['stage']}"} for f in found[:1]]
                entry["notes"] += [f"--ref {ref}: " + f["message"] for f in found[1:12]]
    except ArtifactError as exc:
        raise InputError(str(exc)) from None
    return report([entry])


TWO_ARTIFACT_OPTIONS = ("level", "atol", "cosine", "map_file", "strict", "layout")


def _stage_layout(layout: str | None) -> tuple[int, ...]:
    """--layout b=nlc|nhwc for two artifacts: the axes that put A's layout into B's (() when the same)."""
    if not layout:
        return ()
    axes = {"ncl": (), "nchw": (), "nlc": (0, 2, 1), "nhwc": (0, 2, 3, 1)}
    side, _, name = layout.partition("=")
    if side != "b" or name not in axes:
        raise InputError(f"--layout {layout!r}: expected b=nlc, b=nhwc (B channels-last) or b=ncl, b=nchw")
    return axes[name]
PLAN_DEFAULTS = {"dtypes": "fp32,fp16,bf16", "batch_sizes": "1,4", "level": "layer", "seed": 0}


@contextlib.contextmanager
def _deadline(seconds: float, what: str):
    """RunError when `seconds` pass (SIGALRM: this process runs no user code, only reads files)."""
    def expire(signum, frame):
        raise RunError(f"{what} timed out after {seconds:g}s (raise --timeout)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def capture_into(target: Target, plan: ParityPlan, folder: str, timeout: float, debug: bool,
                 python: str | None) -> None:
    """Side A alone, in its own worker, writes its artifact into `folder` (already prepared)."""
    from parity_skill.run.processes import Worker, frameworks_in

    worker = Worker(frameworks_in([target.path]), python)
    script, tmp = render_to(plan, None, debug)
    try:
        run_capture(worker, script, folder, timeout)
    finally:
        worker.close()
        cleanup(tmp)
