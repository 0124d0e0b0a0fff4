"""Whole-file pairing on real-code shapes (model-name prefixes, renamed blocks, class order), and what real
model files need around it: inherited constructors, conditional submodules, dataclass outputs, flags shared
through one config."""
from __future__ import annotations

import numpy as np

from parity_skill.analyze import analyze_file
from parity_skill.plan.weight_map import ParamInfo, match_parameters
from parity_skill.plan.planner import PlanOptions, Target, build_plan
from parity_skill.plan.pairing import model_prefix, pair_symbols
from parity_skill.runtime.adapters.base import flatten

HF_STYLE = '''
from torch import nn


class TinyMLP(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.gate_proj = nn.Linear(dim, 2 * dim, bias=False)
        self.down_proj = nn.Linear(2 * dim, dim, bias=False)

    def forward(self, x):
        return self.down_proj(nn.functional.silu(self.gate_proj(x)))


class TinyAttention(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.q_proj = nn.Linear(dim, dim)
        self.o_proj = nn.Linear(dim, dim)

    def forward(self, hidden_states):
        return self.o_proj(nn.functional.softmax(self.q_proj(hidden_states), dim=-1))


class TinyDecoderLayer(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.self_attn = TinyAttention(dim)
        self.mlp = TinyMLP(dim)
        self.input_layernorm = nn.LayerNorm(dim)

    def forward(self, hidden_states):
        return self.mlp(self.self_attn(self.input_layernorm(hidden_states)))
'''

PORT = '''
import mlx.nn as nn


class TransformerBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.self_attn = Attention(dim)
        self.mlp = MLP(dim)
        self.input_layernorm = nn.LayerNorm(dim)

    def __call__(self, x):
        return self.mlp(self.self_attn(self.input_layernorm(x)))


class MLP(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.gate_proj = nn.Linear(dim, 2 * dim, bias=False)
        self.down_proj = nn.Linear(2 * dim, dim, bias=False)

    def __call__(self, x):
        return self.down_proj(nn.silu(self.gate_proj(x)))


class Attention(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.q_proj = nn.Linear(dim, dim)
        self.o_proj = nn.Linear(dim, dim)

    def __call__(self, x):
        return self.o_proj(mx.softmax(self.q_proj(x), axis=-1))
'''


def _reordered(source: str) -> str:
    """The same classes in reverse order."""
    head, *classes = source.split("\n\nclass ")
    return "\n\n".join([head] + [f"class {c.strip()}\n" for c in reversed(classes)])


def test_model_prefixes_are_stripped_and_blocks_pair_by_structure_in_any_class_order(tmp_path):
    a, b = tmp_path / "modeling_tiny.py", tmp_path / "tiny.py"
    a.write_text(HF_STYLE)
    b.write_text(PORT)
    assert model_prefix(analyze_file(str(a))) == "Tiny" and model_prefix(analyze_file(str(b))) == ""
    for source_a in (HF_STYLE, _reordered(HF_STYLE)):
        a.write_text(source_a)
        pairs = {(x.name, y.name, how) for x, y, how in pair_symbols(analyze_file(str(a)), analyze_file(str(b)),
                                                                       None, None)}
        assert pairs == {("TinyMLP", "MLP", "name"), ("TinyAttention", "Attention", "name"),
                         ("TinyDecoderLayer", "TransformerBlock", "structure")}


