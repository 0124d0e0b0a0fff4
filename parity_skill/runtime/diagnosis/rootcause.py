"""Root cause: the submodule whose inputs agree but whose output differs (the deepest such), told apart from the
modules that only carry an upstream difference, with the static findings that lie in its class."""
from __future__ import annotations


def base(name: str) -> str:
    """`blocks.3#1` (the second call of blocks.3) -> `blocks.3`."""
    return name.split("#")[0]


def _inside(name: str, parent: str) -> bool:
    return base(name).startswith(base(parent) + ".")


def first_symptom(rows: list[dict]) -> str | None:
    """The first submodule (call order) whose output differs, then its first differing descendant, as deep as they
    go: where a difference is first seen, whether or not it started there."""
    failing = [r["a"] for r in rows if r["differs"]]
    if not failing:
        return None
    current = failing[0]
    while True:
        deeper = [n for n in failing if _inside(n, current)]
        if not deeper:
            return base(current)
        current = deeper[0]


NOISE = 1e-6  # relative difference float32 rounding leaves between two frameworks
JUMP = 30.0  # a module that starts a difference multiplies the relative difference it receives by at least this


def _starts_here(row: dict) -> bool:
    """The output's difference is not the input's (agreeing within tolerance, yet not equal) carried and grown:
    the input agrees to rounding, or the relative difference jumps by JUMP or more."""
    rel_in, rel_out = row.get("input_rel_diff"), row.get("rel_diff")
    if rel_in is None or rel_out is None:
        return True
    return rel_in <= NOISE or rel_out >= JUMP * rel_in


def _claimed(findings: list[dict], ca: dict, cb: dict) -> list[dict]:
    """The static findings whose line lies in A's class `ca` or B's class `cb`."""
    return [f for f in findings if (f.get("a_symbol") and f.get("a_symbol") == ca.get("class"))
            or (f.get("b_symbol") and f.get("b_symbol") == cb.get("class"))]


def _submodules_say(children: list[tuple[str, bool]]) -> str:
    """'its submodules fc1 agree; fc2 only carries the difference' from (name, differs) pairs."""
    agree = list(dict.fromkeys(n for n, differs in children if not differs))
    carry = list(dict.fromkeys(n for n, differs in children if differs))
    parts = ([f"its submodules {', '.join(agree)} agree"] if agree else []) + \
        ([f"{', '.join(carry)} only {'carries' if len(carry) == 1 else 'carry'} the difference"] if carry else [])
    return "; ".join(parts)


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def find(rows: list[dict], classes_a: dict, classes_b: dict, findings: list[dict], direction: str = "forward"
         ) -> dict | None:
    """{a, b, a_class, b_class, a_location, b_location, where, evidence, findings, carried} or None when every
    differing module was handed a difference (or nothing differs). `where`: leaf | own code."""
    fresh = [r for r in rows if r["differs"] and not r["input_differs"] and _starts_here(r)]
    first = next((r for r in rows if r["differs"]), None)
    if not fresh and first is not None and first["input_differs"] and "" in classes_a and direction == "forward":
        return _top_level(rows, classes_a, classes_b, findings)
    if not fresh:
        return None
    row = fresh[0]
    while True:
        deeper = [r for r in fresh if _inside(r["a"], row["a"])]
        if not deeper:
            break
        row = deeper[0]
    name = base(row["a"])
    children = [r for r in rows if _inside(r["a"], name) and "." not in base(r["a"])[len(name) + 1:]]
    ca, cb = classes_a.get(name, {}), classes_b.get(row["b"], {})
    mine = _claimed(findings, ca, cb)
    arrives, leaves = ("output gradient agrees", "input/parameter gradients differ") if direction == "backward" \
        else ("inputs agree", "output differs")
    evidence = (f"its {arrives} (max diff {_num(row.get('input_max_abs_diff'))}) but its {leaves} "
                f"(max diff {_num(row['max_abs_diff'])})")
    if children:
        evidence += "; " + _submodules_say([(base(r["a"])[len(name) + 1:], r["differs"]) for r in children])
    code = f"{ca.get('class') or '?'}'s own {'backward' if direction == 'backward' else 'forward'} code"
    where = "own code" if children else "leaf"
    carried = [base(r["a"]) for r in rows if r["differs"] and r["input_differs"] and not _inside(r["a"], name)]
    return {"a": name, "b": row["b"], "a_class": ca.get("class"), "b_class": cb.get("class"),
            "a_location": ca.get("built_at") or ca.get("location"),  # a framework layer: where it is built
            "b_location": cb.get("built_at") or cb.get("location"), "where": where,
            "direction": direction, "evidence": evidence, "findings": mine,
            "carried": list(dict.fromkeys(carried)),
            "message": f"{name} (B: {row['b']}): {evidence}: the difference starts in "
                       + (code if where == "own code" else f"this {'layer' if not ca else ca.get('class')} itself")}


def _top_level(rows: list[dict], classes_a: dict, classes_b: dict, findings: list[dict]) -> dict:
    """Every submodule before the first difference agrees, and that one is handed a differing input: the
    difference starts in the top-level forward code between them."""
    ca, cb = classes_a.get("", {}), classes_b.get("", {})
    top = [(base(r["a"]), r["differs"]) for r in rows if "." not in base(r["a"])]
    carry = [n for n, differs in top if differs]
    mine = _claimed(findings, ca, cb)
    evidence = _submodules_say(top)
    return {"a": "", "b": "", "a_class": ca.get("class"), "b_class": cb.get("class"),
            "a_location": ca.get("location"), "b_location": cb.get("location"), "where": "own code",
            "direction": "forward", "evidence": evidence, "findings": mine, "carried": list(dict.fromkeys(carry)),
            "message": f"the top-level module: {evidence}: the difference starts in {ca.get('class') or '?'}'s "
                       "own forward code, between its submodules"}