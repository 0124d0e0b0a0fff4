"""Phase 2: run every planned check of one pair, B live against A replayed from its artifact, and return the
report entry (a plain dict of the JSON schema)."""
from __future__ import annotations

import time

from dataclasses import asdict, replace

from parity_skill.runtime.data import artifact, live
from parity_skill.runtime.checks import basic
from parity_skill.runtime.checks import edges, matrix
from parity_skill.runtime import progress
from parity_skill.runtime.diagnosis.settings import settings_read
from parity_skill.runtime.diagnosis import defaults, explain, statements, trace
from parity_skill.runtime.checks.context import PairRun, result
from parity_skill.runtime.data.inputs import base_inputs
from parity_skill.runtime.sides.layout import settle_layout, symmetric_layout
from parity_skill.runtime.sides import configs
from parity_skill.runtime.sides.configs import config_args
from parity_skill.runtime.sides.failures import UserCodeError, describe
from parity_skill.runtime.judging.outputs import first_nonfinite
from parity_skill.runtime.sides.side import Side
from parity_skill.runtime.sides.replay import ReplaySide, capture_mismatch
from parity_skill.runtime.data.weights import load_b
from parity_skill.spec import InputSpec, PairSpec


def _side_json(impl) -> dict:
    """Who the side is, and the constructor values it was built with (as Python literals)."""
    return {"path": impl.file, "symbol": impl.symbol, "framework": impl.framework,
            "init": {k: repr(v) for k, v in impl.init.items()}}


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
        return edges.check_edge(run, name[5:])
    if name == "generate":
        from parity_skill.runtime.checks.generate import check_generate

        return check_generate(run)
    if name == "sampling":
        from parity_skill.runtime.checks.sampling import check_sampling

        return check_sampling(run)
    if name.startswith("determinism:"):
        return basic.check_determinism(run, name.split(":")[1])
    return result(name, "skip", f"unknown check '{name}'")


def _locate(run: PairRun, entry: dict) -> None:
    progress.say(": tracing submodules")
    try:
        found = trace.locate(run, run.checks.isolate, entry["static_findings"])
    except Exception as exc:  # noqa: BLE001 - localisation is a bonus; never lose the verdict over it
        run.notes.append(f"could not trace submodules: {describe(exc)}")
        return
    if found is None:
        return
    for line in trace.call_graph(run):  # what runs differs: before any number
        run.diagnose("call_graph", line, "forward")
    entry["first_divergence"] = found["first_divergence"]
    if found["root_cause"]:
        entry["root_cause"] = found["root_cause"]
    entry["submodules"] = found["rows"]
    entry["profile"] = [f"({found['mode']})"] + found["profile"]
    unmatched = [n for n in run.a.module_names() if n not in {r["a"].split("#")[0] for r in found["rows"]}]
    if found["root_cause"] is None and any(r["differs"] for r in found["rows"]):
        run.notes.append("no submodule both receives agreeing inputs and returns a differing output: the first "
                         "difference is in a submodule without a counterpart or in the top-level forward code")
    failed = run.cache.get("status", {}).get("forward") == "fail"  # --isolate traces a passing pair too
    if failed and found["first_divergence"] is None and not any(r["differs"] for r in found["rows"]):
        run.notes.append("every matched submodule agrees: the difference is in the top-level forward code itself"
                         + (f" or in A's unmatched submodules {', '.join(unmatched)}" if unmatched else ""))


