"""End to end through the CLI on real torch pairs (issue: the core pipeline)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import fx, parity

pytest.importorskip("torch")

T = "torch/"


def test_refactor_module_vs_functional_passes_every_check():
    run = parity(fx(T + "ffn_module.py"), "vs", fx(T + "ffn_functional.py"), "--json")
    assert run.code == 0, run.stdout
    assert run.report["verdict"] == "pass"
    statuses = {c["name"]: c["status"] for c in run.pair["checks"]}
    assert set(statuses.values()) == {"pass"}
    assert {"forward", "backward", "fp16", "bf16", "batch", "edge:tiny", "determinism:b"} <= set(statuses)
    fwd = run.check("forward")
    assert fwd["max_abs_diff"] <= 1e-5 and fwd["mismatched"] == 0 and fwd["cosine"] > 0.999999
    assert fwd["tolerance"] == {"atol": 1e-05, "rtol": 1.3e-06}


def test_explicit_softmax_attention_vs_sdpa_passes():
    run = parity(fx(T + "attn_explicit.py"), "vs", fx(T + "attn_sdpa.py"), "--json")
    assert run.code == 0, [c for c in run.pair["checks"] if c["status"] != "pass"]
    assert run.check("forward")["max_abs_diff"] < 1e-5
    assert run.pair["inputs"][0]["shape"] == [3, 6, 32]


def test_exact_vs_tanh_gelu_fails_forward():
    run = parity(fx(T + "ffn_module.py"), "vs", fx(T + "ffn_tanh.py"), "--json", "--quick")
    assert run.code == 1
    fwd = run.check("forward")
    assert fwd["status"] == "fail" and 1e-5 < fwd["max_abs_diff"] < 1e-2
    assert fwd["mismatched"] > 0 and len(fwd["worst_index"]) == 3
    # the reported minimum tolerance really is the minimum: a hair above passes, a hair below fails
    need = fwd["min_tolerance"]["atol"]
    above = parity(fx(T + "ffn_module.py"), "vs", fx(T + "ffn_tanh.py"), "--json", "--quick", "--atol", repr(need * 1.001))
    below = parity(fx(T + "ffn_module.py"), "vs", fx(T + "ffn_tanh.py"), "--json", "--quick", "--atol", repr(need * 0.99))
    assert above.status("forward") == "pass" and below.status("forward") == "fail"


def test_wrong_custom_backward_passes_forward_fails_backward():
    run = parity(fx(T + "square_autograd.py"), "vs", fx(T + "custom_backward.py"), "--json", "--quick")
    assert run.code == 1
    assert run.status("forward") == "pass"
    back = run.check("backward")
    assert back["status"] == "fail" and back["max_abs_diff"] > 1.0
    assert "forward agrees" in back["message"]


def test_detached_norm_statistics_fail_only_the_input_gradient():
    run = parity(fx(T + "layernorm_manual.py"), "vs", fx(T + "layernorm_detached.py"), "--json", "--quick")
    assert run.status("forward") == "pass"
    back = run.check("backward")
    assert back["status"] == "fail" and back["where"] == "input grad 'x'"


def test_integer_tokens_through_an_embedding():
    run = parity(fx(T + "embed_a.py"), "vs", fx(T + "embed_b.py"), "--json")
    assert run.code == 0, run.pair["checks"]
    (spec,) = run.pair["inputs"]
    assert spec["dtype"] == "int64" and spec["high"] == 64 and spec["shape"] == [3, 6]
    assert run.check("edge:large")["message"].startswith("ids at vocab-1")
    assert run.status("edge:tiny") == "skip"
    assert run.check("backward")["where"].startswith("param grad 'emb.weight'")


def test_dataclass_config_constructor_is_shrunk_and_built():
    run = parity(fx(T + "llama_a.py"), "vs", fx(T + "llama_b.py"), "--json", "--quick")
    assert run.code == 0, run.stdout
    assert run.pair["inputs"][0]["shape"] == [3, 6, 32]
    assert any("default 4096 replaced" in n for n in run.pair["notes"])
    mapped = {e["a"]: e["b"] for e in run.pair["weight_map"]}
    assert mapped == {"w1.weight": "gate_proj.weight", "w2.weight": "down_proj.weight", "w3.weight": "up_proj.weight"}


def test_renamed_parameters_with_equal_structure_pass():
    run = parity(fx(T + "ffn_module.py::FeedForward"), "vs", fx(T + "ffn_renamed.py::MLP"), "--json")
    assert run.code == 0
    assert {(e["a"], e["b"], e["how"]) for e in run.pair["weight_map"]} >= {  # module trees aligned, then leaves
        ("fc1.weight", "up_proj.weight", "module"), ("fc2.bias", "down_proj.bias", "module")}


def test_differing_non_persistent_buffer_is_not_copied_and_fails():
    run = parity(fx(T + "rope_a.py"), "vs", fx(T + "rope_wrong_base.py"), "--json", "--quick")
    assert run.code == 1
    assert run.status("forward") == "fail"
    assert run.pair["weight_map"] == [] and run.pair["unmapped"] == {"a": [], "b": []}
    assert run.pair["inputs"][0]["shape"] == [3, 4, 6, 8]  # (batch, heads, seq, head_dim) from x.shape[-2]


def test_missing_bias_fails_and_names_the_parameter():
    run = parity(fx(T + "ffn_module.py"), "vs", fx(T + "ffn_nobias.py"), "--json", "--quick")
    assert run.code == 1
    assert run.status("weights") == "fail"
    assert run.pair["unmapped"]["a"] == ["fc2.bias"]
    assert any(d["kind"] == "missing_parameter" and "fc2.bias" in d["message"] for d in run.pair["diagnosis"])


def test_whole_file_pairing_of_three_classes():
    run = parity(fx(T + "blocks_a.py"), "vs", fx(T + "blocks_b.py"), "--json", "--quick")
    assert run.code == 1
    verdicts = {p["a"]["symbol"]: p["verdict"] for p in run.report["pairs"]}
    assert verdicts == {"RMSNorm": "pass", "MLP": "fail", "Block": "fail"}


def test_text_report_has_the_seed_block():
    run = parity(fx(T + "ffn_module.py"), "vs", fx(T + "ffn_tanh.py"), "--quick")
    lines = run.stdout.splitlines()
    assert lines[0] == "=== Numerical Parity Report ==="
    assert lines[1] == f"Implementation A: {fx(T + 'ffn_module.py')}::FeedForward (torch)"
    assert lines[3].startswith("Forward pass:  FAIL (max diff: ")
    assert lines[4].startswith("Backward pass: FAIL (max grad diff: ")
    assert "would pass with atol >=" in run.stdout
    assert lines[-1] == "Verdict: FAIL"


def test_emitted_script_reruns_alone_with_the_same_verdicts(tmp_path):
    script = tmp_path / "parity_feedforward.py"
    run = parity(fx(T + "ffn_module.py::FeedForward"), "vs", fx(T + "ffn_tanh.py::FeedForward"),
                 "--emit", str(script), "--json")
    source = script.read_text()
    assert "Implementation('tests/fixtures/torch/ffn_module.py', 'FeedForward'" in source
    assert "InputSpec(name='x', shape=(3, 6, 32)" in source
    proc = subprocess.run([sys.executable, str(script), "--json"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == run.code == 1
    rerun = json.loads(proc.stdout)
    assert [(c["name"], c["status"]) for c in rerun["pairs"][0]["checks"]] == \
        [(c["name"], c["status"]) for c in run.pair["checks"]]
    assert rerun["pairs"][0]["checks"][1]["max_abs_diff"] == run.check("forward")["max_abs_diff"]


def test_python_dash_m_help():
    proc = subprocess.run([sys.executable, "-m", "parity_skill", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "parity-skill a.py vs b.py" in proc.stdout
