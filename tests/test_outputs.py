"""Reports people read: Markdown, charts, and what a terminal (only a terminal) gets: progress and colour."""
from __future__ import annotations

import os
import pty
import select
import subprocess
import sys

import pytest

from conftest import ROOT, fx, parity

pytest.importorskip("torch")

GELU, SILU = fx("diag/block_gelu.py::Block"), fx("diag/block_silu.py::Block")
GOLDEN = ROOT / "tests/golden/report_block_gelu_vs_silu.md"


def test_markdown_report_matches_its_golden_file():
    run = parity(GELU, "vs", SILU, "--quick", "--format", "md")
    assert run.code == 1
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(run.stdout)
    assert run.stdout == GOLDEN.read_text()
    for needed in ("## Numerical parity: **FAIL**", "| `forward` | **FAIL** |", "#### Likely causes",
                   "Root cause: mlp", "(tests/fixtures/diag/block_silu.py#L31)", "```text"):
        assert needed in run.stdout, needed


def test_format_json_is_the_json_flag():
    def untimed(run):
        return [[{k: v for k, v in c.items() if k != "seconds"} for c in p["checks"]] + [p["verdict"]]
                for p in run.report["pairs"]]
    assert untimed(parity(GELU, "vs", SILU, "--quick", "--format", "json")) == untimed(
        parity(GELU, "vs", SILU, "--quick", "--json"))


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".svg", b"<?xml")])
def test_plot_draws_the_profile_and_the_markdown_links_it(tmp_path, suffix, magic):
    pytest.importorskip("matplotlib")
    chart = tmp_path / f"profile{suffix}"
    run = parity(fx("diag/stack.py::Stack"), "vs", fx("diag/stack_broken.py::Stack"), "--quick", "--format", "md",
                 "--plot", str(chart))
    assert run.code == 1 and chart.read_bytes().startswith(magic)
    link = os.path.relpath(chart)  # relative to the folder the Markdown is written in (stdout: the current one)
    assert f"![per-submodule error profile]({link})" in run.stdout and not link.startswith("/")
    assert "per-submodule error of 36 submodules" in run.stderr
    if suffix == ".svg":
        assert "root cause: blocks.7" in chart.read_text()


def test_plot_without_matplotlib_says_how_to_get_it(tmp_path):
    shadow = tmp_path / "shadow" / "matplotlib"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('no matplotlib here')\n")
    env = {**os.environ, "PYTHONPATH": str(shadow.parent)}
    run = subprocess.run([sys.executable, "-m", "parity_skill", GELU, "vs", SILU, "--quick", "--plot",
                          str(tmp_path / "p.png")], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 2 and "pip install 'parity-skill[plot]'" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def _on_terminal(*args: str, env: dict | None = None) -> str:
    """Run the CLI with stdout and stderr on a pseudo-terminal; everything it wrote there."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "parity_skill", *args], stdout=follower, stderr=follower,
                            stdin=subprocess.DEVNULL, env={**os.environ, "TERM": "xterm", **(env or {})}, cwd=ROOT)
    os.close(follower)
    out = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 120)
        if not ready:
            break
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=120)
    os.close(leader)
    return out.decode("utf-8", "replace")


def test_a_terminal_gets_progress_and_colour():
    out = _on_terminal(GELU, "vs", SILU, "--quick", env={"PARITY_SKILL_PROGRESS_DELAY": "0"})
    assert "parity-skill: analyse" in out and ("parity-skill: capture A" in out or "parity-skill: compare B" in out)
    assert "\x1b[31mFAIL\x1b[0m" in out


@pytest.mark.parametrize("how", [{"NO_COLOR": "1"}, {"TERM": "dumb"}, "--no-color"])
def test_colour_is_off_when_asked(how):
    env = {"PARITY_SKILL_PROGRESS_DELAY": "0", **(how if isinstance(how, dict) else {})}
    out = _on_terminal(GELU, "vs", SILU, "--quick", *([how] if isinstance(how, str) else []), env=env)
    assert "FAIL" in out and "\x1b[31m" not in out


def test_a_pipe_gets_neither_progress_nor_colour():
    env = {**os.environ, "PARITY_SKILL_PROGRESS_DELAY": "0", "TERM": "xterm"}
    run = subprocess.run([sys.executable, "-m", "parity_skill", GELU, "vs", SILU, "--quick"], capture_output=True,
                         text=True, env=env, timeout=120, cwd=ROOT)
    assert run.returncode == 1 and "\x1b[" not in run.stdout + run.stderr and "analyse" not in run.stderr