def _locate_line(run: PairRun, entry: dict) -> None:
    """When the difference starts in the top-level forward's own code (or a function), the first statement whose
    value differs, on each side (runtime/diagnosis/lines.py), with the static findings on those lines."""
    cause = entry.get("root_cause")  # None: no submodule starts the difference (or a function pair)
    inside = cause is not None and cause.get("a") != ""  # a submodule's own forward starts the difference
    progress.say(": locating the line")
    try:
        if inside:
            rows_a, rows_b = _inside(run, cause)
        else:
            rows_a, rows_b = run.a.lines(run.base), run.b.lines(run.base)
        found = statements.first_difference(rows_a, rows_b, run.checks.tolerances["fp32"].atol) if rows_a else None
    except Exception as exc:  # noqa: BLE001 - localisation is a bonus; never lose the verdict over it
        run.notes.append(f"line-level localisation not available: {describe(exc)}")
        return
    if found is None and inside and not rows_a and cause.get("where") == "leaf":
        return  # a framework layer: located where the user's code builds it (rootcause.py), no code of its own
    if found is None:
        where = f"{cause['a']}'s forward" if inside else "the forward"
        run.notes.append(f"line-level localisation: no recorded statement of {where} differs before its result "
                         "(the difference is inside a call, not between assignments)" if not inside or rows_a else
                         f"line-level localisation: A's capture holds no statements of {cause['a']} (it records "
                         "the first submodule of each class of the user's code)")
        return
    on_line = [f for f in entry["static_findings"] if f.get("a_location") == found["a_location"]
               or f.get("b_location") == found["b_location"]]
    found["findings"] = on_line
    found["settings"] = {side: _settings_since(found[f"{side}_since"], found[f"{side}_location"])
                         for side in ("a", "b")}
    entry["line_cause"] = found
    run.diagnose("line", f"first differing statement: {found['relation']} (the {found['agreed']} statement(s) "
                         "before it agree)" + "".join(f"; [{f['kind']}] {f['message']}" for f in on_line)
                 + "".join(f"; {side} reads {s['attr']}, set at {s['location']} (`{s['source']}`)"
                           for side in ("B", "A") for s in found["settings"][side.lower()]),
                 "forward", found["b_location"], a_location=found["a_location"], b_location=found["b_location"])


def _settings_since(since: list[str], location: str) -> list[dict]:
    """The constructor settings read by the differing statement and by the unmatched statements just before it."""
    out: dict[str, dict] = {}
    for loc in [location, *reversed(since)]:
        for s in settings_read(loc):
            out.setdefault(s["attr"], s)
    return list(out.values())


def _inside(run: PairRun, cause: dict) -> tuple[list, list]:
    """The statements of the root-cause submodule's forward on each side (A's recorded at capture), unprefixed."""
    mark_a, mark_b = f"{cause['a']}|", f"{cause['b']}|"
    try:
        recorded = run.a.module_lines(run.base)
    except Exception:  # noqa: BLE001 - A recorded none (no class of the user's own among its submodules)
        recorded = []
    rows_a = [[r[0][len(mark_a):], *r[1:]] for r in recorded if r[0].startswith(mark_a)]
    if not rows_a:
        return [], []
    rows_b = [[r[0][len(mark_b):], *r[1:]] for r in run.b.lines(run.base, (cause["b"],)) if r[0].startswith(mark_b)]
    return rows_a, rows_b


def _locate_backward(run: PairRun, entry: dict) -> None:
    """Forward agrees, a gradient does not: the first submodule (in backward order) that receives an agreeing
    output gradient and passes back a differing one."""
    try:
        found = trace.locate_backward(run, entry["static_findings"])
    except Exception as exc:  # noqa: BLE001 - localisation is a bonus; never lose the verdict over it
        run.notes.append(f"could not trace submodule gradients: {describe(exc)}")
        return
    if found and found["root_cause"]:
        entry["backward_root_cause"] = found["root_cause"]
    elif found:
        run.notes.append("backward: no submodule receives an agreeing output gradient and passes back a clearly "
                         "larger difference; the gradients drift apart gradually (an eps, a precision, or an op "
                         "used in many places)")
    if found:
        entry["backward_submodules"] = found["rows"]


