"""Planning is pure: constructor values, inputs, weight maps and pairing from the analysis alone."""
from __future__ import annotations

from parity_skill.plan.weight_map import ParamInfo, match_parameters
from parity_skill.plan.planner import PlanOptions, Target, build_plan, check_names
from parity_skill.plan.construct import evaluate, role_of
from parity_skill.plan.inputs import parse_input_override
from parity_skill.plan.pairing import normalise
from parity_skill.spec import Config, InputSpec

F = "tests/fixtures/torch/"


def plan(a: str, b: str, **opts):
    return build_plan(Target(F + a.split("::")[0], a.partition("::")[2] or None),
                      Target(F + b.split("::")[0], b.partition("::")[2] or None), PlanOptions(**opts))


def test_roles_and_divisible_head_counts():
    assert role_of("n_heads")[0] == "heads" and role_of("n_kv_heads")[0] == "kv_heads"
    assert role_of("hidden_size")[0] == "dim" and role_of("intermediate_size")[0] == "hidden"
    p = plan("attn_explicit.py", "attn_sdpa.py").pairs[0]
    assert p.a.init == {"dim": 32, "n_heads": 4} and p.a.init["dim"] % p.a.init["n_heads"] == 0


def test_dataclass_defaults_are_shrunk_consistently():
    p = plan("llama_a.py", "llama_b.py").pairs[0]
    cfg = p.a.init["args"]
    assert isinstance(cfg, Config) and cfg.cls == "ModelArgs"
    assert cfg.kwargs == {"dim": 32, "n_heads": 4, "vocab_size": 64}
    assert p.b.init == p.a.init


def test_inputs_from_first_consumer():
    assert plan("ffn_module.py::FeedForward", "ffn_renamed.py::MLP").pairs[0].inputs == (
        InputSpec("x", (3, 6, 32), seq_axis=1, arg_a="x", arg_b="hidden_states"),)  # each side by its own name
    emb = plan("embed_a.py", "embed_b.py").pairs[0].inputs[0]
    assert (emb.dtype, emb.high, emb.shape) == ("int64", 64, (3, 6))
    rope = plan("rope_a.py", "rope_a.py").pairs[0].inputs[0]
    assert rope.shape == (3, 4, 6, 8) and rope.seq_axis == 2
    attn = plan("attn_explicit.py", "attn_sdpa.py").pairs[0]
    assert [i.name for i in attn.inputs] == ["x"]  # mask=None stays at its default


def test_input_and_init_overrides():
    p = plan("ffn_module.py", "ffn_module.py", init={"hidden": 48},
             inputs={"x": parse_input_override("x=3,5,32")}).pairs[0]
    assert p.a.init["hidden"] == 48 and p.inputs[0].shape == (3, 5, 32)
    ids = parse_input_override("ids=2,8:int64:0-100")
    assert (ids.dtype, ids.low, ids.high) == ("int64", 0, 100)


def test_static_weight_map_by_order_and_shape():
    p = plan("ffn_module.py::FeedForward", "ffn_renamed.py::MLP").pairs[0]
    assert [(e.a, e.b, e.how) for e in p.weight_map] == [
        ("fc1.weight", "up_proj.weight", "order+shape"), ("fc1.bias", "up_proj.bias", "order+shape"),
        ("fc2.weight", "down_proj.weight", "order+shape"), ("fc2.bias", "down_proj.bias", "order+shape")]


def test_mapping_transforms_and_leftovers():
    a = [ParamInfo("conv.weight", (16, 8, 3)), ParamInfo("qkv.weight", (96, 32)), ParamInfo("extra", (4,))]
    b = [ParamInfo("conv.weight", (16, 3, 8)), ParamInfo("q.weight", (32, 32)), ParamInfo("k.weight", (32, 32)),
         ParamInfo("v.weight", (32, 32))]
    entries, left_a, left_b = match_parameters(a, b, layout_change=True)
    got = {(e.a, e.b, e.transform) for e in entries}
    assert ("conv.weight", "conv.weight", "conv_to_channels_last") in got
    assert ("qkv.weight", "q.weight+k.weight+v.weight", "split0:32,32,32") in got
    assert left_a == ["extra"] and left_b == []


