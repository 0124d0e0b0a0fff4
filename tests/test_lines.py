"""Down to the line: when the difference starts in a forward's own code (or a function), the first statement whose
value differs is named on both sides, torch vs MLX and NumPy vs torch alike."""
from __future__ import annotations

import pytest

from conftest import ROOT, fx, parity

pytest.importorskip("torch")


def test_the_gelu_between_two_submodules_is_named_on_both_sides():
    pytest.importorskip("mlx.core")
    run = parity("examples/mlp.py", "vs", "examples/mlp_port_bug.py", "--json", "--quick")
    line = run.pair["line_cause"]
    assert (line["a_location"], line["b_location"]) == ("examples/mlp.py:13", "examples/mlp_port_bug.py:12")
    assert line["a"] == line["b"] == "fc2(argument 0)" and line["agreed"] >= 1  # fc1's input agreed
    assert [f["kind"] for f in line["findings"]] == ["approximation"]  # the static finding on that very line


def test_a_scale_applied_to_q_and_k_is_named_with_its_factor(tmp_path):
    """(d // heads) ** -0.5 on both q and k scales the scores by 1/d, not 1/sqrt(d): B's q is 0.354 x A's."""
    pytest.importorskip("mlx.core")
    source = (ROOT / "examples/attention_mlx.py").read_text()
    port = tmp_path / "attention_scaled_qk.py"
    port.write_text(source.replace(
        "        q = self.q_proj(x).reshape(b, t, h, -1).transpose(0, 2, 1, 3)\n        k = self.k_proj(x)",
        "        q = (self.q_proj(x) * self.scale).reshape(b, t, h, -1).transpose(0, 2, 1, 3)\n"
        "        k = (self.k_proj(x) * self.scale)").replace("scale=self.scale)", "scale=1.0)"))
    run = parity("examples/attention_torch.py::Attention", "vs", f"{port}::Attention", "--json", "--quick")
    assert run.status("forward") == "fail"
    line = run.pair["line_cause"]
    assert line["b"] == "q" and line["b_location"] == f"{port}:19", line
    assert "is 0.3536 x A's `q`" in line["relation"], line["relation"]
    assert line["settings"]["b"] == [{"attr": "scale", "location": f"{port}:10",
                                      "source": "self.scale = (dim // n_heads) ** -0.5"}]  # what the line reads


def test_a_setting_made_in_init_is_located_where_it_is_set(tmp_path):
    """The attention scale is set in `__init__` and used in the forward: the first differing statement is the one
    that uses it, and the report names the `__init__` line that sets it (the patched line)."""
    pytest.importorskip("mlx.core")
    source = (ROOT / "examples/attention_mlx.py").read_text()
    port = tmp_path / "attention_scale_init.py"
    assert "        self.scale = (dim // n_heads) ** -0.5\n" in source
    port.write_text(source.replace("self.scale = (dim // n_heads) ** -0.5", "self.scale = (dim // n_heads) ** -1.0"))
    run = parity("examples/attention_torch.py::Attention", "vs", f"{port}::Attention", "--json", "--quick")
    line = run.pair["line_cause"]
    assert line["b_location"] == f"{port}:22" and line["settings"]["a"] == [], line
    assert line["settings"]["b"] == [{"attr": "scale", "location": f"{port}:10",
                                      "source": "self.scale = (dim // n_heads) ** -1.0"}]
    text = parity("examples/attention_torch.py::Attention", "vs", f"{port}::Attention", "--quick").stdout
    assert f"B reads self.scale, set at {port}:10: self.scale = (dim // n_heads) ** -1.0" in text


def test_a_function_with_no_submodules_is_located_numpy_vs_torch():
    run = parity(fx("numpy/ops_numpy.py::layer_norm"), "vs", fx("numpy/ops_torch_buggy.py::layer_norm"), "--json",
                 "--quick")
    line = run.pair["line_cause"]
    assert line["b_location"] == "tests/fixtures/numpy/ops_torch_buggy.py:17" and "is 0.9843 x" in line["relation"]


def test_a_correct_port_has_no_line_cause():
    pytest.importorskip("mlx.core")
    run = parity("examples/attention_torch.py", "vs", "examples/attention_mlx.py", "--json", "--quick")
    assert run.report["verdict"] == "pass" and "line_cause" not in run.pair


