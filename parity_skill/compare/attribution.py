"""Whose side is wrong: with a third implementation C (`compare A B --ref C`), each stage where A and B differ is
attributed to the side that disagrees with the other two, from the same stage judged A vs C and B vs C."""
from __future__ import annotations


def _status(entry: dict, stage: str) -> str | None:
    return next((c["status"] for c in entry["checks"] if c["name"] == f"stage:{stage}"), None)


def attribute(ab: dict, ac: dict, bc: dict) -> list[dict]:
    """One {stage, side, message} per stage that fails A vs B, in A's call order."""
    out = []
    b_name = {c["name"][6:]: c.get("b_stage") or c["name"][6:] for c in ab["checks"] if c["name"].startswith("stage:")}
    for c in ab["checks"]:
        if not c["name"].startswith("stage:") or c["status"] != "fail":
            continue
        stage = c["name"][6:]
        a_c, b_c = _status(ac, stage), _status(bc, b_name.get(stage, stage))
        if a_c == "fail" and b_c == "pass":
            side, say = "A", "A disagrees with B and C"
        elif a_c == "pass" and b_c == "fail":
            side, say = "B", "B disagrees with A and C"
        elif a_c == "fail" and b_c == "fail":
            side, say = None, "all three differ"
        else:
            side, say = None, "C does not settle it (the stage is missing or not judged in C)"
        out.append({"stage": stage, "side": side,
                    "message": f"{stage}: {say} (A vs B fail, A vs C {a_c or '-'}, B vs C {b_c or '-'})"})
    return out
