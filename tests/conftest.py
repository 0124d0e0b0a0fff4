"""Helpers: run the CLI end to end (the parity script still runs in its own subprocess) and read its report."""
from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from parity_skill.cli.main import cli

ROOT = Path(__file__).resolve().parent.parent
FIX = "tests/fixtures"
os.chdir(ROOT)


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def report(self) -> dict:
        return json.loads(self.stdout)

    @property
    def pair(self) -> dict:
        """The one plain run (extra runs such as a causal-mask variant are in `variants`)."""
        (pair,) = [p for p in self.report["pairs"] if not p.get("variant")]
        return pair

    @property
    def variants(self) -> list[dict]:
        return [p for p in self.report["pairs"] if p.get("variant")]

    def check(self, name: str) -> dict:
        return next(c for c in self.pair["checks"] if c["name"] == name)

    def status(self, name: str) -> str:
        return self.check(name)["status"]

    def kinds(self) -> set[str]:
        return {d["kind"] for d in self.pair["diagnosis"]}


@functools.lru_cache(maxsize=None)
def parity(*args: str) -> Run:
    """`parity-skill ARGS` (cached: several tests read the same run)."""
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return Run(result.exit_code, result.stdout, result.stderr)


def fx(name: str) -> str:
    return f"{FIX}/{name}"


def needs(module: str):
    try:
        __import__(module)
        return pytest.mark.skipif(False, reason="")
    except ImportError:
        return pytest.mark.skip(reason=f"{module} is not installed")


def without_timings(obj):
    """A report minus its `seconds` fields: what must be identical between two runs of the same command."""
    if isinstance(obj, dict):
        return {k: without_timings(v) for k, v in obj.items() if k != "seconds"}
    if isinstance(obj, list):
        return [without_timings(v) for v in obj]
    return obj
