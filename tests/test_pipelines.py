"""Pipelines and the fixtures teams already have: stages of any program recorded with parity_skill.record/stage,
plain safetensors and .npy fixtures written by another program, renamed stages, and inputs or weights that differ
named as the cause before any stage is blamed."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from conftest import ROOT


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "parity_skill", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


def program(tmp_path: Path, name: str, code: str) -> None:
    """Run a small program in its own process, as each side of a port runs."""
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(code))
    done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr


# ---- a NumPy program standing in for the Swift side: plain safetensors fixtures per layer --------------------------
SWIFT_STAND_IN = """
import numpy as np
from safetensors.numpy import save_file

rng = np.random.default_rng(0)
x = rng.standard_normal((2, 8, 16)).astype(np.float32)
w = (rng.standard_normal((16, 16)) / 4).astype(np.float32)
for name, drift in (("embed", 0.0), ("block0", {drift_block0}), ("head", 0.0)):
    y = np.tanh(x @ w) + drift * np.ones_like(x)
    save_file({{"input": x, "output": y}}, f"{{name}}.safetensors")
    save_file({{"weight": w}}, f"{{name}}_weights.safetensors")
    x = y
"""


def test_plain_safetensors_fixtures_of_another_program_are_judged_by_level(tmp_path):
    for side, drift in (("ref", 0.0), ("port", 2e-5)):
        folder = tmp_path / side
        folder.mkdir()
        program(folder, "write", SWIFT_STAND_IN.format(drift_block0=drift))
    layer = cli("compare", str(tmp_path / "ref"), str(tmp_path / "port"), "--json")
    report = json.loads(layer.stdout)["pairs"][0]
    status = {c["name"]: c["status"] for c in report["checks"]}
    assert layer.returncode == 1 and status["stage:block0"] == "fail" and status["stage:embed"] == "pass"
    assert status["weight:block0.weight"] == "pass"  # the weights each layer ran with, compared first
    assert status["input:embed"] == "pass" and "input:head" not in status  # head's input is block0's output
    assert report["diagnosis"] == [] and report["first_divergence"] == "block0"
    chain = cli("compare", str(tmp_path / "ref"), str(tmp_path / "port"), "--level", "chain")
    assert chain.returncode == 0, chain.stdout  # 2e-5 (and what it becomes downstream) is within a chain's 1e-4
    single = cli("compare", str(tmp_path / "ref" / "embed.safetensors"), str(tmp_path / "port" / "embed.safetensors"))
    assert single.returncode == 0 and "output" in single.stdout


# ---- a torch pipeline with a denoising loop and its MLX port, recorded in two processes ---------------------------
TORCH_PIPELINE = """
import torch, parity_skill
torch.manual_seed(0)
enc, block, dec = torch.nn.Linear(8, 16), torch.nn.Linear(16, 16), torch.nn.Linear(16, 4)
weights = {{k: v.detach().numpy() for m, p in ((enc, "enc"), (block, "block"), (dec, "dec"))
           for k, v in ((f"{{p}}.{{n}}", t) for n, t in m.state_dict().items())}}
import numpy as np
np.savez("weights.npz", **weights)
x = torch.randn(2, 8)
np.save("prompt.npy", x.numpy())
with parity_skill.record("run_a", weights=weights), torch.no_grad():
    h = parity_skill.stage("text_encoder", enc(x), given=x)
    for t in range(4):
        with parity_skill.scope("denoise"):
            h = parity_skill.stage("transformer_step", torch.tanh(block(h)) + 0.1 * t)
    parity_skill.stage("decode", dec(h))
"""

MLX_PIPELINE = """
import numpy as np, mlx.core as mx, parity_skill
w = dict(np.load("weights.npz"))
weights = {{k.replace("block.", "{renamed}."): v for k, v in w.items()}}
if {bad_weight}:
    weights["{renamed}.bias"] = weights["{renamed}.bias"] + 0.5
lin = lambda p, x: x @ mx.array(weights[p + ".weight"]).T + mx.array(weights[p + ".bias"])
x = mx.array(np.load("prompt.npy"))
with parity_skill.record("run_b", weights=weights):
    h = parity_skill.stage("{encoder}", lin("enc", x), given=x)
    for t in range(4):
        with parity_skill.scope("{loop}"):
            h = mx.tanh(lin("{renamed}", h)) + 0.1 * t
            h = h if t < {broken_from} else h[:, ::-1]  # the port's bug: its features come out reversed
            h = parity_skill.stage("transformer_step", h)
    parity_skill.stage("decode", lin("dec", h))
