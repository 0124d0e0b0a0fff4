"""Assemble the JSON report (`report-schema.md`, parity-report/1) from pair entries."""
from __future__ import annotations

import math

from parity_skill.report.next_steps import suggestions

SCHEMA = "parity-report/1"


def overall(pairs: list[dict]) -> str:
    """fail if any run fails; error if a plain run could not check (a variant that could not run, e.g. a mask
    of a shape the layer does not take, is a limitation of its pair, not an error)."""
    verdicts = {p["verdict"] for p in pairs if not (p.get("variant") and p["verdict"] == "error")}
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
    limits += [f"{p['a']['symbol']} vs {p['b']['symbol']} with {p['variant']}: not run ({p.get('error')})"
               for p in pairs if p.get("variant") and p["verdict"] == "error"]
    pairs = [dict(p, next_steps=suggestions(p)) if "a" in p and "b" in p else p for p in pairs]
    steps = list(dict.fromkeys(s for p in pairs for s in p.get("next_steps", [])))
    warnings = [f"{p['a']['symbol']} vs {p['b']['symbol']}: {w}" if len(pairs) > 1 else w
                for p in pairs for w in p.get("warnings", [])]
    return {"schema": SCHEMA, "verdict": verdict, "error": error, "limitations": limits, "warnings": warnings,
            "next_steps": steps, "unpaired": {"a": [], "b": []}, "pairs": clean(pairs)}


def error_report(message: str) -> dict:
    return report([], message)
