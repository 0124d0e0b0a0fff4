"""--generate with KV caches: each side's cached decoding against its own full recomputation."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import ROOT, fx, parity
from parity_skill.runtime.checks.cached_decode import _last_positions, cache_parameter, returned_cache

pytest.importorskip("torch")

GPT = fx("cache/gpt_cached.py::TinyGPT")
CORRECT = "positions = torch.arange(past, past + input_ids.shape[1])"


@pytest.fixture(scope="module")
def no_offset(tmp_path_factory) -> str:
    """The tiny GPT port with a cache bug: positions restart at 0 on every cached call (one line changed)."""
    source = (ROOT / fx("cache/gpt_cached.py")).read_text()
    assert CORRECT in source
    path = tmp_path_factory.mktemp("port") / "gpt_cached_no_offset.py"
    path.write_text(source.replace(CORRECT, "positions = torch.arange(input_ids.shape[1])"))
    return f"{path}::TinyGPT"


def test_a_cache_that_forgets_its_position_offset_fails_and_is_located(no_offset):
    """The port agrees on every full-sequence check; only its cached path restarts positions at 0."""
    run = parity(GPT, "vs", no_offset, "--json", "--quick", "--generate", "8")
    assert run.status("forward") == "pass"
    c = run.check("generate")
    assert c["status"] == "fail" and c["first_top1_step"] is None  # recomputed decoding agrees throughout
    a, b = c["cache"]["a"], c["cache"]["b"]
    assert a["status"] == "agrees" and a["max_abs_diff"] < 1e-5 and a["steps"] == 8
    assert b["status"] == "differs" and b["first_differing_step"] == 1 and b["max_abs_diff"] > 0.1
    assert b["abs_diff_curve"][0] < 1e-5  # the prompt call itself is right
    assert "`past_key_values` handed back by the forward, use_cache=True" in b["how"]
    (d,) = [d for d in run.pair["diagnosis"] if d["kind"] == "cache"]
    assert d["message"].startswith("B's cached decoding") and "from step 1" in d["message"]
    assert "TinyGPT's own forward code" in d["message"] and "wpe" in d["message"]
    assert d["location"].endswith("gpt_cached_no_offset.py:40")
    assert "B's cache differs from step 1" in parity(GPT, "vs", no_offset, "--quick", "--generate", "8").stdout


def test_a_broken_cache_on_side_a_is_reported_from_its_recording(no_offset):
    """A runs in its own process and is replayed: its cached decoding and localisation come from the artifact."""
    run = parity(no_offset, "vs", GPT, "--json", "--quick", "--generate", "6")
    c = run.check("generate")
    assert c["cache"]["a"]["status"] == "differs" and c["cache"]["b"]["status"] == "agrees"
    assert any(d["kind"] == "cache" and d["message"].startswith("A's cached decoding") for d in run.pair["diagnosis"])


def test_caches_inside_the_layers_positioned_by_start_pos():
    run = parity(fx("cache/meta_style.py::Transformer"), "vs", GPT, "--json", "--quick", "--generate", "4")
    cache = run.check("generate")["cache"]
    assert cache["a"]["status"] == "agrees" and "kept inside the model, positioned by `start_pos`" in cache["a"]["how"]
    assert any("A takes `start_pos` (a cache kept in its layers), B takes `past_key_values`" in n
               for n in run.pair["notes"])


def test_a_model_without_a_cache_says_so():
    lm = fx("sampling/lm_positions.py::PosLM")
    run = parity(lm, "vs", GPT, "--json", "--quick", "--generate", "3")
    cache = run.check("generate")["cache"]
    assert cache["a"] == {"how": "no cache argument", "status": "none"} and cache["b"]["status"] == "agrees"
    assert "A: no cache argument" in run.check("generate")["message"]


def test_cache_parameter_and_returned_cache_conventions():
    class HF:
        def forward(self, input_ids, attention_mask=None, past_key_values=None, use_cache=None):
            return None

    class MLX:
        def __call__(self, inputs, cache=None):
            return None

    class Plain:
        def forward(self, x, cache_position=None, use_cache=False):  # neither is a cache
            return None

    assert cache_parameter(HF()) == "past_key_values" and cache_parameter(MLX()) == "cache"
    assert cache_parameter(Plain()) is None
    logits, kv = np.zeros((1, 1, 4)), [(np.zeros(2), np.zeros(2))]
    assert returned_cache((logits, kv), "past_key_values") is kv
    assert returned_cache({"logits": logits, "past_key_values": kv}, "past_key_values") is kv
    assert returned_cache(logits, "cache") is None and returned_cache((logits, logits), "cache") is None


def test_full_sequence_arrays_are_cut_to_the_cached_positions():
    full = [("[0]", np.arange(12.0).reshape(1, 6, 2)), ("[1]", np.ones((1, 4, 6, 3))), ("[2]", np.ones(3))]
    cached = [("[0]", np.array([[[10.0, 11.0]]])), ("[1]", np.ones((1, 4, 6, 3))), ("[2]", np.ones((2, 2)))]
    f, c = _last_positions(full, cached)
    assert [k for k, _ in f] == ["[0]", "[1]"]  # [2]: no single axis to cut along
    assert np.array_equal(f[0][1], c[0][1]) and f[1][1].shape == (1, 4, 6, 3)
