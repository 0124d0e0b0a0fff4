"""--stream (issue #26): models compared one block at a time, each module's weights loaded only while it runs,
each block fed A's recorded input and judged alone."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, parity

torch = pytest.importorskip("torch")

MODELS = ROOT / "benchmarks" / "models"
A = f"{MODELS / 'gpt2_fused.py'}::GPT2Stack"
SIZES = ("--init", "dim=64", "--init", "heads=4", "--init", "n_layer=4")


def _broken(tmp_path: Path, layer: int = 2) -> str:
    """B with one block's second LayerNorm eps changed: a one-line bug in one block."""
    source = (MODELS / "gpt2_split.py").read_text()
    marker = "        self.ln_f = nn.LayerNorm(dim)\n"
    assert marker in source
    path = tmp_path / "gpt2_broken.py"
    path.write_text(source.replace(marker, marker + f"        self.h[{layer}].ln_2.eps = 1e-2\n"))
    return f"{path}::GPT2Stack"


def _stages(run) -> dict[str, str]:
    return {c["name"][6:]: c["status"] for c in run.pair["checks"] if c["name"].startswith("stage:")}


def test_a_correct_port_passes_block_by_block():
    """Fused qkv (A) against separate q, k, v (B): the weight map splits A's checkpoint into B's modules."""
    run = parity(A, "vs", f"{MODELS / 'gpt2_split.py'}::GPT2Stack", *SIZES, "--stream", "--json")
    assert run.code == 0 and run.pair["verdict"] == "pass"
    assert _stages(run) == {"h.0": "pass", "h.1": "pass", "h.2": "pass", "h.3": "pass", "ln_f": "pass"}
    assert run.pair["stream"]["a"]["peak_rss_mb"] and run.pair["stream"]["b"]["peak_rss_mb"]
    assert any("teacher forcing" in n for n in run.pair["notes"])


def test_one_broken_block_is_the_first_divergence_and_the_others_still_pass(tmp_path):
    run = parity(A, "vs", _broken(tmp_path), *SIZES, "--stream", "--json")
    assert run.code == 1 and run.pair["first_divergence"].startswith("h.2:")
    assert _stages(run) == {"h.0": "pass", "h.1": "pass", "h.2": "fail", "h.3": "pass", "ln_f": "pass"}
    text = parity(A, "vs", _broken(tmp_path), *SIZES, "--stream").stdout
    assert "First divergence: h.2" in text and "Verdict: FAIL" in text


def test_a_model_far_larger_than_memory_is_built_without_its_weights():
    """A 50 GB model (1,000 layers of d=1024) is built in the memory of one layer: every parameter a NaN
    placeholder of its shape until its module runs."""
    from parity_skill.runtime.stream import blocks as B
    from parity_skill.runtime.stream.side_a import build_light
    from parity_skill.spec import Checks, Implementation, InputSpec, PairSpec

    impl = Implementation(str(MODELS / "gpt2_fused.py"), "GPT2Stack", "torch", "module",
                          {"dim": 1024, "heads": 16, "n_layer": 1000})
    spec = PairSpec(impl, impl, (InputSpec("x", (1, 2, 1024)),), (), Checks(("stream",), {}, stream=True))
    model = build_light("a", spec).model
    sizes = B.shapes(model)
    assert sum(int(torch.tensor(s).prod()) for s in sizes.values()) > 12e9
    assert all(p.untyped_storage().nbytes() <= p.element_size() for p in model.parameters())
    assert len(B.blocks(model)) == 1001


def test_a_parameter_read_outside_its_module_is_an_error_never_a_number(tmp_path):
    source = ("import torch\nfrom torch import nn\n\n\nclass Tied(nn.Module):\n    def __init__(self, dim: int = 16):\n"
              "        super().__init__()\n        self.proj = nn.Linear(dim, dim)\n        self.norm = nn.LayerNorm(dim)\n\n"
              "    def forward(self, x):\n        return self.norm(x @ self.proj.weight.T)\n")
    (tmp_path / "a.py").write_text(source)
    (tmp_path / "b.py").write_text(source)
    run = parity(f"{tmp_path / 'a.py'}::Tied", "vs", f"{tmp_path / 'b.py'}::Tied", "--stream", "--json")
    assert run.code == 2 and "outside its own module's forward" in run.pair["error"]


def test_stream_refuses_what_it_cannot_build(tmp_path):
    mlx = ROOT / "tests" / "fixtures" / "mlx"
    run = parity(f"{mlx / 'rmsnorm_torch.py'}::RMSNorm", "vs", f"{mlx / 'rmsnorm_mlx.py'}::RMSNorm", "--stream")
    assert run.code == 2 and "--stream compares torch modules" in run.stderr + run.stdout


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "parity_skill", *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


def test_two_machines_capture_then_compare_and_a_damaged_stream_manifest(tmp_path):
    """Phase 1 on one machine, phase 2 on another through the artifact: compare reads --stream from it."""
    folder = tmp_path / "a"
    assert _cli("capture", A, *SIZES, "--stream", "-o", str(folder)).returncode == 0
    run = _cli("compare", str(folder), _broken(tmp_path), *SIZES, "--json")
    pair = json.loads(run.stdout)["pairs"][0]
    assert run.returncode == 1 and pair["first_divergence"].startswith("h.2:")
    damaged = tmp_path / "damaged"
    shutil.copytree(folder, damaged)
    manifest = json.loads((damaged / "manifest.json").read_text())
    manifest["stream"]["params"] = ["not", "a", "table"]
    (damaged / "manifest.json").write_text(json.dumps(manifest))
    bad = _cli("compare", str(damaged), f"{MODELS / 'gpt2_split.py'}::GPT2Stack", *SIZES)
    assert bad.returncode == 2 and "manifest field 'stream' 'params' must be" in bad.stdout + bad.stderr
    assert "Traceback" not in bad.stderr


