"""A side's recorded calls as artifact tensors: each call's arrays under `calls/<n>/...` (a submodule trace's under
`stages/`) and its manifest entry; read back lazily, a model's worth of gradients one tensor at a time."""
from __future__ import annotations

import functools
from collections.abc import Mapping

import numpy as np

from parity_skill.runtime.adapters.base import Flat


def _put_flat(tensors: dict, prefix: str, flat: Flat) -> list[str]:
    for i, (_, v) in enumerate(flat):
        tensors[f"{prefix}/{i}"] = np.asarray(v)
    return [k for k, _ in flat]


def get_flat(tensors: dict, prefix: str, keys: list[str]) -> Flat:
    return [(k, tensors[f"{prefix}/{i}"]) for i, k in enumerate(keys)]


def encode_one(n: int, key: str, rec: dict, tensors: dict[str, np.ndarray]) -> dict:
    """One call for the manifest; its arrays go into `tensors` under `calls/<n>/...` (a trace under `stages/`)."""
    p = f"calls/{n:04d}"
    entry = {"key": key, "kind": rec["kind"], "dtype": rec["dtype"], "args": len(rec["args"])}
    for i, a in enumerate(rec["args"]):
        tensors[f"{p}/in/{i}"] = a
    if "error" in rec:
        entry["error"] = rec["error"]
    elif rec["kind"] == "run":
        entry["out"] = _put_flat(tensors, f"{p}/out", rec["value"])
    elif rec["kind"] == "twice":
        entry["out"] = _put_flat(tensors, f"{p}/out", rec["value"][0])
        _put_flat(tensors, f"{p}/again", rec["value"][1])
    elif rec["kind"] == "cached":
        entry["how"] = rec["value"]["how"]
        if rec["value"]["logits"] is not None:
            tensors[f"{p}/logits"] = rec["value"]["logits"]
    elif rec["kind"] == "cache_rows":
        entry["rows"] = rec["value"]
    elif rec["kind"] == "grads":
        out, gin, gp = rec["value"]
        entry["out"] = _put_flat(tensors, f"{p}/out", out)
        entry["grad_inputs"] = sorted(gin)
        entry["grad_params"] = sorted(gp)
        for i in gin:
            tensors[f"{p}/grad_in/{i}"] = gin[i]
        for name in gp:  # read (converted) when written: a model's worth is never converted at once
            tensors[f"{p}/grad_param/{name}"] = functools.partial(gp.__getitem__, name)
    else:  # trace: [module name, inputs, outputs] per submodule call, stored as readable stages (a gradient
        # trace, [name, input grads, output grads], beside its call)
        root = "stages" if rec["kind"] == "trace" else f"{p}/modules"
        entry["modules"] = []
        seen: dict[str, int] = {}
        for name, inp, out in rec["value"]:
            k = seen.get(name, 0)
            seen[name] = k + 1
            stage = name + (f"#{k}" if k else "")
            entry["modules"].append({"name": name, "stage": stage,
                                     "in": _put_flat(tensors, f"{root}/{stage}/in", inp),
                                     "out": _put_flat(tensors, f"{root}/{stage}/out", out)})
    return entry


def encode(records: dict[str, dict], tensors: dict[str, np.ndarray]) -> list[dict]:
    """Calls for the manifest, in call order; records already spilled to their own file keep their entry."""
    return [rec["entry"] if "entry" in rec else encode_one(n, key, rec, tensors)
            for n, (key, rec) in enumerate(records.items())]


class LazyArrays(Mapping):
    """name -> array, each read from the artifact when asked for and not kept (a model's worth of gradients)."""

    def __init__(self, tensors: Mapping, names: dict) -> None:
        self._tensors, self._names = tensors, names

    def __getitem__(self, key):
        return self._tensors[self._names[key]]

    def __contains__(self, key) -> bool:  # Mapping's would read the array to answer
        return key in self._names

    def __iter__(self):
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def decode_grads(tensors: Mapping, c: dict, p: str):
    """(outputs, input grads by index, parameter grads by name: read lazily) of a recorded gradient call."""
    return (get_flat(tensors, f"{p}/out", c["out"]),
            {i: tensors[f"{p}/grad_in/{i}"] for i in c["grad_inputs"]},
            LazyArrays(tensors, {n: f"{p}/grad_param/{n}" for n in c["grad_params"]}))
