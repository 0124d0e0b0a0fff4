"""Stage 4: run a generated script in a subprocess with a timeout; the only place that starts processes."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Completed:
    report: dict
    returncode: int


@dataclass(frozen=True)
class Crashed:
    returncode: int
    output: str


@dataclass(frozen=True)
class TimedOut:
    seconds: float


_IMPORT = re.compile(r"^\s*(?:import|from)\s+(torch|mlx|numpy)\b", re.MULTILINE)


def frameworks_in(paths: list[str]) -> list[str]:
    """Frameworks the files import (a cheap scan, used only to warm the interpreter)."""
    found: list[str] = []
    for p in paths:
        try:
            text = Path(p).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for name in _IMPORT.findall(text):
            module = {"mlx": "mlx.nn"}.get(name, name)
            if module not in found:
                found.append(module)
    return found


class Runner:
    """Starts the interpreter at once (so framework imports overlap with analysis); `run` hands it the script."""

    def __init__(self, warm: list[str]):
        self.proc = subprocess.Popen([sys.executable, "-m", "parity_skill.runtime.worker", *warm],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()

    def run(self, script: str, timeout: float) -> Completed | Crashed | TimedOut:
        fd, report_path = tempfile.mkstemp(prefix="parity-report-", suffix=".json")
        os.close(fd)
        try:
            try:
                out, _ = self.proc.communicate(f"{os.path.abspath(script)}\n{report_path}\n", timeout=timeout)
            except subprocess.TimeoutExpired:
                self.close()
                return TimedOut(timeout)
            try:
                with open(report_path, encoding="utf-8") as fh:
                    return Completed(json.load(fh), self.proc.returncode)
            except (OSError, ValueError):
                return Crashed(self.proc.returncode, out or "")
        finally:
            os.unlink(report_path)
