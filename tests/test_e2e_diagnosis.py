"""Say why and where: static findings, first divergent submodule, symptom diagnosis."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import fx, parity

pytest.importorskip("torch")

D = "diag/"


def diagnosis(run, kind: str) -> dict:
    return next(d for d in run.pair["diagnosis"] if d["kind"] == kind)


@pytest.mark.parametrize("b", ["block_silu.py", "block_silu_mlx.py"])
def test_silu_instead_of_gelu_localised_to_the_mlp(b):
    if b.endswith("mlx.py"):
        pytest.importorskip("mlx.core")
    run = parity(fx(D + "block_gelu.py::Block"), "vs", fx(D + b + "::Block"), "--json", "--quick")
    assert run.code == 1
    assert run.pair["first_divergence"] == "mlp.fc2"  # where the difference is first seen: it only carries it
    cause = run.pair["root_cause"]
    assert (cause["a"], cause["b"], cause["where"], cause["a_class"]) == ("mlp", "mlp", "own code", "MLP")
    assert "fc1 agree" in cause["evidence"] and "fc2 only carries the difference" in cause["evidence"]
    assert cause["a_location"] == fx(D + "block_gelu.py") + ":22"
    assert [f["kind"] for f in cause["findings"]] == ["approximation"]
    rows = {r["a"]: r for r in run.pair["submodules"]}
    for agreeing in ("norm1", "attn", "attn.qkv", "norm2", "mlp.fc1"):
        assert not rows[agreeing]["differs"], agreeing
    assert rows["mlp"]["differs"] and not rows["mlp"]["input_differs"]
    assert rows["mlp.fc2"]["input_differs"]
    d = diagnosis(run, "approximation")
    assert "A uses gelu, B uses silu" in d["message"] and d["location"] == fx(D + b) + (":31" if b == "block_silu.py" else ":28")


@pytest.mark.parametrize("mode", ["accumulated", "teacher-forced"])
def test_broken_block_of_twelve_is_localised(mode):
    args = ["--isolate"] if mode == "teacher-forced" else []
    run = parity(fx(D + "stack.py::Stack"), "vs", fx(D + "stack_broken.py::Stack"), "--json", "--quick", *args)
    assert run.pair["first_divergence"] == "blocks.7"
    rows = {r["a"]: r for r in run.pair["submodules"]}
    assert len([n for n in rows if n.count(".") == 1]) == 12
    assert all(not rows[f"blocks.{i}"]["differs"] for i in range(7))
    later = [rows[f"blocks.{i}"]["differs"] for i in range(8, 12)]
    assert all(later) if mode == "accumulated" else not any(later)
    assert run.pair["profile"][0] == f"({mode})"


def test_text_report_shows_profile_and_static_findings():
    run = parity(fx(D + "block_gelu.py::Block"), "vs", fx(D + "block_silu.py::Block"), "--quick")
    assert "Per-submodule error (A's names, execution order):" in run.stdout
    assert "First divergence: mlp" in run.stdout
    assert "Static findings:" in run.stdout and "|" in run.stdout


def test_embedding_without_sqrt_dim_gets_scale_with_the_factor():
    run = parity(fx("torch/embed_a.py"), "vs", fx(D + "embed_noscale.py"), "--json", "--quick")
    d = diagnosis(run, "scale")
    assert "B = 0.1768 * A = 1/sqrt(32)" in d["message"]


def test_dropped_bias_gets_missing_parameter_and_constant_offset():
    run = parity(fx("torch/ffn_module.py"), "vs", fx("torch/ffn_nobias.py"), "--json", "--quick")
    assert {"missing_parameter", "constant_offset"} <= run.kinds()
    assert diagnosis(run, "missing_parameter")["location"] == fx("torch/ffn_nobias.py") + ":11"
    assert run.pair["first_divergence"] == "fc2"


def test_token_mixer_missing_transpose_back():
    run = parity(fx(D + "mixer.py"), "vs", fx(D + "mixer_no_transpose_back.py"), "--json", "--quick")
    d = diagnosis(run, "transpose")
    assert "B.transpose(0, 2, 1) equals A" in d["message"]


def test_static_findings_name_both_locations():
    gelu = parity(fx("torch/ffn_module.py"), "vs", fx("torch/ffn_tanh.py"), "--json", "--quick")
    (f,) = gelu.pair["static_findings"]
    assert f["kind"] == "approximation"
    assert (f["a_location"], f["b_location"]) == (fx("torch/ffn_module.py") + ":9", fx("torch/ffn_tanh.py") + ":10")
    eps = parity(fx(D + "rmsnorm_eps6.py"), "vs", fx(D + "rmsnorm_eps5.py"), "--json", "--quick")
    (f,) = eps.pair["static_findings"]
    assert f["kind"] == "eps" and "A 1e-06" in f["message"] and "B 1e-05" in f["message"]
    assert (f["a_location"], f["b_location"]) == (fx(D + "rmsnorm_eps6.py") + ":6", fx(D + "rmsnorm_eps5.py") + ":6")
    assert eps.code == 0  # a static finding never decides the verdict on its own


def test_hard_coded_cuda_gets_a_device_diagnosis_not_a_crash():
    run = parity(fx("torch/ffn_module.py"), "vs", fx(D + "ffn_cuda.py"), "--json", "--quick")
    assert run.code == 2
    d = diagnosis(run, "device")
    assert d["location"] == fx(D + "ffn_cuda.py") + ":12"
    assert "Traceback" not in run.stderr and "ffn_cuda.py:12" in run.pair["error"]


@pytest.mark.parametrize("a, b", [("torch/attn_explicit.py", "torch/attn_sdpa.py"),
                                  ("torch/ffn_module.py", "torch/ffn_functional.py")])
def test_correct_ports_get_no_diagnosis(a, b):
    run = parity(fx(a), "vs", fx(b), "--json", "--quick")
    assert run.code == 0 and run.pair["diagnosis"] == [] and run.pair["first_divergence"] is None


def test_missing_attention_scale_is_a_static_finding_that_explains_the_failure():
    run = parity(fx("torch/attn_explicit.py"), "vs", fx(D + "attn_unscaled.py"), "--json", "--quick")
    assert run.status("forward") == "fail"
    (f,) = run.pair["static_findings"]
    assert f["kind"] == "scale" and f["a_location"] == fx("torch/attn_explicit.py") + ":22"
    assert diagnosis(run, "scale")["location"] == fx("torch/attn_explicit.py") + ":22"


def test_per_row_logit_offset_is_reported_as_softmax_invariant():
    run = parity(fx(D + "logits_head.py"), "vs", fx(D + "logits_head_centered.py"), "--json", "--quick")
    assert run.status("forward") == "fail"  # the values differ; the diagnosis says it is harmless to softmax
    d = diagnosis(run, "softmax_invariant")
    assert "a softmax over that axis is unchanged" in d["message"]
    assert "constant_offset" not in run.kinds()


@pytest.mark.parametrize("b, finding", [("attn_quarter.py", None), ("attn_sdpa.py", None),
                                        ("attn_bydim.py", "A by d^-0.5 (/ math.sqrt(self.head_dim)) vs B by d^-1")])
def test_attention_scale_written_differently_is_compared_by_value(b, finding):
    """d**-0.25 on q and on k is 1/sqrt(d) on the scores, as is SDPA's default; 1/d is not."""
    from parity_skill.analyze import analyze_file
    from parity_skill.plan.static_diff import static_diff

    fa, fb = analyze_file(fx(D + "scale/attn_sqrt.py")), analyze_file(fx(D + "scale/" + b))
    found = [f for f in static_diff(fa.symbol("Attention"), fa, fb.symbol("Attention"), fb) if f["kind"] == "scale"]
    assert [f["message"] for f in found if finding and finding in f["message"]] == [f["message"] for f in found]
    assert bool(found) == bool(finding)


def test_an_embedding_row_only_a_leaves_untrained_is_named_not_eps():
    """(Held out for #22: Seed-OSS's model.) A's Embedding has padding_idx=1, B's none: outputs agree, B's gradient of
    that one row is not zero. The diagnosis names the row, not a norm's eps."""
    from parity_skill.runtime.checks.basic import frozen_rows
    from parity_skill.spec import Tolerance

    run = parity(fx("torch/embed_padding.py::Embedder"), "vs", fx("torch/embed_no_padding.py::Embedder"), "--quick",
                 "--json")
    assert run.status("forward") == "pass" and run.status("backward") == "fail"
    (rows,) = [d for d in run.pair["diagnosis"] if d["kind"] == "frozen_rows"]
    assert "differs only in row 1," in rows["message"] and "embed.weight" in rows["message"]
    assert not any(d["kind"] == "eps" for d in run.pair["diagnosis"])
    tol = Tolerance(atol=1e-5, rtol=1e-6)
    a = np.ones((4, 3))
    a[2] = 0
    b = np.ones((4, 3))
    assert frozen_rows(a, b, tol) == [2]
    assert frozen_rows(a, a, tol) is None and frozen_rows(a, b * 2, tol) is None
