"""`--stream`, phase 2 in B's process: B built without parameter memory; each of its modules gets A's weights
through the weight map just before it runs; each block is fed A's recorded input and its output is compared with
A's, then replaced by A's (teacher forcing: every block is judged alone). The report is the per-block stage table,
with the first divergent block."""
from __future__ import annotations

import time
from dataclasses import asdict
from types import SimpleNamespace

import numpy as np
import torch

from parity_skill.runtime.data import artifact
from parity_skill.runtime.data.init import draw, owner_of, role
from parity_skill.runtime.data.inputs import base_inputs
from parity_skill.runtime.data.weights import b_values, resolve_map
from parity_skill.runtime.judging.stages import stage_row
from parity_skill.runtime.sides.failures import UserCodeError, describe
from parity_skill.runtime.sides.side import in_out_weights
from parity_skill.runtime.stream import blocks as B
from parity_skill.runtime.stream.side_a import build_light, peak_rss_mb
from parity_skill.spec import PairSpec
from parity_skill.thresholds import STAGE_COSINE


class _Shapes:
    """What the weight map reads of a side (state shapes, in/out weights, framework), without any values."""

    def __init__(self, shapes: dict, flips: list[str], impl) -> None:
        self._shapes, self._flips, self.impl = shapes, flips, impl

    def state(self) -> dict[str, np.ndarray]:
        return {k: np.broadcast_to(np.float32(0), tuple(s)) for k, s in self._shapes.items()}

    def in_out_weights(self) -> list[str]:
        return self._flips


def compare_streamed(spec: PairSpec, folder: str, entry: dict, wait: float | None, done_marker) -> dict:
    """The pair's report entry: B block by block against A's streamed artifact in `folder`."""
    notes = entry["notes"]
    try:
        b = build_light("b", spec)
        if wait is not None:
            artifact.wait_for(folder, done_marker, wait)
        manifest, tensors, verified = artifact.read_verifying(folder)
    except (UserCodeError, artifact.ArtifactError) as exc:
        return dict(entry, error=str(exc))
    except Exception as exc:  # noqa: BLE001 - user code
        return dict(entry, error=describe(exc))
    if manifest.get("error") or "stream" not in manifest:
        return dict(entry, error=manifest.get("error") or f"{folder}: not a streamed artifact (capture with --stream)")
    problem = _malformed(manifest["stream"])
    if problem:
        return dict(entry, error=f"{folder}: manifest field 'stream' {problem}")
    stream = manifest["stream"]
    model = b.model
    shapes_b = B.shapes(model)
    a_side = _Shapes({**stream["params"], **stream["buffers"]}, stream["in_out_weights"],
                     SimpleNamespace(framework="torch"))
    b_side = _Shapes(shapes_b, in_out_weights(shapes_b, B.owners(model)), spec.b)
    try:
        _, entries, left_a, left_b = resolve_map(spec.weight_map, a_side, b_side, notes, rules=spec.map_rules)
    except Exception as exc:  # noqa: BLE001 - an unusable map: could not check
        return dict(entry, error=str(exc))
    entry["weight_map"] = [asdict(e) for e in entries]
    entry["unmapped"] = {"a": left_a, "b": left_b}
    missing = [n for n in left_a if n in stream["params"]]
    if missing:
        entry["checks"].append({"name": "weights", "status": "fail", "message": f"A parameters missing in B: "
                                f"{', '.join(missing)}", "max_abs_diff": None, "max_rel_diff": None,
                                "tolerance": None})
    rows: dict[int, dict] = {}
    pairing: dict[str, str] = {}
    handles: list = []
    started = time.perf_counter()
    try:
        value = _b_values(entries, tensors, B.owners(model), shapes_b, spec.checks.seed, notes)
        _load_buffers(model, entries, tensors, set(stream["buffers"]))
        handles += B.load_on_call(model, value)
        handles += _teacher_forcing(model, stream["blocks"], tensors, entries, rows, spec, pairing)
        b.run(base_inputs(spec.inputs, spec.checks.seed))
    except Exception as exc:  # noqa: BLE001 - user code, or an artifact whose tensors do not fit B
        return dict(entry, error=f"B's streamed forward raised {describe(exc)}")
    finally:
        for h in handles:
            h.remove()
    ran = time.perf_counter() - started
    try:
        verified()
    except artifact.ArtifactError as exc:
        return dict(entry, error=str(exc))
    checks = [rows.get(i) or _missing(c, pairing.get(c["block"])) for i, c in enumerate(stream["blocks"])]
    entry["checks"] += checks
    entry["limitations"] += [f"{c['name']} not checked: {c['message']}" for c in checks if c["status"] == "skip"]
    first = next((c for c in checks if c["status"] == "fail"), None)
    if first is not None:
        entry["first_divergence"] = f"{first['name'][6:]}: {first['message']}"
        if first.get("nonfinite_b") and not first.get("nonfinite_a"):
            entry["limitations"].append(f"{first['name'][6:]}: B is not finite where A is: B may read a parameter "
                                        "outside its own module's forward, which --stream does not load there "
                                        "(run without --stream to tell)")
    entry["stream"] = {"a": {"peak_rss_mb": stream.get("peak_rss_mb"), **stream.get("seconds", {})},
                       "b": {"peak_rss_mb": peak_rss_mb(), "forward": round(ran, 3)}}
    notes.append(f"streamed: each module's weights were loaded just before it ran and dropped after; each of the "
                 f"{len(checks)} block calls was fed A's recorded input and judged alone (teacher forcing); peak "
                 f"memory A {_mb(stream.get('peak_rss_mb'))}, B {_mb(peak_rss_mb())}")
    if not any(c["status"] != "skip" for c in checks):  # nothing compared is never a pass
        return dict(entry, verdict="error", error="no block call of A was compared: B ran none of their counterparts")
    entry["verdict"] = "fail" if any(c["status"] == "fail" for c in entry["checks"]) else "pass"
    entry["error"] = None
    return entry


