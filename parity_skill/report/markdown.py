"""The Markdown report, for pull requests: summary line, check table, likely causes with file:line links, the
per-submodule profile, and the chart when one was drawn."""
from __future__ import annotations

import re

from parity_skill.report.text import cause_lines, verdict_line

ICON = {"pass": "PASS", "fail": "**FAIL**", "error": "**ERROR**", "skip": "skip"}


def _num(x) -> str:
    return "" if x is None else f"{x:.3g}" if isinstance(x, float) else str(x)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


_LOCATION = re.compile(r"(?<![\w/.\[])((?:/|\.{1,2}/)?[\w./-]+\.py):(\d+)")


def link(text: str) -> str:
    """`path/to/file.py:12` -> a Markdown link to that line (relative paths, as GitHub renders them)."""
    return _LOCATION.sub(lambda m: f"[{m.group(1)}:{m.group(2)}]({m.group(1)}#L{m.group(2)})", text)


def _side(x: dict) -> str:
    return f"`{(x['path'] + '::') if x['path'] else ''}{x['symbol']}` ({x['framework']})"


def pair_markdown(p: dict, plot: str | None = None) -> list[str]:
    failed = [c for c in p["checks"] if c["status"] in ("fail", "error")]
    lines = [f"### {ICON[p['verdict']]}: {_side(p['a'])} vs {_side(p['b'])}" + (f" - {p['variant']}"
                                                                              if p.get("variant") else ""), ""]
    ran = [c for c in p["checks"] if c["status"] != "skip"]
    lines.append(f"{len(ran) - len(failed)} of {len(ran)} checks pass" + (f"; failing: {', '.join(c['name'] for c in failed)}"
                                                                         if failed else "") + ".")
    if p.get("error"):
        lines += ["", f"Error: {link(_cell(p['error']))}"]
    if p["checks"]:
        lines += ["", "| check | status | max abs diff | mismatched | message |", "|---|---|---|---|---|"]
        for c in p["checks"]:
            bad = f"{c['mismatched']}/{c['total']}" if c.get("mismatched") is not None else ""
            lines.append(f"| `{c['name']}` | {ICON[c['status']]} | {_num(c.get('max_abs_diff'))} | {bad} | "
                         f"{link(_cell(c['message']))} |")
    causes = [c for c in (p.get("root_cause"), p.get("backward_root_cause")) if c]
    if causes or p.get("diagnosis"):
        lines += ["", "#### Likely causes", ""]
        for c in causes:
            head, *rest = cause_lines(c)
            lines.append(f"- {link(head)}")
            lines += [f"  - {link(r.strip())}" for r in rest]
        shown = {loc for c in causes for f in c["findings"] for loc in (f.get("a_location"), f.get("b_location"))}
        for d in sorted(p.get("diagnosis") or [], key=lambda d: not d.get("location")):
            if d.get("location") and d["location"] in shown:
                continue
            lines.append(f"- `{d['kind']}`: {link(d['message'])}" + (f" ({link(d['location'])})"
                                                                       if d.get("location") else ""))
    if p.get("static_findings"):
        lines += ["", "#### Static findings", ""]
        for f in p["static_findings"]:
            where = " vs ".join(link(x) for x in (f.get("a_location"), f.get("b_location")) if x)
            lines.append(f"- `{f['kind']}`: {f['message']}" + (f" ({where})" if where else ""))
    if p.get("profile"):
        lines += ["", "#### Per-submodule error (A's names, execution order)", "", "```text", *p["profile"], "```"]
    if plot:
        lines += ["", f"![per-submodule error profile]({plot})"]
    if p.get("limitations") or p.get("notes"):
        lines += ["", "<details><summary>Notes and limitations</summary>", ""]
        lines += [f"- {link(_cell(x))}" for x in (p.get("limitations") or []) + (p.get("notes") or [])]
        lines += ["", "</details>"]
    return lines


def render_markdown(rep: dict, plot: str | None = None) -> str:
    counts = {v: sum(p["verdict"] == v for p in rep["pairs"]) for v in ("pass", "fail", "error")}
    head = [f"## Numerical parity: {ICON.get(rep['verdict'], rep['verdict'])}", ""]
    if not rep["pairs"]:
        return "\n".join(head + [f"Error: {rep.get('error')}"]) + "\n"
    head.append(f"{len(rep['pairs'])} pair(s): {counts['pass']} pass, {counts['fail']} fail, {counts['error']} error.")
    blocks = ["\n".join(head)] + ["\n".join(pair_markdown(p, plot if i == 0 else None))
                                  for i, p in enumerate(rep["pairs"])]
    tail = verdict_line(rep["pairs"][0]) if len(rep["pairs"]) == 1 else ""
    return "\n\n".join(blocks + ([f"_{tail.splitlines()[0]}_"] if tail else [])) + "\n"