def test_constructor_and_forward_inherited_from_a_base_class_of_the_file(tmp_path):
    path = tmp_path / "model.py"
    path.write_text("import mlx.nn as nn\n\n\nclass Backbone(nn.Module):\n    def __init__(self, config):\n"
                    "        super().__init__()\n        self.proj = nn.Linear(config.embed_dim, config.embed_dim)\n"
                    "        self.head = Head(config.embed_dim) if config.with_head else None\n\n"
                    "    def __call__(self, x):\n        return self.proj(x)\n\n\n"
                    "class Head(nn.Module):\n    def __init__(self, dim: int):\n        super().__init__()\n"
                    "        self.fc = nn.Linear(dim, dim)\n\n    def __call__(self, x):\n        return self.fc(x)\n\n\n"
                    "class Model(Backbone):\n    pass\n")
    model = analyze_file(str(path)).symbol("Model")
    assert [a.name for a in model.init_args] == ["config"] and [a.name for a in model.call_args] == ["x"]
    assert {f for _, f in model.config_uses} >= {"embed_dim", "with_head"}  # read by the inherited __init__
    assert [s.attr for s in model.submodules] == ["proj", "head"]  # `Head(...) if flag else None` too
    spec = build_plan(Target(str(path), "Model"), Target(str(path), "Model"), PlanOptions()).pairs[0]
    assert set(spec.a.init["config"].kwargs) >= {"embed_dim", "with_head"}


def test_dataclass_outputs_flatten_by_field():
    from dataclasses import dataclass

    @dataclass
    class Output:
        last_hidden_state: object = None
        pooler_output: object = None
        hidden_states: object = None

    flat = flatten(Output(np.ones(2), np.zeros(1)), lambda x: isinstance(x, np.ndarray), np.asarray)
    assert [k for k, _ in flat] == ["['last_hidden_state']", "['pooler_output']"]  # the keys a dict output has


def test_a_shape_left_on_one_parameter_each_side_maps_last():
    a = [ParamInfo("embeddings.cls_token", (1, 1, 8)), ParamInfo("embeddings.position_embeddings", (1, 5, 8))]
    b = [ParamInfo("cls_token", (1, 1, 8)), ParamInfo("pos_embed", (1, 5, 8))]
    entries, left_a, left_b = match_parameters(a, b)
    assert {(e.a, e.b) for e in entries} == {("embeddings.cls_token", "cls_token"),
                                             ("embeddings.position_embeddings", "pos_embed")}
    assert not left_a and not left_b


def test_boolean_config_fields_of_the_same_name_take_as_value(tmp_path):
    """tie_word_embeddings False on A, True by default on B: B is built untied (one config file), and the
    difference in declared defaults is a finding."""
    a = tmp_path / "a.py"
    a.write_text("from torch import nn\n\n\nclass Config:\n    def __init__(self, vocab_size=64, hidden_size=32, "
                 "tie_word_embeddings=False, **kwargs):\n        self.vocab_size = vocab_size\n"
                 "        self.hidden_size = hidden_size\n        self.tie_word_embeddings = tie_word_embeddings\n\n\n"
                 "class LM(nn.Module):\n    config_class = Config\n\n    def __init__(self, config):\n"
                 "        super().__init__()\n        self.embed = nn.Embedding(config.vocab_size, config.hidden_size)\n"
                 "        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)\n\n"
                 "    def forward(self, input_ids):\n        return self.lm_head(self.embed(input_ids))\n")
    b = tmp_path / "b.py"
    b.write_text("from dataclasses import dataclass\nimport mlx.nn as nn\n\n\n@dataclass\nclass ModelArgs:\n"
                 "    vocab_size: int\n    hidden_size: int\n    tie_word_embeddings: bool = True\n\n\n"
                 "class LM(nn.Module):\n    def __init__(self, args: ModelArgs):\n        super().__init__()\n"
                 "        self.args = args\n        self.embed = nn.Embedding(args.vocab_size, args.hidden_size)\n"
                 "        if not args.tie_word_embeddings:\n"
                 "            self.lm_head = nn.Linear(args.hidden_size, args.vocab_size, bias=False)\n\n"
                 "    def __call__(self, input_ids):\n        h = self.embed(input_ids)\n"
                 "        return self.embed.as_linear(h) if self.args.tie_word_embeddings else self.lm_head(h)\n")
    spec = build_plan(Target(str(a), "LM"), Target(str(b), "LM"), PlanOptions()).pairs[0]
    assert spec.b.init["args"].kwargs["tie_word_embeddings"] is False
    assert any("tie_word_embeddings differs" in f["message"] for f in spec.static_findings)