def _shape_table(value) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, list) and
                                           all(isinstance(d, int) and d >= 0 for d in v) for k, v in value.items())


def _malformed(stream) -> str | None:
    """Why a streamed manifest (untrusted data) cannot be used, or None."""
    if not isinstance(stream, dict):
        return "is not an object"
    for field in ("params", "buffers"):
        if not _shape_table(stream.get(field)):
            return f"'{field}' must be an object {{name: [sizes]}}"
    if not isinstance(stream.get("in_out_weights"), list) or not all(isinstance(n, str)
                                                                       for n in stream["in_out_weights"]):
        return "'in_out_weights' must be a list of names"
    calls = stream.get("blocks")
    if not isinstance(calls, list) or not all(isinstance(c, dict) and isinstance(c.get("block"), str) and
                                              isinstance(c.get("key"), str) and isinstance(c.get("call"), int)
                                              for c in calls):
        return "'blocks' must be a list of {block, call, key}"
    return None


def _mb(x: float | None) -> str:
    return f"{x:.0f} MB" if x is not None else "unknown"


def _b_values(entries, tensors, owners: dict, shapes_b: dict, seed: int, notes: list[str]):
    """name -> B's value of that parameter: A's checkpoint through its map entry, or a fresh draw of its own."""
    by_b = {n: e for e in entries for n in e.b.split("+")}
    last: dict = {}
    unmapped: list[str] = []

    def value(name: str) -> np.ndarray:
        e = by_b.get(name)
        if e is None:
            if name not in unmapped:
                unmapped.append(name)
                notes.append(f"B's '{name}' was not loaded from A (it gets a fresh value of its own)")
            shape = tuple(shapes_b[name])
            return np.asarray(draw(name, shape, role(name, shape, owner_of(name, owners)), seed), np.float32)
        if last.get("entry") is not e:  # a split entry gives q, k and v from one read of A's fused tensor
            last.clear()
            last.update(entry=e, values=b_values({n: tensors[n] for n in e.a.split("+")}, [e]))
        return last["values"][name]
    return value


def _load_buffers(model: torch.nn.Module, entries, tensors, buffers_a: set[str]) -> None:
    """B's buffers that the map fills from A's (running statistics): loaded once, they are small."""
    with torch.no_grad():
        for e in entries:
            if all(n in buffers_a for n in e.a.split("+")) and f"buffers/{e.a.split('+')[0]}" in tensors:
                values = b_values({n: tensors[f"buffers/{n}"] for n in e.a.split("+")}, [e])
                for name, v in values.items():
                    model.get_buffer(name).copy_(torch.from_numpy(np.asarray(v, order="C")))


def pair_blocks(a_blocks: list[str], b_blocks: list[str], entries) -> dict[str, str]:
    """{A block: B block}: the B block whose parameters come from A's (most of them), else the same name, else
    the same position among the blocks left."""
    def owner(name: str, names: list[str]) -> str | None:
        return next((blk for blk in sorted(names, key=len, reverse=True) if name == blk or name.startswith(blk + ".")),
                    None)
    votes: dict[str, dict[str, int]] = {}
    for e in entries:
        for na in e.a.split("+"):
            for nb in e.b.split("+"):
                oa, ob = owner(na, a_blocks), owner(nb, b_blocks)
                if oa and ob:
                    votes.setdefault(oa, {}).setdefault(ob, 0)
                    votes[oa][ob] += 1
    out = {a: max(v, key=v.get) for a, v in votes.items()}
    rest_b = [b for b in b_blocks if b not in out.values()]
    for a in a_blocks:
        if a not in out and a in rest_b:
            out[a] = a
            rest_b.remove(a)
    for a in a_blocks:
        if a not in out and rest_b:
            out[a] = rest_b.pop(0)
    return out


