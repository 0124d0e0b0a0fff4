"""Sampling parity: distributions under the user's decoding settings, not only the argmax."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import fx, needs, parity
from parity_skill.runtime.checks.sampling import compare_distributions, distribution

pytest.importorskip("torch")

LM, DRIFT = fx("sampling/lm_head.py::TinyLM"), fx("sampling/lm_head_bf16_norm.py::TinyLM")


def test_a_small_logit_drift_passes_greedy_but_fails_sampling_with_the_estimate():
    run = parity(LM, "vs", DRIFT, "--json", "--quick", "--sampling", "temperature=0.8,top_p=0.95")
    c = run.check("sampling")
    assert c["top1_agreement"] == 1.0  # greedy decoding would never notice
    assert c["status"] == "fail" and c["settings"] == {"temperature": 0.8, "top_p": 0.95}
    assert "argmax agrees at all 192 positions, but under temperature=0.8, top_p=0.95" in c["message"]
    assert "expect the first divergence after ~" in c["message"] and c["tv_max"] > 0.01
    assert len(c["tv_curve"]) == 192 and c["positions"] == 192  # 3 sequences of 64 positions
    assert any(d["kind"] == "sampling" for d in run.pair["diagnosis"])


def test_a_correct_pair_passes_the_sampling_check_in_every_dtype():
    run = parity(fx("torch/attn_explicit.py"), "vs", fx("torch/attn_sdpa.py"), "--json", "--logits",
                 "--edge", "", "--batch-sizes", "1")
    c = run.check("sampling")
    assert c["status"] == "pass", c["message"]
    assert c["tv_mean"] < 1e-5 and set(c["low_precision"]) == {"fp16", "bf16"}


def test_sampling_settings_are_checked_at_the_cli():
    run = parity(LM, "vs", DRIFT, "--sampling", "temprature=0.8")
    assert run.code == 2 and "temprature=0.8" in run.stderr and "temperature" in run.stderr


def test_top_p_keeps_the_token_that_crosses_the_threshold_and_ties_at_top_k():
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]]))
    p = distribution(logits, {"temperature": 1.0, "top_p": 0.7})
    assert np.count_nonzero(p) == 2 and np.isclose(p[0, 1], 0.3 / 0.8)  # 0.5 alone < 0.7: 0.3 crosses it, kept
    assert np.count_nonzero(distribution(logits, {"temperature": 1.0, "top_p": 1.0})) == 4
    tied = np.array([[2.0, 1.0, 1.0, 0.0]])
    assert np.count_nonzero(distribution(tied, {"temperature": 1.0, "top_k": 2})) == 3  # a tie at the cut-off stays


def test_degenerate_rows_and_temperature_near_zero():
    one = np.array([[-np.inf, 3.0, -np.inf, -np.inf]])
    assert distribution(one, {"temperature": 0.7, "top_p": 0.9, "min_p": 0.1})[0].tolist() == [0, 1, 0, 0]
    cold = distribution(np.array([[1.0, 1.001, 0.5]]), {"temperature": 1e-4})
    assert cold.argmax() == 1 and cold.max() > 0.99


def test_repetition_penalty_touches_only_each_rows_history():
    logits = np.array([[2.0, -1.0, 0.5], [2.0, -1.0, 0.5]])
    p = distribution(logits, {"temperature": 1.0, "repetition_penalty": 2.0},
                     [np.array([0]), np.array([1])])
    base = distribution(logits, {"temperature": 1.0})
    assert p[0, 0] < base[0, 0] and p[1, 1] < base[1, 1]  # a seen token: positive logit halved, negative doubled
    assert np.isclose(p[0, 2] / p[0, 1], base[0, 2] / base[0, 1])  # unseen tokens keep their ratio


def test_coupled_sampling_estimate_matches_total_variation():
    rng = np.random.default_rng(0)
    la = rng.normal(size=(400, 16))
    lb = la + rng.normal(scale=0.3, size=la.shape)
    pa, pb = distribution(la, {"temperature": 1.0}), distribution(lb, {"temperature": 1.0})
    f = compare_distributions(pa, pb, la, lb, 0)
    assert 0.5 * f["tv_mean"] < f["gumbel_differ"] < 2.0 * f["tv_mean"]  # Gumbel coupling is near the optimum


PROC = "sampling/processors_torch.py::top_p_filter"


def test_off_by_one_top_p_fails_on_the_tie_and_threshold_cases():
    run = parity(fx(PROC), "vs", fx("sampling/processors_offbyone.py::top_p_filter"), "--json")
    plain = run.pair
    status = {c["name"]: c["status"] for c in plain["checks"]}
    assert status["forward"] == "fail" and status["edge:ties"] == "fail"
    (at_one,) = [p for p in run.variants if p["variant"].startswith("top_p=1")]
    assert at_one["verdict"] == "fail"  # at top_p = 1.0 every token must stay; the port still drops some
    assert {c["name"] for c in at_one["checks"]} == {"weights", "forward", "edge:zeros", "edge:large", "edge:tiny",
                                                     "edge:offset", "edge:seq_len_1", "edge:ties", "edge:one_finite"}


def test_a_correct_processor_port_passes_and_ties_broken_another_way_are_said_so():
    run = parity(fx("sampling/processors_torch.py"), "vs", fx("sampling/processors_numpy.py"), "--json")
    assert run.code == 0, [(p["a"]["symbol"], p.get("variant"), p["verdict"]) for p in run.report["pairs"]]
    variants = sorted(p.get("variant", "") for p in run.report["pairs"])
    assert variants == ["", "", "temperature=0.0001 (temperature / temperature)", "top_p=1 (top_p / top_p)"]
    top_p = next(p for p in run.report["pairs"] if p["a"]["symbol"] == "top_p_filter" and not p.get("variant"))
    ties = next(c for c in top_p["checks"] if c["name"] == "edge:ties")
    assert ties["status"] == "pass" and "ties are broken another way" in ties["message"]
    assert "judged by the distribution it leaves" in " ".join(top_p["notes"])


def test_filter_and_temperature_in_another_order_is_a_static_finding():
    run = parity(fx("sampling/warp_temperature_first.py::warp"), "vs", fx("sampling/warp_filter_first.py::warp"),
                 "--json", "--quick")
    (order,) = [f for f in run.pair["static_findings"] if f["kind"] == "order"]
    assert "A applies temperature, then the filter; B applies the filter, then temperature" in order["message"]
    assert order["a_location"].endswith("warp_temperature_first.py:6")
    assert run.status("forward") == "fail"


def test_the_emitted_script_keeps_each_pairs_own_checks(tmp_path):
    script = tmp_path / "check.py"
    parity(fx(PROC), "vs", fx("sampling/processors_numpy.py::top_p_filter"), "--quick", "--emit", str(script))
    text = script.read_text()
    assert text.count("checks=CHECKS,") == 1  # the plain pair; its variant runs forward only
    assert "checks=replace(CHECKS, names=('forward',)),  # this pair's own checks" in text
    assert "variant='top_p=1 (top_p / top_p)'" in text and "reads='probabilities'" in text


def test_generate_localises_the_first_differing_step():
    """Positions past 12 clamped in the port: 6 prompt tokens agree, and decoding differs from step 8 on."""
    run = parity(fx("sampling/lm_positions.py::PosLM"), "vs", fx("sampling/lm_positions_clamped.py::PosLM"), "--json",
                 "--quick", "--generate", "16", "--sampling", "temperature=0.8")
    assert run.status("forward") == "pass"  # the prompt alone never reaches position 13
    c = run.check("generate")
    assert c["status"] == "fail" and c["first_top1_step"] == 8 and c["greedy"]["distribution"] == 8
    assert c["first_sampled_step"] is not None and c["first_sampled_step"] >= 8
    assert all(k < 1e-9 for k in c["kl_curve"][:8]) and c["kl_curve"][8] > 1e-3 and len(c["kl_curve"]) == 16
    assert "top-1 first differs at step 8" in c["message"] and "KL per step |" in c["message"]
    assert any("neither side's forward takes a cache argument" in n for n in run.pair["notes"])


def test_generate_passes_a_faithful_port():
    run = parity(fx("sampling/lm_positions.py::PosLM"), "vs", fx("sampling/lm_positions.py::PosLM"), "--json",
                 "--quick", "--generate", "12")
    c = run.check("generate")
    assert c["status"] == "pass" and c["first_top1_step"] is None and c["first_sampled_step"] is None
    assert len(c["greedy"]["tokens"]) == 12


def test_a_model_ending_in_a_vocabulary_projection_gets_the_sampling_check_unasked():
    run = parity(LM, "vs", DRIFT, "--json", "--dtypes", "fp32", "--edge", "", "--batch-sizes", "1")
    c = run.check("sampling")
    assert c["settings"] == {"temperature": 1.0} and c["top1_agreement"] == 1.0
    assert any("both sides end in a vocabulary projection (A self.lm_head, B self.lm_head)" in n
               for n in run.pair["notes"])
    quick = parity(LM, "vs", DRIFT, "--json", "--quick")
    assert "sampling" not in {c["name"] for c in quick.pair["checks"]}
    block = parity(fx("diag/block_gelu.py::Block"), "vs", fx("diag/block_silu.py::Block"), "--json", "--dtypes",
                   "fp32", "--edge", "", "--batch-sizes", "1")
    assert "sampling" not in {c["name"] for c in block.pair["checks"]}


PENALTY = "sampling/penalty_{}.py::repetition_penalty"


def test_repetition_penalty_pairs_get_a_token_history_of_the_vocabulary():
    """Logits as (batch, vocab), histories as (batch, 8) ids of that vocabulary, a different one per row (tokens
    absent from a history keep their logit); dividing negative logits too is caught."""
    run = parity(fx(PENALTY.format("numpy")), "vs", fx(PENALTY.format("torch")), "--json", "--quick")
    assert run.report["verdict"] == "pass", run.stderr
    assert run.report["pairs"][0]["inputs"][0]["shape"] == [3, 32]
    assert any("input 'input_ids': shape (3, 8) ids in [0, 32), a token history per row" in n for n in run.pair["notes"])
    bug = parity(fx(PENALTY.format("numpy")), "vs", fx(PENALTY.format("divides_all")), "--json")
    assert bug.status("forward") == "fail" and bug.status("edge:ties") == "fail"


@needs("transformers")
def test_a_transformers_logits_warper_is_the_reference():
    """`transformers.TopPLogitsWarper` is read from its own file: built with top_p, called as (input_ids, scores)
    with a history it alone takes. The off-by-one port fails against it; a correct one passes every variant."""
    off = parity(fx("sampling/processors_offbyone.py::top_p_filter"), "vs", "transformers.TopPLogitsWarper", "--json")
    assert off.report["verdict"] == "fail" and off.status("forward") == "fail" and off.status("edge:ties") == "fail"
    assert off.pair["b"]["path"].endswith("transformers/generation/logits_process.py")
    assert any("a token history per row (B only)" in n for n in off.pair["notes"])
    (variant,) = off.variants
    assert variant["variant"].startswith("top_p=1") and variant["verdict"] == "fail"
    good = parity(fx(PROC), "vs", "transformers.TopPLogitsWarper", "--json")
    assert good.report["verdict"] == "pass" and all(p["verdict"] == "pass" for p in good.report["pairs"])
    penalty = parity(fx(PENALTY.format("numpy")), "vs", "transformers.RepetitionPenaltyLogitsProcessor", "--json")
    assert penalty.report["verdict"] == "pass", penalty.stderr
    missing = parity(fx(PROC), "vs", "transformers.NoSuchWarper")
    assert missing.code == 2 and "transformers.NoSuchWarper: cannot find its source file" in missing.stderr


def test_guidance_is_judged_by_the_distribution_it_leaves():
    """Guidance on log-probabilities differs from guidance on logits by a per-row constant: the same distribution.
    Pushing from the conditional logits is a different one."""
    a = fx("sampling/guidance_numpy.py::cfg_combine")
    assert parity(a, "vs", fx("sampling/guidance_torch.py::cfg_combine"), "--json", "--quick").report["verdict"] == "pass"
    bug = parity(a, "vs", fx("sampling/guidance_swapped.py::cfg_combine"), "--json", "--quick")
    assert bug.status("forward") == "fail"
