"""Side A recorded once, then replayed: how each side runs alone in its own process.

Phase 1 (A's process) drives every check with A against a mirror of itself, recording each distinct call A is
asked to make (forward in a dtype, gradients for an upstream gradient, a submodule trace, a repeated call), keyed
by the content of its inputs. Phase 2 (B's process) gives the same checks a `ReplaySide` that answers A's calls from
the artifact: no A code, no A framework, no A package is imported there.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import numpy as np

from parity_skill.runtime.adapters.base import Flat
from parity_skill.runtime.data.calls import LazyArrays, decode_grads, encode_one, get_flat
from parity_skill.runtime.sides.failures import MissingRecord, RecordedError, describe
from parity_skill.spec import Implementation

KINDS = ("run", "twice", "grads", "trace", "grad_trace", "cached", "cache_rows", "lines")


def call_key(kind: str, dtype: str, args: list[np.ndarray], upstream: dict | None = None) -> str:
    digest = hashlib.sha1(f"{kind}|{dtype}".encode())
    for a in args:
        a = np.asarray(a, order="C")
        digest.update(f"|{a.dtype.str}{a.shape}".encode())
        digest.update(a.tobytes())
    for k in sorted(upstream or {}):
        v = np.asarray(upstream[k], order="C")
        digest.update(f"|u{k}{v.dtype.str}{v.shape}".encode())
        digest.update(v.tobytes())
    return digest.hexdigest()[:20]


class RecordingSide:
    """Wraps a live Side; every distinct call is made once, remembered, and kept for the artifact."""

    def __init__(self, side, folder: str | None = None, live: bool = False) -> None:
        self.side = side
        self.folder = folder  # gradients go to their own file here as soon as they are made
        self.live = live  # every call goes to its own file and to data/live.py's list as it is made
        self.records: dict[str, dict] = {}  # key -> {kind, dtype, args, value | entry | error}, in call order
        self.files: list[str] = []

    def __getattr__(self, name: str) -> Any:  # which, impl, label, supports, kept_fp32, state, trainable...
        return getattr(self.side, name)

    def _call(self, kind: str, dtype: str, args: list[np.ndarray], fn: Callable, upstream: dict | None = None):
        key = call_key(kind, dtype, args, upstream)
        if key not in self.records:
            rec = {"kind": kind, "dtype": dtype, "args": [np.asarray(a) for a in args]}
            try:
                rec["value"] = fn()
            except Exception as exc:  # noqa: BLE001 - replayed as the same failure
                rec["error"] = describe(exc)
            self.records[key] = rec
            if self.folder and (self.live or (kind == "grads" and "value" in rec)):
                value = rec.get("value")
                self._spill(key, rec, keep=kind != "grads")
                if "error" not in rec:
                    return value
        rec = self.records[key]
        if "error" in rec:
            raise RecordedError(rec["error"])
        if "value" in rec:
            return rec["value"]
        if "entry" in rec:  # spilled: read back from its file
            from parity_skill.runtime.data import scratch
            from parity_skill.runtime.data.artifact import Tensors

            tensors = Tensors([str(scratch.path(Path(self.folder), name)) for name in rec["files"]])
            return decode_grads(tensors, rec["entry"], f"calls/{list(self.records).index(key):04d}")
        return rec["value"]

    def _spill(self, key: str, rec: dict, keep: bool) -> None:
        """A call written now (a model's worth of gradients is not held until the artifact is complete; a live
        artifact's reader waits for it); `keep`: its value stays in memory for A's own checks too."""
        from parity_skill.runtime.data import live
        from parity_skill.runtime.data.artifact import save_chunked

        n = list(self.records).index(key)
        tensors: dict[str, np.ndarray] = {}
        rec["entry"] = encode_one(n, key, rec, tensors)
        Path(self.folder).mkdir(parents=True, exist_ok=True)
        rec["files"] = save_chunked(Path(self.folder), f"calls-{n:04d}", tensors)
        self.files.extend(rec["files"])
        if self.live:
            live.append_call(self.folder, n, rec["entry"], rec["files"], self.side.kept_fp32)
        if not keep:
            rec.pop("value", None)

    def run(self, args, dtype: str = "fp32") -> Flat:
        return self._call("run", dtype, args, lambda: self.side.run(args, dtype))

    def run_twice(self, args) -> tuple[Flat, Flat]:
        return self._call("twice", "fp32", args, lambda: self.side.run_twice(args))

    def grads(self, args, dtype: str, upstream: dict):
        return self._call("grads", dtype, args, lambda: self.side.grads(args, dtype, upstream), upstream)

    def trace(self, args, feed=None) -> list[list]:
        return self._call("trace", "fp32", args, lambda: self.side.trace(args))

    def grad_trace(self, args, upstream: dict) -> list[list]:
        return self._call("grad_trace", "fp32", args, lambda: self.side.grad_trace(args, upstream), upstream)

    def cached_decode(self, prompt, tokens) -> dict:
        return self._call("cached", "fp32", [prompt, tokens], lambda: self.side.cached_decode(prompt, tokens))

    def lines(self, args) -> list[list]:
        return self._call("lines", "fp32", args, lambda: self.side.lines(args))

    def module_lines(self, args) -> list[list]:
        """The statements of the first submodule of each of the user's classes (Side.user_modules), labelled
        `name|file:line var`: where a difference starts inside a submodule, phase 2 finds its line in them."""
        modules = self.side.user_modules()
        if not modules:  # a function, or a model built only of framework layers: nothing to record
            return []
        return self._call("lines", "modules", args, lambda: self.side.lines(args, modules))

    def cache_rows(self, prompt, tokens, step: int, tol) -> list[dict]:
        return self._call("cache_rows", "fp32", [prompt, tokens, np.array([step, tol.atol, tol.rtol])],
                          lambda: self.side.cache_rows(prompt, tokens, step, tol))


class MirrorSide:
    """Stands in for B during capture: B is A itself, so the checks walk every path that asks A for something."""

    mirror = True

    def __init__(self, recorder: RecordingSide) -> None:
        self.rec = recorder
        self.which, self.kept_fp32 = "b", {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.rec, name)

    def trace(self, args, feed=None) -> list[list]:
        return self.rec.trace(args)

    def grads(self, args, dtype: str, upstream: dict):
        """A's gradients were recorded when A was asked; the stand-in needs none (its comparisons are discarded)."""
        out, _, _ = self.rec.grads(args, dtype, upstream)
        return out, {}, {}


class ReplaySide:
    """Side A answered from its artifact (phase 2)."""

    def __init__(self, manifest: dict, tensors: dict[str, np.ndarray], feed=None) -> None:
        side = manifest["side"]
        self._feed = feed  # data/live.py's LiveArtifact while A still records calls
        self.which = "a"
        self.impl = Implementation(side["file"], side["symbol"], side["framework"], side["kind"])
        self.differentiable = side["differentiable"]
        self._dtypes = tuple(side["dtypes"])
        self._kept_fp32 = side.get("kept_fp32", {})
        self._modules = side.get("modules", [])
        self._classes = side.get("module_classes", {})
        self.defaults = side.get("defaults", {})  # constructor arguments A ran with at their defaults
        self._trainable = side.get("trainable", [])
        self._weights = side.get("weights", [])
        self._checkpoint = side.get("checkpoint", {})  # A's saved keys: "weights" (a live name) or "checkpoint"
        self._in_out = side.get("in_out_weights", [])
        self.call_order = list(dict.fromkeys(s["name"].split("#")[0] for s in manifest.get("stages", [])))
        self._calls = {c["key"]: (f"calls/{n:04d}", c) for n, c in enumerate(manifest.get("calls", []))}
        self._tensors = tensors

    @property
    def label(self) -> str:
        return f"A ({self.impl.display})"

    @property
    def kept_fp32(self) -> dict:
        """Where A kept parameters in float32 for a dtype (settled as A builds each dtype's model)."""
        return self._feed.kept_fp32 if self._feed is not None else self._kept_fp32

    def supports(self, dtype: str) -> bool:
        return dtype in self._dtypes

    def in_out_weights(self) -> list[str]:
        return list(self._in_out)

    def seed(self, seed: int) -> None:  # A's randomness was seeded when it was captured
        return None

    def refresh(self) -> None:
        return None

    def state(self) -> Mapping:
        """A's weights, read one at a time when asked for."""
        return LazyArrays(self._tensors, {name: f"weights/{name}" for name in self._weights})

    def saved_state(self) -> Mapping | None:
        """A's checkpoint as its library writes it (live names its library does not rename, plus the keys it
        writes instead of fused ones), or None when it writes its live names."""
        if not self._checkpoint:
            return None
        return LazyArrays(self._tensors, {n: f"{where}/{n}" for n, where in self._checkpoint.items()})

    def trainable(self) -> list[str]:
        return list(self._trainable)

    def param_names(self) -> list[str]:
        return list(self._weights)

    def module_names(self) -> list[str]:
        return list(self._modules)

    def module_classes(self) -> dict[str, dict]:
        return dict(self._classes)

    def settle(self) -> None:
        """Live: wait until A's checks are done and take every call recorded so far (A's float32 exceptions are
        then those of its checks)."""
        from parity_skill.runtime.data.artifact import ArtifactError

        try:
            while self._feed is not None and not (self._feed.serving() or self._feed.ended()):
                self._feed.wait()
        except ArtifactError:  # the run's time is spent: what was read stands (the CLI reports the timeout)
            pass
        if self._feed is not None:
            self._calls.update((c["key"], (f"calls/{n:04d}", c)) for n, c in self._feed.more())

    def _lookup(self, kind: str, dtype: str, args, upstream: dict | None = None) -> tuple[str, dict]:
        key = call_key(kind, dtype, args, upstream)
        hit = self._calls.get(key)
        while hit is None and self._feed is not None:  # A may not have recorded it yet
            ended = self._feed.ended()  # before reading: every line A writes comes before A ends
            self._calls.update((c["key"], (f"calls/{n:04d}", c)) for n, c in self._feed.more())
            hit = self._calls.get(key)
            if hit is None and ended:
                break
            if hit is None:
                self._feed.ask(key, kind, dtype, args, upstream)
                self._feed.wait()
        if hit is None and self._feed is not None and self._feed.final is None:
            raise MissingRecord(f"side A's process ended before it made this {kind} call (its own output says why)")
        if hit is None and self._feed is not None and self._feed.final.get("error"):
            raise RecordedError(self._feed.final["error"])
        if hit is None:
            raise MissingRecord(f"A's artifact has no {kind} call in {dtype} for these inputs (captured with other "
                                "checks, inputs or seed: capture again with the same options)")
        if "error" in hit[1]:
            raise RecordedError(hit[1]["error"])
        return hit

    def run(self, args, dtype: str = "fp32") -> Flat:
        p, c = self._lookup("run", dtype, args)
        return get_flat(self._tensors, f"{p}/out", c["out"])

    def run_twice(self, args) -> tuple[Flat, Flat]:
        p, c = self._lookup("twice", "fp32", args)
        return get_flat(self._tensors, f"{p}/out", c["out"]), get_flat(self._tensors, f"{p}/again", c["out"])

    def grads(self, args, dtype: str, upstream: dict):
        p, c = self._lookup("grads", dtype, args, upstream)
        return decode_grads(self._tensors, c, p)

    def trace(self, args, feed=None) -> list[list]:
        p, c = self._lookup("trace", "fp32", args)
        return self._modules_of(c, "stages")

    def grad_trace(self, args, upstream: dict) -> list[list]:
        p, c = self._lookup("grad_trace", "fp32", args, upstream)
        return self._modules_of(c, f"{p}/modules")

    def lines(self, args) -> list[list]:
        p, c = self._lookup("lines", "fp32", args)
        return self._modules_of(c, f"{p}/modules")

    def module_lines(self, args) -> list[list]:
        p, c = self._lookup("lines", "modules", args)
        return self._modules_of(c, f"{p}/modules")

    def cached_decode(self, prompt, tokens) -> dict:
        p, c = self._lookup("cached", "fp32", [prompt, tokens])
        return {"how": c["how"], "logits": self._tensors.get(f"{p}/logits")}

    def cache_rows(self, prompt, tokens, step: int, tol) -> list[dict]:
        return self._lookup("cache_rows", "fp32", [prompt, tokens, np.array([step, tol.atol, tol.rtol])])[1]["rows"]

    def _modules_of(self, c: dict, root: str) -> list[list]:
        return [[m["name"], get_flat(self._tensors, f"{root}/{m['stage']}/in", m["in"]),
                 get_flat(self._tensors, f"{root}/{m['stage']}/out", m["out"])] for m in c["modules"]]


def capture_mismatch(manifest: dict, spec) -> str | None:
    """Why A's recording cannot answer this pair's checks (other seed, inputs or checks), or None."""
    if manifest.get("seed") != spec.checks.seed:
        return f"captured with --seed {manifest.get('seed')}, compared with --seed {spec.checks.seed}"
    def without_layout(inputs):  # B's input layout is B's business: A's recording is in A's layout
        return [{k: v for k, v in i.items() if k != "layout_b"} for i in inputs]

    planned = json.loads(json.dumps([asdict(i) for i in spec.inputs]))  # tuples -> lists, as in the manifest
    if without_layout(planned) != without_layout(manifest.get("inputs", [])):
        return "captured with other inputs than this comparison plans (use the artifact's own inputs)"
    missing = [n for n in spec.checks.names if n not in manifest.get("checks", [])]
    if missing:
        return f"captured without the checks {', '.join(missing)} (capture again with them, or leave them out)"
    return None
