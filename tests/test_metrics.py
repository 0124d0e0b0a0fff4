"""The comparison numbers behind every verdict."""
from __future__ import annotations

import numpy as np
import pytest

from parity_skill.runtime.judging.metrics import compare, scaled_atol
from parity_skill.runtime.judging.outputs import describe_mismatch, judge, match_outputs
from parity_skill.spec import Tolerance


def test_compare_figures_and_minimum_tolerance():
    a = np.array([1.0, 2.0, -3.0, 0.0])
    b = a + np.array([0.0, 1e-3, 0.0, 2e-3])
    c = compare(a, b, atol=1e-5, rtol=1e-6)
    assert not c["ok"] and c["mismatched"] == 2 and c["total"] == 4
    assert c["max_abs_diff"] == pytest.approx(2e-3) and c["worst_index"] == [3]
    assert c["min_tolerance"]["atol"] == pytest.approx(2e-3, rel=1e-3)
    assert compare(a, b, atol=c["min_tolerance"]["atol"], rtol=1e-6)["ok"]
    assert c["min_tolerance"]["rtol"] == pytest.approx((1e-3 - 1e-5) / 2.0)


def test_nonfinite_values_are_never_agreement():
    a = np.array([1.0, np.inf, np.nan, 4.0])
    same = compare(a, a.copy(), 1e-5, 0)
    assert not same["ok"] and same["mismatched"] == 2 and same["excluded"] == 2
    assert same["nonfinite_a"] == same["nonfinite_b"] == 2 and same["first_nonfinite_a"] == [1]
    assert same["min_tolerance"] is None  # no tolerance makes a NaN agree
    c = compare(np.array([1.0, 2.0]), np.array([1.0, np.inf]), 1e-5, 0)
    assert not c["ok"] and c["nonfinite_b"] == 1 and c["nonfinite_b_where_a_finite"] == 1 and c["worst_index"] == [1]
    assert c["max_abs_diff"] == 0.0 and c["cosine"] == 1.0  # figures on the finite values only, stated as such


def test_judged_message_states_the_excluded_values():
    a = np.zeros((2, 3))
    b = a.copy()
    b[1, 2] = np.nan
    j = judge([("", a)], [("", b)], Tolerance(1e-5, 0))
    assert not j["ok"]
    text = describe_mismatch(j["worst"], "output")
    assert "B is non-finite at 1/6 values (first at (1, 2))" in text and "figures on the 5 values" in text


def test_shape_mismatch_and_scaled_atol():
    assert compare(np.zeros((1, 1, 4)), np.zeros(4), 1, 1)["shape_mismatch"]
    assert scaled_atol(1e-5, np.array([3e4, -1.0])) == pytest.approx(0.3)
    assert scaled_atol(1e-5, np.array([1e-6])) == 1e-5


def test_outputs_match_first_by_shape_and_the_rest_by_key_when_counts_differ():
    out = np.ones((2, 3))
    qk = np.ones((2, 2))
    # (out, probs) vs (out, (k, v), qk): probs and qk share a shape but are different quantities; never compared
    pairs, extra_a, extra_b = match_outputs([("[0]", out), ("[1]", qk)], [("[0]", out), ("[1]", np.ones(5)), ("[2]", qk)])
    assert [(ka, kb) for ka, _, kb, _ in pairs] == [("[0]", "[0]")]
    assert extra_a == ["[1]"] and extra_b == ["[1]", "[2]"]
    pairs, _, _ = match_outputs([("", out)], [("[0]", out), ("[1]", qk)])  # the first output pairs by shape
    assert [(ka, kb) for ka, _, kb, _ in pairs] == [("", "[0]")]
    pairs, _, _ = match_outputs([("[0]", out), ("[1]", qk)], [("[0]", out), ("[1]", qk), ("[2]", qk)])
    assert [(ka, kb) for ka, _, kb, _ in pairs] == [("[0]", "[0]"), ("[1]", "[1]")]  # same key and shape
    j = judge([("[0]", out)], [("[0]", out), ("[1]", qk)], Tolerance(1e-5, 0), cosine_min=0.99)
    assert j["ok"] and j["notes"] == ["B has extra outputs [1] (not compared)"]
    extra = judge([("[0]", out), ("[1]", np.ones(7))], [("[0]", out), ("[1]", qk), ("[2]", qk)], Tolerance(1e-5, 0))
    assert extra["ok"] and extra["uncompared"] == ["[1]"]  # (out, attn) vs out: reported, not judged
    missing = judge([("[0]", np.ones(7)), ("[1]", out)], [("[0]", out)], Tolerance(1e-5, 0))
    assert not missing["ok"] and missing["missing_outputs"][0] == "[0]"  # A's first output must have a counterpart


def test_reported_minimum_atol_is_on_the_user_scale_and_exact():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 6, 8)) * 1e4
    b = a + rng.standard_normal(a.shape)
    failing = judge([("", a)], [("", b)], Tolerance(1e-5, 1.3e-6))
    assert not failing["ok"]
    need = failing["worst"]["min_tolerance"]["atol"]
    assert judge([("", a)], [("", b)], Tolerance(need * (1 + 1e-9), 1.3e-6))["ok"]
    assert not judge([("", a)], [("", b)], Tolerance(need * (1 - 1e-6), 1.3e-6))["ok"]


