"""Assemble the JSON report (`report-schema.md`, parity-report/1) from pair entries."""
from __future__ import annotations

import math

SCHEMA = "parity-report/1"


def overall(pairs: list[dict]) -> str:
    verdicts = {p["verdict"] for p in pairs}
    if "fail" in verdicts:
        return "fail"
    if "error" in verdicts or not pairs:
        return "error"
    return "pass"


def clean(value):
    """Non-finite floats become None so the report is strict JSON (messages still say inf/nan)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def report(pairs: list[dict], error: str | None = None) -> dict:
    verdict = "error" if error else overall(pairs)
    if verdict == "error" and not error:
        error = next((p["error"] for p in pairs if p.get("error")), "nothing could be checked")
    limits = [f"{p['a']['symbol']} vs {p['b']['symbol']}: {line}" if len(pairs) > 1 else line
              for p in pairs for line in p.get("limitations", [])]
    return {"schema": SCHEMA, "verdict": verdict, "error": error, "limitations": limits, "pairs": clean(pairs)}


def error_report(message: str) -> dict:
    return report([], message)
