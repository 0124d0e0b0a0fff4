"""Stage 4: run a generated script's sides in subprocesses with a timeout; where the CLI starts processes.

User code never outlives the command: the worker leads its own process group, so a timeout or an interrupt kills
everything it started; a parent-death signal and a small guardian process (which kills the group when the CLI's
pipe closes, however the CLI died, SIGKILL included) cover the CLI being killed. The worker's output is read into
a bounded tail, so a forward that prints megabytes cannot grow the CLI's memory.
"""
from __future__ import annotations

import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from parity_skill.errors import RunError
from parity_skill.safe_io import read_source

TAIL_BYTES = 64 * 1024

# Runs with `python -I -S -c`: waits for the CLI's pipe to close, then kills the worker's process group and removes
# the folders the CLI named on that pipe (`rm PATH` lines): a CLI killed with SIGKILL leaves nothing behind.
# Whether a process group still has a process that is not dead (a zombie may never be reaped where PID 1 does not
# reap): shared by the guardian (run with `python -I -S -c`) and Worker.stop.
_RUNNING = (
    "def running(group):\n"
    "    if not os.path.isdir('/proc/self'):\n        return False\n"
    "    for pid in os.listdir('/proc'):\n"
    "        try:\n            fields = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()\n"
    "        except (OSError, IndexError, ValueError):\n            continue\n"
    "        if fields[2] == str(group) and fields[0] not in 'ZX':\n            return True\n"
    "    return False\n"
)

# Runs with `python -I -S -c`: waits for the CLI's pipe to close, then kills the worker's process group and removes
# the folders the CLI named on that pipe (`rm PATH` lines) once the group is gone (a side killed while writing could
# make its folder again): a CLI killed with SIGKILL leaves nothing behind.
_GUARDIAN = (
    "import os, shutil, signal, sys, time\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "data = b''\n"
    "try:\n    data = sys.stdin.buffer.read()\nexcept BaseException:\n    pass\n"
    "try:\n    os.killpg(int(sys.argv[1]), signal.SIGKILL)\nexcept OSError:\n    pass\n"
    + _RUNNING +
    "time.sleep(0.05)\n"
    "for _ in range(200):\n    if not running(int(sys.argv[1])):\n        break\n    time.sleep(0.01)\n"
    "for line in data.decode('utf-8', 'replace').splitlines():\n"
    "    if line.startswith('rm '):\n        shutil.rmtree(line[3:], ignore_errors=True)\n"
)
_SCOPE: dict = {"os": os}
exec(_RUNNING, _SCOPE)  # noqa: S102 - our own constant, the guardian's code
_running = _SCOPE["running"]


@dataclass(frozen=True)
class Completed:
    report: dict
    returncode: int


@dataclass(frozen=True)
class Crashed:
    returncode: int
    output: str
    side: str = "B"


@dataclass(frozen=True)
class TimedOut:
    seconds: float


_IMPORT = re.compile(r"^\s*(?:import|from)\s+(torch|mlx|numpy)\b", re.MULTILINE)


def frameworks_in(paths: list[str]) -> list[str]:
    """Frameworks the files import (a cheap scan, used only to warm the interpreter)."""
    found: list[str] = []
    for p in paths:
        try:
            text = read_source(p)
        except (OSError, ValueError):
            continue
        for name in _IMPORT.findall(text):
            module = {"mlx": "mlx.nn"}.get(name, name)
            if module not in found:
                found.append(module)
    return found


class _Tail:
    """Reads a pipe to its end on a thread, keeping only the last TAIL_BYTES."""

    def __init__(self, pipe) -> None:
        self.chunks: collections.deque[bytes] = collections.deque()
        self.size = 0
        self.thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self.thread.start()

    def _read(self, pipe) -> None:
        for chunk in iter(lambda: pipe.read1(65536), b""):
            self.chunks.append(chunk)
            self.size += len(chunk)
            while self.size - len(self.chunks[0]) >= TAIL_BYTES:
                self.size -= len(self.chunks.popleft())

    def text(self) -> str:
        self.thread.join(timeout=2)
        return b"".join(self.chunks)[-TAIL_BYTES:].decode("utf-8", errors="replace")


