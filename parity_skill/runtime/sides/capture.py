"""Phase 1, in A's process: build A with fresh seeded parameters, record every call the checks make of it, and
write the artifact. Nothing of B is imported here."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from dataclasses import asdict, replace

from parity_skill import __version__
from parity_skill.runtime.data import artifact, live
from parity_skill.runtime.checks import basic
from parity_skill.runtime.checks import matrix
from parity_skill.runtime.checks.conditioning import low_precision_floor, perturbed_runs
from parity_skill.runtime.checks.context import PairRun
from parity_skill.runtime.data.inputs import base_inputs, layouts_to_try, permuted_spec
from parity_skill.runtime.sides import configs
from parity_skill.runtime.sides.configs import config_args
from parity_skill.runtime.sides.failures import UserCodeError, describe
from parity_skill.runtime.data.calls import encode
from parity_skill.runtime.sides.replay import MirrorSide, RecordingSide
from parity_skill.runtime.sides.serve import serve
from parity_skill.runtime.sides.session import _first_forward, _run_checks
from parity_skill.runtime.sides.side import Side
from parity_skill.runtime.data.checkpoint import saved_view
from parity_skill.runtime.data.weights import fresh
from parity_skill.spec import MapEntry, PairSpec


def _framework_version(framework: str) -> str | None:
    module = sys.modules.get({"mlx": "mlx.core"}.get(framework, framework))
    return getattr(module, "__version__", None)


def base_manifest(spec: PairSpec) -> dict:
    """What an artifact says of its side before anything ran."""
    impl = spec.a
    return {"tool_version": __version__, "seed": spec.checks.seed, "checks": list(spec.checks.names),
            "inputs": [asdict(i) for i in spec.inputs],
            "side": {"file": impl.file, "symbol": impl.symbol, "framework": impl.framework, "kind": impl.kind,
                     "init": {k: repr(v) for k, v in impl.init.items()}}}


def _references_first(run: PairRun) -> None:
    """Every float64 reference phase 2 may need (some only when A and B differ, which a mirror never does),
    computed before anything else: the float64 model then grows into a heap no check has fragmented yet, and the
    side's peak memory stays near two copies of the weights."""
    try:  # the default input's floor (forward, fp16/bf16)
        perturbed_runs(run, run.base)
        for dtype in ("fp16", "bf16"):
            if dtype in run.checks.names:
                ref, _ = matrix.reference(run, "ref:unit scale", run.base)
                low_precision_floor(run, dtype, ref)
    except Exception:  # noqa: BLE001 - recorded as an error; phase 2 then judges by the strict rule
        pass
    for key, xs in matrix.planned_references(run):
        try:
            matrix.reference(run, key, xs)
            if key.startswith("ref:edge:"):  # the conditioning floor phase 2 may need (runtime/judging/condition.py)
                perturbed_runs(run, xs)
        except Exception:  # noqa: BLE001 - recorded as an error; phase 2 reports it if it needs the reference
            pass


def _precision_references(run: PairRun) -> None:
    """The float64 calls the fp16/bf16 checks make of A (references, unit-scale floors), made together before the
    first of those checks: A is converted to float64 and back once, not once per call (each conversion of a model
    costs about as much as its forward)."""
    for dtype in ("fp16", "bf16"):
        if dtype not in run.checks.names:
            continue
        try:
            for label_, xs in matrix.precision_sets(run, dtype):
                matrix.reference(run, f"ref:{label_}", xs)
            ref, name = matrix.reference(run, "ref:unit scale", run.base)
            if matrix.exact_reference(name):
                low_precision_floor(run, dtype, ref)
        except Exception:  # noqa: BLE001 - the check itself meets the error again and reports it
            pass


def settle_inputs(spec: PairSpec, a: Side, notes: list[str]) -> PairSpec:
    """The live module decides: when A rejects the planned inputs (a Conv1d with 32 input channels given
    (batch, seq, 32)), each floating input is retried once moved channels-first/-last; the first layout A runs
    on is kept, and phase 2 reads it from the artifact."""
    try:
        a.run(base_inputs(spec.inputs, spec.checks.seed))
        return spec
    except Exception as exc:  # noqa: BLE001 - the reason is kept for the note
        first = describe(exc)
    for i, s, changed, how in _alternatives(spec, a):
        inputs = spec.inputs[:i] + (changed,) + spec.inputs[i + 1:]
        try:
            a.run(base_inputs(inputs, spec.checks.seed))
        except Exception:  # noqa: BLE001 - not this one
            continue
        notes.append(f"input '{s.name}': A rejected shape {s.shape} ({first}); {how}: every check uses "
                     f"{changed.shape}")
        return replace(spec, inputs=inputs)
    return spec


