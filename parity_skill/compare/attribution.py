"""Whose side is wrong: with a third implementation C, each stage or check where A and B differ is attributed to
the side that disagrees with the other two, from the same stage (or check) judged A vs C and B vs C. Two artifacts:
`compare A B --ref C`; running code: `A vs B --ref C` (`attribute_runs`)."""
from __future__ import annotations


def _status(entry: dict, stage: str, prefix: str = "stage:") -> str | None:
    return next((c["status"] for c in entry["checks"] if c["name"] == f"{prefix}{stage}"), None)


def _say(a_c: str | None, b_c: str | None) -> tuple[str | None, str]:
    if a_c == "fail" and b_c == "pass":
        return "A", "A disagrees with B and C"
    if a_c == "pass" and b_c == "fail":
        return "B", "B disagrees with A and C"
    if a_c == "fail" and b_c == "fail":
        return None, "all three differ"
    if a_c == "pass" and b_c == "pass":
        return None, "C agrees with both within the tolerances of its runs, so C does not settle it"
    return None, "C does not settle it (the stage is missing or not judged in C)"


def attribute(ab: dict, ac: dict, bc: dict) -> list[dict]:
    """One {stage, side, message} per stage that fails A vs B, in A's call order."""
    out = []
    b_name = {c["name"][6:]: c.get("b_stage") or c["name"][6:] for c in ab["checks"] if c["name"].startswith("stage:")}
    for c in ab["checks"]:
        if not c["name"].startswith("stage:") or c["status"] != "fail":
            continue
        stage = c["name"][6:]
        a_c, b_c = _status(ac, stage), _status(bc, b_name.get(stage, stage))
        side, say = _say(a_c, b_c)
        out.append({"stage": stage, "side": side,
                    "message": f"{stage}: {say} (A vs B fail, A vs C {a_c or '-'}, B vs C {b_c or '-'})"})
    return out


def _their_cause(run: dict, wrong: str, c_first: bool) -> str:
    """The first cause the run of C against the wrong side found, in this report's names (that run calls C and the
    wrong side A and B)."""
    import re

    names = {"A": "C", "B": wrong} if c_first else {"A": wrong, "B": "C"}
    statement = run.get("line_cause")
    if statement:
        text = statement["relation"]
    elif run.get("diagnosis"):
        text = run["diagnosis"][0]["message"]
    else:
        return ""
    return f"; C vs {wrong}: " + re.sub(r"\b[AB]\b", lambda m: names[m.group()], text)


def attribute_runs(rep: dict, c_a: dict, c_b: dict, ref: str, c_first: bool) -> None:
    """Running code with `--ref C`: `rep` is A vs B; `c_a` and `c_b` are C judged against A and against B (C the
    reference when `c_first`, else the port). Each failing check of a pair A vs B is attributed by the same check
    in the other two runs; the run that names the wrong side adds its own first cause (it localises inside that
    side's code). Added to each pair: `attribution`, a leading `attribution` diagnosis, notes."""
    other = "b" if c_first else "a"  # where A (or B) sits in C's runs

    def partner(run: dict, symbol: str) -> dict | None:
        found = [p for p in run.get("pairs", []) if (p.get(other) or {}).get("symbol") == symbol]
        return found[0] if len(found) == 1 else None

    for entry in rep.get("pairs", []):
        if entry["verdict"] != "fail":
            continue
        ca, cb = partner(c_a, entry["a"]["symbol"]), partner(c_b, entry["b"]["symbol"])
        unsettled = [f"C has no pair with {side} {entry[side.lower()]['symbol']}" if run is None else
                     f"C could not be compared with {side}: {run.get('error')}"
                     for side, run in (("A", ca), ("B", cb)) if run is None or run.get("verdict") == "error"]
        if unsettled:
            entry["notes"] = [*entry.get("notes", []), *(f"--ref {ref}: {u} (nothing attributed)" for u in unsettled)]
            continue
        found = []
        for c in entry["checks"]:
            if c["status"] != "fail":
                continue
            a_c, b_c = _status(ca, c["name"], ""), _status(cb, c["name"], "")
            side, say = _say(a_c, b_c)
            found.append({"check": c["name"], "side": side,
                          "message": f"{c['name']}: {say} (A vs B fail, A vs C {a_c or '-'}, B vs C {b_c or '-'})"})
        if not found:
            continue
        sides = {f["side"] for f in found}
        lead = dict(found[0])
        if len(sides) == 1 and None not in sides:
            wrong = next(iter(sides))
            lead["message"] = (f"{wrong} disagrees with {'B' if wrong == 'A' else 'A'} and C at every failing check "
                               f"({', '.join(f['check'] for f in found)})")
            lead["message"] += _their_cause(ca if wrong == "A" else cb, wrong, c_first)
        entry["attribution"] = found
        entry["diagnosis"][:0] = [{"kind": "attribution", "message": lead["message"], "location": None,
                                   "check": found[0]["check"]}]
        entry["notes"] = [*entry.get("notes", []), *(f"--ref {ref}: " + f["message"] for f in found[:12])]