def _build_b(spec: PairSpec, notes: list[str], folder: str, wait: float | None, done_marker) -> Side:
    """B, its config arguments built from A's resolved configs when A has them (waiting for A's early file)."""
    layout = next((i.layout_b for i in spec.inputs if i.layout_b), None)
    wanted = config_args(spec.b)
    shared = configs.for_b(configs.wait_for_a(folder, done_marker, wait), wanted) if wanted else {}
    b = Side("b", spec.b, layout, shared)
    b.notes = notes  # what building or feeding B settled at run time
    notes += [n.replace("refused", "(B) refused", 1) for n in configs.take_notes()]
    notes += [n for n in [b.unbuilt_note()] if n]
    for name, d in shared.items():
        notes.append(f"B's {spec.b.init[name].cls or 'config'} ({name}) built from A's resolved config ({len(d)} "
                     "fields): one config drives both sides, each through its own config class")
    b.adapter.arg_names = tuple(i.arg_b for i in spec.inputs)
    if spec.b.file is None:
        args = ", ".join(f"{k}={v!r}" for k, v in b.kwargs.items())
        notes.append(f"reference B built as {spec.b.symbol}({args}), arguments carried over from A by name/role")
    return b


def _call_order(b: Side, spec: PairSpec) -> list[str]:
    """B's submodules in the order its forward calls them (one traced call on the default inputs), or [] when
    B cannot be traced: weights are then matched without aligning the module trees."""
    try:
        return b.call_order(base_inputs(spec.inputs, spec.checks.seed))
    except Exception:  # noqa: BLE001 - B's forward errors are reported by the checks themselves
        return []


def _first_forward(run: PairRun, spec: PairSpec) -> str | None:
    """Run each side once on the base inputs; the error line if either raises (nothing can be checked then)."""
    for side, key in ((run.a, "fp32_a"), (run.b, "fp32_b")):
        try:
            run.cache[key] = run.forward(side, run.base)
        except Exception as exc:  # noqa: BLE001
            msg = describe(exc)
            error = f"{side.impl.display}: forward raised {msg}"
            if any(w in msg.lower() for w in ("cuda", "mps", "nvidia", "device")):
                where = next((f["a_location"] or f["b_location"] for f in spec.static_findings
                              if f["kind"] == "device" and (f["a_location"] or f["b_location"])), None)
                run.diagnose("device", f"{side.label} assumes a device this machine lacks"
                                       + (f": {where} hard-codes it" if where else "") + f" ({msg})", "forward", where)
                error += f"; hard-coded device at {where}" if where else ""
            return error
    bad = first_nonfinite(run.cache["fp32_a"])
    if bad:
        return (f"A ({spec.a.display}) is not finite on the default input: {bad}; nothing can be compared against "
                f"it. Choose inputs it is defined on with --input (planned: {_planned(run.inputs)})")
    return None


def _planned(inputs) -> str:
    return ", ".join(f"{i.name}={','.join(map(str, i.shape))}" + ("" if i.is_float else f":{i.dtype}:{i.low}-{i.high}")
                     for i in inputs) or "no inputs"


def _run_checks(run: PairRun, before: dict | None = None) -> list[dict]:
    """Every planned check, in order. `before` maps check names to steps: each step runs once, just before the
    first check that names it."""
    checks = [basic.check_weights(run)]
    run.cache["status"] = {"weights": checks[0]["status"]}
    pending = dict(before or {})
    for k, name in enumerate(run.checks.names):
        progress.say(f": check {k + 1} of {len(run.checks.names)} ({name})")
        start = time.perf_counter()
        step = pending.get(name)
        if step is not None:
            pending = {n: f for n, f in pending.items() if f is not step}
            step(run)
        try:
            out = _dispatch(run, name)
        except Exception as exc:  # noqa: BLE001 - a check that cannot run is reported, not fatal
            out = result(name, "error", f"could not run: {describe(exc)}")
        out["seconds"] = round(time.perf_counter() - start, 4)
        run.cache["status"][name] = out["status"]
        checks.append(out)
    return checks


def limitations(checks: list[dict], weakened: list[str]) -> list[str]:
    """One line per check that did not run (skip) or ran under a substitute rule: a PASS does not cover these."""
    skipped = [f"{c['name']} not checked: {c['message']}" for c in checks if c["status"] == "skip"]
    skipped += [f"{c['name']} inconclusive: {c['message']}" for c in checks if c["status"] == "inconclusive"]
    return skipped + list(weakened)