def test_a_default_only_one_side_has_is_listed_and_named_by_the_scale_it_causes():
    run = parity(fx("diag/logit_head.py"), "vs", fx("diag/logit_head_scaled.py"), "--json", "--quick")
    assert run.pair["b"]["defaults"]["logit_scale"] == {"value": "1.05", "number": 1.05,
                                                        "location": "tests/fixtures/diag/logit_head_scaled.py:6"}
    setting = [f for f in run.pair["static_findings"] if f["kind"] == "setting"]
    assert setting and setting[0]["b_location"] == "tests/fixtures/diag/logit_head_scaled.py:6"
    scale = next(d for d in run.pair["diagnosis"] if d["kind"] == "scale")
    assert "logit_scale=1.05" in scale["message"] and scale["location"].endswith("logit_head_scaled.py:6")
    assert run.pair["line_cause"]["b_location"] == "tests/fixtures/diag/logit_head_scaled.py:12"
    text = parity(fx("diag/logit_head.py"), "vs", fx("diag/logit_head_scaled.py"), "--quick").stdout
    assert "defaults: dim=32, vocab=64, logit_scale=1.05" in text


def test_a_framework_layer_root_cause_is_located_where_the_port_builds_it(tmp_path):
    """The difference starts inside an nn.LayerNorm: the place to look is the line of the port that builds it
    with another eps, not torch's own LayerNorm class."""
    src = "import torch.nn as nn\n\n\nclass Block(nn.Module):\n    def __init__(self, dim: int = 32):\n" \
          "        super().__init__()\n        self.fc = nn.Linear(dim, dim)\n        self.norm = nn.LayerNorm(dim{eps})\n\n" \
          "    def forward(self, x):\n        return self.norm(self.fc(x))\n"
    a, b = tmp_path / "ref.py", tmp_path / "port.py"
    a.write_text(src.format(eps=""))
    b.write_text(src.format(eps=", eps=0.5"))
    run = parity(f"{a}::Block", "vs", f"{b}::Block", "--json", "--quick")
    cause = run.pair["root_cause"]
    assert cause["a"] == "norm" and cause["b_location"] == f"{b}:8" and cause["a_location"] == f"{a}:8"


BLOCK = '''import torch
from torch import nn


class MLP(nn.Module):
    def __init__(self, dim: int = 16):
        super().__init__()
        self.up = nn.Linear(dim, 4 * dim)
        self.down = nn.Linear(4 * dim, dim)

    def forward(self, x):
        h = self.up(x)
        h = {act}
        return self.down(h)


class Block(nn.Module):
    def __init__(self, dim: int = 16):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.mlp = MLP(dim)

    def forward(self, x):
        return x + self.mlp(self.norm(x))
'''


def test_a_root_cause_inside_a_submodule_is_located_at_its_line(tmp_path):
    """The pair is the block; the difference starts in its MLP's own forward: the line inside the MLP is named on
    both sides (A recorded the statements of the first submodule of each of its classes)."""
    (tmp_path / "a.py").write_text(BLOCK.format(act="torch.nn.functional.gelu(h)"))
    (tmp_path / "b.py").write_text(BLOCK.format(act="torch.nn.functional.silu(h)"))
    run = parity(f"{tmp_path / 'a.py'}::Block", "vs", f"{tmp_path / 'b.py'}::Block", "--quick", "--json")
    assert run.code == 1 and run.pair["root_cause"]["a"] == "mlp"
    cause = run.pair["line_cause"]
    assert cause["a_location"].endswith("a.py:13") and cause["b_location"].endswith("b.py:13"), cause


def test_a_port_reading_the_wrong_tensor_is_located_where_it_reads_it(tmp_path):
    """Values taken from the key projection: B's `v` is no scaled or noisy copy of A's (cosine near 0), so it is
    named as unrelated, with the A value it does equal; the statement is the patched one."""
    pytest.importorskip("mlx.core")
    source = (ROOT / "examples/attention_mlx.py").read_text()
    good = "v = self.v_proj(x).reshape(b, t, h, -1)"
    assert good in source
    port = tmp_path / "values_from_keys.py"
    port.write_text(source.replace(good, "v = self.k_proj(x).reshape(b, t, h, -1)"))
    run = parity("examples/attention_torch.py::Attention", "vs", f"{port}::Attention", "--json", "--quick")
    line = run.pair["line_cause"]
    assert line["b_location"] == f"{port}:21" and line["a_location"] == "examples/attention_torch.py:22", line
    assert "is unrelated (cosine" in line["relation"] and "it equals A's `k` at examples/attention_torch.py:21" \
        in line["relation"], line["relation"]


