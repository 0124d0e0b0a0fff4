"""Which stage of B each stage of A is: the same name; a `--map` rule (the weight-map syntax, `{i}` patterns);
then, for names that differ, order and shape (the next unused B stage of the same shape, in call order). And what
both artifacts were given: the inputs and weights they share are compared before any stage, so a differing input
or weight is named as the cause before a stage downstream of it is blamed."""
from __future__ import annotations

import numpy as np

from parity_skill.plan.map_rules import expand, parse_rules
from parity_skill.runtime.judging.metrics import compare, scaled_atol


def _shape(items) -> tuple | None:
    return tuple(items[0][1].shape) if items and items[0][1] is not None else None


def expand_each(rules: tuple[str, ...], shapes_a: dict, shapes_b: dict) -> tuple[list, set[str]]:
    """(entries, the rules that matched nothing here): one --map file names stages and weights alike."""
    entries, unmatched = [], set()
    for rule in rules:
        try:
            entries += expand(parse_rules(rule), shapes_a, shapes_b)
        except ValueError:
            unmatched.add(rule)
    return entries, unmatched


def map_stages(stages_a: dict, stages_b: dict, rules: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
    """({A stage: B stage}, notes saying how the names that differ were mapped)."""
    mapping = {n: n for n in stages_a if n in stages_b}
    notes = []
    if rules:
        shapes_a = {n: _shape(v) or () for n, v in stages_a.items()}
        shapes_b = {n: _shape(v) or () for n, v in stages_b.items()}
        entries, _ = expand_each(rules, shapes_a, shapes_b)
        for e in entries:
            mapping[e.a] = e.b
        if entries:
            notes.append(f"stages mapped by --map: {', '.join(f'{e.a} -> {e.b}' for e in entries[:12])}")
    used = set(mapping.values())
    free_b = [n for n in stages_b if n not in used]
    by_order = []
    at = 0
    for name in [n for n in stages_a if n not in mapping]:
        shape = _shape(stages_a[name])
        k = next((i for i in range(at, len(free_b)) if _shape(stages_b[free_b[i]]) == shape), None)
        if shape is None or k is None:
            continue
        mapping[name] = free_b[k]
        by_order.append(f"{name} -> {free_b[k]}")
        at = k + 1
    if by_order:
        notes.append("stages whose names differ, mapped by order and shape: " + ", ".join(by_order[:12])
                     + (f" (+{len(by_order) - 12} more)" if len(by_order) > 12 else ""))
    return mapping, notes


def _input_of(manifest: dict, stage: str) -> str | None:
    """The tensor holding what a stage was fed: a foreign fixture's `input`, a recorded stage's `given`."""
    found = manifest.get("inputs_of", {}).get(stage)
    if found:
        return found
    entry = next((e for e in manifest.get("stages", []) if e.get("name") == stage), None)
    return f"stages/{stage}/in/0" if entry and entry.get("in") and manifest.get("side", {}).get("symbol") == \
        "(recorded program)" else None


def _weight_names(tensors) -> dict[str, str]:
    return {k[len("weights/"):]: k for k in tensors if k.startswith("weights/")}


def given(ma: dict, ta, mb: dict, tb, mapping: dict[str, str], rules: tuple[str, ...], atol: float) -> list[dict]:
    """Checks `input:<name>` and `weight:<name>` for what both artifacts record: the artifacts' own inputs, each
    mapped stage's input, and the weights of both (by name, or by the --map rules)."""
    pairs = []
    ins_a = {k: k for k in ta if k.startswith("inputs/")}
    pairs += [(f"input:{k[7:]}", k, k) for k in ins_a if k in tb]
    earlier: list[np.ndarray] = []  # A's stage outputs so far: an input equal to one is computed, not given
    for entry in ma.get("stages", []):
        sa = entry["name"]
        ka, kb = _input_of(ma, sa), _input_of(mb, mapping.get(sa, ""))
        if ka and kb and ka in ta and kb in tb:
            fed = np.asarray(ta[ka])
            if not any(o.shape == fed.shape and np.array_equal(o, fed) for o in earlier):
                pairs.append((f"input:{sa}", ka, kb))
        out = ta.get(f"stages/{sa}/out/0")
        if out is not None:
            earlier.append(np.asarray(out))
    wa, wb = _weight_names(ta), _weight_names(tb)
    wmap = {n: n for n in wa if n in wb}
    if rules and wa and wb:
        shapes_a = {n: tuple(ta[k].shape) for n, k in wa.items()}
        shapes_b = {n: tuple(tb[k].shape) for n, k in wb.items()}
        entries, _ = expand_each(rules, shapes_a, shapes_b)
        wmap.update({e.a: e.b for e in entries if "+" not in e.a + e.b})
    pairs += [(f"weight:{a}", wa[a], wb[b]) for a, b in wmap.items()]
    out = []
    for name, ka, kb in pairs:
        a, b = np.asarray(ta[ka], np.float64), np.asarray(tb[kb], np.float64)
        if a.shape != b.shape:
            out.append({"name": name, "status": "fail", "message": f"shape A {a.shape} vs B {b.shape}"})
            continue
        c = compare(a, b, scaled_atol(atol, a), 0.0)
        both = np.isfinite(a) & np.isfinite(b)
        out.append({"name": name, "status": "pass" if c["ok"] else "fail", "max_abs_diff": c.get("max_abs_diff"),
                    "mean_abs_diff": float(np.mean(np.abs(a[both] - b[both]))) if both.any() else None,
                    "cosine": c.get("cosine"), "pearson": c.get("pearson"), "undefined": c.get("undefined"),
                    "message": f"max abs {c.get('max_abs_diff') or 0:.3g}" + ("" if c["ok"] else
                                                                               "; A and B were given different values")})
    return out