def _alternatives(spec: PairSpec, a: Side):
    """(index, spec, changed spec, why) to retry, in order: each floating input moved channels-first/-last, then
    given each input width a matrix of the live module takes (a config class that settled its sizes itself)."""
    for i, s in enumerate(spec.inputs):
        if s.is_float:
            for axes in layouts_to_try(len(s.shape)):
                yield i, s, permuted_spec(s, axes), "it runs on another layout"
    widths = list(dict.fromkeys(int(v.shape[1]) for k, v in a.state().items()
                                if k.endswith("weight") and getattr(v, "ndim", 0) == 2))[:6]
    for i, s in enumerate(spec.inputs):
        if s.is_float and s.shape:
            for width in widths:
                if width != s.shape[-1]:
                    yield i, s, replace(s, shape=(*s.shape[:-1], width)), f"its live module takes width {width}"


def _record_primary_grads(run: PairRun, rec: RecordingSide) -> None:
    """A's gradients for an upstream on its first output alone, next to every gradient call the checks made:
    phase 2 uses them when B does not return A's other outputs (a mirror always does)."""
    if "fp32_a" not in run.cache:
        return
    up = basic.upstream_a(run)
    if len(up) < 2:
        return
    for key, r in list(rec.records.items()):
        if r["kind"] == "grads" and "error" not in r:
            try:
                rec.grads(r["args"], r["dtype"], basic.primary_only(up))
            except Exception:  # noqa: BLE001 - recorded as an error; phase 2 reports it if it needs these
                pass


def _record_trace(run: PairRun, rec: RecordingSide) -> None:
    """The submodule trace phase 2 asks for only when A and B differ (a mirror never does)."""
    try:
        rec.trace(run.base)
    except Exception:  # noqa: BLE001 - recorded as an error; phase 2 reports it if it needs the trace
        pass
    try:  # the forward's own statements, for line-level localisation (runtime/diagnosis/lines.py)
        rec.lines(run.base)
    except Exception:  # noqa: BLE001 - recorded as an error; phase 2 then says localisation was not available
        pass
    try:  # and those of the first submodule of each user class, in case the difference starts in one
        rec.module_lines(run.base)
    except Exception:  # noqa: BLE001 - likewise
        pass


def _record_grad_trace(run: PairRun, rec: RecordingSide) -> None:
    """Per-submodule gradients for the upstream phase 2 uses (A's first output alone too, when A has several):
    asked for only when forward agrees and backward does not."""
    if "fp32_a" not in run.cache or not rec.differentiable:
        return
    up = basic.upstream_a(run)
    for u in ([up, basic.primary_only(up)] if len(up) > 1 else [up]):
        try:
            rec.grad_trace(run.base, u)
        except Exception:  # noqa: BLE001 - recorded as an error; phase 2 notes it if it needs the trace
            pass


def _readable_view(run: PairRun, rec: RecordingSide, tensors: dict) -> dict:
    """`inputs/<arg>`, `outputs/<i>` (the fp32 run on the default inputs) and the stage list, in call order: the
    names another program writes to be compared with `parity-skill compare A_DIR B_DIR`."""
    view: dict = {"input_names": [i.name for i in run.inputs], "outputs": [], "stages": []}
    for spec, x in zip(run.inputs, run.base):
        tensors[f"inputs/{spec.name}"] = x
    try:
        for i, (key, value) in enumerate(rec.run(run.base)):
            tensors[f"outputs/{i}"] = value
            view["outputs"].append(key)
        records = rec.trace(run.base)
    except Exception:  # noqa: BLE001 - A failed on its default input: the artifact says so in its calls
        return view
    seen: dict[str, int] = {}
    for name, _, out in records:
        k = seen.get(name, 0)
        seen[name] = k + 1
        view["stages"].append({"name": name + (f"#{k}" if k else ""), "out": [key for key, _ in out]})
    _program_stages(run, rec, view, tensors)
    return view


def _program_stages(run: PairRun, rec: RecordingSide, view: dict, tensors: dict) -> None:
    """The stages a pipeline that is a function or a plain class records with `parity_skill.stage()` (its steps),
    from one more call on the default inputs; a framework module's stages are its submodules'."""
    from parity_skill.runtime.data.recording import collecting

    if rec.side.impl.kind != "function" and rec.side.adapter.submodules(rec.side.model_for("fp32")):
        return  # a framework module: its stages are its submodules' (recorded above), no second forward for them
    try:
        with collecting() as found:
            rec.side.run(run.base)
    except Exception:  # noqa: BLE001 - A ran on these inputs above: a failure here only means no program stages
        return
    names = {s["name"] for s in view["stages"]}
    for entry in found.stages:
        if entry["name"] in names:  # a module already recorded under that name
            continue
        view["stages"].append({k: v for k, v in entry.items() if k != "in"})
        for i in range(len(entry["out"])):
            tensors[f"stages/{entry['name']}/out/{i}"] = found.tensors[f"stages/{entry['name']}/out/{i}"]