def test_first_tensor_and_replace_first_keep_the_structure():
    from parity_skill.runtime.stream.blocks import first_tensor, replace_first

    h, w = torch.ones(2), torch.zeros(3)
    assert first_tensor((None, (h, w))) is h and first_tensor({"attn": None, "hidden": h}) is h
    out = replace_first((None, (h, w), 5), w)
    assert out[1][0] is w and out[1][1] is w and out[2] == 5
    assert replace_first({"a": 1, "h": h}, w) == {"a": 1, "h": w}


def test_blocks_pair_by_the_weights_they_take():
    from parity_skill.runtime.stream.side_b import pair_blocks
    from parity_skill.spec import MapEntry

    entries = [MapEntry("h.0.attn.qkv.weight", "layers.0.attn.q.weight+layers.0.attn.k.weight", "split0:4,4"),
               MapEntry("h.1.mlp.weight", "layers.1.mlp.weight"), MapEntry("ln_f.weight", "norm.weight")]
    got = pair_blocks(["h.0", "h.1", "ln_f", "drop"], ["layers.0", "layers.1", "norm", "drop"], entries)
    assert got == {"h.0": "layers.0", "h.1": "layers.1", "ln_f": "norm", "drop": "drop"}


def test_a_real_transformers_model_streams():
    pytest.importorskip("transformers")
    import transformers

    path = Path(transformers.__file__).parent / "models" / "llama" / "modeling_llama.py"
    run = parity(f"{path}::LlamaForCausalLM", "vs", f"{path}::LlamaForCausalLM", "--stream", "--json")
    assert run.code == 0, run.pair.get("error")
    assert {"model.layers.0", "model.layers.1", "model.norm", "lm_head"} <= set(_stages(run))


TABLES_A = '''import torch
from torch import nn


class Table(nn.Module):
    def __init__(self, base: float):
        super().__init__()
        self.base = base

    def forward(self, x):
        return torch.cos(torch.arange(x.shape[1], dtype=x.dtype)[:, None] / self.base)


class Model(nn.Module):
    def __init__(self, dim: int = 16):
        super().__init__()
        self.table_global = Table(1000.0)
        self.table_local = Table(10.0)
        self.layers = nn.ModuleList([nn.Linear(dim, dim) for _ in range(2)])

    def forward(self, x):
        g, loc = self.table_global(x), self.table_local(x)
        return self.layers[1](self.layers[0](x) + loc) + g
'''

TABLES_B = '''import torch
from torch import nn


class Table(nn.Module):
    def forward(self, x, base):
        return torch.cos(torch.arange(x.shape[1], dtype=x.dtype)[:, None] / base)


class Model(nn.Module):
    def __init__(self, dim: int = 16):
        super().__init__()
        self.table = Table()
        self.layers = nn.ModuleList([nn.Linear(dim, dim) for _ in range(2)])

    def forward(self, x):
        loc, g = self.table(x, {local}), self.table(x, 1000.0)
        return self.layers[1](self.layers[0](x) + loc) + g
'''


def test_weightless_blocks_are_judged_against_the_a_call_they_compute(tmp_path):
    """A computes its global and local tables in two modules; B in one module called twice, local first (as
    transformers 5 does for Gemma 3's rotary tables). Each B call is judged against the A table it is closest to:
    a PASS; a B whose local base is wrong fails at that table, not at a layer downstream."""
    (tmp_path / "a.py").write_text(TABLES_A)
    (tmp_path / "b.py").write_text(TABLES_B.format(local="10.0"))
    (tmp_path / "bad.py").write_text(TABLES_B.format(local="12.0"))
    a = f"{tmp_path / 'a.py'}::Model"
    run = parity(a, "vs", f"{tmp_path / 'b.py'}::Model", "--stream", "--json")
    assert run.code == 0, [(c["name"], c["message"]) for c in run.pair["checks"]]
    assert {c.get("b_stage") for c in run.pair["checks"]} >= {"table"}
    bad = parity(a, "vs", f"{tmp_path / 'bad.py'}::Model", "--stream", "--json")
    assert bad.code == 1 and bad.pair["first_divergence"].startswith("table_local")


def test_a_port_that_skips_blocks_it_holds_fails_never_passes(tmp_path):
    """Teacher forcing feeds each block A's input, so a port that never runs its layers would pass every block it
    does run: a block B holds (its weights are A's) but never runs is a failure, named.""" 
    source = (MODELS / "gpt2_split.py").read_text()
    marker = "        for block in self.h:\n"
    assert marker in source
    lazy = tmp_path / "lazy.py"
    lazy.write_text(source.replace(marker, "        for block in []:\n"))
    run = parity(A, "vs", f"{lazy}::GPT2Stack", *SIZES, "--stream", "--json")
    stages = _stages(run)
    assert run.code == 1 and stages.get("ln_f") == "pass" and stages.get("h.0") == "fail"  # teacher-forced norm
    assert run.pair["first_divergence"].startswith("h.0: B never runs h.0")
