"""Sizes both sides are built with, read from real code: config defaults and transformers' attribute_map, module
classes imported from another file, widths one side derives itself, the config fields a layer really reads."""
from __future__ import annotations

from pathlib import Path

from parity_skill.plan.planner import PlanOptions, Target, build_plan


def _write(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(text)
    return str(path)


CONFIG = '''
class PretrainedConfig:
    def __init__(self, **kwargs):
        pass


class NetConfig(PretrainedConfig):
    attribute_map = {"hidden_size": "n_embd"}

    def __init__(self, n_embd=48, n_inner=None, classifier_proj_size=256, d_model=40, **kwargs):
        super().__init__(**kwargs)
        self.n_embd = n_embd
        self.d_model = d_model
        self.classifier_proj_size = classifier_proj_size
'''

LAYERS = '''
import torch
from torch import nn


class Conv1D(nn.Module):
    """Stores its weight (in, out), like transformers.pytorch_utils.Conv1D."""

    def __init__(self, nf, nx):
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.empty(nx, nf))
        self.bias = nn.Parameter(torch.zeros(nf))

    def forward(self, x):
        return torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight).view(*x.shape[:-1], self.nf)
'''


def test_width_a_layer_takes_follows_the_width_the_other_side_derives(tmp_path):
    """GPT2MLP(intermediate_size, config) with an imported Conv1D vs a port that derives 4 * dim: A is built
    with the port's width (read from its static parameter shapes), so every weight maps."""
    (tmp_path / "pkg").mkdir()
    _write(tmp_path / "pkg", "__init__.py", "")
    _write(tmp_path / "pkg", "configuration_net.py", CONFIG)
    _write(tmp_path / "pkg", "layers.py", LAYERS)
    a = _write(tmp_path / "pkg", "modeling_net.py",
               "from torch import nn\nfrom .configuration_net import NetConfig\nfrom .layers import Conv1D\n\n\n"
               "class NetMLP(nn.Module):\n    config_class = NetConfig\n\n"
               "    def __init__(self, intermediate_size, config):\n        super().__init__()\n"
               "        embed_dim = config.hidden_size\n        self.c_fc = Conv1D(intermediate_size, embed_dim)\n"
               "        self.c_proj = Conv1D(embed_dim, intermediate_size)\n\n"
               "    def forward(self, hidden_states):\n"
               "        return self.c_proj(nn.functional.gelu(self.c_fc(hidden_states)))\n")
    b = _write(tmp_path, "port.py",
               "from torch import nn\n\n\nclass MLP(nn.Module):\n    def __init__(self, n_embd: int):\n"
               "        super().__init__()\n        n_mlp = n_embd * 4\n        self.fc = nn.Linear(n_embd, n_mlp)\n"
               "        self.proj = nn.Linear(n_mlp, n_embd)\n\n    def forward(self, x):\n"
               "        return self.proj(nn.functional.gelu(self.fc(x)))\n")
    spec = build_plan(Target(a, "NetMLP"), Target(b, "MLP"), PlanOptions()).pairs[0]
    dim = spec.a.init["config"].kwargs.get("n_embd", 48)
    assert spec.b.init["n_embd"] == dim  # config.hidden_size is n_embd through attribute_map
    assert spec.a.init["intermediate_size"] == 4 * dim
    assert [i.shape[-1] for i in spec.inputs] == [dim]
    # the imported Conv1D's parameters are known statically ((in, out) storage is found later, on the live module)
    assert {e.a for e in spec.weight_map} == {"c_fc.weight", "c_fc.bias", "c_proj.weight", "c_proj.bias"}


def test_b_takes_the_config_field_a_reads_when_several_share_a_role(tmp_path):
    """d_model (read by the layer), not classifier_proj_size (also a 'dim' by name), sizes the port."""
    (tmp_path / "pkg").mkdir()
    _write(tmp_path / "pkg", "__init__.py", "")
    _write(tmp_path / "pkg", "configuration_net.py", CONFIG)
    a = _write(tmp_path / "pkg", "modeling_net.py",
               "from torch import nn\nfrom .configuration_net import NetConfig\n\n\nclass Layer(nn.Module):\n"
               "    config_class = NetConfig\n\n    def __init__(self, config):\n        super().__init__()\n"
               "        self.embed_dim = config.d_model\n        self.norm = nn.LayerNorm(self.embed_dim)\n\n"
               "    def forward(self, hidden_states):\n        return self.norm(hidden_states)\n")
    b = _write(tmp_path, "port.py",
               "from torch import nn\n\n\nclass Layer(nn.Module):\n    def __init__(self, n_state: int):\n"
               "        super().__init__()\n        self.ln = nn.LayerNorm(n_state)\n\n    def forward(self, x):\n"
               "        return self.ln(x)\n")
    spec = build_plan(Target(a, "Layer"), Target(b, "Layer"), PlanOptions()).pairs[0]
    assert spec.b.init["n_state"] == 40 and [i.shape for i in spec.inputs] == [(3, 6, 40)]


def test_layer_rebinding_ends_input_hints_but_padding_does_not(tmp_path):
    path = _write(tmp_path, "conv.py",
                  "from torch import nn\n\n\nclass Conv(nn.Module):\n    def __init__(self, in_channels: int):\n"
                  "        super().__init__()\n        self.conv = nn.Conv1d(in_channels, 24, 3)\n"
                  "        self.fc = nn.Linear(24, 8)\n\n    def _pad(self, x):\n        return nn.functional.pad(x, (1, 1))\n\n"
                  "    def forward(self, hidden_states):\n        hidden_states = self._pad(hidden_states)\n"
                  "        hidden_states = self.conv(hidden_states)\n"
                  "        return self.fc(hidden_states.transpose(1, 2))\n")
    spec = build_plan(Target(path, "Conv"), Target(path, "Conv"), PlanOptions()).pairs[0]
    assert [i.shape for i in spec.inputs] == [(3, 16, 12)]  # the conv's channels, not the linear's 24 features


def test_a_kv_head_default_is_kept_dividing_the_shrunk_heads(tmp_path):
    """Mixtral's config: 32 heads shrunk to 4 beside a default of 8 kv heads (not shrunk, being small) gave
    4 // 8 = 0 key/value groups; the default is set to 2, which divides 4 and still groups the heads."""
    src = tmp_path / "moe.py"
    src.write_text('''
import torch.nn as nn


class MoeConfig:
    def __init__(self, hidden_size=4096, num_attention_heads=32, num_key_value_heads=8, **kwargs):
        self.hidden_size = hidden_size
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_key_value_heads


class Attention(nn.Module):
    def __init__(self, config: MoeConfig):
        super().__init__()
        self.groups = config.num_attention_heads // config.num_key_value_heads
        self.q = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, x):
        return self.q(x)
''')
    plan = build_plan(Target(str(src), "Attention"), Target(str(src), "Attention"), PlanOptions())
    kwargs = plan.pairs[0].a.init["config"].kwargs
    assert kwargs["num_attention_heads"] == 4 and kwargs["num_key_value_heads"] == 2


def test_config_classes_from_unions_bases_class_annotations_and_the_classes_that_hand_them_down(tmp_path):
    """transformers 4.57's SigLIP/Mamba shapes: `Union[VisionCfg, TextCfg]` takes its first config member; an untyped
    `config` takes what the class building the layer hands it; a file whose models declare `config: MambaCfg` (no
    `config_class =`) gives untyped layers that class; never a namespace of guessed values."""
    src = tmp_path / "modeling_x.py"
    src.write_text('''
from typing import Union
import torch.nn as nn


class VisionCfg:
    def __init__(self, hidden_size=768, hidden_act="gelu_pytorch_tanh", **kwargs):
        self.hidden_size, self.hidden_act = hidden_size, hidden_act


class TextCfg:
    def __init__(self, hidden_size=512, **kwargs):
        self.hidden_size = hidden_size


class Attention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.q = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, x):
        return self.q(x)


class Layer(nn.Module):
    def __init__(self, config: Union[VisionCfg, TextCfg]):
        super().__init__()
        self.attn = Attention(config)

    def forward(self, x):
        return self.attn(x)


class PreTrained(nn.Module):
    config: VisionCfg


class Block(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        self.q = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, x):
        return self.q(x)
''')
    for name in ("Layer", "Attention", "Block"):
        plan = build_plan(Target(str(src), name), Target(str(src), name), PlanOptions())
        assert plan.pairs[0].a.init["config"].cls == "VisionCfg", name


def test_a_layer_is_built_the_way_its_file_builds_it(tmp_path):
    """mlx-embeddings' SigLIP shape: `EncoderLayer(config: ModelArgs, approx="none")` is only ever built by an Encoder
    that its vision tower builds with a VisionConfig and approx="precise"; its attention always with bias=True. The
    plan takes the class whose fields the code reads, and the values the file builds it with."""
    src = tmp_path / "port.py"
    src.write_text('''
from dataclasses import dataclass
import mlx.nn as nn


@dataclass
class VisionConfig:
    hidden_size: int = 768
    num_attention_heads: int = 12


@dataclass
class ModelArgs:
    vision_config: VisionConfig = None
    model_type: str = "siglip"


class Attention(nn.Module):
    def __init__(self, dims: int, heads: int, bias: bool = False):
        super().__init__()
        self.q = nn.Linear(dims, dims, bias=bias)

    def __call__(self, x):
        return self.q(x)


class EncoderLayer(nn.Module):
    def __init__(self, config: ModelArgs, approx: str = "none"):
        super().__init__()
        self.attn = Attention(config.hidden_size, config.num_attention_heads, bias=True)
        self.approx = approx

    def __call__(self, x):
        return self.attn(x)


class Encoder(nn.Module):
    def __init__(self, config: ModelArgs, approx: str = "none"):
        super().__init__()
        self.layers = [EncoderLayer(config, approx=approx) for _ in range(2)]

    def __call__(self, x):
        return self.layers[0](x)


class VisionTransformer(nn.Module):
    def __init__(self, config: VisionConfig):
        super().__init__()
        self.encoder = Encoder(config, approx="precise")

    def __call__(self, x):
        return self.encoder(x)
''')
    layer = build_plan(Target(str(src), "EncoderLayer"), Target(str(src), "EncoderLayer"), PlanOptions()).pairs[0].a
    assert layer.init["config"].cls == "VisionConfig" and layer.init["approx"] == "precise"
    attn = build_plan(Target(str(src), "Attention"), Target(str(src), "Attention"), PlanOptions()).pairs[0].a
    assert attn.init["bias"] is True


def test_a_real_config_json_drives_both_sides_unshrunk(tmp_path):
    src = tmp_path / "m.py"
    src.write_text('''
import torch.nn as nn


class Cfg:
    def __init__(self, hidden_size=4096, num_attention_heads=32, **kwargs):
        self.hidden_size, self.num_attention_heads = hidden_size, num_attention_heads


class Layer(nn.Module):
    def __init__(self, config: Cfg):
        super().__init__()
        self.q = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, x):
        return self.q(x)
''')
    real = {"hidden_size": 96, "num_attention_heads": 6, "model_type": "tiny"}
    plan = build_plan(Target(str(src), "Layer"), Target(str(src), "Layer"), PlanOptions(config=real))
    assert plan.pairs[0].a.init["config"].kwargs == real  # **kwargs: every field passed, none shrunk
    assert any("built from --config (3 fields, not shrunk)" in n for n in plan.pairs[0].notes)


def test_a_shrunk_image_stays_a_grid_of_patches_and_the_input_is_that_image():
    """SigLIP: image_size 224 shrunk beside patch_size 16 becomes 48 (3 x 3 patches, the position table's rows),
    and a patchifying conv's pixel input is the config's own image size, not a guess from the kernel."""
    from parity_skill.analyze.model import Arg, ConfigClass
    from parity_skill.plan.config_sizes import consistent_sizes
    from parity_skill.plan.inputs import _image_size

    cfg = ConfigClass("VisionConfig", "m.py:1", (Arg("image_size", "int", "224"), Arg("patch_size", "int", "16"),
                                                 Arg("hidden_size", "int", "768")))
    kwargs, notes = {"image_size": 28, "hidden_size": 32}, ["VisionConfig.image_size: default 224 replaced by 28 to "
                                                           "keep the check small"]
    consistent_sizes(cfg, kwargs, set(), notes)
    assert kwargs["image_size"] == 48 and "3 x patch_size 16" in notes[0]
    given = {"image_size": 20}
    consistent_sizes(cfg, given, {"image_size"}, [])
    assert given["image_size"] == 20  # what the user gives stays
    assert _image_size({"config": {"image_size": 48, "patch_size": 16}}) == 48 and _image_size({"x": 3}) is None


def test_a_shrunk_depth_covers_one_whole_layer_period_on_both_sides():
    """mlx-lm's Gemma 3 indexes its caches by sliding_window_pattern (6): two layers raise IndexError. Both sides'
    layer counts become one whole period (one config still drives both); a count given with --init stays."""
    from parity_skill.plan.config_sizes import layer_period
    from parity_skill.spec import Config

    a = {"config": Config("Gemma3TextConfig", {"num_hidden_layers": 2}, defaults={"sliding_window": 4096})}
    b = {"args": Config("ModelArgs", {"num_hidden_layers": 2}, defaults={"sliding_window_pattern": 6})}
    notes: list[str] = []
    a2, b2 = layer_period(a, b, set(), notes)
    assert a2["config"].kwargs["num_hidden_layers"] == 6 and b2["args"].kwargs["num_hidden_layers"] == 6
    assert "one whole sliding_window_pattern period" in notes[0]
    a3, _ = layer_period(a, b, {"num_hidden_layers"}, [])
    assert a3["config"].kwargs["num_hidden_layers"] == 2


def test_a_shrunk_depth_goes_past_the_leading_layers_of_another_kind():
    """DeepSeek-V3's first_k_dense_replace=3: its first 3 layers are dense, the MoE ones come after; a depth of 2
    never ran an expert (a PASS that checked no MoE). Both sides get 4 layers."""
    from parity_skill.plan.config_sizes import layer_period
    from parity_skill.spec import Config

    a = {"config": Config("DeepseekV3Config", {"num_hidden_layers": 2}, defaults={"first_k_dense_replace": 3})}
    b = {"config": Config("ModelArgs", {"num_hidden_layers": 2}, defaults={"first_k_dense_replace": 0})}
    notes: list[str] = []
    a2, b2 = layer_period(a, b, set(), notes)
    assert a2["config"].kwargs["num_hidden_layers"] == 4 and b2["config"].kwargs["num_hidden_layers"] == 4
    assert "raised to 4, one past the first_k_dense_replace=3 leading layers" in notes[0]
