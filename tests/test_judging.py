"""Condition-aware judging (issue #25): the conditioning floor on the forward and fp16/bf16 checks, and the one
module every verdict threshold lives in."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, fx, parity

FOURIER = '''import math

import torch


class Fourier(torch.nn.Module):
    def forward(self, x):
        return {expr}
'''


def _port(tmp_path: Path, name: str, expr: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(FOURIER.format(expr=expr))
    return f"{path}::Fourier"


def test_every_threshold_is_derived_in_the_module_docstring():
    source = (ROOT / "parity_skill/thresholds.py").read_text()
    tree = ast.parse(source)
    doc = ast.get_docstring(tree)
    names = [t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets]
    assert names and all(n in doc for n in names), [n for n in names if n not in doc]


def test_the_precision_rule_never_asks_more_than_an_exactly_rounded_implementation_gives():
    """A fused A (error 1e-4) more exact than rounding its input alone allows (2e-4): B, an ordinary correct port
    with 5e-4, passes by 3x the floor, and the floor is named as what decided; a port at 10x the floor fails."""
    from parity_skill.runtime.checks.matrix import relative_error

    rng = np.random.default_rng(0)
    ref = rng.standard_normal(4096)
    a = ref + 1e-4 * rng.standard_normal(4096)
    b = ref + 5e-4 * rng.standard_normal(4096)
    assert not relative_error(a, b, ref, 3.0, 0.0)["ok"]  # the ratio rule alone: a false alarm
    got = relative_error(a, b, ref, 3.0, 0.0, conditioned=2e-4)
    assert got["ok"] and got["condition"] == {"floor": 2e-4, "factor": 3.0, "decides": True}
    bad = ref + 2e-3 * rng.standard_normal(4096)
    assert not relative_error(a, bad, ref, 3.0, 0.0, conditioned=2e-4)["ok"]
    ordinary = relative_error(b, b, ref, 3.0, 0.0, conditioned=2e-4)
    assert ordinary["ok"] and not ordinary["condition"]["decides"]  # where A is ordinary the ratio rule decides


pytest.importorskip("torch")


def test_an_ill_conditioned_forward_is_inconclusive_and_a_wrong_frequency_still_fails(tmp_path):
    """sin(1000 x) and cos(1000 x - pi/2) are the same function; float32 rounds 1000 x to ~6e-5, so correct kernels
    differ beyond the fp32 tolerance. The floor (A's output under a one-unit move of its input) exceeds the
    tolerance: inconclusive, with the figure, never a failure. sin(1001 x) is far beyond it and fails."""
    a = _port(tmp_path, "a", "torch.sin(1000.0 * x)")
    run = parity(a, "vs", _port(tmp_path, "b", "torch.cos(1000.0 * x - math.pi / 2)"), "--quick", "--json")
    forward = run.check("forward")
    assert run.code == 0 and forward["status"] == "inconclusive", forward["message"]
    assert forward["condition"]["floor"] > forward["condition"]["tolerance"]
    assert forward["max_abs_diff"] <= forward["condition"]["factor"] * forward["condition"]["floor"]
    assert "conditioning floor" in forward["message"]
    text = parity(a, "vs", _port(tmp_path, "b", "torch.cos(1000.0 * x - math.pi / 2)"), "--quick").stdout
    assert "Forward pass:  INCONCLUSIVE" in text and "PASS with limitations: forward inconclusive" in text
    wrong = parity(a, "vs", _port(tmp_path, "c", "torch.sin(1001.0 * x)"), "--quick", "--json")
    assert wrong.code == 1 and wrong.status("forward") == "fail" and "condition" not in wrong.check("forward")


def test_low_precision_checks_report_the_floor_they_were_judged_with():
    """The fp16/bf16 floor (the error rounding the input alone causes) is reported, and on a correct port it is
    close to A's own error: the estimate measures what it claims to."""
    run = parity(fx("torch/attn_explicit.py"), "vs", fx("torch/attn_sdpa.py"), "--json", "--dtypes", "fp32,fp16,bf16")
    for name in ("fp16", "bf16"):
        c = run.check(name)
        assert c["status"] == "pass" and "error rounding the input" in c["message"]
        assert 0.3 < c["condition"]["floor"] / c["a_error"] < 3, c


def test_level_auto_judges_a_layer_a_module_of_layers_and_a_stack_each_at_its_level():
    from conftest import ROOT as root

    gelu = parity(fx("torch/gelu_erf.py") + "::GELU", "vs", "torch.nn.GELU", "--level", "auto", "--quick", "--json")
    ffn = parity(fx("torch/ffn_module.py"), "vs", fx("torch/ffn_functional.py"), "--level", "auto", "--quick",
                 "--json")
    stack = parity(f"{root / 'benchmarks/models/gpt2_fused.py'}::GPT2Stack", "vs",
                   f"{root / 'benchmarks/models/gpt2_split.py'}::GPT2Stack", "--level", "auto", "--quick", "--json")
    for run, level, atol in ((ffn, "chain", 1e-4), (stack, "model", 1e-3)):
        assert run.code == 0 and any(n.startswith(f"--level auto: {level}") for n in run.pair["notes"]), run.pair["notes"]
        assert run.check("forward")["tolerance"]["atol"] == atol
    assert gelu.code == 0 and any(n.startswith("--level auto: layer") for n in gelu.pair["notes"])
    assert gelu.check("forward")["tolerance"]["atol"] == 1e-5
