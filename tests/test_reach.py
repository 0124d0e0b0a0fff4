"""Analysing one requested symbol reads only what it reaches (analyze/reach.py), and says exactly what a
whole-file analysis says of it: same fields, same `path:line` locations."""
from __future__ import annotations

import ast
import sys

import pytest

from parity_skill.analyze import analyze_file, reach
from conftest import ROOT, fx

sys.path.insert(0, str(ROOT / "benchmarks"))
from real_ports import package_file  # noqa: E402

SOURCE = '''\
import torch
from torch import nn


def unrelated(x):
    return x * 2


class Rotary(nn.Module):
    def forward(self, x):
        return x.cos(), x.sin()


class Base(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def helper_nobody_calls(self):
        return torch.zeros(3)


class MLP(Base):
    def forward(self, x):
        return torch.relu(x)


class Layer(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.mlp = MLP(dim)

    def forward(self, x):
        return self.mlp(x) + x


class Model(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.layers = nn.ModuleList([Layer(dim) for _ in range(2)])

    def forward(self, input_ids):
        h = input_ids.float()
        for layer in self.layers:
            h = layer(h)
        return h


class Head(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.model = Model(dim)

    def forward(self, input_ids):
        return self.model(input_ids)
'''


def _installed(module: str) -> str | None:
    try:
        return package_file(module)
    except Exception:  # noqa: BLE001 - the package is not installed here
        return None


def test_a_request_reads_what_it_reaches_up_to_the_model_and_nothing_above():
    tree = ast.parse(SOURCE)
    level = reach.needed(tree, {"Layer"})
    assert level == {"Layer": reach.WHOLE, "MLP": reach.WHOLE, "Rotary": reach.WHOLE, "Base": reach.CORE,
                     "Model": reach.INIT}  # Head builds the model that takes token ids: not read
    text, lines = reach.reduced(SOURCE, tree, level)
    ast.parse(text)
    assert "unrelated" not in text and "helper_nobody_calls" not in text and "class Head" not in text
    assert "h = layer(h)" not in text and "def forward(self, input_ids):" in text  # the model's signature only
    assert len(lines) == len(text.splitlines()) and lines == sorted(lines)
    assert reach.needed(tree, {"NotHere"}) is None


def test_a_requested_symbol_is_analysed_as_the_whole_file_analyses_it(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(SOURCE)
    whole = analyze_file(str(path))
    part = analyze_file(str(path), ("Layer",))
    for name in ("Layer", "MLP", "Rotary"):
        assert part.symbol(name) == whole.symbol(name), name
    assert part.symbol("Head") is None and part.symbol("unrelated") is None
    assert part.symbol("Model").constructs == whole.symbol("Model").constructs
    assert part.symbol("Model").call_args == whole.symbol("Model").call_args
    assert part.aliases == whole.aliases


@pytest.mark.parametrize("module, symbols", [
    ("transformers.models.llama.modeling_llama", ("LlamaDecoderLayer", "LlamaAttention", "LlamaMLP")),
    ("transformers.models.gpt2.modeling_gpt2", ("GPT2Block", "GPT2Attention")),
    ("transformers.models.mixtral.modeling_mixtral", ("MixtralSparseMoeBlock", "MixtralDecoderLayer")),
    ("mlx_lm.models.llama", ("TransformerBlock", "Attention")),
])
def test_real_files_requested_symbols_equal_their_whole_file_analysis(module, symbols):
    path = _installed(module)
    if path is None:
        pytest.skip(f"{module} is not installed")
    whole = analyze_file(path)
    for name in symbols:
        part = analyze_file(path, (name,))
        mine = part.symbol(name)
        assert mine == whole.symbol(name), name
        for sub in mine.submodules:  # what the plan looks up next is there, and the same
            local = whole.symbol(sub.type_name)
            if local is not None:
                assert part.symbol(sub.type_name) == local, sub.type_name


def test_a_missing_symbol_falls_back_to_the_whole_file_so_messages_list_every_symbol():
    fa = analyze_file(fx("torch/ffn_module.py"), ("Nope",))
    assert fa.symbols and fa == analyze_file(fx("torch/ffn_module.py"))


def test_analysis_is_cached_by_content(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(SOURCE)
    first = analyze_file(str(path), ("Layer",))
    assert analyze_file(str(path), ("Layer",)) is first
    path.write_text(SOURCE.replace("return torch.relu(x)", "return torch.softmax(x, dim=-1)"))
    again = analyze_file(str(path), ("Layer",))
    assert again is not first and again.symbol("MLP") != first.symbol("MLP")


def test_a_deep_statement_outside_the_request_is_never_parsed(tmp_path):
    """The nesting guard measures what libcst will read: a generated 400-deep expression elsewhere in the file
    does not stop a request for a small class (a whole-file read still refuses it, with its reason)."""
    deep = "x = " + "-" * 400 + "1\n"
    path = tmp_path / "m.py"
    path.write_text(SOURCE + "\n\ndef generated():\n    " + deep)
    try:
        ast.parse(path.read_text())
    except (RecursionError, MemoryError, SyntaxError):
        pytest.skip("this Python cannot parse the deep expression at all")
    assert analyze_file(str(path), ("Layer",)).symbol("Layer") is not None
    with pytest.raises(Exception, match="too deep|nested"):
        analyze_file(str(path))
