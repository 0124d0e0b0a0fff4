"""A port that subclasses a library's classes without a constructor of its own (`class Model(LlamaModel): pass`,
an MLP whose forward only is rewritten): planned as the class it derives from, read where that class lives, and
built from the user's file."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ROOT, fx, parity

pytest.importorskip("torch")
pytest.importorskip("transformers")
PORT = "inherited/llama_subclass.py"


def _llama() -> str:
    import transformers

    return str(Path(transformers.__file__).parent / "models/llama/modeling_llama.py")


@pytest.mark.parametrize("a,b", [("LlamaModel", "Model"), ("LlamaMLP", "MLP")])
def test_a_subclass_without_a_constructor_is_built_and_planned_as_its_base(a, b):
    run = parity(f"{_llama()}::{a}", "vs", fx(f"{PORT}::{b}"), "--json", "--quick")
    assert run.report["verdict"] == "pass", run.stderr  # was: constructor raised TypeError (no config)
    assert any(n.startswith(f"{b}: no constructor of its own; planned as ") and "modeling_llama.py" in n
               for n in run.pair["notes"])
    assert run.pair["b"]["path"].endswith(PORT)  # built from the user's file, not the library's


def test_a_bug_in_the_subclassed_forward_still_fails(tmp_path):
    source = (ROOT / fx(PORT)).read_text()
    good = "self.act_fn(self.gate_proj(x)) * self.up_proj(x)"
    assert good in source
    port = tmp_path / "swapped.py"
    port.write_text(source.replace(good, "self.act_fn(self.up_proj(x)) * self.gate_proj(x)"))
    run = parity(f"{_llama()}::LlamaMLP", "vs", f"{port}::MLP", "--json", "--quick")
    assert run.code == 1 and run.status("forward") == "fail"
    assert run.pair["line_cause"]["b_location"] == f"{port}:11"