def test_an_unrelated_value_made_earlier_in_another_shape_is_located_where_it_was_made():
    """B projects all three first and reshapes later (A reshapes in the same statement): B's reshaped `values`
    is unrelated to A's, equals A's keys, and was made at B's projection line, which is named."""
    import numpy as np

    from parity_skill.runtime.diagnosis.statements import first_difference

    rng = np.random.default_rng(0)
    x, k, v = (rng.standard_normal((2, 3, 4)) for _ in range(3))

    def rows(*items):
        return [[label, None, [(None, value)]] for label, value in items]

    heads = (lambda t: t.reshape(2, 3, 2, 2).transpose(0, 2, 1, 3))
    a = rows(("a.py:5 x", x), ("a.py:6 k", heads(k)), ("a.py:7 v", heads(v)), ("a.py:8 out", heads(v) * 2))
    b = rows(("b.py:5 x", x), ("b.py:6 keys", k), ("b.py:6 values", k), ("b.py:8 keys", heads(k)),
             ("b.py:9 values", heads(k)), ("b.py:10 out", heads(k) * 2))
    found = first_difference(a, b, 1e-5)
    assert found["b_location"] == "b.py:6" and found["a_location"] == "a.py:7", found
    assert "it equals A's `k` at a.py:6; B made it at b.py:6 (`values`, reshaped since)" in found["relation"]
    assert first_difference(a, rows(("b.py:5 x", x), ("b.py:6 k", heads(k)), ("b.py:7 v", heads(v)),
                                     ("b.py:8 out", heads(v) * 2)), 1e-5) is None  # agreeing: nothing named


def test_a_value_recorded_twice_by_one_side_is_no_difference():
    """A keeps `residual = x` and then passes x to its norm; B passes x once: A's second record is x again, not a
    difference with B's next record (the norm's output); the missing residual is found where it is dropped."""
    import numpy as np

    from parity_skill.runtime.diagnosis.statements import first_difference

    rng = np.random.default_rng(1)
    x, attn = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 4))
    normed = x / np.sqrt((x * x).mean(-1, keepdims=True))

    def rows(*items):
        return [[label, None, [(None, value)]] for label, value in items]

    a = rows(("a.py:3 residual", x), ("a.py:4 norm(argument 0)", x), ("a.py:5 attn(argument 0)", normed),
             ("a.py:6 out", x + attn))
    b = rows(("b.py:3 norm(argument 0)", x), ("b.py:3 attn(argument 0)", normed), ("b.py:5 out", attn))
    found = first_difference(a, b, 1e-5)
    assert (found["a_location"], found["b_location"]) == ("a.py:6", "b.py:5"), found


def test_a_difference_made_before_a_reshape_is_located_where_it_was_made_unless_the_reshape_is_wrong():
    """B's attention output is computed at one line (heads first) and reshaped at the next, where it first has
    A's shape: a wrong softmax axis is named at the computing line; a wrong transpose (the right values arranged
    wrongly) at the reshaping line."""
    import numpy as np

    from parity_skill.runtime.diagnosis.statements import first_difference

    rng = np.random.default_rng(2)
    heads = rng.standard_normal((2, 4, 3, 5))  # (batch, heads, seq, dim)

    def rows(*items):
        return [[label, None, [(None, value)]] for label, value in items]

    a = rows(("a.py:9 out", heads.transpose(0, 2, 1, 3).reshape(2, 3, 20)))
    wrong_values = heads + 0.1 * rng.standard_normal(heads.shape)
    b = rows(("b.py:7 out", wrong_values), ("b.py:8 out", wrong_values.transpose(0, 2, 1, 3).reshape(2, 3, 20)))
    assert first_difference(a, b, 1e-5)["b_location"] == "b.py:7"
    b = rows(("b.py:7 out", heads), ("b.py:8 out", heads.reshape(2, 3, 20)))  # transpose forgotten
    assert first_difference(a, b, 1e-5)["b_location"] == "b.py:8"