def test_a_stage_with_nothing_recorded_is_never_a_pass():
    from parity_skill.runtime.judging.stages import stage_row as _row

    b = [("stages/x/out/0", np.ones(3))]
    missing = _row("x", [("stages/x/out/0", None)], b, 1e-5, 0.999, None)
    empty = _row("x", [], b, 1e-5, 0.999, None)
    measured = _row("x", [("stages/x/out/0", np.ones(3))], b, 1e-5, 0.999, None)
    assert missing["status"] == empty["status"] == "skip" and measured["status"] == "pass"


def test_chunked_comparison_gives_the_one_pass_figures(monkeypatch):
    """Large tensors are compared chunk by chunk (memory); the figures must not depend on the chunking."""
    from parity_skill.runtime.judging import metrics
    rng = np.random.default_rng(3)
    a = rng.normal(size=(5, 7)).astype(np.float32)
    b = a + rng.normal(size=a.shape) * 1e-3
    b[2, 3], a[4, 6] = np.nan, np.inf
    cases = [(a, b), (a[:3], a[:3].copy()), (np.ones(9), np.ones(9)), (a[:2] * 0, a[:2] * 0 + 1e-9)]
    whole = [compare(x, y, 1e-5, 1e-4) for x, y in cases]
    monkeypatch.setattr(metrics, "CHUNK", 4)
    for (x, y), one in zip(cases, whole):
        chunked = compare(x, y, 1e-5, 1e-4)
        assert chunked.keys() == one.keys()
        for key, value in one.items():
            if isinstance(value, float):
                assert chunked[key] == pytest.approx(value, rel=1e-12, abs=1e-300), key
            else:
                assert chunked[key] == value, key


def test_cosine_and_pearson_of_zero_or_constant_vectors_are_undefined():
    zeros = compare(np.zeros(6), np.zeros(6), 1e-5, 0)
    assert zeros["ok"] and zeros["cosine"] is None and zeros["pearson"] is None
    assert zeros["undefined"] == {"cosine": "A and B are all zeros", "pearson": "A and B are constant"}
    one = compare(np.zeros(6), np.ones(6), 1e-5, 0)
    assert one["cosine"] is None and one["undefined"]["cosine"] == "A is all zeros"
    const = compare(np.full(6, 2.0), np.arange(6.0), 1e-5, 0)
    assert const["cosine"] is not None and const["pearson"] is None and const["undefined"] == {"pearson": "A is constant"}
    assert compare(np.arange(6.0), np.arange(6.0) * 2, 1e-5, 0)["undefined"] == {}


def test_backend_limits_are_told_apart_from_port_failures():
    from parity_skill.runtime.sides.failures import backend_limit

    assert backend_limit("RuntimeError: [GatherMM::eval] Currently only supports float32. (port.py:12)")
    assert backend_limit('RuntimeError: "addmm_impl_cpu_" not implemented for \'Half\'')
    assert backend_limit("ValueError: bfloat16 is not supported on this device")
    assert not backend_limit("RuntimeError: mat1 and mat2 shapes cannot be multiplied (18x32 and 64x8)")
    assert not backend_limit("ValueError: operands could not be broadcast together with shapes (3,6) (3,7)")


def test_stacked_expert_matrices_are_drawn_like_matrices():
    """transformers 5 keeps a mixture's experts as one (E, 2I, H) tensor: each slice gets fan-in H, not 2I*H (which
    made the outputs ~1e-3 and the fp32 tolerance 1% of the signal)."""
    from parity_skill.runtime.data.init import draw, role

    assert role("mlp.experts.gate_up_proj", (8, 128, 64), "Qwen2MoeExperts") == "matrices"
    assert role("conv.weight", (16, 8, 3), "Conv1d") == "matrix"
    w = draw("mlp.experts.gate_up_proj", (8, 128, 64), "matrices", 0)
    assert abs(float(w.std()) - 64 ** -0.5) < 0.01


def test_the_all_finite_path_gives_the_figures_of_the_masked_path():
    """Large comparisons take a path without masks when every value is finite; its figures are the masked path's."""
    from parity_skill.runtime.judging.metrics import _Sums

    rng = np.random.default_rng(3)
    a = rng.standard_normal(10_000) * 5
    b = a + rng.standard_normal(10_000) * 1e-5
    a[17] = 0.0
    b[17] = 1e-9  # a zero reference element: infinite relative difference
    a[23] = b[23] = 0.0
    fast, masked = _Sums(1e-5, 1.3e-6), _Sums(1e-5, 1.3e-6)
    fast._add_finite(0, a, b, float(a @ a), float(b @ b))
    masked._add_masked(0, a, b)
    for name in ("n_both", "mismatched", "worst_off", "worst_any", "max_diff", "max_rel", "min_atol", "min_rtol"):
        assert getattr(fast, name) == getattr(masked, name), name
    for name in ("dot", "aa", "bb", "sq", "sum_a", "sum_b"):
        assert np.isclose(getattr(fast, name), getattr(masked, name), rtol=1e-12), name


