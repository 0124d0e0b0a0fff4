"""Diagnosis on a whole model: a 12-layer Llama-like PyTorch model against its MLX port, with one bug patched into
a copy of the port per test. The report must land on the module and the line, and say nothing on the correct port."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import fx, parity

pytest.importorskip("torch")
pytest.importorskip("mlx.core")

A = fx("diag/tinylm/modeling_tiny.py") + "::TinyModel"
PORT = Path(fx("diag/tinylm/tiny_mlx.py"))


def line_of(path: Path | str, text: str) -> int:
    source = Path(path).read_text()
    return source[:source.index(text)].count("\n") + 1


def patched(tmp_path: Path, before: str, after: str, extra: str = "") -> Path:
    source = PORT.read_text()
    assert before in source
    out = tmp_path / "tiny_port.py"
    out.write_text(source.replace(before, after).replace("class TransformerBlock(nn.Module):",
                                                         extra + "class TransformerBlock(nn.Module):"))
    return out


def run_on(port: Path, *options: str):
    return parity(A, "vs", f"{port}::TinyModel", "--json", "--quick", *options)


def test_correct_port_gets_no_diagnosis():
    run = run_on(PORT)
    assert run.code == 0, run.stdout
    assert run.pair["diagnosis"] == [] and run.pair["static_findings"] == []
    assert "root_cause" not in run.pair and "backward_root_cause" not in run.pair


def test_eps_bug_gets_an_eps_diagnosis_with_both_values_and_lines(tmp_path):
    """Config eps 1e-5, the port hard-codes 1e-6 in one norm: a few elements differ (backward, and forward too
    with some weight draws)."""
    port = patched(tmp_path, "self.post_attention_layernorm = nn.RMSNorm(args.hidden_size, eps=args.rms_norm_eps)",
                   "self.post_attention_layernorm = nn.RMSNorm(args.hidden_size, eps=1e-6)")
    run = run_on(port)
    assert run.status("backward") == "fail"
    (eps,) = [d for d in run.pair["diagnosis"] if d["kind"] == "eps"]
    assert "A 1e-05 (config.rms_norm_eps=1e-05)" in eps["message"] and "B 1e-06" in eps["message"]
    assert eps["a_location"] == fx("diag/tinylm/modeling_tiny.py") + ":" + str(
        line_of(fx("diag/tinylm/modeling_tiny.py"), "self.post_attention_layernorm = TinyRMSNorm"))
    assert eps["b_location"] == f"{port}:{line_of(port, 'eps=1e-6')}"
    assert "custom backward" not in eps["message"]  # eps first, not the custom-backward causes


def test_rope_convention_bug_gets_a_finding_at_the_rope_line(tmp_path):
    port = patched(tmp_path, "traditional=False", "traditional=True")
    run = run_on(port)
    assert run.status("forward") == "fail"
    cause = run.pair["root_cause"]
    assert cause["a"] == "layers.0.self_attn" and cause["where"] == "own code"
    (rope,) = [f for f in cause["findings"] if "RoPE" in f["message"]]
    assert rope["b_location"] == f"{port}:{line_of(port, 'nn.RoPE(')}"


@pytest.mark.parametrize("mode", ["accumulated", "teacher-forced"])
def test_gelu_swap_in_the_mlp_of_a_whole_model_is_the_root_cause(tmp_path, mode):
    port = patched(tmp_path, "nn.gelu(self.up_proj", "nn.gelu_approx(self.up_proj")
    run = run_on(port, *(["--isolate"] if mode == "teacher-forced" else []))
    cause = run.pair["root_cause"]
    assert (cause["a"], cause["b"], cause["a_class"], cause["b_class"]) == ("layers.0.mlp", "layers.0.mlp",
                                                                             "TinyMLP", "MLP")
    (gelu,) = [f for f in cause["findings"] if f["kind"] == "approximation"]
    assert gelu["b_location"] == f"{port}:{line_of(port, 'nn.gelu_approx(')}"
    assert gelu["a_location"] == fx("diag/tinylm/modeling_tiny.py") + ":" + str(
        line_of(fx("diag/tinylm/modeling_tiny.py"), "F.gelu("))
    if mode == "accumulated":  # the first place a difference is seen only carries it
        assert run.pair["first_divergence"] == "layers.0.mlp.down_proj"
        rows = {r["a"]: r for r in run.pair["submodules"]}
        assert rows["layers.0.mlp.down_proj"]["input_differs"] and not rows["layers.0.mlp"]["input_differs"]


@pytest.mark.parametrize("mode", ["accumulated", "teacher-forced"])
def test_bug_in_layer_7_of_12_is_the_root_cause_in_both_modes(tmp_path, mode):
    port = patched(tmp_path, "[TransformerBlock(args) for _ in range(args.num_hidden_layers)]",
                   "[TransformerBlock(args) if i != 7 else NoResidualBlock(args) for i in range(args.num_hidden_layers)]")
    port.write_text(port.read_text() + '''

class NoResidualBlock(TransformerBlock):
    def __call__(self, x):
        h = self.self_attn(self.input_layernorm(x))
        return h + self.mlp(self.post_attention_layernorm(h))
''')
    run = run_on(port, *(["--isolate"] if mode == "teacher-forced" else []))
    cause = run.pair["root_cause"]
    assert (cause["a"], cause["where"], cause["b_class"]) == ("layers.7", "own code", "NoResidualBlock")
    assert run.pair["static_findings"] == []  # the subclass hides no activation: no false finding
    rows = {r["a"]: r for r in run.pair["submodules"]}
    assert all(not rows[f"layers.{i}"]["differs"] for i in range(7))


def test_detached_statistic_is_localised_in_the_backward_pass(tmp_path):
    extra = '''class DetachedRMSNorm(nn.Module):
    def __init__(self, dims, eps=1e-5):
        super().__init__()
        self.weight = mx.ones((dims,))
        self.eps = eps

    def __call__(self, x):
        scale = mx.stop_gradient(mx.rsqrt(mx.mean(x * x, axis=-1, keepdims=True) + self.eps))
        return self.weight * (x * scale)


'''
    port = patched(tmp_path, "self.post_attention_layernorm = nn.RMSNorm(", "self.post_attention_layernorm = "
                   "DetachedRMSNorm(", extra)
    run = run_on(port)
    assert run.status("forward") == "pass" and run.status("backward") == "fail"
    cause = run.pair["backward_root_cause"]
    assert (cause["a"], cause["b_class"], cause["direction"]) == ("layers.11.post_attention_layernorm",
                                                                  "DetachedRMSNorm", "backward")
    text = parity(A, "vs", f"{port}::TinyModel", "--quick").stdout
    assert "Root cause (backward): layers.11.post_attention_layernorm" in text
    assert text.index("Likely causes") < text.index("Checks:")
