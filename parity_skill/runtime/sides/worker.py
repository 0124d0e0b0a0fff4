"""A warm interpreter for the CLI: imports the frameworks while the CLI is still analysing, then runs the jobs that
arrive on stdin (one JSON line: {"jobs": [{"side", "script", "args"}], "done": path, "exits": path}), each exactly
as `python script.py ARGS` would.

With two jobs it is a zygote: it forks one child per side after the framework imports and before any user code
is imported, so the sides never share an interpreter's modules, yet the framework is imported once. When side A's
child ends, `done` is created (side B stops waiting for artifacts that will never come); `exits` receives every
side's exit status.
"""
from __future__ import annotations

import importlib
import json
import os
import runpy
import signal
import sys

RUNTIME_MISSING = "parity-skill's runtime cannot start in"
_exit = os._exit  # the real one: the runtime refuses os._exit to user code while checks run


def _die_with(parent: int) -> None:
    """Linux: SIGKILL this process when `parent` dies (the CLI's guardian then clears the rest of the group)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the signal was armed
        _exit(137)


def _run(job: dict) -> int:
    sys.argv = [job["script"], *job["args"]]
    sys.path.insert(0, "")
    try:
        runpy.run_path(job["script"], run_name="__main__")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - the traceback is the side's output
        import traceback

        traceback.print_exc()
        return 1
    return 0


def _fork_sides(jobs: list[dict], done: str | None, exits: str | None) -> int:
    children = {}
    zygote = os.getpid()
    for job in jobs:
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            _die_with(zygote)
            code = _run(job)
            sys.stdout.flush()
            sys.stderr.flush()
            _exit(code)
        children[pid] = job["side"]
    status = {}
    while children:
        pid, raw = os.wait()
        side = children.pop(pid, None)
        if side is None:
            continue
        status[side] = os.waitstatus_to_exitcode(raw)
        if side == "a" and done:
            open(done, "a").close()
    if exits:
        with open(exits, "w", encoding="utf-8") as fh:
            json.dump(status, fh)
    code = status.get("b", 1)
    return code if code >= 0 else 1


def main() -> None:
    parent = os.environ.pop("PARITY_SKILL_PARENT", None)
    if parent:
        _die_with(int(parent))
    for name in sys.argv[1:]:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - warming only; the script reports real import problems itself
            pass
    try:
        import parity_skill.runtime.sides.session  # noqa: F401
    except ImportError as exc:
        print(f"{RUNTIME_MISSING} {sys.executable}: {exc}", flush=True)
        sys.exit(3)
    line = sys.stdin.readline()
    if not line.strip():
        return
    order = json.loads(line)
    if len(order["jobs"]) == 1:
        code = _run(order["jobs"][0])
    else:
        code = _fork_sides(order["jobs"], order.get("done"), order.get("exits"))
    sys.stdout.flush()
    sys.stderr.flush()
    _exit(code)  # every result is on disk: skip tearing down the frameworks (a noticeable share of a short run)


if __name__ == "__main__":
    main()
