"""Real-code shapes on fixtures: class hierarchies across files, config objects, settings made consistent, inputs by
name, module-tree weight mapping (the published ports themselves are in test_real_ports.py)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from conftest import fx, parity
from parity_skill.analyze import analyze_file
from parity_skill.plan.weight_map import ParamInfo, match_parameters
from parity_skill.plan.planner import PlanOptions, Target, build_plan
from parity_skill.spec import Config

HF = "realcode/hf_like/tiny/modeling_tiny.py"
PORT = "realcode/port_mlx.py"


def test_bases_in_other_files_of_the_package_make_modules():
    fa = analyze_file(fx(HF))
    modules = {s.name: s.framework for s in fa.symbols if s.kind == "module"}
    assert modules["TinyLayer"] == "torch"  # GradientCheckpointingLayer(nn.Module) in ../modeling_layers.py
    assert set(modules) >= {"TinyEmbeddings", "TinyAttention", "TinyMLP", "TinyPreTrainedModel"}


def test_framework_layer_subclass_is_a_module(tmp_path):
    src = tmp_path / "ln.py"
    src.write_text("import torch\nfrom torch import nn\n\n\nclass LayerNorm(nn.LayerNorm):\n"
                   "    def forward(self, x):\n        return super().forward(x.float()).type(x.dtype)\n")
    assert analyze_file(str(src)).symbol("LayerNorm").framework == "torch"


def _spec(a: str, b: str, **init):
    (sa, sb) = (a.split("::"), b.split("::"))
    return build_plan(Target(fx(sa[0]), sa[1]), Target(fx(sb[0]), sb[1]), PlanOptions(init=init)).pairs[0]


def test_untyped_config_is_the_files_config_class_built_small():
    spec = _spec(f"{HF}::TinyLayer", f"{PORT}::TinyLayer")
    cfg = spec.a.init["config"]
    assert isinstance(cfg, Config) and cfg.cls == "TinyConfig"  # from `config_class = TinyConfig`, a sibling file
    assert cfg.kwargs["hidden_size"] == 32 and cfg.kwargs["vocab_size"] == 64 and cfg.kwargs["pad_token_id"] < 64
    port = spec.b.init["config"]
    assert port.cls == "ModelArgs" and port.kwargs["model_type"] == ""  # required str of a base dataclass
    for key in ("hidden_size", "num_attention_heads", "intermediate_size", "vocab_size", "layer_norm_eps"):
        assert port.kwargs[key] == cfg.kwargs.get(key, 1e-12), key  # B built with A's settings
    (finding,) = [f for f in spec.static_findings if f["kind"] == "setting"]
    assert "A declares config.layer_norm_eps=1e-12, B declares config.layer_norm_eps=1e-05" in finding["message"]


def test_untyped_config_without_a_class_is_a_namespace_of_the_fields_read(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("from torch import nn\n\n\nclass Inner(nn.Module):\n    def __init__(self, cfg):\n"
                   "        super().__init__()\n        self.fc = nn.Linear(cfg.n_embd, cfg.n_embd * 4)\n\n\n"
                   "class Block(nn.Module):\n    def __init__(self, cfg):\n        super().__init__()\n"
                   "        self.norm = nn.LayerNorm(cfg.n_embd, eps=cfg.norm_eps)\n        self.inner = Inner(cfg)\n\n"
                   "    def forward(self, x):\n        return self.inner(self.norm(x))\n")
    spec = build_plan(Target(str(src), "Block"), Target(str(src), "Block"), PlanOptions()).pairs[0]
    assert spec.a.init["cfg"] == Config("", {"n_embd": 32, "norm_eps": 1e-5})


def test_init_reaches_config_fields_and_an_unknown_init_is_an_error():
    spec = _spec(f"{HF}::TinyMLP", f"{PORT}::TinyMLP", **{"config.intermediate_size": 48})
    assert spec.a.init["config"].kwargs["intermediate_size"] == 48 == spec.b.init["config"].kwargs["intermediate_size"]
    run = parity(fx(f"{HF}::TinyMLP"), "vs", fx(f"{PORT}::TinyMLP"), "--init", "config.no_such_field=3", "--quick")
    assert run.code == 2 and "--init config.no_such_field: matches no constructor argument" in run.stderr


def test_module_trees_are_aligned_before_leaves():
    a = [ParamInfo(f"attn.{n}.{leaf}", (8, 8) if leaf == "weight" else (8,)) for n in ("query", "key", "value")
         for leaf in ("weight", "bias")] + [ParamInfo("ln.weight", (8,)), ParamInfo("ln.bias", (8,))]
    b = [ParamInfo("norm.weight", (8,)), ParamInfo("norm.bias", (8,))] + [
        ParamInfo(f"sa.{n}.{leaf}", (8, 8) if leaf == "weight" else (8,)) for n in ("q_proj", "k_proj", "v_proj")
        for leaf in ("weight", "bias")]
    entries, left_a, left_b = match_parameters(a, b, order_a=["ln", "attn.key", "attn.value", "attn.query"],
                                               order_b=["norm", "sa.q_proj", "sa.k_proj", "sa.v_proj"])
    mapped = {e.a: e.b for e in entries}
    assert mapped["attn.query.bias"] == "sa.q_proj.bias" and mapped["attn.key.weight"] == "sa.k_proj.weight"
    assert mapped["ln.bias"] == "norm.bias" and not left_a and not left_b


needs_mlx = pytest.mark.skipif(importlib.util.find_spec("mlx") is None, reason="mlx is not installed")


@needs_mlx
@pytest.mark.parametrize("symbol", ["TinyEmbeddings", "TinyAttention", "TinyMLP", "TinyLayer"])
def test_transformers_style_file_vs_mlx_port_passes_without_hints(symbol):
    run = parity(fx(f"{HF}::{symbol}"), "vs", fx(f"{PORT}::{symbol}"), "--json")
    assert run.report["verdict"] == "pass", run.stderr
    if symbol == "TinyAttention":  # (out, probs) vs out: compared on out, probs named as not compared
        assert any("output[1]" in lim for lim in run.pair["limitations"])
        assert {(e["a"], e["b"]) for e in run.pair["weight_map"]} >= {("query.weight", "query_proj.weight"),
                                                                     ("dense.bias", "out_proj.bias")}
    if symbol == "TinyEmbeddings":  # input_ids=None on A, required on B: fed by name
        assert [(i["name"], i["dtype"]) for i in run.pair["inputs"]] == [("input_ids", "int64")]


@needs_mlx
def test_buggy_port_fails_with_the_cause_and_line(tmp_path):
    source = Path(fx(PORT)).read_text()
    line = source.index("nn.gelu(self.fc1")
    buggy = tmp_path / "port_gelu_tanh.py"  # the port with the tanh approximation of GELU in its MLP
    buggy.write_text(source.replace("nn.gelu(self.fc1", "nn.gelu_approx(self.fc1"))
    run = parity(fx(f"{HF}::TinyLayer"), "vs", f"{buggy}::TinyLayer", "--json")
    assert run.code == 1 and run.status("forward") == "fail"
    assert run.pair["first_divergence"] == "mlp.dense_out"  # where it is first seen; it starts in the MLP's code
    assert run.pair["root_cause"]["a"] == "mlp" and run.pair["root_cause"]["where"] == "own code"
    gelu = [d for d in run.pair["diagnosis"] if d["kind"] == "approximation"]
    assert gelu and gelu[0]["location"].endswith(f"port_gelu_tanh.py:{source[:line].count(chr(10)) + 1}")


@needs_mlx
def test_whole_files_pair_every_class_and_name_what_is_left_out():
    run = parity(fx("realcode/hf_like/tiny/modeling_tiny.py"), "vs", fx(PORT), "--json", "--quick")
    pairs = [p for p in run.report["pairs"] if not p.get("variant")]
    assert sorted(p["a"]["symbol"] for p in pairs) == ["TinyAttention", "TinyEmbeddings", "TinyLayer", "TinyMLP"]
    # the layers that take an attention mask run again with a causal one on both sides
    assert sorted(p["a"]["symbol"] for p in run.variants) == ["TinyAttention", "TinyLayer"]
    assert all(p["verdict"] == "pass" for p in run.variants)
    assert all(p["verdict"] == "pass" for p in pairs)
    assert "not paired: A eager_attention, TinyPreTrainedModel; B -" in pairs[0]["notes"]


def test_init_takes_a_dotted_framework_reference():
    run = parity(fx("realcode/dtype_arg.py::Proj"), "vs", fx("realcode/dtype_arg.py::Proj"), "--json", "--quick",
                 "--init", "dtype=torch.float32")
    assert run.report["verdict"] == "pass", run.stderr
    assert run.pair["a"]["init"]["dtype"] == "Ref(path='torch.float32')"


def test_weights_stored_in_out_map_transposed():
    """GPT-2's Conv1D keeps (in, out) weights: found by the side from its bias, mapped with a transpose, square
    ones included (never matched by shape to the wrong projection)."""
    a = [ParamInfo("c_fc.weight", (32, 128)), ParamInfo("c_fc.bias", (128,)), ParamInfo("c_proj.weight", (128, 32)),
         ParamInfo("c_proj.bias", (32,)), ParamInfo("attn.c_proj.weight", (32, 32))]
    b = [ParamInfo("fc.weight", (128, 32)), ParamInfo("fc.bias", (128,)), ParamInfo("proj.weight", (32, 128)),
         ParamInfo("proj.bias", (32,)), ParamInfo("attn.out.weight", (32, 32))]
    flips = ({"c_fc.weight", "c_proj.weight", "attn.c_proj.weight"}, set())
    entries, left_a, left_b = match_parameters(a, b, flips=flips, order_a=["c_fc", "c_proj", "attn.c_proj"],
                                               order_b=["fc", "proj", "attn.out"])
    mapped = {e.a: (e.b, e.transform) for e in entries}
    assert mapped["c_fc.weight"] == ("fc.weight", "transpose") and mapped["c_proj.weight"] == ("proj.weight", "transpose")
    assert mapped["attn.c_proj.weight"] == ("attn.out.weight", "transpose") and not left_a and not left_b


def test_mapping_table_folds_repeated_blocks():
    from parity_skill.report.text import grouped_entries, grouped_names

    entries = [{"a": f"h.{i}.attn.qkv.weight", "b": f"layers.{i}.q.weight+layers.{i}.k.weight+layers.{i}.v.weight",
                "transform": "split0:8,8,8", "how": "fused"} for i in range(200)]
    entries.append({"a": "h.3.mlp.c_fc.weight", "b": "layers.4.mlp.fc.weight", "transform": "identity", "how": "x"})
    rows = grouped_entries(entries)
    assert rows[0] == ("h.{i}.attn.qkv.weight -> layers.{i}.q.weight+layers.{i}.k.weight+layers.{i}.v.weight  "
                       "[split0:8,8,8, fused]  for i in 0-199")
    assert rows[1] == "h.3.mlp.c_fc.weight -> layers.4.mlp.fc.weight  [identity, x]"  # other blocks: never folded
    assert grouped_names([f"h.{i}.b" for i in (0, 1, 2, 5)] + ["wte.weight"]) == ["h.{i}.b (i in 0-2, 5)",
                                                                                   "wte.weight"]


@pytest.mark.parametrize("act_b, claimed", [("", True), ("ACT2FN", False)])
def test_activation_on_one_side_is_claimed_only_when_the_other_side_has_none(tmp_path, act_b, claimed):
    a = tmp_path / "a.py"
    a.write_text("from torch import nn\nimport torch.nn.functional as F\n\n\nclass MLP(nn.Module):\n"
                 "    def __init__(self, dim: int):\n        super().__init__()\n        self.fc = nn.Linear(dim, dim)\n\n"
                 "    def forward(self, x):\n        return F.gelu(self.fc(x))\n")
    act = "        self.act = ACT2FN['gelu']\n" if act_b else ""
    b = tmp_path / "b.py"
    b.write_text("from torch import nn\nACT2FN = {'gelu': nn.GELU()}\n\n\nclass MLP(nn.Module):\n"
                 "    def __init__(self, dim: int):\n        super().__init__()\n        self.fc = nn.Linear(dim, dim)\n"
                 f"{act}\n    def forward(self, x):\n        return {'self.act(self.fc(x))' if act_b else 'self.fc(x)'}\n")
    spec = build_plan(Target(str(a), "MLP"), Target(str(b), "MLP"), PlanOptions()).pairs[0]
    found = [f["message"] for f in spec.static_findings if f["kind"] == "approximation"]
    assert found == (["activations differ: A uses gelu, B uses -"] if claimed else [])


def test_no_missing_activation_is_claimed_for_a_side_whose_layers_come_from_a_table(tmp_path):
    """Jamba's model picks each layer's class from a table (`layer_class = DECODER_LAYER_TYPES[kind]`): its MLP is
    not among the classes read, so "A uses no activation" would be a guess (it was claimed, and said to explain a
    failure whose cause was elsewhere)."""
    a = tmp_path / "a.py"
    a.write_text("from torch import nn\n\n\nclass Layer(nn.Module):\n    def __init__(self, dim: int):\n"
                 "        super().__init__()\n        self.fc = nn.Linear(dim, dim)\n\n    def forward(self, x):\n"
                 "        return self.fc(x)\n\n\nTYPES = {'plain': Layer}\n\n\nclass Model(nn.Module):\n"
                 "    def __init__(self, dim: int):\n        super().__init__()\n        layer_class = TYPES['plain']\n"
                 "        self.layers = nn.ModuleList([layer_class(dim)])\n\n    def forward(self, x):\n"
                 "        for layer in self.layers:\n            x = layer(x)\n        return x\n")
    b = tmp_path / "b.py"
    b.write_text("from torch import nn\nimport torch.nn.functional as F\n\n\nclass Model(nn.Module):\n"
                 "    def __init__(self, dim: int):\n        super().__init__()\n        self.fc = nn.Linear(dim, dim)\n\n"
                 "    def forward(self, x):\n        return F.silu(self.fc(x))\n")
    spec = build_plan(Target(str(a), "Model"), Target(str(b), "Model"), PlanOptions()).pairs[0]
    assert not [f for f in spec.static_findings if f["kind"] == "approximation"]


def test_no_missing_activation_is_claimed_for_a_side_that_calls_an_imported_helper(tmp_path):
    """mlx-lm's MLP returns `down(swiglu(gate(x), up(x)))` with `swiglu` imported from `.activations`: its code is
    not read, so "B uses no activation" was a false finding on passing ports (SmolLM3, LFM2)."""
    a = tmp_path / "a.py"
    a.write_text("from torch import nn\nimport torch.nn.functional as F\n\n\nclass MLP(nn.Module):\n"
                 "    def __init__(self, dim: int):\n        super().__init__()\n        self.fc = nn.Linear(dim, dim)\n\n"
                 "    def forward(self, x):\n        return F.silu(self.fc(x))\n")
    b = tmp_path / "b.py"
    b.write_text("from torch import nn\nfrom helpers import swiglu\n\n\nclass MLP(nn.Module):\n"
                 "    def __init__(self, dim: int):\n        super().__init__()\n        self.fc = nn.Linear(dim, dim)\n\n"
                 "    def forward(self, x):\n        return swiglu(self.fc(x), x)\n")
    spec = build_plan(Target(str(a), "MLP"), Target(str(b), "MLP"), PlanOptions()).pairs[0]
    assert not [f for f in spec.static_findings if f["kind"] == "approximation"]
