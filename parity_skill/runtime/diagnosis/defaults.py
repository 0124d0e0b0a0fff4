"""Constructor values in full: the arguments each side was built with at their defaults, where each default is
written, and the defaults only one side has (or that differ) as `setting` findings; a `scale` symptom that equals
such a default (`logit_scale=1.05`, B = 1.05 * A) names it."""
from __future__ import annotations

import inspect
import os
import re
from typing import Any

_LITERALS = (int, float, str, bool, type(None))


def defaults_of(factory: Any, given: dict[str, Any]) -> dict[str, dict]:
    """{argument: {value (repr), number (or None), location (file:line)}} for the constructor arguments left at
    their defaults (literal ones only)."""
    init = factory.__init__ if isinstance(factory, type) else factory
    try:
        params = inspect.signature(factory).parameters
        lines, first = inspect.getsourcelines(init)
        path = inspect.getsourcefile(init)
    except (TypeError, ValueError, OSError):
        return {}
    rel = os.path.relpath(path)
    path = path if rel.startswith("..") else rel
    out = {}
    for name, p in params.items():
        if name in given or p.default is inspect.Parameter.empty or not isinstance(p.default, _LITERALS):
            continue
        at = next((first + k for k, line in enumerate(lines) if re.search(rf"\b{re.escape(name)}\b[^=,)]*=", line)),
                  first)
        number = p.default if isinstance(p.default, (int, float)) and not isinstance(p.default, bool) else None
        out[name] = {"value": repr(p.default), "number": number, "location": f"{path}:{at}"}
    return out


_NOT_A_SETTING = re.compile(r"drop|prob|eps|epsilon|init|std|range", re.I)  # eval-mode no-ops, eps (its own finding)


def findings(da: dict[str, dict], db: dict[str, dict], init_a: dict, init_b: dict) -> list[dict]:
    """`setting` findings (made when forward fails): a real-valued default one side has and the other neither takes
    nor defaults, or that both default to different values."""
    da = {k: v for k, v in da.items() if isinstance(v["number"], float) and not _NOT_A_SETTING.search(k)}
    db = {k: v for k, v in db.items() if isinstance(v["number"], float) and not _NOT_A_SETTING.search(k)}
    out = []
    for name, d in db.items():
        if d["number"] is None or name in init_a or name in init_b:
            continue
        other = da.get(name)
        if other is None and d["number"] not in (0, 1):
            out.append({"kind": "setting", "message": f"B's constructor default {name}={d['value']} has no "
                        "counterpart in A (it ran with it)", "b_location": d["location"], "a_location": None,
                        "default": name, "number": d["number"]})
        elif other is not None and other["number"] is not None and other["number"] != d["number"]:
            out.append({"kind": "setting", "message": f"constructor defaults differ: A {name}={other['value']}, B "
                        f"{name}={d['value']} (each ran with its own)", "a_location": other["location"],
                        "b_location": d["location"], "default": name, "number": d["number"]})
    for name, d in da.items():
        if d["number"] is not None and d["number"] not in (0, 1) and name not in db and name not in init_b \
                and name not in init_a:
            out.append({"kind": "setting", "message": f"A's constructor default {name}={d['value']} has no "
                        "counterpart in B (it ran with it)", "a_location": d["location"], "b_location": None,
                        "default": name, "number": d["number"]})
    return out


_SCALE = re.compile(r"B = ([-+\d.e]+) \* A")


def name_scale(diagnosis: list[dict], found: list[dict]) -> None:
    """A `scale` diagnosis whose factor equals a one-sided default (or its inverse) names it and its line."""
    for d in diagnosis:
        m = _SCALE.search(d["message"]) if d["kind"] == "scale" else None
        if not m:
            continue
        factor = float(m.group(1))
        for f in found:
            n = f["number"]
            if n and (abs(n - factor) <= 1e-3 * abs(factor) or abs(1 / n - factor) <= 1e-3 * abs(factor)):
                d["message"] += f"; it equals {f['message'].split(' has no')[0].split(': ')[-1]}"
                d["location"] = f.get("b_location") or f.get("a_location")
                break
