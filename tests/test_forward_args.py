"""Forward arguments real layers take: `position_embeddings=(cos, sin)` a caller computes with the file's rotary
module, required `Optional` masks, scalar arguments; and the static findings that follow config values (RoPE
convention, activations chosen by name)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from conftest import fx, parity
from parity_skill.plan.planner import PlanOptions, Target, build_plan

ROPE_HF = "realcode/hf_like/tiny/modeling_rope.py"
ROPE_PORT = "realcode/port_rope_mlx.py"
needs_mlx = pytest.mark.skipif(importlib.util.find_spec("mlx") is None, reason="mlx is not installed")


def _plan(a: str, b: str):
    return build_plan(Target(fx(a.split("::")[0]), a.split("::")[1]), Target(fx(b.split("::")[0]), b.split("::")[1]),
                      PlanOptions()).pairs[0]


def test_position_embeddings_come_from_the_files_rotary_module():
    spec = _plan(f"{ROPE_HF}::TinyRopeAttention", f"{ROPE_PORT}::TinyRopeAttention")
    assert [i.name for i in spec.inputs] == ["hidden_states"]  # never a random (cos, sin) tensor
    (rot,) = spec.a.companions
    assert (rot.arg, rot.symbol, rot.call, rot.source) == ("position_embeddings", "TinyRotaryEmbedding",
                                                           ("x", "position_ids"), 0)
    assert rot.init["config"] == spec.a.init["config"]  # the layer's own config
    assert spec.a.fixed == {"attention_mask": None}  # required, annotated Optional: passed None
    assert not spec.b.companions and not spec.b.fixed
    # kv heads left None by the config (one per head) are set below the head count on both sides: GQA is checked
    assert spec.a.init["config"].kwargs["num_key_value_heads"] == 2
    assert spec.b.init["args"].kwargs["num_key_value_heads"] == 2


@needs_mlx
def test_rotary_attention_vs_mlx_port_passes_and_a_traditional_rope_fails_at_its_line(tmp_path):
    run = parity(fx(f"{ROPE_HF}::TinyRopeAttention"), "vs", fx(f"{ROPE_PORT}::TinyRopeAttention"), "--json")
    assert run.report["verdict"] == "pass", run.stderr
    assert not [f for f in run.pair["static_findings"] if f["kind"] in ("permutation", "scale")]
    source = Path(fx(ROPE_PORT)).read_text()
    buggy = tmp_path / "port_rope_traditional.py"
    buggy.write_text(source.replace("rope_traditional: bool = False", "rope_traditional: bool = True"))
    bad = parity(fx(f"{ROPE_HF}::TinyRopeAttention"), "vs", f"{buggy}::TinyRopeAttention", "--json", "--quick")
    assert bad.code == 1 and bad.status("forward") == "fail"
    rope = [f for f in bad.pair["static_findings"] if f["kind"] == "permutation"]
    line = source[:source.index("self.rope = nn.RoPE")].count("\n") + 1
    assert rope and rope[0]["b_location"].endswith(f"port_rope_traditional.py:{line}"), bad.pair["static_findings"]
    assert "traditional=True" in rope[0]["message"] and "rotate-half" in rope[0]["message"]


def test_scalar_and_optional_forward_arguments_get_values(tmp_path):
    src = ("from typing import Optional\nimport torch\nfrom torch import nn\n\n\nclass Block(nn.Module):\n"
           "    def __init__(self, dim: int):\n        super().__init__()\n        self.fc = nn.Linear(dim, dim)\n\n"
           "    def forward(self, x, start_pos: int, mask: Optional[torch.Tensor], head_mask: torch.Tensor):\n"
           "        out = self.fc(x)\n        return out if mask is None else out + mask\n\n\n"
           "def sinusoids(length, channels, max_timescale=10000):\n"
           "    inc = torch.log(torch.tensor(float(max_timescale))) / (channels // 2 - 1)\n"
           "    t = torch.exp(-inc * torch.arange(channels // 2))\n"
           "    s = torch.arange(length)[:, None] * t[None, :]\n"
           "    return torch.cat([torch.sin(s), torch.cos(s)], dim=1)\n")
    path = tmp_path / "layers.py"
    path.write_text(src)
    spec = build_plan(Target(str(path), "Block"), Target(str(path), "Block"), PlanOptions()).pairs[0]
    # a required mask is passed None (random numbers are never a mask), whatever its annotation says
    assert [i.name for i in spec.inputs] == ["x"] and spec.a.fixed == {"start_pos": 0, "mask": None, "head_mask": None}
    fn = build_plan(Target(str(path), "sinusoids"), Target(str(path), "sinusoids"), PlanOptions()).pairs[0]
    assert not fn.inputs and fn.a.fixed == {"length": 6, "channels": 16}
    run = parity(f"{path}::sinusoids", "vs", f"{path}::sinusoids", "--json", "--quick")
    assert run.report["verdict"] == "pass", run.stderr


def test_an_optional_first_argument_is_still_the_input(tmp_path):
    """`forward(self, hidden_states: Optional[tuple[torch.FloatTensor]])` (Starcoder2MLP): an input, never None."""
    path = tmp_path / "mlp.py"
    path.write_text("from typing import Optional\nimport torch\nfrom torch import nn\n\n\nclass MLP(nn.Module):\n"
                    "    def __init__(self, config):\n        super().__init__()\n        embed_dim = config.hidden_size\n"
                    "        self.c_fc = nn.Linear(embed_dim, config.intermediate_size)\n"
                    "        self.c_proj = nn.Linear(config.intermediate_size, embed_dim)\n\n"
                    "    def forward(self, hidden_states: Optional[tuple[torch.FloatTensor]]) -> torch.FloatTensor:\n"
                    "        hidden_states = self.c_fc(hidden_states)\n        return self.c_proj(hidden_states)\n")
    spec = build_plan(Target(str(path), "MLP"), Target(str(path), "MLP"), PlanOptions()).pairs[0]
    hidden = spec.a.init["config"].kwargs["hidden_size"]
    # the local `embed_dim` is read; `c_proj`, which consumes the rebound name, says nothing about the input
    assert [(i.name, i.shape[-1]) for i in spec.inputs] == [("hidden_states", hidden)] and not spec.a.fixed


def test_activation_chosen_by_config_name_is_compared(tmp_path):
    a = tmp_path / "a.py"
    a.write_text("from torch import nn\nACT2FN = {}\n\n\nclass Config:\n    def __init__(self, hidden_size=64, "
                 "hidden_act='gelu_pytorch_tanh', **kwargs):\n        self.hidden_size = hidden_size\n"
                 "        self.hidden_act = hidden_act\n\n\nclass MLP(nn.Module):\n    config_class = Config\n\n"
                 "    def __init__(self, config):\n        super().__init__()\n"
                 "        self.fc = nn.Linear(config.hidden_size, config.hidden_size)\n"
                 "        self.act = ACT2FN[config.hidden_act]\n\n    def forward(self, x):\n"
                 "        return self.act(self.fc(x))\n")
    b = tmp_path / "b.py"
    b.write_text("import mlx.nn as nn\n\n\nclass MLP(nn.Module):\n    def __init__(self, dim: int):\n"
                 "        super().__init__()\n        self.fc = nn.Linear(dim, dim)\n\n    def __call__(self, x):\n"
                 "        return nn.gelu(self.fc(x))\n")
    spec = build_plan(Target(str(a), "MLP"), Target(str(b), "MLP"), PlanOptions()).pairs[0]
    found = [f for f in spec.static_findings if f["kind"] == "approximation"]
    assert found and "ACT2FN['gelu_pytorch_tanh']" in found[0]["message"] and "exact" in found[0]["message"]
    assert found[0]["a_location"].endswith("a.py:17")


def test_self_attention_vs_attention_taking_queries_keys_values(tmp_path):
    """`SelfAttention(hidden_states)` vs `Attention(queries, keys, values)` (mlx-image's ViT): B's keys and
    values get A's one input, and projections map by role even when declared in another order."""
    a = tmp_path / "a.py"
    a.write_text("import torch\nfrom torch import nn\n\n\nclass SelfAttention(nn.Module):\n"
                 "    def __init__(self, dim: int, heads: int):\n        super().__init__()\n        self.heads = heads\n"
                 "        self.query = nn.Linear(dim, dim)\n        self.key = nn.Linear(dim, dim)\n"
                 "        self.value = nn.Linear(dim, dim)\n\n    def forward(self, hidden_states):\n"
                 "        b, t, d = hidden_states.shape\n"
                 "        def split(x):\n            return x.view(b, t, self.heads, -1).transpose(1, 2)\n"
                 "        q, k, v = split(self.query(hidden_states)), split(self.key(hidden_states)), "
                 "split(self.value(hidden_states))\n"
                 "        p = torch.softmax(q @ k.transpose(-1, -2) / (d // self.heads) ** 0.5, dim=-1)\n"
                 "        return (p @ v).transpose(1, 2).reshape(b, t, d)\n")
    b = tmp_path / "b.py"
    b.write_text("import torch\nfrom torch import nn\n\n\nclass Attention(nn.Module):\n"
                 "    def __init__(self, dims: int, num_heads: int):\n        super().__init__()\n"
                 "        self.num_heads = num_heads\n        self.value_proj = nn.Linear(dims, dims)\n"
                 "        self.key_proj = nn.Linear(dims, dims)\n        self.query_proj = nn.Linear(dims, dims)\n\n"
                 "    def forward(self, queries, keys, values, mask=None):\n        b, t, d = queries.shape\n"
                 "        def split(x):\n            return x.view(b, -1, self.num_heads, d // self.num_heads).transpose(1, 2)\n"
                 "        q, k, v = split(self.query_proj(queries)), split(self.key_proj(keys)), "
                 "split(self.value_proj(values))\n"
                 "        p = torch.softmax(q @ k.transpose(-1, -2) * (d // self.num_heads) ** -0.5, dim=-1)\n"
                 "        return (p @ v).transpose(1, 2).reshape(b, t, d)\n")
    spec = build_plan(Target(str(a), "SelfAttention"), Target(str(b), "Attention"), PlanOptions()).pairs[0]
    assert spec.b.aliases == {"keys": 0, "values": 0}
    run = parity(f"{a}::SelfAttention", "vs", f"{b}::Attention", "--json", "--quick")
    assert run.report["verdict"] == "pass", run.stderr
    mapped = {e["a"]: e["b"] for e in run.pair["weight_map"]}
    assert mapped["key.weight"] == "key_proj.weight" and mapped["query.bias"] == "query_proj.bias"


@needs_mlx
def test_attention_runs_again_with_a_causal_mask_and_a_port_that_drops_it_fails(tmp_path):
    run = parity(fx(f"{ROPE_HF}::TinyRopeAttention"), "vs", fx(f"{ROPE_PORT}::TinyRopeAttention"), "--json", "--quick")
    (variant,) = run.variants
    assert variant["verdict"] == "pass" and "causal mask (attention_mask / mask)" == variant["variant"]
    assert run.report["verdict"] == "pass"
    source = Path(fx(ROPE_PORT)).read_text()
    dropped = tmp_path / "port_no_mask.py"
    dropped.write_text(source.replace("scale=self.scale, mask=mask)", "scale=self.scale, mask=None)"))
    bad = parity(fx(f"{ROPE_HF}::TinyRopeAttention"), "vs", f"{dropped}::TinyRopeAttention", "--json", "--quick")
    assert bad.pair["verdict"] == "pass"  # unmasked, the two agree: only the masked run can tell
    assert bad.variants[0]["verdict"] == "fail" and bad.report["verdict"] == "fail"
    assert "Variant: causal mask" in parity(fx(f"{ROPE_HF}::TinyRopeAttention"), "vs",
                                            f"{dropped}::TinyRopeAttention", "--quick").stdout
