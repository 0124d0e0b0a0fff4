"""`--emit-test`: a pytest file that compares B with A's artifact, written beside it as its fixture."""
from __future__ import annotations

import os
from pathlib import Path

import click

from parity_skill.cli.options import PLAN_OPTION_NAMES, _options, split_targets
from parity_skill.errors import InputError


def plan_flags() -> list[str]:
    """The plan options of this command line as flags (so a generated test compares exactly as it was captured)."""
    ctx = click.get_current_context()
    flags: list[str] = []
    for p in ctx.command.params:
        if not isinstance(p, click.Option) or p.name not in PLAN_OPTION_NAMES:
            continue
        value = ctx.params[p.name]
        if value == p.default or value in (None, False, ()):
            continue
        if p.is_flag:
            flags.append(p.opts[0])
        else:
            for v in value if p.multiple else [value]:
                flags += [p.opts[0], str(v)]
    return flags


def emit_test(targets, path: str, timeout: float, debug: bool, python_a, opts: dict, flags: list[str],
              passed: bool) -> str:
    """Write a pytest file and, beside it, A's artifact as its fixture; the line that says so."""
    from parity_skill.analyze.hierarchy import run_by
    from parity_skill.compare import phases
    from parity_skill.render.script import render_test

    target_a, target_b = split_targets(targets)
    if target_b.path is None:
        raise InputError("--emit-test needs B to be a file (a reference such as torch.nn.X needs no test)")
    test = Path(path)
    fixture = test.parent / f"{test.stem}_fixture"
    run_by(target_a.path, python_a)
    plan = phases.plan_capture(target_a, _options(**opts))
    phases.prepare_folder(str(fixture), force=True)
    phases.capture_into(target_a, plan, str(fixture), timeout, debug, python_a)
    name = "test_" + "".join(ch if ch.isalnum() else "_" for ch in (target_b.symbol or test.stem)).lower() + "_parity"
    rel = os.path.relpath(os.path.abspath(target_b.path), os.path.abspath(test.parent))
    command = " ".join([target_a.display, "vs", target_b.display, "--emit-test", path, *flags])
    test.write_text(render_test(f"{target_a.display} vs {target_b.display}", command, name, fixture.name, rel,
                                target_b.symbol, flags, passed), encoding="utf-8")
    return f"parity-skill: wrote {path} and its fixture {fixture}"