"""


def _pipelines(tmp_path, **port) -> tuple[str, str]:
    pytest.importorskip("torch")
    pytest.importorskip("mlx.core")
    settings = {"renamed": "block", "bad_weight": False, "encoder": "text_encoder", "loop": "denoise",
                "broken_from": 99, **port}
    program(tmp_path, "pipeline_torch", TORCH_PIPELINE.format())
    program(tmp_path, "pipeline_mlx", MLX_PIPELINE.format(**settings))
    return str(tmp_path / "run_a"), str(tmp_path / "run_b")


def test_a_recorded_pipeline_and_its_port_name_the_first_divergent_step(tmp_path):
    a, b = _pipelines(tmp_path, broken_from=2)
    run = cli("compare", a, b, "--min-correlation", "0.95", "--json")
    pair = json.loads(run.stdout)["pairs"][0]
    assert run.returncode == 1 and pair["first_divergence"] == "denoise.transformer_step#2", pair["first_divergence"]
    status = {c["name"]: c["status"] for c in pair["checks"]}
    assert status["stage:denoise.transformer_step#1"] == "pass" and status["stage:text_encoder"] == "pass"
    correct = tmp_path / "correct"
    correct.mkdir()
    fine = cli("compare", *_pipelines(correct))
    assert fine.returncode == 0, fine.stdout


def test_renamed_stages_map_by_order_and_shape_and_a_renamed_modules_weights_are_the_cause(tmp_path):
    a, b = _pipelines(tmp_path, encoder="clip", loop="unet")
    run = cli("compare", a, b, "--json")
    pair = json.loads(run.stdout)["pairs"][0]
    assert run.returncode == 0 and pair["stage_map"]["text_encoder"] == "clip"
    assert pair["stage_map"]["denoise.transformer_step#3"] == "unet.transformer_step#3"
    assert any("mapped by order and shape" in n for n in pair["notes"])
    other = tmp_path / "bad"
    other.mkdir()
    a, b = _pipelines(other, renamed="unet_block", bad_weight=True)
    rules = other / "rules.txt"
    rules.write_text("block.weight -> unet_block.weight\nblock.bias -> unet_block.bias\n")
    run = cli("compare", a, b, "--map", str(rules), "--json")
    pair = json.loads(run.stdout)["pairs"][0]
    assert run.returncode == 1
    cause = pair["diagnosis"][0]
    assert cause["kind"] == "given" and cause["check"] == "weight:block.bias", cause
    assert "Cause: [given] weight:block.bias" in cli("compare", a, b, "--map", str(rules)).stdout


def test_options_that_do_not_apply_to_two_artifacts_are_refused(tmp_path):
    a = tmp_path / "a"
    a.mkdir()
    save_file({"input": np.ones((2, 3), np.float32), "output": np.ones((2, 3), np.float32)}, str(a / "x.safetensors"))
    run = cli("compare", str(a), str(a), "--quick", "--init", "dim=4")
    assert run.returncode == 2 and "--init, --quick: not used when two artifacts are compared" in run.stderr, run.stderr
    strict = cli("compare", str(a), str(tmp_path), "--strict")  # B holds no fixture at all
    assert strict.returncode == 2 and "no .npy, .npz or .safetensors fixture" in strict.stderr


def test_a_folder_of_npy_checkpoints_is_read_in_natural_order(tmp_path):
    for side, bump in (("a", 0.0), ("b", 1.0)):
        folder = tmp_path / side
        folder.mkdir()
        for step in (0, 1, 2, 10):
            np.save(folder / f"transformer_step_{step}.npy", np.full((2, 2), step + (bump if step == 10 else 0.0)))
    run = cli("compare", str(tmp_path / "a"), str(tmp_path / "b"), "--json")
    pair = json.loads(run.stdout)["pairs"][0]
    assert [c["name"] for c in pair["checks"]] == [f"stage:transformer_step_{s}" for s in (0, 1, 2, 10)]
    assert pair["first_divergence"] == "transformer_step_10"


def test_a_capture_in_which_every_call_raised_exits_2(tmp_path):
    run = cli("capture", "tests/fixtures/errors/forward_raises.py", "-o", str(tmp_path / "cap"))
    assert run.returncode == 2 and "every call of A raised" in run.stderr


def test_a_wrong_reference_is_attributed_to_a_with_a_third_implementation(tmp_path):
    """The text-to-speech case: the reference script forgot to add the position embeddings. With --ref C (a third
    implementation), the differing stage is "A disagrees with B and C", not blamed on the port."""
    rng = np.random.default_rng(0)
    tokens, pos = rng.standard_normal((2, 6, 8)), rng.standard_normal((6, 8))
    for name, with_pos in (("a", False), ("b", True), ("c", True)):
        folder = tmp_path / name
        folder.mkdir()
        h = tokens + (pos if with_pos else 0.0)
        np.save(folder / "01_embed.npy", h)
        np.save(folder / "02_encoder.npy", np.tanh(h))
    run = cli("compare", str(tmp_path / "a"), str(tmp_path / "b"), "--ref", str(tmp_path / "c"), "--json")
    pair = json.loads(run.stdout)["pairs"][0]
    assert run.returncode == 1 and pair["first_divergence"] == "01_embed"
    assert pair["attribution"][0]["side"] == "A" and pair["diagnosis"][0]["kind"] == "attribution"
    assert "01_embed: A disagrees with B and C" in pair["diagnosis"][0]["message"]
    text = cli("compare", str(tmp_path / "a"), str(tmp_path / "b"), "--ref", str(tmp_path / "c")).stdout
    assert "Cause: [attribution] 01_embed: A disagrees with B and C" in text
    code = cli("compare", str(tmp_path / "a"), "tests/fixtures/torch/ffn_module.py", "--ref", str(tmp_path / "c"))
    assert code.returncode == 2 and "--ref takes a third artifact" in code.stderr


NESTED = """
import numpy as np
from safetensors.numpy import save_file

