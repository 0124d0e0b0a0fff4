"""Stage 3: write a ParityPlan as a readable, re-runnable Python script (jinja2, StrictUndefined)."""
from __future__ import annotations

import os
import pprint
from pathlib import Path

import jinja2

from parity_skill import __version__
from parity_skill.plan.planner import ParityPlan

TEMPLATE = "parity_script.py.j2"


def template_dir() -> Path:
    """templates/ ships inside the wheel as parity_skill/templates; in a source checkout it sits at the top."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "templates", package.parent / "templates"):
        if (candidate / TEMPLATE).is_file():
            return candidate
    raise FileNotFoundError("parity-skill templates not found; reinstall the package")


def _py(value) -> str:
    return pprint.pformat(value, width=100, sort_dicts=True) if isinstance(value, dict) else repr(value)


def _text(value) -> str:
    """Any string as inert text inside a docstring or a comment: one line, backslashes and quotes escaped, so a
    file name with a newline or triple quotes cannot end the docstring or the comment and run as code."""
    return repr(str(value))[1:-1].replace('"', '\\"')


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(template_dir())), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, autoescape=False)
    env.filters["py"] = _py
    env.filters["text"] = _text
    return env


def render_script(plan: ParityPlan, script_path: str, cwd: str | None = None) -> str:
    """The script's source. File paths stay relative to `cwd`; the script finds `cwd` relative to itself."""
    cwd = cwd or os.getcwd()
    script_dir = os.path.dirname(os.path.abspath(script_path))
    root = os.path.relpath(cwd, script_dir)
    first = plan.pairs[0]
    title = f"{first.a.display} vs {first.b.display}" + (f" (+{len(plan.pairs) - 1} more pairs)"
                                                         if len(plan.pairs) > 1 else "")
    return _environment().get_template(TEMPLATE).render(
        title=title, version=__version__, script_name=os.path.basename(script_path), root=root,
        checks=first.checks, pairs=plan.pairs)


def render_test(title: str, command: str, test_name: str, fixture: str, target_path: str, symbol: str | None,
                options: list[str], passed: bool) -> str:
    """A pytest file that compares B (`target_path`, relative to the test) against the fixture folder beside it;
    `passed`: whether B matched A when the test was written (a failure is then a regression, else not yet reached)."""
    return _environment().get_template("parity_test.py.j2").render(
        version=__version__, title=title, command=command, test_name=test_name, fixture=fixture,
        target_path=target_path, target_symbol=f"::{symbol}" if symbol else "", options=list(options), passed=passed)