def test_pairing_by_normalised_name_and_structure():
    assert normalise("TorchLayerNorm") == normalise("layer_norm") == "layernorm"
    p = build_plan(Target(F + "ffn_module.py"), Target(F + "ffn_renamed.py"), PlanOptions())
    (pair,) = p.pairs
    assert (pair.a.symbol, pair.b.symbol) == ("FeedForward", "MLP")
    assert any("by structure" in n for n in pair.notes)


def test_check_names_follow_options():
    assert check_names(PlanOptions(quick=True)) == ("forward", "backward")
    full = check_names(PlanOptions())
    assert full[:6] == ("forward", "backward", "fp16", "backward_fp16", "bf16", "backward_bf16")
    assert full[-2:] == ("determinism:a", "determinism:b") and "edge:seq_len_1" in full


def test_size_expressions():
    env = {"args": {"dim": 32, "n_heads": 4}, "self.head_dim": 8}
    assert evaluate("args.dim // args.n_heads", env) == 8
    assert evaluate("int(2 * 4 * args.dim / 3)", env) == 85
    assert evaluate("self.head_dim * 2", env) == 16
    assert evaluate("open('x')", env) is None


def test_weights_never_map_across_blocks_of_a_stack():
    """A fused qkv in 12 blocks vs separate q/k/v: every split stays inside its own block (it once went 11 -> 3)."""
    from parity_skill.plan.weight_map import ParamInfo, match_parameters

    d = 8
    a = [ParamInfo(f"h.{i}.attn.{n}", s) for i in range(12)
         for n, s in (("qkv.weight", (3 * d, d)), ("qkv.bias", (3 * d,)), ("proj.weight", (d, d)), ("proj.bias", (d,)))]
    b = [ParamInfo(f"h.{i}.attn.{n}", s) for i in reversed(range(12))
         for n, s in (("q.weight", (d, d)), ("q.bias", (d,)), ("k.weight", (d, d)), ("k.bias", (d,)),
                      ("v.weight", (d, d)), ("v.bias", (d,)), ("proj.weight", (d, d)), ("proj.bias", (d,)))]
    entries, left_a, left_b = match_parameters(a, b)
    assert left_a == [] and left_b == []
    for e in entries:
        blocks = {name.split(".")[1] for name in e.a.split("+") + e.b.split("+")}
        assert len(blocks) == 1, e


def test_separate_experts_map_onto_a_stacked_tensor_both_ways():
    from parity_skill.plan.weight_map import ParamInfo, match_parameters

    a = [ParamInfo(f"layers.0.mlp.experts.{e}.{p}.weight", (8, 4) if p != "down_proj" else (4, 8))
         for e in range(3) for p in ("gate_proj", "up_proj", "down_proj")]
    a += [ParamInfo("layers.1.mlp.experts.0.gate_proj.weight", (8, 4)),
          ParamInfo("layers.1.mlp.experts.1.gate_proj.weight", (8, 4))]
    b = [ParamInfo(f"layers.0.mlp.switch_mlp.{p}.weight", (3, 8, 4) if p != "down_proj" else (3, 4, 8))
         for p in ("gate_proj", "up_proj", "down_proj")] + [ParamInfo("layers.1.mlp.switch_mlp.gate_proj.weight", (2, 8, 4))]
    entries, left_a, left_b = match_parameters(a, b)
    assert left_a == [] and left_b == []
    gate = next(e for e in entries if e.b == "layers.0.mlp.switch_mlp.gate_proj.weight")
    assert gate.transform == "stack" and gate.a.split("+") == [f"layers.0.mlp.experts.{e}.gate_proj.weight"
                                                                for e in range(3)]
    assert next(e for e in entries if e.b == "layers.1.mlp.switch_mlp.gate_proj.weight").a.count("+") == 1
    back, left_a, left_b = match_parameters(b, a)  # the stacked side as A
    assert left_a == [] and left_b == [] and {e.transform for e in back} == {"unstack"}


def test_stacked_values_and_their_gradients_travel_through_the_map():
    import numpy as np

    from parity_skill.runtime.data.weights import b_values
    from parity_skill.spec import MapEntry

    parts = {f"e.{i}.w": np.full((2, 3), float(i)) for i in range(3)}
    stacked = b_values(parts, [MapEntry("+".join(parts), "s.w", "stack", "stacked")])["s.w"]
    assert stacked.shape == (3, 2, 3) and stacked[2, 0, 0] == 2.0
    back = b_values({"s.w": stacked}, [MapEntry("s.w", "+".join(parts), "unstack", "stacked")])
    assert all(np.array_equal(back[k], v) for k, v in parts.items())