rng = np.random.default_rng(0)
x = rng.standard_normal((2, 8, 16)).astype(np.float32)
stages = {{"encoder.attn": x * 0.5 + {leaf}, "encoder": x + {block}, "decoder": {channels_last}(x * 2.0)}}
for name, y in stages.items():
    save_file({{"output": np.ascontiguousarray(y)}}, f"{{name}}.safetensors")
"""


def _nested(tmp_path: Path, side: str, leaf: float = 0.0, block: float = 0.0, channels_last: bool = False) -> str:
    folder = tmp_path / side
    folder.mkdir()
    program(folder, "write", NESTED.format(leaf=leaf, block=block,
                                           channels_last="(lambda t: t.transpose(0, 2, 1))" if channels_last else ""))
    return str(folder)


def test_level_auto_and_a_tolerance_file_set_each_stages_bound(tmp_path):
    """auto: a stage whose submodules were recorded (encoder) is a block, judged at chain level (1e-4); its leaf
    (encoder.attn) at layer level (1e-5). A pattern file overrides by name, the first matching line winning."""
    ref = _nested(tmp_path, "ref")
    port = _nested(tmp_path, "port", leaf=5e-5, block=5e-5)
    status = lambda run: {c["name"]: c["status"] for c in json.loads(run.stdout)["pairs"][0]["checks"]}  # noqa: E731
    auto = cli("compare", ref, port, "--level", "auto", "--json")
    assert status(auto) == {"stage:encoder.attn": "fail", "stage:encoder": "pass", "stage:decoder": "pass"}
    pair = json.loads(auto.stdout)["pairs"][0]
    atol = {c["name"]: c["tolerance"]["atol"] for c in pair["checks"]}
    assert atol == {"stage:encoder.attn": 1e-5, "stage:encoder": 1e-4, "stage:decoder": 1e-5}
    assert any("--level auto" in n for n in pair["notes"])
    rules = tmp_path / "tolerances.txt"
    rules.write_text("# per-stage bounds\nencoder.* chain\nencoder 1e-6\n")
    by_file = cli("compare", ref, port, "--tolerances", str(rules), "--json")
    assert status(by_file) == {"stage:encoder.attn": "pass", "stage:encoder": "fail", "stage:decoder": "pass"}
    rules.write_text("encoder.* tight\n")
    bad = cli("compare", ref, port, "--tolerances", str(rules))
    assert bad.returncode == 2 and "tolerances.txt:1: expected `PATTERN LEVEL` or `PATTERN ATOL`" in bad.stderr


def test_layout_applies_per_stage_when_two_artifacts_are_compared(tmp_path):
    ref = _nested(tmp_path, "ref")
    port = _nested(tmp_path, "port", channels_last=True)
    plain = cli("compare", ref, port, "--json")
    decoder = next(c for c in json.loads(plain.stdout)["pairs"][0]["checks"] if c["name"] == "stage:decoder")
    assert plain.returncode == 1 and "shape" in decoder["message"]
    moved = cli("compare", ref, port, "--layout", "b=nlc", "--json")
    pair = json.loads(moved.stdout)["pairs"][0]
    assert moved.returncode == 0 and any("--layout: B's decoder moved to A's layout" in n for n in pair["notes"])


PIPELINE = """
import numpy as np

import parity_skill


def encode(x):
    return np.tanh(x * 0.5)


def run(x):
    h = parity_skill.stage("encoder", encode(x))
    for _ in range(3):
        h = parity_skill.stage("step", h * 0.9 + {shift})
    return h
"""


def test_capture_records_the_stages_a_plain_function_pipeline_calls(tmp_path):
    """A pipeline that is a function, not a module: `capture FILE.py::run` records its `parity_skill.stage()`
    calls (a repeated name numbered), for A or B alike, and `compare` names the first divergent step."""
    for side, shift in (("ref", "0.1"), ("port", "0.1001")):
        (tmp_path / f"{side}.py").write_text(PIPELINE.format(shift=shift))
        done = cli("capture", f"{tmp_path / side}.py::run", "-o", str(tmp_path / side))
        assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "ref" / "manifest.json").read_text())
    assert [s["name"] for s in manifest["stages"]] == ["encoder", "step", "step#1", "step#2"]
    run = cli("compare", str(tmp_path / "ref"), str(tmp_path / "port"), "--json")
    pair = json.loads(run.stdout)["pairs"][0]
    assert run.returncode == 1 and pair["first_divergence"] == "step"
    assert {c["name"]: c["status"] for c in pair["checks"]}["stage:encoder"] == "pass"