class Worker:
    """One side's interpreter, started at once so its framework imports overlap with the CLI's analysis;
    `start` hands it the script and arguments."""

    def __init__(self, warm: list[str], python: str | None = None):
        from parity_skill.runtime.sides import cores

        env = dict(os.environ, PARITY_SKILL_PARENT=str(os.getpid()), **cores.environment())
        self.python = python or sys.executable
        try:
            self.proc = subprocess.Popen([self.python, "-m", "parity_skill.runtime.sides.worker", *warm],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         start_new_session=True, env=env)
        except OSError as exc:
            raise RunError(f"cannot start {self.python}: {exc.strerror or exc}") from None
        self.guardian = subprocess.Popen([sys.executable, "-I", "-S", "-c", _GUARDIAN, str(self.proc.pid)],
                                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, start_new_session=True)
        self.tail = _Tail(self.proc.stdout)

    def start(self, jobs: list[dict], done: str | None = None, exits: str | None = None) -> None:
        """Hand the worker its jobs ({side, script, args}); two jobs run as two forked processes."""
        jobs = [dict(j, script=os.path.abspath(j["script"])) for j in jobs]
        try:
            self.proc.stdin.write((json.dumps({"jobs": jobs, "done": done, "exits": exits}) + "\n").encode("utf-8"))
            self.proc.stdin.close()
        except OSError:
            pass  # the worker died at start-up: its output says why

    def wait(self, deadline: float) -> bool:
        """True when the worker ended before `deadline` (time.monotonic); its descendants are stopped then too."""
        try:
            self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return False
        self._kill_group()  # whatever user code left running in the background
        return True

    def missing_runtime(self) -> str | None:
        """Why this interpreter cannot run parity-skill's runtime (its import error), or None."""
        for line in self.tail.text().splitlines():
            if "No module named 'parity_skill" in line or "No module named parity_skill" in line:
                return "No module named 'parity_skill'"
            if line.startswith("parity-skill's runtime cannot start in"):
                return line.split(": ", 1)[-1]
        return None

    def stop(self) -> None:
        """Stop everything the worker started and wait (up to 2 s) until it is gone: a side killed while writing
        would otherwise make a folder again after it was removed."""
        ended = self.proc.poll() is not None  # its sides ended before it did: nothing of ours is writing
        self._kill_group()
        self.proc.wait()
        if ended:
            return
        time.sleep(0.05)
        for _ in range(200):
            if not _running(self.proc.pid):
                return
            time.sleep(0.01)

    def _kill_group(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass

    def remove_on_exit(self, folder: str) -> None:
        """The guardian removes `folder` when the CLI ends, however it ends (it is removed earlier when all goes
        well)."""
        try:
            self.guardian.stdin.write(f"rm {os.path.abspath(folder)}\n".encode("utf-8"))
            self.guardian.stdin.flush()
        except (OSError, ValueError):
            pass  # the guardian is gone: the worker's group is being stopped anyway

    def close(self) -> None:
        """Stop the worker and everything it started; idempotent."""
        self._kill_group()
        self.proc.wait()
        if self.guardian.stdin and not self.guardian.stdin.closed:
            self.guardian.stdin.close()
        try:
            self.guardian.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.guardian.kill()


def _waiter(progress_path: str, on_progress):
    """wait(worker, deadline) that relays the sides' newest progress line while it waits."""
    def relay() -> None:
        if on_progress is None:
            return
        try:
            lines = Path(progress_path).read_text(encoding="utf-8").splitlines()
        except OSError:
            lines = []
        if lines:
            on_progress(lines[-1])

    def wait(worker: Worker, deadline: float) -> bool:
        while True:
            if worker.wait(min(deadline, time.monotonic() + 0.25)):
                relay()  # the sides' last stage, even when they finished within one poll
                return True
            relay()
            if time.monotonic() >= deadline:
                return False
    return wait


def run_sides(workers: list[Worker], script: str, timeout: float, on_progress=None) -> Completed | Crashed | TimedOut:
    """Side A captures while side B builds and then compares. One worker forks both sides (the framework imported
    once); two workers (each side its own interpreter) run one side each. `on_progress(line)` is called with the
    sides' newest stage while they run."""
    from parity_skill.runtime.data import scratch
    from parity_skill.runtime.data.artifact import SIDE_DONE

    deadline = time.monotonic() + timeout
    folder = tempfile.mkdtemp(prefix="parity-artifacts-")
    memory = scratch.make()  # the artifact's large files, in memory while it allows (runtime/data/scratch.py)
    for w in workers:
        for made in (folder, memory):
            if made:
                w.remove_on_exit(made)
    report_path, exits_path = os.path.join(folder, "report.json"), os.path.join(folder, "exits.json")
    progress = os.path.join(folder, "progress.log")
    wait = _waiter(progress, on_progress)
    shared = ["--scratch", memory] if memory else []
    job_a = {"side": "a", "script": script,
             "args": ["--side", "a", "--artifacts", folder, "--progress", progress, "--transient", *shared]}
    job_b = {"side": "b", "script": script,
             "args": ["--side", "b", "--artifacts", folder, "--wait", str(timeout), "--report", report_path, "--quiet",
                      "--progress", progress, *shared]}
    try:
        if len(workers) == 1:
            workers[0].start([job_a, job_b], os.path.join(folder, SIDE_DONE), exits_path)
            if not wait(workers[0], deadline):
                return TimedOut(timeout)
            try:
                exits = json.loads(Path(exits_path).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                exits = {"a": workers[0].proc.returncode}
            by_side = {"a": workers[0], "b": workers[0]}
        else:
            workers[0].start([job_a])
            workers[1].start([job_b])
            if not wait(workers[0], deadline):
                return TimedOut(timeout)
            Path(folder, SIDE_DONE).touch()  # side B stops waiting for artifacts that will never come
            if not wait(workers[1], deadline):
                return TimedOut(timeout)
            exits = {"a": workers[0].proc.returncode, "b": workers[1].proc.returncode}
            by_side = {"a": workers[0], "b": workers[1]}
        a_failed = exits.get("a") not in (0, None)
        try:
            with open(report_path, encoding="utf-8") as fh:
                report = json.load(fh)
        except (OSError, ValueError):
            report = None
        if report is not None and not (a_failed and all(not p["checks"] for p in report["pairs"])):
            return Completed(report, exits.get("b", 0))
        side = "a" if a_failed else "b"  # A died first: B had nothing to compare against, A's output says why
        return Crashed(exits.get(side, -1), by_side[side].tail.text(), side.upper())
    finally:
        for w in workers:  # first: a side still running (the CLI interrupted) would make the folder again
            w.stop()
        for made in (folder, memory):
            if made:
                shutil.rmtree(made, ignore_errors=True)


def interrupt_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt in the CLI, so the same clean-up runs (exit 143 is picked by the CLI)."""
    def handler(signum, frame):  # noqa: ARG001
        raise Terminated()
    signal.signal(signal.SIGTERM, handler)


class Terminated(KeyboardInterrupt):
    """SIGTERM received."""
