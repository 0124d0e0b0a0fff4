"""Phase 1 of a one-command run, once A's checks are done: A answers the calls B asks for that its checks did not
make (a float64 reference for an edge B fails, a submodule trace to locate a difference...), until B releases it.
What a complete artifact records in advance for any B, A then computes only for the B in front of it."""
from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

from parity_skill.runtime.data import live
from parity_skill.runtime.data.tensor_file import Tensors

_CALLS = {
    "run": lambda rec, args, dtype, up: rec.run(args, dtype),
    "twice": lambda rec, args, dtype, up: rec.run_twice(args),
    "grads": lambda rec, args, dtype, up: rec.grads(args, dtype, up),
    "trace": lambda rec, args, dtype, up: rec.trace(args),
    "grad_trace": lambda rec, args, dtype, up: rec.grad_trace(args, up),
    "lines": lambda rec, args, dtype, up: rec.lines(args) if dtype == "fp32" else rec.module_lines(args),
    "cached": lambda rec, args, dtype, up: rec.cached_decode(args[0], args[1]),
    "cache_rows": lambda rec, args, dtype, up: rec.cache_rows(args[0], args[1], int(args[2][0]),
                                                             SimpleNamespace(atol=args[2][1], rtol=args[2][2])),
}


def serve(rec, folder: str, seed: int) -> None:
    """Answer B's requests (data/live.py) until B releases this pair or B's process is gone."""
    folder_ = Path(folder)
    (folder_ / live.SERVING).touch()
    offset = 0
    while not (folder_ / live.RELEASED).exists():
        lines, offset = live.read_lines(folder_ / live.REQUESTS, offset)
        for line in lines:
            _answer(rec, folder_, line, seed)
        if not lines:
            if not _b_alive(folder_):
                return
            time.sleep(0.005)


def _answer(rec, folder: Path, line: dict, seed: int) -> None:
    key, kind = line["key"], line["kind"]
    if key not in rec.records and kind in _CALLS:
        arrays = Tensors([str(folder / line["file"])])
        args = [arrays[f"in/{i}"] for i in range(line["args"])]
        up = None if line["upstream"] is None else {k: arrays[f"up/{k}"] for k in line["upstream"]}
        rec.seed(seed)
        try:
            _CALLS[kind](rec, args, line["dtype"], up)
        except Exception:  # noqa: BLE001 - recorded as the call's error, which B's replay raises
            pass
    n = list(rec.records).index(key) if key in rec.records else len(rec.records)
    found = rec.records.get(key)
    if found is not None and "entry" in found:  # made now, or by A's checks after B asked: B is told (again)
        live.append_call(folder, n, found["entry"], found["files"], rec.side.kept_fp32)
    else:
        entry = {"key": key, "kind": kind, "dtype": line["dtype"], "args": line["args"],
                 "error": f"A could not make this {kind} call for B"}
        live.append_call(folder, n, entry, [], rec.side.kept_fp32)


def _b_alive(folder: Path) -> bool:
    try:
        os.kill(int((folder / live.B_PID).read_text(encoding="utf-8")), 0)
    except (OSError, ValueError):
        return False
    return True


