"""The human-readable Numerical Parity Report."""
from __future__ import annotations

import re

from parity_skill.report.next_steps import next_steps


def _num(x) -> str:
    return "-" if x is None else f"{x:.3g}" if isinstance(x, float) else str(x)


def _metric(c: dict, name: str) -> str:
    """A figure, or 'undef' where it is undefined (the cosine of a zero vector, the Pearson of a constant one)."""
    return "undef" if c.get(name) is None and name in (c.get("undefined") or {}) else _num(c.get(name))


def _summary(checks: dict[str, dict], names: list[str], title: str, detail) -> str | None:
    group = [checks[n] for n in names if n in checks]
    if not group:
        return None
    failed = [c for c in group if c["status"] in ("fail", "error")]
    ran = [c for c in group if c["status"] != "skip"]
    if not ran:
        return f"{title:<15}SKIP ({group[0]['message']})"
    unsure = [c for c in ran if c["status"] == "inconclusive"]
    status = "FAIL" if failed else "INCONCLUSIVE" if unsure else "PASS"
    return f"{title:<15}{status} ({detail(failed or unsure or ran)})"


def _nonfinite(c) -> str:
    parts = [f"{side.upper()} non-finite at {c[f'nonfinite_{side}']}/{c['total']}" for side in ("a", "b")
             if c.get(f"nonfinite_{side}")]
    return ", ".join(parts)


def _forward(cs):
    c = cs[0]
    if _nonfinite(c):
        return f"{_nonfinite(c)}; max diff {_num(c.get('max_abs_diff'))} on the finite values"
    return f"max diff: {c['max_abs_diff']:.2e}" if c.get("max_abs_diff") is not None else c["message"]


def _backward(cs):
    c = cs[0]
    if c.get("max_abs_diff") is None:
        return c["message"]
    return f"max grad diff: {c['max_abs_diff']:.2e} in {c.get('where', 'gradients')}"


def _precision(cs):
    c = cs[0]
    if c.get("b_error") is None:
        return c["message"]
    where = f" at {c['scale']}" if c.get("scale") and c["status"] == "fail" else ""
    ratio = f"{c['ratio']:.2f}" if c.get("ratio") is not None else "n/a (A exact)"
    return (f"B err {c['b_error']:.2e} vs A err {c['a_error']:.2e}{where} against {c.get('reference', 'fp64')}, "
            f"ratio {ratio}")


def _generation(cs):
    c = cs[0]
    if "greedy" not in c:
        return c["message"]
    top1, sampled = c.get("first_top1_step"), c.get("first_sampled_step")
    caches = [f"{w.upper()}'s cache " + ("agrees" if r["status"] == "agrees" else
                                         f"differs from step {r['first_differing_step']}")
              for w, r in (c.get("cache") or {}).items() if r["status"] in ("agrees", "differs")]
    return (f"top-1 {'first differs at step ' + str(top1) if top1 is not None else 'agrees'} (greedy), sampled token "
            f"{'first differs at step ' + str(sampled) if sampled is not None else 'agrees'}"
            + "".join(f", {x}" for x in caches) + f", over {c['greedy']['steps']} steps")


def _names(cs):
    return ", ".join(f"{c['name']}" for c in cs) + ("" if cs[0]["status"] == "pass" else " failed")


def _edges(cs):
    if cs[0]["status"] == "pass":
        return f"{len(cs)} of {len(cs)} cases"
    return ", ".join(c["name"] for c in cs) + " failed"


_INDEX = re.compile(r"(?:(?<=\.)|^)\d+(?=\.)")