def capture_pair(spec: PairSpec, folder: str) -> None:
    """Write A's artifact for this pair into `folder` (an error artifact when A cannot be built)."""
    manifest = base_manifest(spec)
    if spec.a.file:  # so a committed fixture still finds A's source from wherever the test runs
        manifest["side"]["file_from_artifact"] = os.path.relpath(os.path.abspath(spec.a.file), os.path.abspath(folder))
    notes: list[str] = []
    try:
        a = Side("a", spec.a)
        a.notes = notes  # what building or feeding A settled at run time
        a.adapter.arg_names = tuple(i.arg_a for i in spec.inputs)
        notes += configs.take_notes()
        notes += [n for n in [a.unbuilt_note()] if n]
        manifest["side"]["config"] = configs.resolved(a.kwargs, config_args(spec.a))
        configs.write_early(folder, manifest["side"]["config"])  # B builds its config from these: B waits no more
        fresh(a, spec.checks.seed, notes)
    except Exception as exc:  # noqa: BLE001 - the comparison reports it as the pair's error
        artifact.write_error(folder, manifest, str(exc) if isinstance(exc, UserCodeError) else describe(exc))
        return
    try:
        _record(spec, a, folder, manifest, notes)
    except Exception as exc:  # noqa: BLE001 - a B reading along must learn that A stopped, and why
        artifact.write_error(folder, manifest, f"A stopped while recording: {describe(exc)}")


def _record(spec: PairSpec, a: Side, folder: str, manifest: dict, notes: list[str]) -> None:
    """capture_pair once A is built: every call the checks make of A, then the artifact."""
    settled = settle_inputs(spec, a, notes)
    if settled.inputs != spec.inputs:
        manifest["inputs_used"] = [asdict(i) for i in settled.inputs]
    spec = settled
    rec = RecordingSide(a, folder, live=artifact.TRANSIENT)
    identity = [MapEntry(n, n) for n in a.state()]
    run = PairRun(rec, MirrorSide(rec), spec.inputs, spec.checks, base_inputs(spec.inputs, spec.checks.seed),
                  identity, [], [], notes=[])
    tensors: dict = {}
    files: list[str] = []
    if artifact.TRANSIENT:  # B compares as A records; what only a failing B needs, A makes when B asks for it
        files = _start_live(spec, run, rec, folder, manifest, notes, tensors)
        if _first_forward(run, spec) is None:
            _run_checks(run, before={"fp16": _precision_references, "bf16": _precision_references})
        serve(rec, folder, spec.checks.seed)
    else:  # a complete artifact: everything any B may ask for
        _references_first(run)
        if _first_forward(run, spec) is None:
            _run_checks(run)
            _record_primary_grads(run, rec)
            _record_trace(run, rec)
            if "backward" in spec.checks.names:
                _record_grad_trace(run, rec)
        tensors.update(_weights(spec, a, manifest))
        manifest.update(_readable_view(run, rec, tensors))  # first: a trace it records must be encoded too
    manifest["calls"] = encode(rec.records, tensors)
    manifest["notes"] = notes
    manifest["side"].update(_side_facts(spec, a))
    artifact.write(folder, manifest, tensors, [*files, *rec.files])


def _start_live(spec: PairSpec, run: PairRun, rec: RecordingSide, folder: str, manifest: dict, notes: list[str],
                tensors: dict) -> list[str]:
    """What B needs before its first check, on disk before A's checks run (runtime/data/live.py): A's stages, its
    weights in their own file, and the facts of its side; the weights' file names."""
    manifest.update(_readable_view(run, rec, tensors))
    Path(folder).mkdir(parents=True, exist_ok=True)
    files = artifact.save_chunked(Path(folder), "weights", _weights(spec, rec.side, manifest))
    manifest["side"].update(_side_facts(spec, rec.side))
    live.write_early(folder, dict(manifest, notes=list(notes)), files)
    return files


def _weights(spec: PairSpec, a: Side, manifest: dict) -> dict:
    """A's weights, and its checkpoint as its library saves it where that differs (a port's converter reads it)."""
    state = a.state()
    tensors = {f"weights/{k}": v for k, v in state.items()}
    manifest["side"]["weights"] = sorted(state)
    saved = saved_view(a.model) if spec.a.framework == "torch" else None
    if saved:
        tensors.update({f"checkpoint/{k}": v for k, v in saved[1].items()})
        manifest["side"]["checkpoint"] = {k: "checkpoint" if k in saved[1] else "weights" for k in saved[0]}
    return tensors


def _side_facts(spec: PairSpec, a: Side) -> dict:
    return dict(defaults=a.defaults(), differentiable=a.differentiable, inside=a.inside, dtypes=list(a.adapter.dtypes),
                kept_fp32=a.kept_fp32, modules=a.module_names(), module_classes=a.module_classes(),
                trainable=a.trainable(), in_out_weights=a.in_out_weights(),
                framework_version=_framework_version(spec.a.framework))
