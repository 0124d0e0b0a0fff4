"""The README's quick start runs verbatim and prints what the README shows; completion is what it documents."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest

from conftest import ROOT

README = (ROOT / "README.md").read_text()


def _block_after(heading: str) -> str:
    section = README[README.index(heading):]
    return section.split("```\n", 2)[1]


def _run(line: str) -> subprocess.CompletedProcess:
    argv = shlex.split(line, comments=True)
    assert argv[0] == "parity-skill"
    return subprocess.run([sys.executable, "-m", "parity_skill", *argv[1:]], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "NO_COLOR": "1"})


def test_quick_start_commands_run_verbatim_with_the_exit_codes_they_claim():
    pytest.importorskip("torch")
    pytest.importorskip("mlx.core")
    lines = [ln for ln in _block_after("## Quick start").splitlines() if ln.strip()]
    assert len(lines) == 5
    outputs = []
    for line in lines:
        run = _run(line)
        claim = line.split("#", 1)[1]
        expected = 1 if "FAIL" in claim else 0
        assert run.returncode == expected, (line, run.stdout[-2000:], run.stderr)
        if "PASS" in claim:  # the comment says the verdict the report prints
            verdict = claim.split(": ", 1)[1].strip()
            assert f"Verdict: {verdict}" in run.stdout and (verdict != "PASS" or "Verdict: PASS\n" in run.stdout)
        outputs.append(run.stdout)
    shown = README.split("The third prints (exit code 1):\n\n```\n", 1)[1].split("```\n", 1)[0]
    assert outputs[2] == shown  # the report in the README is the one a user gets
    assert "Verdict: FAIL" in outputs[4]


def test_shell_completion_is_as_documented():
    line = _block_after("Shell completion").strip()
    assert re.fullmatch(r'eval "\$\(_PARITY_SKILL_COMPLETE=bash_source parity-skill\)"', line)
    env = {**os.environ, "_PARITY_SKILL_COMPLETE": "bash_source"}
    script = subprocess.run([sys.executable, "-m", "parity_skill"], env=env, capture_output=True, text=True, timeout=60)
    assert "_parity_skill_completion" in script.stdout
    env = {**os.environ, "_PARITY_SKILL_COMPLETE": "bash_complete", "COMP_WORDS": "parity-skill examples/ml",
           "COMP_CWORD": "1"}
    done = subprocess.run([sys.executable, "-m", "parity_skill"], env=env, capture_output=True, text=True, timeout=60,
                          cwd=ROOT)
    assert "file,examples/ml" in done.stdout  # the shell completes file paths


def test_the_set_up_commands_are_what_ci_runs():
    """CI runs the README's own lines (.ci/run reads them), so they cannot drift apart."""
    def lines(kind):
        return subprocess.run([sys.executable, str(ROOT / ".ci/readme_commands.py"), kind], capture_output=True,
                              text=True, check=True).stdout.splitlines()
    assert lines("install") == [
        'python -m pip install -c constraints.txt -e ".[torch,mlx,dev,plot]" -r requirements/ports.txt',
        "python -m pip install -c constraints.txt --no-deps -r requirements/ports-nodeps.txt",
        "python -m pip install --no-deps --target .transformers5 -r requirements/transformers5.txt"]
    assert lines("test") == ["python -m pytest -q", "python -m pytest -q -m slow"]
    ci = (ROOT / ".ci/run").read_text()
    assert "python -m venv" in ci and "readme_commands.py install" in ci and "readme_commands.py test" in ci


def test_the_wheel_line_keeps_the_constraints():
    wheel = next(ln for ln in README.splitlines() if "dist/parity_skill-" in ln and "pip install" in ln)
    assert "-c constraints.txt" in wheel


def test_the_pipeline_walkthrough_runs_verbatim():
    pytest.importorskip("torch")
    pytest.importorskip("mlx.core")
    lines = [ln for ln in _block_after("## Porting a pipeline").splitlines() if ln.strip()]
    assert len(lines) == 5
    for line in lines:
        claim = line.split("#", 1)[1]
        env = {**os.environ, "NO_COLOR": "1"}
        if line.startswith("parity-skill"):
            run = _run(line)
        else:
            words = shlex.split(line, comments=True)
            env.update(w.split("=", 1) for w in words if "=" in w and not w.startswith("/"))
            argv = [w for w in words if "=" not in w or w.startswith("/")]
            assert argv[0] == "python"
            run = subprocess.run([sys.executable, *argv[1:]], cwd=ROOT, capture_output=True, text=True, timeout=300,
                                 env=env)
        expected = 1 if "FAIL" in claim else 0
        assert run.returncode == expected, (line, run.stdout[-1500:], run.stderr)
        if "First divergence:" in claim:
            assert claim.split("FAIL: ", 1)[1].strip() in run.stdout