def _ranges(values: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    out, start = [], None
    for i, v in enumerate(values):
        start = v if start is None else start
        if i + 1 == len(values) or values[i + 1] != v + 1:
            out.append(f"{start}" if start == v else f"{start}-{v}")
            start = None
    return ", ".join(out)


def _by_block(items: list[tuple[str, tuple, object]]) -> list[tuple[str, object, list[int]]]:
    """Items whose names differ only in one block index, as (pattern with {i}, payload, sorted indices)."""
    groups: dict[tuple, list[int]] = {}
    for pattern, index, payload in items:
        key = (pattern, payload) if len(index) == 1 else (pattern.replace("{i}", "{}").format(*index), payload)
        groups.setdefault(key, []).extend(int(i) for i in index[:1] if len(index) == 1)
    return [(pattern, payload, sorted(ix)) for (pattern, payload), ix in groups.items()]


def grouped_entries(entries: list[dict]) -> list[str]:
    """Mapping rows, a stack of repeated blocks folded into one row per parameter (readable at 200+ entries)."""
    items = []
    for e in entries:
        if e["transform"] in ("stack", "unstack"):  # n per-index tensors on one side: shown as their pattern
            e = dict(e, a=_stacked_names(e["a"]), b=_stacked_names(e["b"]))
        elif e["transform"].startswith(("stack:", "unstack:")):  # each slice joins k tensors: k patterns
            k = len(e["transform"].rpartition(":")[2].split(","))
            side = "a" if e["transform"].startswith("stack:") else "b"
            names = e[side].split("+")
            e = dict(e, **{side: " + ".join(_stacked_names("+".join(names[j::k])) for j in range(k))})
        ia, ib = tuple(_INDEX.findall(e["a"])), tuple(_INDEX.findall(e["b"]))
        same = len(ia) == 1 and bool(ib) and set(ib) == set(ia)  # one block, named on both sides (fused: 3x on B)
        pa = _INDEX.sub("{i}", e["a"]) if same else e["a"]
        pb = _INDEX.sub("{i}", e["b"]) if same else e["b"]
        items.append((f"{pa} -> {pb}", ia if same else (), f"[{e['transform']}, {e['how']}]"))
    return [f"{row}  {tag}" + (f"  for i in {_ranges(ix)}" if len(ix) > 1 else "") if len(ix) > 1 else
            f"{row.replace('{i}', str(ix[0])) if ix else row}  {tag}" for row, tag, ix in _by_block(items)]


def _stacked_names(joined: str) -> str:
    """'experts.0.w+experts.1.w+...' -> 'experts.[0-59].w' (the names a stack entry joins); one name unchanged."""
    names = joined.split("+")
    if len(names) < 2:
        return joined
    parts = [n.split(".") for n in names]
    varying = [k for k in range(len(parts[0])) if len({p[k] for p in parts if len(p) == len(parts[0])}) > 1]
    if len(varying) != 1 or any(len(p) != len(parts[0]) for p in parts):
        return joined
    k = varying[0]
    index = sorted(int(p[k]) for p in parts) if all(p[k].isdigit() for p in parts) else None
    head = ".".join(parts[0][:k] + [f"[{_ranges(index)}]" if index else "[...]"] + parts[0][k + 1:])
    return head


def grouped_names(names: list[str]) -> list[str]:
    items = [(_INDEX.sub("{i}", n), tuple(_INDEX.findall(n)), None) for n in names]
    return [f"{pat} (i in {_ranges(ix)})" if len(ix) > 1 else pat.replace("{i}", str(ix[0])) if ix else pat
            for pat, _, ix in _by_block(items)]


def pair_text(p: dict) -> list[str]:
    a, b = p["a"], p["b"]
    lines = ["=== Numerical Parity Report ===",
             f"Implementation A: {a['path'] + '::' if a['path'] else ''}{a['symbol']} ({a['framework']})",
             f"Implementation B: {b['path'] + '::' if b['path'] else ''}{b['symbol']} ({b['framework']})"]
    if p.get("variant"):
        lines.append(f"Variant: {p['variant']}")
    if p.get("error"):
        lines.append(f"Error: {p['error']}")
    if p["checks"] and all(c["name"].startswith(("stage:", "input:", "weight:")) for c in p["checks"]):
        return lines + stage_table(p) + ["", verdict_line(p)]
    checks = {c["name"]: c for c in p["checks"]}
    names = list(checks)
    for line in (
        _summary(checks, ["forward"], "Forward pass:", _forward),
        _summary(checks, ["backward"], "Backward pass:", _backward),
        _summary(checks, ["fp16"], "FP16 forward:", _precision),
        _summary(checks, ["bf16"], "BF16 forward:", _precision),
        _summary(checks, [n for n in names if n.startswith("backward_")], "Half grads:", _names),
        _summary(checks, ["sampling"], "Sampling:", lambda cs: cs[0]["message"].split(";")[0]),
        _summary(checks, ["generate"], "Generation:", _generation),
        _summary(checks, ["batch"], "Batch sizes:", lambda cs: cs[0]["message"].split(";")[0]),
        _summary(checks, [n for n in names if n.startswith("edge:")], "Edge cases:", _edges),
        _summary(checks, [n for n in names if n.startswith("determinism:")], "Determinism:", _names),
    ):
        if line:
            lines.append(line)
    lines += likely_causes(p)
    if p["checks"]:
        lines += ["", "Checks:"]
        width = max(len(c["name"]) for c in p["checks"])
        for c in p["checks"]:
            figs = ""
            if c.get("max_abs_diff") is not None and c.get("mismatched") is not None:
                figs = (f"  [abs {_num(c['max_abs_diff'])} rel {_num(c.get('max_rel_diff'))} "
                        f"bad {c['mismatched']}/{c['total']} cos {_metric(c, 'cosine')} r {_metric(c, 'pearson')}"
                        + (f"; {c['excluded']} non-finite excluded" if c.get("excluded") else "") + "]")
            lines.append(f"  {c['name']:<{width}}  {c['status'].upper():<5} {c['message']}{figs}")
            mt = c.get("min_tolerance") or {}
            if c["status"] == "fail" and "multiplier" in mt:
                lines.append(f"  {'':<{width}}        would pass with a B/A error multiplier >= {_num(mt['multiplier'])}")
            elif c["status"] == "fail" and "rtol" not in mt and mt.get("atol") is not None:
                lines.append(f"  {'':<{width}}        would pass with atol >= {_num(mt['atol'])}")
            elif c["status"] == "fail" and mt:
                tol = c.get("tolerance") or {}
                lines.append(f"  {'':<{width}}        would pass with atol >= {_num(mt.get('atol'))} "
                             f"(rtol {_num(tol.get('rtol'))}) or rtol >= {_num(mt.get('rtol'))} "
                             f"(atol {_num(tol.get('atol'))}); worst element {tuple(c.get('worst_index') or ())}")
    if p.get("static_findings"):
        lines += ["", "Static findings:"]
        for f in p["static_findings"]:
            where = " vs ".join(x for x in (f.get("a_location"), f.get("b_location")) if x)
            lines.append(f"  [{f['kind']}] {f['message']}" + (f" ({where})" if where else ""))
    if p.get("profile"):
        lines += ["", "Per-submodule error (A's names, execution order):"]
        lines += [f"  {row}" for row in p["profile"]]
    if p.get("first_divergence"):
        lines.append(f"First divergence: {p['first_divergence']}"
                     + (" (where a difference is first seen; see the root cause)"
                        if (p.get("root_cause") or {}).get("a") not in (None, p["first_divergence"]) else ""))
    mapped = p.get("weight_map") or []
    if mapped:
        renamed = [e for e in mapped if e["a"] != e["b"] or e["transform"] != "identity"]
        lines += ["", f"Weight mapping: {len(mapped)} mapped" + (", by name" if not renamed else "")]
        lines += [f"  {row}" for row in grouped_entries(renamed)]
    unmapped = p.get("unmapped") or {}
    if unmapped.get("a") or unmapped.get("b"):
        lines.append(f"Unmapped: A {', '.join(grouped_names(unmapped['a'])) or '-'}; "
                     f"B {', '.join(grouped_names(unmapped['b'])) or '-'}")
    lines += next_steps(p)
    if p.get("notes"):
        lines += ["", "Notes:"] + [f"  - {n}" for n in p["notes"]]
    built = [f"  {side}: {x['symbol'].rsplit('.', 1)[-1]}(" + ", ".join(f"{k}={v}" for k, v in x["init"].items())
             + ")" + (f", the first one {x['inside']} builds (not with these arguments)" if x.get("inside") else "")
             + ("; defaults: " + ", ".join(f"{k}={d['value']}" for k, d in x["defaults"].items())
                      if x.get("defaults") else "")
             for side, x in (("A", a), ("B", b)) if x.get("init") or x.get("defaults")]
    if built:
        lines += ["", "Built with:"] + built + config_lines(a.get("config") or {}, b.get("config") or {})
    lines += ["", verdict_line(p)]
    return lines


def config_lines(ca: dict, cb: dict) -> list[str]:
    """What each side's config objects resolved to: the fields both read with different values, and the count."""
    out = []
    for side, configs in (("A", ca), ("B", cb)):
        for arg, fields in configs.items():
            out.append(f"  {side}'s {arg}: {len(fields)} fields as its config class resolved them (JSON: "
                       f"{side.lower()}.config.{arg})")
    if len(ca) == 1 and len(cb) == 1:
        fa, fb = next(iter(ca.values())), next(iter(cb.values()))
        differ = [k for k in sorted(set(fa) & set(fb)) if fa[k] != fb[k]]
        out.append("  config fields both sides have, with different values: " +
                   (", ".join(f"{k} (A {fa[k]!r}, B {fb[k]!r})" for k in differ[:8]) or "none"))
    return out


def cause_lines(cause: dict) -> list[str]:
    """The text report's lines for a root cause."""
    out = [f"Root cause{' (backward)' if cause.get('direction') == 'backward' else ''}: {cause['message']}"]
    where = [f"{s} {cause[f'{s.lower()}_class']} at {cause[f'{s.lower()}_location']}" for s in ("A", "B")
             if cause.get(f"{s.lower()}_location")]
    if where:
        out.append("  code: " + "; ".join(where))
    for f in cause["findings"]:
        locs = " / ".join(x for x in (f.get("a_location"), f.get("b_location")) if x)
        out.append(f"  [{f['kind']}] {f['message']}" + (f" ({locs})" if locs else ""))
    if cause["carried"]:
        shown = cause["carried"][:6]
        out.append(f"  only carried {'further back' if cause.get('direction') == 'backward' else 'downstream'} by: "
                   f"{', '.join(shown)}"
                   + (f" and {len(cause['carried']) - 6} more" if len(cause["carried"]) > 6 else ""))
    return out



def likely_causes(p: dict) -> list[str]:
    """The root cause first, then the diagnoses that name a line, then the other symptoms."""
    causes = [c for c in (p.get("root_cause"), p.get("backward_root_cause")) if c]
    diagnosis = sorted(p.get("diagnosis") or [], key=lambda d: not d.get("location"))
    if not causes and not diagnosis:
        return []
    lines = ["", "Likely causes (most likely first):"]
    for kind in ("attribution", "call_graph"):  # whose side is wrong, then what runs differs: before any figure
        lines += [f"  [{kind}] {d['message']}" for d in diagnosis if d["kind"] == kind]
    diagnosis = [d for d in diagnosis if d["kind"] not in ("attribution", "call_graph")]
    statement = p.get("line_cause")
    for k, c in enumerate(causes):
        lines += [f"  {line}" for line in cause_lines(c)]
        if statement and k == 0:
            lines.append(f"    first differing statement: {statement['relation']}")
            lines += [f"      {row}" for row in _settings(statement)]
    if statement and not causes:
        lines.append(f"  First differing statement: {statement['relation']}")
        lines += [f"    {row}" for row in _settings(statement)]
        lines += [f"    [{f['kind']}] {f['message']}" for f in statement.get("findings", [])]
    shown = {loc for c in causes for f in c["findings"] for loc in (f.get("a_location"), f.get("b_location")) if loc}
    shown |= {loc for f in (statement or {}).get("findings", []) for loc in (f.get("a_location"), f.get("b_location"))}
    for d in diagnosis:
        if d.get("location") in shown or d["kind"] == "line":
            continue
        lines.append(f"  [{d['kind']}] {d['message']}" + (f" ({d['location']})" if d.get("location") else ""))
    return lines


def _settings(statement: dict) -> list[str]:
    """The constructor settings the differing statement reads, B's first: where a setting is made."""
    read = statement.get("settings") or {}
    rows = [f"{side} reads self.{s['attr']}, set at {s['location']}: {s['source']}"
            for side in ("B", "A") for s in read.get(side.lower(), [])]
    since = [loc for loc in statement.get("b_since") or [] if loc != statement.get("b_location")]
    if since:  # B's values there have no counterpart in A: the difference may arise in any of them
        rows.append(f"before it, B computes values A has no counterpart for at {', '.join(since)}")
    return rows


def stage_table(p: dict) -> list[str]:
    """Two artifacts compared stage by stage, in A's call order."""
    fed = [c for c in p["checks"] if not c["name"].startswith("stage:")]
    stages = [c for c in p["checks"] if c["name"].startswith("stage:")]
    lines = ["", "Given to both (compared first):"] + [f"  {c['name']}  {c['status'].upper()}  {c['message']}"
                                                      for c in fed] if fed else []
    width = max([len(c["name"]) - 6 + len(f" -> {c['b_stage']}" if c.get("b_stage") else "") for c in stages] or [5])
    lines += ["", f"  {'stage':<{width}}  {'max abs':>9}  {'mean abs':>9}  {'cosine':>9}  {'pearson':>9}  status"]
    for c in stages:
        name = c["name"][6:] + (f" -> {c['b_stage']}" if c.get("b_stage") else "")
        lines.append(f"  {name:<{width}}  {_num(c.get('max_abs_diff')):>9}  {_num(c.get('mean_abs_diff')):>9}  "
                     f"{_metric(c, 'cosine'):>9}  {_metric(c, 'pearson'):>9}  {c['status'].upper()}"
                     + (f" ({c['message']})" if c["status"] != "pass" else ""))
    for d in p.get("diagnosis") or []:
        lines.append(f"Cause: [{d['kind']}] {d['message']}")
    if p.get("first_divergence"):
        lines += ["", f"First divergence: {p['first_divergence']}"]
    if p.get("notes"):
        lines += ["", "Notes:"] + [f"  - {n}" for n in p["notes"]]
    return lines


def verdict_line(p: dict) -> str:
    """'Verdict: PASS', or 'Verdict: PASS with limitations: fp16, bf16 not checked (reason)' and one line each."""
    limits = p.get("limitations") or []
    differs = [f for f in p.get("static_findings") or [] if f["kind"] in CODE_DIFFERENCES]
    caveat = [f"  - the numbers agree within tolerance, yet the code differs: [{f['kind']}] {f['message']}"
              for f in differs] if p["verdict"] == "pass" else []
    warnings = [f"  - warning: {w}" for w in p.get("warnings") or []] if p["verdict"] == "pass" else []
    if p["verdict"] != "pass" or not limits:
        head = "PASS with warnings" if warnings else p["verdict"].upper()
        return "\n".join([f"Verdict: {head}"] + warnings + caveat)
    skipped = [line.split(" not checked: ", 1) for line in limits if " not checked: " in line]
    unsure = [line.split(" inconclusive: ", 1)[0] for line in limits if " inconclusive: " in line]
    head = "; ".join(filter(None, [", ".join(name for name, _ in skipped) + " not checked" if skipped else "",
                                   ", ".join(unsure) + " inconclusive" if unsure else ""])) or "weakened checks"
    return "\n".join([f"Verdict: PASS with {'warnings and ' if warnings else ''}limitations: {head}"] + warnings +
                     [f"  - {line}" for line in limits] + caveat)


# static finding kinds that name a difference in what the code computes (not a style or a device assumption)
CODE_DIFFERENCES = ("eps", "approximation", "permutation", "scale", "precision", "setting")


def render_text(rep: dict) -> str:
    if not rep["pairs"]:
        return f"=== Numerical Parity Report ===\nError: {rep['error']}\nVerdict: ERROR\n"
    blocks = ["\n".join(pair_text(p)) for p in rep["pairs"]]
    if len(rep["pairs"]) > 1:
        counts = {v: sum(p["verdict"] == v for p in rep["pairs"]) for v in ("pass", "fail", "error")}
        blocks.append(f"Overall: {rep['verdict'].upper()} ({counts['pass']} pass, {counts['fail']} fail, "
                      f"{counts['error']} error)")
    return "\n\n".join(blocks) + "\n"
