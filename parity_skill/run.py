"""Stage 4: run a generated script in a subprocess with a timeout; the only place that starts processes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass


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


def run_script(script: str, timeout: float, cwd: str | None = None) -> Completed | Crashed | TimedOut:
    fd, report_path = tempfile.mkstemp(prefix="parity-report-", suffix=".json")
    os.close(fd)
    try:
        try:
            proc = subprocess.run([sys.executable, script, "--report", report_path], cwd=cwd, timeout=timeout,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  text=True, errors="replace")
        except subprocess.TimeoutExpired:
            return TimedOut(timeout)
        try:
            with open(report_path, encoding="utf-8") as fh:
                return Completed(json.load(fh), proc.returncode)
        except (OSError, ValueError):
            return Crashed(proc.returncode, proc.stdout or "")
    finally:
        os.unlink(report_path)