def new_entry(spec: PairSpec, error: str | None = None) -> dict:
    """A pair's report entry before any check ran (verdict error until the checks say otherwise)."""
    return {"a": _side_json(spec.a), "b": _side_json(spec.b), "verdict": "error", "error": error, "checks": [],
            "diagnosis": [], "first_divergence": None, "static_findings": list(spec.static_findings),
            "notes": list(spec.notes), "limitations": [], "inputs": [asdict(i) for i in spec.inputs],
            **({"variant": spec.variant} if spec.variant else {})}


def compare_pair(spec: PairSpec, folder: str, wait: float | None = None, done_marker=None) -> dict:
    """Phase 2, in B's process: B against A's artifact in `folder` (waiting up to `wait` s for it to appear)."""
    try:
        return _compare_pair(spec, folder, wait, done_marker)
    finally:
        if wait is not None:
            live.release(folder)


def _compare_pair(spec: PairSpec, folder: str, wait: float | None, done_marker) -> dict:
    entry = new_entry(spec)
    notes = entry["notes"]
    try:  # B is built while A may still be computing
        b = _build_b(spec, notes, folder, wait, done_marker)
    except Exception as exc:  # noqa: BLE001 - user code: could not check
        entry["error"] = str(exc) if isinstance(exc, (UserCodeError, ValueError)) else describe(exc)
        settled = configs.take_notes()  # what building B's config settled, the likely cause among them
        notes += settled
        entry["error"] += "".join(f"; {n.split(': one config')[0]}" for n in settled if " is declared " in n)[:400]
        return entry
    feed = None
    try:
        if wait is not None and live.wait_for_start(folder, done_marker, wait):
            feed = live.LiveArtifact(folder, done_marker, wait)  # A is still at work: each call as A records it
            manifest, tensors, verified = feed.manifest, feed.tensors, lambda: None
        else:
            manifest, tensors, verified = artifact.read_verifying(folder)
    except artifact.ArtifactError as exc:
        entry["error"] = str(exc)
        return entry
    early_notes = list(notes)
    done = _against(spec, entry, b, folder, manifest, tensors, feed)
    try:
        verified()  # nothing read from a corrupt artifact is reported
        if feed is not None:
            live.release(folder)
            _finish_live(feed, done, early_notes)
    except artifact.ArtifactError as exc:
        return dict(new_entry(spec), error=str(exc))
    return done


def _finish_live(feed, entry: dict, b_notes: list[str]) -> None:
    """A's notes as A's complete manifest has them (what A settled while it ran its checks too), placed where a
    complete artifact puts them: before B's."""
    final = feed.finish()
    if final is None:
        raise artifact.ArtifactError("side A's process ended without completing its artifact (its own output "
                                     "says why)")
    if final.get("error"):  # A stopped after B had started; its early notes stand
        if entry["verdict"] == "error":  # the checks did not finish: A's error is the pair's
            entry["error"] = entry.get("error") or final["error"]
        else:  # every check was judged: A stopped while answering a later request
            entry["notes"].append(f"side A stopped after its checks: {final['error']}")
        return
    early = [n for n in feed.manifest.get("notes", []) if n not in b_notes]
    notes = entry["notes"]
    if notes[:len(early)] == early:
        notes[:len(early)] = [n for n in final.get("notes", []) if n not in b_notes]


