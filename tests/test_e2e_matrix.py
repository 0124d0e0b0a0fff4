"""The full check matrix end to end: real port bugs are caught where they live, correct ports never alarm."""
from __future__ import annotations

import pytest

from conftest import fx, parity

pytest.importorskip("torch")

T = "torch/"
REF_RMS = fx(T + "rmsnorm_rsqrt.py")
REF_LN = fx(T + "layernorm_manual.py")


def test_eps_outside_sqrt_passes_forward_fails_edge_tiny():
    run = parity(REF_RMS, "vs", fx(T + "rmsnorm_eps_outside.py"), "--json")
    assert run.status("forward") == "pass"
    tiny = run.check("edge:tiny")
    assert tiny["status"] == "fail" and tiny["max_abs_diff"] > 0.1
    assert run.status("edge:large") == "pass"


def test_naive_softmax_passes_forward_fails_edge_large_with_nan_inf():
    run = parity(fx(T + "softmax_stable.py"), "vs", fx(T + "softmax_naive.py"), "--json")
    assert run.status("forward") == "pass"
    assert run.status("edge:large") == "fail"
    assert any(d["kind"] == "nan_inf" and d["check"] == "edge:large" for d in run.pair["diagnosis"])
    assert run.status("backward") == "pass"  # function symbols are differentiated too


def test_one_pass_variance_fails_edge_offset():
    run = parity(REF_LN, "vs", fx(T + "layernorm_onepass.py"), "--json")
    assert run.status("forward") == "pass"
    assert run.status("edge:offset") == "fail"
    assert run.check("edge:offset")["max_abs_diff"] > 1e-3


def test_batch_statistics_fail_batch_with_batch_coupling():
    run = parity(REF_LN, "vs", fx(T + "layernorm_batchstats.py"), "--json")
    batch = run.check("batch")
    assert batch["status"] == "fail"
    assert "A: samples independent; B: couples samples" in batch["message"]
    assert any(d["kind"] == "batch_coupling" and d["message"].startswith("B mixes samples")
               for d in run.pair["diagnosis"])


def test_stray_squeeze_fails_seq_len_1_with_shape_message():
    run = parity(REF_RMS, "vs", fx(T + "rmsnorm_squeeze.py"), "--json")
    assert run.status("forward") == "pass"
    check = run.check("edge:seq_len_1")
    assert check["status"] == "fail"
    assert "shape A (1, 1, 32) vs B (32,)" in check["message"]
    assert "shape" in run.kinds()


def test_noise_in_forward_fails_determinism_b():
    run = parity(REF_RMS, "vs", fx(T + "rmsnorm_noisy.py"), "--json")
    assert run.status("determinism:a") == "pass"
    det = run.check("determinism:b")
    assert det["status"] == "fail" and det["max_abs_diff"] > 0
    assert "nondeterministic" in run.kinds()
    assert "batch_coupling" not in run.kinds()  # noise is not mistaken for coupling


def test_norm_in_input_dtype_warns_at_the_stress_scale_and_fails_with_strict():
    """Squaring in fp16 overflows only at 128x the activation scale: the operating point agrees, so it is a
    warning with its figures (PASS with warnings, exit 0); --strict makes it the failure it is under that rule."""
    run = parity(REF_RMS, "vs", fx(T + "rmsnorm_lowprec.py"), "--json")
    assert run.status("forward") == "pass" and run.code == 0
    fp16 = run.check("fp16")
    assert fp16["status"] == "pass" and "activation scale x128" in fp16["warning"]
    assert fp16["b_error"] < 3 * fp16["a_error"] + 1e-4  # judged at the unit scale
    assert run.pair["warnings"] == [f"fp16: {fp16['warning']}"] and run.report["warnings"] == run.pair["warnings"]
    text = parity(REF_RMS, "vs", fx(T + "rmsnorm_lowprec.py"))
    assert "Verdict: PASS with warnings" in text.stdout
    strict = parity(REF_RMS, "vs", fx(T + "rmsnorm_lowprec.py"), "--json", "--strict")
    assert strict.code == 1 and strict.status("fp16") == "fail" and "--strict:" in strict.check("fp16")["message"]
    assert run.status("bf16") == "pass"


@pytest.mark.parametrize("a, b", [
    ("attn_explicit.py", "attn_sdpa.py"),
    ("gelu_module.py", "gelu_functional.py"),
    ("rmsnorm_rsqrt.py", "rmsnorm_div_sqrt.py"),
    ("ffn_module.py", "ffn_functional.py"),
])
def test_correct_ports_raise_no_false_alarm(a, b):
    run = parity(fx(T + a), "vs", fx(T + b), "--json")
    bad = [(c["name"], c["message"]) for c in run.pair["checks"] if c["status"] not in ("pass", "skip")]
    assert run.code == 0 and not bad, bad
    assert run.pair["diagnosis"] == []
    for name in ("fp16", "bf16"):
        c = run.check(name)
        assert c["a_error"] > 0 and c["ratio"] < 3


def test_text_report_shows_the_matrix():
    run = parity(REF_RMS, "vs", fx(T + "rmsnorm_lowprec.py"), "--strict")
    out = run.stdout
    for head in ("Forward pass:  PASS", "Backward pass: PASS", "FP16 forward:  FAIL (B err", "BF16 forward:  PASS",
                 "Batch sizes:   PASS", "Edge cases:    PASS", "Determinism:   PASS"):
        assert head in out, out
    assert "[precision]" in out and "activation scale x128" in out


def test_options_select_checks():
    quick = parity(REF_RMS, "vs", fx(T + "rmsnorm_div_sqrt.py"), "--json", "--quick")
    assert [c["name"] for c in quick.pair["checks"]] == ["weights", "forward", "backward"]
    some = parity(REF_RMS, "vs", fx(T + "rmsnorm_div_sqrt.py"), "--json", "--dtypes", "fp32,bf16",
                  "--edge", "zeros,tiny", "--no-backward", "--batch-sizes", "1,3")
    names = [c["name"] for c in some.pair["checks"]]
    assert names == ["weights", "forward", "bf16", "batch", "edge:zeros", "edge:tiny", "determinism:a",
                     "determinism:b"]
    assert "batch of 3" in some.check("batch")["message"]


def test_level_and_cosine_change_the_judgement():
    loose = parity(fx(T + "ffn_module.py"), "vs", fx(T + "ffn_tanh.py"), "--json", "--quick", "--level", "model")
    assert loose.check("forward")["tolerance"]["atol"] == pytest.approx(1e-3)
    assert loose.status("forward") == "pass"
    strict = parity(fx(T + "ffn_module.py"), "vs", fx(T + "ffn_tanh.py"), "--json", "--quick", "--level", "model",
                    "--cosine", "0.99999999")
    assert strict.status("forward") == "fail" and "cosine" in strict.check("forward")["message"]
