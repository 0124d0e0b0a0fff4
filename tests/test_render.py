"""Generated scripts are deterministic: compared with golden files (PARITY_UPDATE_GOLDEN=1 re-records them)."""
from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

from parity_skill.plan.planner import PlanOptions, Target, build_plan
from parity_skill.render.script import render_script, template_dir

GOLDEN = Path(__file__).parent / "golden"
CASES = {
    "renamed_ffn": ("tests/fixtures/torch/ffn_module.py::FeedForward", "tests/fixtures/torch/ffn_renamed.py::MLP"),
    "llama_config": ("tests/fixtures/torch/llama_a.py", "tests/fixtures/torch/llama_b.py"),
}


def _target(text: str) -> Target:
    path, _, sym = text.partition("::")
    return Target(path, sym or None)


@pytest.mark.parametrize("name", sorted(CASES))
def test_script_matches_golden(name):
    a, b = CASES[name]
    source = render_script(build_plan(_target(a), _target(b), PlanOptions()), f"parity_{name}.py")
    ast.parse(source)
    golden = GOLDEN / f"parity_{name}.py"
    if os.environ.get("PARITY_UPDATE_GOLDEN"):
        golden.write_text(source)
    assert source == golden.read_text()


def test_templates_are_found():
    assert (template_dir() / "parity_script.py.j2").is_file()
