"""`--map FILE`: the user's weight-map rules, expanded against the live parameter names.

One rule per line, `#` comments:

    h.{i}.attn.c_attn.weight -> layers.{i}.attn.[q,k,v].weight      # one fused A weight split into three
    h.{i}.mlp.c_fc.weight    -> layers.{i}.mlp.fc.weight transpose   # stored (in, out) on A
    wte.weight               -> embed.weight

`{name}` placeholders match one dotted component and carry over; `[a,b,c]` lists several parameters (on B: A's
value is split along axis 0 by B's shapes; on A: the values are concatenated). A last word names a transform:
identity, transpose, conv_to_channels_last, conv_to_channels_first. Light: generated scripts import it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from parity_skill.errors import InputError
from parity_skill.spec import MapEntry

TRANSFORMS = ("identity", "transpose", "conv_to_channels_last", "conv_to_channels_first")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_LIST = re.compile(r"\[([\w\s,]+)\]")


@dataclass(frozen=True)
class Rule:
    a: str
    b: str
    transform: str = "identity"
    line: int = 0


def parse_rules(text: str, where: str = "--map") -> tuple[Rule, ...]:
    """Rules from a map file's text; ValueError naming the line for anything malformed."""
    rules = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        left, arrow, right = line.partition("->")
        words = right.split()
        if not arrow or not left.strip() or not words:
            raise ValueError(f"{where}:{n}: expected 'A_NAME -> B_NAME [transform]', got {raw.strip()!r}")
        transform = words[1] if len(words) > 1 else "identity"
        if len(words) > 2 or transform not in TRANSFORMS:
            raise ValueError(f"{where}:{n}: unknown transform {' '.join(words[1:])!r} (one of {', '.join(TRANSFORMS)})")
        a, b = left.strip(), words[0]
        if set(_PLACEHOLDER.findall(b)) - set(_PLACEHOLDER.findall(a)):
            raise ValueError(f"{where}:{n}: B's placeholders {sorted(set(_PLACEHOLDER.findall(b)))} must all appear "
                             "on A's side")
        if _LIST.search(a) and _LIST.search(b):
            raise ValueError(f"{where}:{n}: a [list] on one side only (a split or a concatenation)")
        rules.append(Rule(a, b, transform, n))
    return tuple(rules)


def _regex(pattern: str) -> re.Pattern:
    out, pos = "", 0
    for m in _PLACEHOLDER.finditer(pattern):
        out += re.escape(pattern[pos:m.start()]) + f"(?P<{m.group(1)}>[^.]+)"
        pos = m.end()
    return re.compile(out + re.escape(pattern[pos:]) + "$")


def _names(pattern: str, values: dict[str, str]) -> list[str]:
    filled = _PLACEHOLDER.sub(lambda m: values[m.group(1)], pattern)
    m = _LIST.search(filled)
    if not m:
        return [filled]
    return [filled[:m.start()] + part.strip() + filled[m.end():] for part in m.group(1).split(",")]


def expand(rules: tuple[Rule, ...], shapes_a: dict[str, tuple], shapes_b: dict[str, tuple]) -> list[MapEntry]:
    """Entries (`how` "user") for every A parameter a rule matches; ValueError when a rule matches nothing or
    names a B parameter that does not exist."""
    entries = []
    for rule in rules:
        a_head = _LIST.sub("{__list__}", rule.a) if _LIST.search(rule.a) else rule.a
        first_a = _LIST.search(rule.a).group(1).split(",")[0].strip() if _LIST.search(rule.a) else None
        probe = _regex(a_head.replace("{__list__}", first_a) if first_a else a_head)
        hits = [probe.match(name) for name in shapes_a]
        hits = [h for h in hits if h]
        if not hits:
            raise ValueError(f"--map line {rule.line}: {rule.a!r} matches no parameter of A")
        for hit in hits:
            values = hit.groupdict()
            names_a, names_b = _names(rule.a, values), _names(rule.b, values)
            missing = [n for n in names_a if n not in shapes_a] + [n for n in names_b if n not in shapes_b]
            if missing:
                raise ValueError(f"--map line {rule.line}: {', '.join(missing)} is not a parameter of "
                                 f"{'A' if missing[0] in names_a else 'B'}")
            transform = rule.transform
            many, one = (names_b, shapes_a[names_a[0]]) if len(names_b) > 1 else (names_a, shapes_b[names_b[0]])
            shapes = [shapes_b[n] if len(names_b) > 1 else shapes_a[n] for n in many]
            if len(many) > 1:
                if sum(s[0] for s in shapes) != one[0] or any(s[1:] != tuple(one[1:]) for s in shapes):
                    raise ValueError(f"--map line {rule.line}: {' + '.join(many)} {shapes} do not stack to {one}")
                kind = "split0" if len(names_b) > 1 else "concat0"
                transform = f"{kind}:" + ",".join(str(s[0]) for s in shapes)
            entries.append(MapEntry("+".join(names_a), "+".join(names_b), transform, "user"))
    return entries


def read_rules(path: str | None) -> tuple[str, ...]:
    """The --map file's rule lines, checked now so a typo is one line naming file:line (exit 2)."""
    if not path:
        return ()
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--map {path}: cannot read ({exc.__class__.__name__})") from None
    try:
        rules = parse_rules(text, path)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    lines = text.splitlines()
    return tuple(lines[r.line - 1].split("#", 1)[0].strip() for r in rules)
