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
