"""Bad input: one line on stderr naming file, symbol and reason; exit 2; no traceback; --json still reports."""
from __future__ import annotations

from typing import List, Optional  # noqa: F401 - resolved by a test's dataclass annotations

import pytest

from conftest import fx, parity

FFN = fx("torch/ffn_module.py")

CASES = {
    "missing file": ((fx("errors/nope.py"), "vs", FFN), "nope.py: no such file"),
    "syntax error": ((fx("errors/broken_syntax.py"), "vs", FFN), "broken_syntax.py:5: syntax error: expected ':'"),
    "unknown symbol": ((FFN + "::FeedForwrd", "vs", FFN), "FeedForwrd: no such class or function; did you mean FeedForward?"),
    "nothing to pair": ((fx("errors/unrelated.py"), "vs", FFN), "nothing to pair"),
    "one target": ((FFN,), "expected two targets"),
    "bad --input": ((FFN, "vs", FFN, "--input", "x"), "--input 'x'"),
    "a folder as target": ((fx("torch"), "vs", FFN), "is a folder: name a file in it (tests/fixtures/torch/"),
    "v for vs": ((FFN, "v", FFN), "'v' between them is not 'vs' (did you mean"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_input_errors(name):
    args, expected = CASES[name]
    run = parity(*args)
    assert run.code == 2
    assert run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("name", sorted(CASES))
def test_input_errors_json(name):
    args, expected = CASES[name]
    run = parity(*args, "--json")
    assert run.code == 2
    assert run.report["verdict"] == "error" and expected in run.report["error"]


@pytest.mark.parametrize("file, expected", [
    ("ctor_raises.py", "ctor_raises.py::FeedForward: constructor raised ValueError: hidden must be a multiple of 7, "
                       "got 64 (tests/fixtures/errors/ctor_raises.py:8)"),
    ("forward_raises.py", "forward raised RuntimeError: shape '[-1, 5]' is invalid for input of size 1152 "
                          "(tests/fixtures/errors/forward_raises.py:12)"),
])
def test_user_code_raising(file, expected):
    pytest.importorskip("torch")
    run = parity(FFN, "vs", fx("errors/" + file), "--quick")
    assert run.code == 2
    # the report still shows what was planned, and the option that changes the guess that failed
    assert "Next steps:" in run.stdout and "Built with:" in run.stdout and "Verdict: ERROR" in run.stdout
    assert ("--init dim=32, --init hidden=64" if file == "ctor_raises.py" else "--input x=3,6,32") in run.stdout
    assert run.stderr.strip().splitlines() == [f"parity-skill: error: {fx('errors/' + file)}::FeedForward: "
                                               f"{expected.split('::FeedForward: ')[-1]}"]
    js = parity(FFN, "vs", fx("errors/" + file), "--quick", "--json")
    assert js.report["verdict"] == "error" and expected.split(": ", 1)[-1] in js.report["error"]


def test_timeout():
    pytest.importorskip("torch")
    run = parity(FFN, "vs", fx("errors/slow.py"), "--quick", "--timeout", "6")
    assert run.code == 2
    assert "timed out after 6s" in run.stderr and "Traceback" not in run.stderr


def test_a_misspelt_library_reference_gets_a_suggestion():
    run = parity(FFN + "::FeedForward", "vs", "torch.nn.LayerNrm", "--quick", "--json")
    assert run.code == 2 and "torch.nn has no LayerNrm (did you mean torch.nn.LayerNorm?)" in run.report["error"]
    assert run.report["next_steps"] and run.report["pairs"][0]["next_steps"] == run.report["next_steps"]


def test_outputs_of_different_shapes_fail_forward_only():
    run = parity(fx("errors/pool_mean.py"), "vs", fx("errors/pool_mean_keepdim.py"), "--quick", "--json")
    assert run.code == 1 and run.status("forward") == "fail" and "shape A (3, 6) vs B (3, 6, 1)" in \
        run.check("forward")["message"]
    assert run.status("backward") == "skip" and "no output of B has the shape of A's" in run.check("backward")["message"]


def test_a_pair_built_from_a_default_config_is_told_to_give_its_real_config():
    """A port that fails on its package's default config (LFM2 with no conv layer, DBRX's clip_qkv=None) is
    settled by the model's own config.json: the next step says so, and not once --config was given."""
    from parity_skill.report.next_steps import suggestions

    pair = {"error": "b.py::Model: forward raised IndexError: list index out of range (lfm2.py:281)", "checks": [],
            "a": {"init": {"config": "Config(cls='Lfm2Config', kwargs={})"}}, "b": {"init": {}}, "notes": []}
    assert "--config FILE.json" in suggestions(pair)[0]
    pair["notes"] = ["Lfm2Config: built from --config (8 fields, not shrunk)"]
    assert not any("--config" in s for s in suggestions(pair))


def test_a_failing_pair_built_with_guessed_arguments_names_them_first():
    """Exaone 4's block takes `is_local`, which only its model knows (from the layer pattern): guessed False, B
    skipped what A's layer 0 does and the report blamed B's attention; the guessed arguments are now named."""
    from conftest import fx, parity

    run = parity(fx("torch/block_tanh.py::Block"), "vs", fx("torch/block_guessed_flag.py::Block"), "--quick", "--json")
    assert run.code == 1
    guessed = [d["message"] for d in run.pair["diagnosis"] if d["kind"] == "guessed_arguments"]
    assert guessed and "Block.is_local=False" in guessed[0] and "--init" in guessed[0]


def test_a_shared_config_value_of_another_declared_type_is_named_with_the_error():
    """One config drives both sides; where B's dataclass declares another scalar type (mlx-lm's Exaone 4:
    `sliding_window_pattern: Optional[str]`, "LLLG", where transformers' default is the int 4), B fails far from the
    cause: the field is named."""
    import dataclasses

    from parity_skill.runtime.sides.configs import declared_mismatches

    @dataclasses.dataclass
    class ModelArgs:
        sliding_window_pattern: Optional[str]
        hidden_size: int
        rope_theta: float
        layer_types: Optional[List[str]] = None

    found = declared_mismatches(ModelArgs, {"sliding_window_pattern": 4, "hidden_size": 32, "rope_theta": 10000,
                                            "layer_types": ["full"]})
    assert found == [("sliding_window_pattern",
                      "ModelArgs.sliding_window_pattern is declared str, A's config gives 4 (int)")]
    assert declared_mismatches(ModelArgs, {"sliding_window_pattern": "LLLG", "hidden_size": 32}) == []


def test_a_block_whose_argument_only_its_model_knows_is_taken_from_that_model():
    """`is_local` has no role the plan knows; the file's Model builds its blocks from a layer pattern. The block is
    taken from Model built small (its first block, local), not built with a guessed False; where that model cannot
    be built small, the block's own constructor runs with the guess, which the report names."""
    from conftest import fx, parity

    run = parity(fx("torch/block_tanh.py::Block"), "vs", fx("torch/block_in_its_model.py::Block"), "--quick", "--json")
    assert run.code == 0, run.stdout[-3000:]
    assert run.pair["b"]["inside"] == "Model"
    assert any(n.startswith("Block: taken from Model built small") and "is_local" in n for n in run.pair["notes"])
    assert not any("is_local: required and of unknown role" in n for n in run.pair["notes"])
    text = parity(fx("torch/block_tanh.py::Block"), "vs", fx("torch/block_in_its_model.py::Block"), "--quick")
    assert "B: Block(dim=32, is_local=False), the first one Model builds (not with these arguments)" in text.stdout
    refused = parity(fx("torch/block_tanh.py::Block"), "vs", fx("torch/block_in_a_model_that_refuses.py::Block"),
                     "--quick", "--json")
    assert refused.code == 1 and "inside" not in refused.pair["b"]
    assert any("Model could not be built small to take it from (ValueError: this model needs dim >= 64" in n
               for n in refused.pair["notes"])
    assert any(d["kind"] == "guessed_arguments" for d in refused.pair["diagnosis"])


def test_rope_settings_kept_in_rope_parameters_are_also_given_at_top_level():
    from parity_skill.runtime.sides.configs import with_rope_fields

    glm = with_rope_fields({"rope_parameters": {"rope_theta": 10000.0, "partial_rotary_factor": 0.5,
                                                "rope_type": "default"}, "hidden_size": 32})
    assert glm["rope_theta"] == 10000.0 and glm["partial_rotary_factor"] == 0.5 and "rope_scaling" not in glm
    llama3 = with_rope_fields({"rope_parameters": {"rope_type": "llama3", "rope_theta": 1.2e7, "factor": 8.0}})
    assert llama3["rope_scaling"] == {"rope_type": "llama3", "factor": 8.0, "type": "llama3"}
    assert with_rope_fields({"rope_theta": 5.0, "rope_parameters": {"rope_theta": 7.0}})["rope_theta"] == 5.0
    per_layer = {"rope_parameters": {"full_attention": {"rope_theta": 1e6}, "sliding_attention": {"rope_theta": 1e4}}}
    assert with_rope_fields(per_layer) == per_layer