def test_a_tensor_named_for_two_roles_splits_along_the_axis_its_shapes_add_up_on():
    """transformers 5 keeps experts as `gate_up_proj` (E, 2I, H); mlx-lm as gate and up (E, I, H) each."""
    from parity_skill.plan.weight_map import ParamInfo, match_parameters

    a = [ParamInfo("mlp.experts.gate_up_proj", (4, 16, 6)), ParamInfo("mlp.experts.down_proj", (4, 6, 8))]
    b = [ParamInfo("mlp.switch_mlp.up_proj.weight", (4, 8, 6)), ParamInfo("mlp.switch_mlp.gate_proj.weight", (4, 8, 6)),
         ParamInfo("mlp.switch_mlp.down_proj.weight", (4, 6, 8))]
    entries, left_a, left_b = match_parameters(a, b)
    assert left_a == [] and left_b == []
    fused = next(e for e in entries if e.a == "mlp.experts.gate_up_proj")
    assert fused.b == "mlp.switch_mlp.gate_proj.weight+mlp.switch_mlp.up_proj.weight" and fused.transform == "split1:8,8"
    back, _, _ = match_parameters(b, a)
    assert next(e for e in back if e.b == "mlp.experts.gate_up_proj").transform == "concat1:8,8"


def test_gelu_kinds_read_mlx_spelling_and_never_assume_an_argument_is_exact():
    """mlx.nn.GELU(approx="precise") is the tanh approximation; nn.GELU(approx=approx) depends on the caller
    (mlx-embeddings' SigLIP builds its encoder with approx="precise"): unknown, so no finding claims it exact."""
    from parity_skill.analyze.model import OpCall
    from parity_skill.plan.static_diff import _gelu_kind

    def kind(**kwargs):
        return _gelu_kind(OpCall("gelu", "mlx.nn.GELU", "m.py:1", (), tuple(kwargs.items())))[0]

    assert kind(approx="'precise'") == "tanh" and kind(approx="'fast'") == "sigmoid" and kind(approx="'none'") == "exact"
    assert kind(approx="approx") == "unknown" and kind(approximate="'tanh'") == "tanh" and kind() == "exact"


def _published(family: str, cls: str) -> tuple[dict, list[str]]:
    """The shrunk config of a transformers config class as the plan builds it, and the plan's notes."""
    from pathlib import Path

    import pytest

    transformers = pytest.importorskip("transformers")
    from parity_skill.analyze.configs import config_class
    from parity_skill.plan.construct import config_value

    path = str(Path(transformers.__file__).parent / f"models/{family}/configuration_{family}.py")
    notes: list[str] = []
    return config_value(config_class(cls, path), {}, notes, set()).kwargs, notes


def test_as_many_kv_heads_as_heads_by_default_stays_so_when_shrunk():
    """DeepSeek-V3 defaults to 128 heads and 128 kv heads, and its attention needs them equal: shrunk together
    (shrinking kv heads to 2 beside 4 heads made its forward raise); Mixtral's 32/8 still groups (4/2)."""
    deepseek, notes = _published("deepseek_v3", "DeepseekV3Config")
    assert deepseek["num_key_value_heads"] == deepseek["num_attention_heads"] == 4
    assert any("num_key_value_heads: default 128 replaced by 4, equal to num_attention_heads" in n for n in notes)
    mixtral, _ = _published("mixtral", "MixtralConfig")
    assert (mixtral["num_attention_heads"], mixtral["num_key_value_heads"]) == (4, 2)


def test_a_switch_to_compiled_gpu_kernels_is_turned_off_on_this_machine():
    """Jamba's `use_mamba_kernels=True` raises on a CPU ("Fast Mamba kernels are not available"): the library's
    own reference path is compared instead, said in a note."""
    jamba, notes = _published("jamba", "JambaConfig")
    assert jamba["use_mamba_kernels"] is False
    assert any(n.startswith("JambaConfig.use_mamba_kernels: default True set to False") for n in notes)