def _teacher_forcing(model, calls: list[dict], tensors, entries, rows: dict, spec: PairSpec,
                     pairing: dict[str, str]) -> list:
    """Hooks on B's blocks. A block with weights is paired with A's by them (pair_blocks): its k-th call gets A's
    recorded input, and gives A's recorded output on after its own is judged against it. A block without weights
    (a rotary table, called once per layer kind on one side and as two modules on the other) is judged against
    the call of a weightless A block whose output it is closest to, and gives that one on."""
    b_blocks = dict(B.blocks(model))
    weighted = {n for n, blk in b_blocks.items() if any(True for _ in blk.parameters())}
    a_names = list(dict.fromkeys(c["block"] for c in calls if c.get("params", True)))
    pairing.update(pair_blocks(a_names, sorted(weighted, key=list(b_blocks).index), entries))
    index = {(c["block"], c["call"]): i for i, c in enumerate(calls)}
    free = [i for i, c in enumerate(calls) if not c.get("params", True)]  # weightless A calls not yet matched
    atol = spec.checks.tolerances["fp32"].atol
    cosine = spec.checks.cosine if spec.checks.cosine is not None else STAGE_COSINE

    def judged(i: int, b_name: str, y: torch.Tensor, result):
        a_out = np.asarray(tensors[f"{calls[i]['key']}/out"])
        name = calls[i]["block"] + (f" (call {calls[i]['call'] + 1})" if calls[i]["call"] else "")
        rows[i] = stage_row(name, [("out", a_out)], [("out", y.detach().float().numpy())], atol, cosine, None,
                            b_name=b_name)
        return B.replace_first(result, torch.from_numpy(np.asarray(a_out, order="C")).to(y.dtype))

    handles = []
    for a_name, b_name in pairing.items():
        block, seen = b_blocks[b_name], [0]

        def pre(mod, args, kwargs, a_name=a_name, seen=seen):
            i = index.get((a_name, seen[0]))
            key = f"{calls[i]['key']}/in" if i is not None else None
            if key is None or key not in tensors:
                return None
            x = B.first_tensor(args)
            forced = torch.from_numpy(np.asarray(tensors[key], order="C"))
            if x is not None:
                return B.replace_first(args, forced.to(x.dtype)), kwargs
            y = B.first_tensor(kwargs)
            return (args, B.replace_first(kwargs, forced.to(y.dtype))) if y is not None else None

        def post(mod, args, kwargs, result, a_name=a_name, b_name=b_name, seen=seen):
            i = index.get((a_name, seen[0]))
            seen[0] += 1
            y = B.first_tensor(result)
            if i is None or y is None or f"{calls[i]['key']}/out" not in tensors:
                return None
            return judged(i, b_name, y, result)

        handles += [block.register_forward_pre_hook(pre, with_kwargs=True),
                    block.register_forward_hook(post, with_kwargs=True)]
    for b_name in [n for n in b_blocks if n not in weighted]:
        def closest(mod, args, kwargs, result, b_name=b_name):
            y = B.first_tensor(result)
            if y is None:
                return None
            mine = y.detach().float().numpy()
            fits = [i for i in free if f"{calls[i]['key']}/out" in tensors
                    and np.shape(tensors[f"{calls[i]['key']}/out"]) == mine.shape]
            if not fits:
                return None
            i = min(fits, key=lambda j: (_distance(tensors[f"{calls[j]['key']}/out"], mine), j))
            free.remove(i)
            return judged(i, b_name, y, result)

        handles.append(b_blocks[b_name].register_forward_hook(closest, with_kwargs=True))
    return handles


def _distance(a, b) -> float:
    with np.errstate(invalid="ignore", over="ignore"):
        d = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
    return float(np.nanmax(d)) if d.size else 0.0


def _missing(call: dict, counterpart: str | None) -> dict:
    """A block call B made no counterpart of: a failure when B has the block (its weights are A's) and never runs
    it that often; a named skip when B has no such block (a table only one side computes)."""
    row = {"name": f"stage:{call['block']}", "status": "skip", "max_abs_diff": None, "mean_abs_diff": None,
           "cosine": None, "pearson": None, "tolerance": None,
           "message": "B never ran its counterpart of this block call"}
    if counterpart is not None:
        times = f" (call {call['call'] + 1})" if call["call"] else ""
        row.update(status="fail", b_stage=counterpart,
                   message=f"B never runs {counterpart}{times} where A runs {call['block']}, although B holds its "
                           "weights")
    return row
