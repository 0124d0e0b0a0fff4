"""For tests that `parity-skill ... --emit-test` writes: B against a committed artifact of A, as a pytest assertion.

    from parity_skill.testing import assert_parity
    assert_parity("tests/block_parity_fixture", "src/block.py::Block", "--quick")

The comparison runs in a subprocess (`python -m parity_skill compare`), so B's code is isolated and bounded by a
timeout as in any other use of the tool.
"""
from __future__ import annotations

import json
import subprocess
import sys


def assert_parity(artifact: str, target: str, *options: str, timeout: float = 600.0,
                  passed_when_written: bool = True) -> dict:
    """Raise AssertionError, with the failing checks and the diagnosis, unless B matches A's artifact.
    `passed_when_written=False` (B did not match when the test was generated) words a failure as parity not yet
    reached rather than a regression."""
    proc = subprocess.run([sys.executable, "-m", "parity_skill", "compare", str(artifact), str(target), "--json",
                           *options], capture_output=True, text=True, timeout=timeout)
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(f"parity-skill gave no report (exit {proc.returncode}): {proc.stderr.strip()}") from None
    if report["verdict"] != "pass":
        raise AssertionError(explain(report, target, artifact, passed_when_written))
    return report


def explain(report: dict, target: str, artifact: str, passed_when_written: bool = True) -> str:
    """A readable failure message: what failed, by how much, and the likely causes."""
    if report["verdict"] == "error":
        return f"parity could not be checked for {target} against {artifact}: {report['error']}"
    lines = [f"parity regressed: {target} no longer matches {artifact}" if passed_when_written else
             f"parity not reached yet: {target} did not match {artifact} when this test was written, and still "
             "does not"]
    for pair in report["pairs"]:
        for c in pair["checks"]:
            if c["status"] in ("fail", "error"):
                lines.append(f"  {c['name']}: {c['status'].upper()} {c['message']}")
        if pair.get("first_divergence"):
            lines.append(f"  first divergence: {pair['first_divergence']}")
        for d in pair.get("diagnosis", []):
            lines.append(f"  [{d['kind']}] {d['message']}" + (f" ({d['location']})" if d.get("location") else ""))
    return "\n".join(lines)
