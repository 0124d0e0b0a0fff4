"""Bad input: one line on stderr naming file, symbol and reason; exit 2; no traceback; --json still reports."""
from __future__ import annotations

import pytest

from conftest import fx, parity

FFN = fx("torch/ffn_module.py")

CASES = {
    "missing file": ((fx("errors/nope.py"), "vs", FFN), "nope.py: no such file"),
    "syntax error": ((fx("errors/broken_syntax.py"), "vs", FFN), "broken_syntax.py:5: syntax error: expected ':'"),
    "unknown symbol": ((FFN + "::FeedForwrd", "vs", FFN), "FeedForwrd: no such class or function; did you mean FeedForward?"),
    "nothing to pair": ((fx("errors/unrelated.py"), "vs", FFN), "nothing to pair"),
    "one target": ((FFN,), "expected two targets"),
    "bad --input": ((FFN, "vs", FFN, "--input", "x"), "--input 'x'"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_input_errors(name):
    args, expected = CASES[name]
    run = parity(*args)
    assert run.code == 2
    assert run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("name", sorted(CASES))
def test_input_errors_json(name):
    args, expected = CASES[name]
    run = parity(*args, "--json")
    assert run.code == 2
    assert run.report["verdict"] == "error" and expected in run.report["error"]


@pytest.mark.parametrize("file, expected", [
    ("ctor_raises.py", "ctor_raises.py::FeedForward: constructor raised ValueError: hidden must be a multiple of 7, "
                       "got 64 (tests/fixtures/errors/ctor_raises.py:8)"),
    ("forward_raises.py", "forward raised RuntimeError: shape '[-1, 5]' is invalid for input of size 1152 "
                          "(tests/fixtures/errors/forward_raises.py:12)"),
])
def test_user_code_raising(file, expected):
    pytest.importorskip("torch")
    run = parity(FFN, "vs", fx("errors/" + file), "--quick")
    assert run.code == 2
    # the report still shows what was planned, and the option that changes the guess that failed
    assert "Next steps:" in run.stdout and "Built with:" in run.stdout and "Verdict: ERROR" in run.stdout
    assert ("--init dim=32, --init hidden=64" if file == "ctor_raises.py" else "--input x=3,6,32") in run.stdout
    assert run.stderr.strip().splitlines() == [f"parity-skill: error: {fx('errors/' + file)}::FeedForward: "
                                               f"{expected.split('::FeedForward: ')[-1]}"]
    js = parity(FFN, "vs", fx("errors/" + file), "--quick", "--json")
    assert js.report["verdict"] == "error" and expected.split(": ", 1)[-1] in js.report["error"]


def test_timeout():
    pytest.importorskip("torch")
    run = parity(FFN, "vs", fx("errors/slow.py"), "--quick", "--timeout", "6")
    assert run.code == 2
    assert "timed out after 6s" in run.stderr and "Traceback" not in run.stderr