def test_rmses_read_the_reference_once_and_agree_with_rmse():
    from parity_skill.runtime.judging.metrics import rmse, rmses

    rng = np.random.default_rng(4)
    ref = rng.standard_normal((3, 1000))
    a, b = ref + 1e-3 * rng.standard_normal(ref.shape), ref + 2e-3 * rng.standard_normal(ref.shape)
    b[0, 5] = np.nan
    assert np.allclose(rmses(ref, a, b), [rmse(a, ref), rmse(b, ref)], rtol=1e-12)
    assert rmses(ref, np.full_like(ref, np.inf))[0] == np.inf


def test_a_non_finite_gradient_of_a_is_named_before_any_figure():
    """compare_grads reads each of A's gradients once: a NaN in one of A's is the check's error, named with its key."""
    from types import SimpleNamespace

    from parity_skill.runtime.checks.basic import compare_grads

    tol = SimpleNamespace(atol=1e-5, rtol=1e-5)
    good, bad = np.ones((3, 4), np.float32), np.ones((3, 4), np.float32)
    bad[1, 2] = np.nan
    ok, key, _, _, bad_a = compare_grads({"param grad 'w'": good, "param grad 'v'": bad},
                                         {"param grad 'w'": good, "param grad 'v'": good}, tol)
    assert not ok and bad_a.startswith("param grad 'v'") and "(1, 2)" in bad_a
    assert compare_grads({"param grad 'w'": good}, {"param grad 'w'": good}, tol)[4] is None


def test_the_rtol_that_would_pass_is_the_largest_need_of_the_elements_beyond_atol(monkeypatch):
    from parity_skill.runtime.judging import metrics

    rng = np.random.default_rng(5)
    a = rng.standard_normal(5000)
    b = a + rng.standard_normal(5000) * 1e-4
    a[7] = 0.0  # no rtol helps where A is 0
    need = max((abs(x - y) - 1e-5) / abs(x) for x, y in zip(a, b) if x != 0 and abs(x - y) > 1e-5)
    monkeypatch.setattr(metrics, "CHUNK", 512)
    assert compare(a, b, 1e-5, 0.0)["min_tolerance"]["rtol"] == pytest.approx(need, rel=1e-12)


def test_fresh_values_have_the_spread_of_their_role_in_float32():
    from parity_skill.runtime.data.init import draw

    w = draw("layers.0.mlp.up.weight", (256, 512), "matrix", 0)
    assert w.dtype == np.float32 and abs(float(w.std()) - 512 ** -0.5) < 0.002 and abs(float(w.mean())) < 0.002
    s = draw("norm.weight", (4096,), "scale", 0)
    assert abs(float(s.mean()) - 1.0) < 0.01 and abs(float(s.std()) - 0.1) < 0.005
    assert np.array_equal(w, draw("layers.0.mlp.up.weight", (256, 512), "matrix", 0))  # the seed and name alone
    assert not np.array_equal(w, draw("layers.1.mlp.up.weight", (256, 512), "matrix", 0))


def test_building_a_torch_side_skips_random_parameter_init_only():
    """Every trainable parameter is drawn afresh after building, so torch.nn.init's random fills write zeros
    there; buffers and frozen parameters are initialised as the code says."""
    torch = pytest.importorskip("torch")
    from parity_skill.runtime.adapters.torch_adapter import TorchAdapter

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(8, 8)
            self.frozen = torch.nn.Parameter(torch.empty(8), requires_grad=False)
            torch.nn.init.normal_(self.frozen)
            self.register_buffer("table", torch.nn.init.uniform_(torch.empty(8), 2.0, 3.0))

    built = TorchAdapter().build(Block, {}, drawn_afresh=True)
    assert not built.proj.weight.any() and not built.proj.bias.any()
    assert built.frozen.abs().sum() > 0 and bool(((built.table >= 2) & (built.table <= 3)).all())
    assert TorchAdapter().build(Block, {}).proj.weight.abs().sum() > 0
    assert torch.nn.init.normal_(torch.nn.Parameter(torch.zeros(4))).abs().sum() > 0  # restored afterwards


def test_a_scalar_parameter_is_loaded_as_a_scalar():
    """np.ascontiguousarray turns a 0-d array into shape (1,): loading a scalar parameter (XIELU's beta) raised
    "output with shape [] doesn't match the broadcast shape [1]" before any check ran."""
    torch = pytest.importorskip("torch")
    from parity_skill.runtime.adapters.torch_adapter import TorchAdapter

    class Scaled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.beta = torch.nn.Parameter(torch.tensor(0.5))

        def forward(self, x):
            return x * self.beta

    model = Scaled()
    TorchAdapter().load(model, {"beta": np.array(0.25, np.float32)})
    assert model.beta.shape == () and float(model.beta.detach()) == 0.25