def _against(spec: PairSpec, entry: dict, b: Side, folder: str, manifest: dict, tensors, feed=None) -> dict:
    """compare_pair once A's artifact is read: every check of B against it."""
    notes = entry["notes"]
    if manifest.get("error"):
        entry["error"] = manifest["error"]
        return entry
    mismatch = capture_mismatch(manifest, spec)
    if mismatch:
        entry["error"] = f"{folder}: {mismatch}"
        return entry
    if manifest.get("inputs_used"):  # A settled on another layout of its inputs: every check uses that one
        spec = replace(spec, inputs=tuple(InputSpec(**{k: tuple(v) if isinstance(v, list) else v
                                                         for k, v in d.items()}) for d in manifest["inputs_used"]))
        entry["inputs"] = [asdict(i) for i in spec.inputs]
    a = ReplaySide(manifest, tensors, feed)
    notes[:0] = [n for n in manifest.get("notes", []) if n not in notes]
    for side, found in (("a", manifest.get("side", {}).get("config")), ("b", configs.resolved(b.kwargs,
                                                                                            config_args(spec.b)))):
        if found:  # only sides built with config objects
            entry[side]["config"] = found
    for side, inside in (("a", manifest.get("side", {}).get("inside")), ("b", b.inside)):
        if inside:  # taken from its model: the arguments that model derives were not guessed
            entry[side]["inside"] = inside
    settle_layout(a, b, spec, notes)
    try:
        entries, left_a, left_b = load_b(a, b, spec.weight_map, spec.checks.seed, notes,
                                         (a.call_order, _call_order(b, spec)), spec.map_rules, spec.convert)
    except Exception as exc:  # noqa: BLE001 - an unloadable weight map: could not check
        entry["error"] = str(exc) if isinstance(exc, (UserCodeError, ValueError)) else describe(exc)
        return entry
    entry["weight_map"] = [asdict(e) for e in entries]
    entry["unmapped"] = {"a": left_a, "b": left_b}
    symmetric_layout(a, b, spec, notes)
    run = PairRun(a, b, spec.inputs, spec.checks, base_inputs(spec.inputs, spec.checks.seed), entries, left_a,
                  left_b, notes=notes)
    entry["error"] = _first_forward(run, spec)
    if entry["error"] and spec.variant and "fp32_a" in run.cache and "fp32_b" not in run.cache:  # B raises, A runs
        entry["checks"] = [result("forward", "fail", f"B raises where A runs ({spec.variant}): {entry['error']}")]
        entry.update(verdict="fail", error=None, diagnosis=run.diagnosis)
        return entry
    if entry["error"]:
        entry["diagnosis"] = run.diagnosis
        return entry
    entry["checks"] = _run_checks(run)
    statuses = run.cache["status"]
    for side, found in (("a", a.defaults if a.impl.file else {}), ("b", b.defaults() if b.impl.file else {})):
        if found:  # a library reference's own defaults (device, dtype...) are not the port's
            entry[side]["defaults"] = found
    if statuses.get("forward") == "fail":
        explain.guessed(run, entry["notes"])
        explain.symptoms(run)
        settings = defaults.findings(entry["a"].get("defaults", {}), entry["b"].get("defaults", {}), spec.a.init,
                                     spec.b.init)
        entry["static_findings"] += [f for f in settings if f not in entry["static_findings"]]
        defaults.name_scale(run.diagnosis, settings)
    if statuses.get("forward") == "fail" or spec.checks.isolate:
        _locate(run, entry)
    if statuses.get("forward") == "fail":
        _locate_line(run, entry)
    elif statuses.get("backward") == "fail":
        _locate_backward(run, entry)
    explain.link_static(run, list(spec.static_findings), statuses)
    explain.suggest_eps(run, list(spec.static_findings), statuses)
    entry["diagnosis"] = run.diagnosis
    a.settle()
    for side in (run.a, run.b):
        for dtype, names in side.kept_fp32.items():
            shown = ", ".join(n or "its top-level parameters" for n in names)
            run.limit(f"{dtype}: {side.label} ran with {shown} kept in float32 (its code requires float32 "
                      "parameters there; only the inputs were cast)" if names == [""] else
                      f"{dtype}: {side.label} ran with {shown} kept in float32 (its code requires float32 "
                      "parameters there)")
    entry["limitations"] = limitations(entry["checks"], run.limitations)
    entry["warnings"] = [f"{c['name']}: {c['warning']}" for c in entry["checks"] if c.get("warning")]
    outcomes = set(statuses.values())
    entry["verdict"] = "fail" if "fail" in outcomes else "error" if "error" in outcomes else "pass"
    if entry["verdict"] == "error":
        entry["error"] = next(c["message"] for c in entry["checks"] if c["status"] == "error")
    return entry
