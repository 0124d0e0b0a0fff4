"""Each side in its own process: isolation proved, capture + compare, artifacts and their bad inputs."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, fx, parity, without_timings

pytest.importorskip("torch")
ISO = "isolation"


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "parity_skill", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


# ---- isolation -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("a, b, verdict", [
    ("old/mypkg/model.py::Block", "new/mypkg/model.py::Block", "fail"),  # one package name, a bug only in new/
    ("old/mypkg/model.py::Block", "old/mypkg/model.py::Block", "pass"),
    ("siblings_a/model.py", "siblings_b/model.py", "fail"),  # `from helpers import ...` in both folders
    ("siblings_a/model.py", "siblings_a/model.py", "pass"),
])
def test_each_side_imports_its_own_code(a, b, verdict):
    run = parity(fx(f"{ISO}/{a}"), "vs", fx(f"{ISO}/{b}"), "--quick", "--json")
    assert run.report["verdict"] == verdict, run.stderr
    if verdict == "fail":
        assert run.status("forward") == "fail"


def test_emitted_script_runs_each_side_in_its_own_process(tmp_path):
    script = tmp_path / "check.py"
    run = cli(fx(f"{ISO}/old/mypkg/model.py::Block"), "vs", fx(f"{ISO}/new/mypkg/model.py::Block"), "--quick",
              "--emit", str(script))
    assert run.returncode == 1
    rerun = subprocess.run([sys.executable, str(script), "--json"], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 1 and json.loads(rerun.stdout)["pairs"][0]["checks"][1]["status"] == "fail"


# ---- capture + compare ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("a, b", [
    ("torch/ffn_module.py::FeedForward", "torch/ffn_tanh.py::FeedForward"),
    ("mlx/conv_torch.py", "mlx/conv_mlx.py"),
])
def test_capture_then_compare_gives_the_one_shot_report(tmp_path, a, b):
    if "mlx" in a:
        pytest.importorskip("mlx.core")
    folder = tmp_path / "fixture"
    captured = cli("capture", fx(a), "-o", str(folder))
    assert captured.returncode == 0, captured.stderr
    assert (folder / "manifest.json").is_file() and (folder / "tensors.safetensors").is_file()
    two = cli("compare", str(folder), fx(b), "--json")
    one = cli(fx(a), "vs", fx(b), "--json")
    assert two.returncode == one.returncode
    assert without_timings(json.loads(two.stdout)) == without_timings(json.loads(one.stdout))


def test_compare_needs_no_source_of_a(tmp_path):
    src = tmp_path / "ref_ffn.py"
    shutil.copy(ROOT / fx("torch/ffn_module.py"), src)
    folder = tmp_path / "fixture"
    assert cli("capture", f"{src}::FeedForward", "-o", str(folder)).returncode == 0
    src.unlink()  # A's code is gone: only its artifact is left
    good = cli("compare", str(folder), fx("torch/ffn_functional.py") + "::FeedForward", "--json")
    bad = cli("compare", str(folder), fx("torch/ffn_tanh.py") + "::FeedForward", "--json")
    assert good.returncode == 0, good.stderr
    assert bad.returncode == 1 and json.loads(bad.stdout)["pairs"][0]["checks"][1]["status"] == "fail"
    assert "not here" in " ".join(json.loads(good.stdout)["pairs"][0]["notes"])


def test_artifact_format(tmp_path):
    from safetensors.numpy import load_file

    folder = tmp_path / "fixture"
    assert cli("capture", fx("torch/ffn_module.py::FeedForward"), "-o", str(folder), "--quick").returncode == 0
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["schema"] == "parity-artifact/1" and manifest["side"]["framework"] == "torch"
    assert manifest["side"]["framework_version"] and manifest["seed"] == 0
    assert manifest["checks"] == ["forward", "backward"] and manifest["inputs"][0]["name"] == "x"
    tensors = load_file(str(folder / "tensors.safetensors"))
    assert {"weights/fc1.weight", "weights/fc2.bias"} <= set(tensors)
    kinds = {c["kind"] for c in manifest["calls"]}
    assert {"run", "grads", "trace"} <= kinds
    run = next(c for c in manifest["calls"] if c["kind"] == "run" and c["dtype"] == "fp32")
    n = manifest["calls"].index(run)
    assert tensors[f"calls/{n:04d}/in/0"].shape == (3, 6, 32) and f"calls/{n:04d}/out/0" in tensors


def test_float64_references_are_made_before_any_gradient(tmp_path):
    """Memory at scale: A's float64 model is made first, before the checks fragment the heap."""
    folder = tmp_path / "fixture"
    assert cli("capture", fx("torch/ffn_module.py::FeedForward"), "-o", str(folder)).returncode == 0
    calls = [(c["kind"], c["dtype"]) for c in json.loads((folder / "manifest.json").read_text())["calls"]]
    fp64 = [i for i, c in enumerate(calls) if c[1] == "fp64"]
    assert len(fp64) >= 3  # unit scale, activation scale, edge cases
    assert max(fp64) < min(i for i, c in enumerate(calls) if c[0] == "grads")


# ---- bad input: one clear line, exit 2, nothing overwritten -------------------------------------------------------
@pytest.fixture(scope="module")
def captured(tmp_path_factory):
    folder = tmp_path_factory.mktemp("art") / "ffn"
    assert cli("capture", fx("torch/ffn_module.py::FeedForward"), "-o", str(folder), "--quick").returncode == 0
    return folder


def _copy(captured: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "copy"
    shutil.copytree(captured, dest)
    return dest


@pytest.mark.parametrize("damage, expected", [
    ("truncate", "corrupt or truncated"),
    ("schema", "schema 'parity-artifact/0'"),
    ("manifest", "no manifest.json"),
])
def test_damaged_artifacts_are_one_clear_line(captured, tmp_path, damage, expected):
    folder = _copy(captured, tmp_path)
    if damage == "truncate":
        data = (folder / "tensors.safetensors").read_bytes()
        (folder / "tensors.safetensors").write_bytes(data[: len(data) // 2])
    elif damage == "schema":
        m = json.loads((folder / "manifest.json").read_text())
        (folder / "manifest.json").write_text(json.dumps(dict(m, schema="parity-artifact/0")))
    else:
        (folder / "manifest.json").unlink()
    run = cli("compare", str(folder), fx("torch/ffn_module.py::FeedForward"), "--quick")
    assert run.returncode == 2 and expected in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_capture_never_overwrites_without_force(captured, tmp_path):
    folder = _copy(captured, tmp_path)
    before = (folder / "tensors.safetensors").read_bytes()
    run = cli("capture", fx("torch/ffn_functional.py::FeedForward"), "-o", str(folder), "--quick")
    assert run.returncode == 2 and "nothing was overwritten" in run.stderr
    assert (folder / "tensors.safetensors").read_bytes() == before
    other = tmp_path / "notes"
    other.mkdir()
    (other / "readme.txt").write_text("mine")
    run = cli("capture", fx("torch/ffn_functional.py::FeedForward"), "-o", str(other), "--force")
    assert run.returncode == 2 and "not an artifact" in run.stderr and (other / "readme.txt").exists()
    assert cli("capture", fx("torch/ffn_functional.py::FeedForward"), "-o", str(folder), "--quick",
               "--force").returncode == 0
    assert json.loads((folder / "manifest.json").read_text())["side"]["file"].endswith("ffn_functional.py")


def test_compare_with_other_options_than_the_capture_says_so(captured):
    run = cli("compare", str(captured), fx("torch/ffn_module.py::FeedForward"))  # captured with --quick only
    assert run.returncode == 2 and "captured without the checks" in run.stderr


@pytest.mark.parametrize("where", ["repo", "elsewhere"])
def test_a_side_interpreter_without_the_runtime_is_named(tmp_path, where):
    """From the checkout the bare venv finds parity_skill but not numpy; elsewhere it finds neither."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    run = cli(str(ROOT / fx("torch/ffn_module.py")), "vs", str(ROOT / fx("torch/ffn_functional.py")), "--quick",
              "--python-b", str(venv / "bin" / "python"), cwd=ROOT if where == "repo" else tmp_path)
    assert run.returncode == 2 and "cannot run parity-skill's runtime" in run.stderr and str(venv) in run.stderr
    assert ("numpy" if where == "repo" else "parity_skill") in run.stderr


# ---- --emit-test ----------------------------------------------------------------------------------------------
def test_emitted_test_passes_then_fails_when_b_regresses(tmp_path):
    shutil.copy(ROOT / fx("torch/ffn_module.py"), tmp_path / "ref.py")
    shutil.copy(ROOT / fx("torch/ffn_functional.py"), tmp_path / "port.py")
    run = cli("ref.py::FeedForward", "vs", "port.py::FeedForward", "--quick", "--emit-test",
              "tests/test_port_parity.py", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "tests" / "test_port_parity_fixture" / "manifest.json").is_file()

    def pytest_run():
        return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "tests")],
                              capture_output=True, text=True, cwd="/", timeout=300)
    assert pytest_run().returncode == 0
    port = tmp_path / "port.py"
    port.write_text(port.read_text().replace("h = F.gelu(F.linear(x, self.fc1.weight, self.fc1.bias))",
                                             'h = F.gelu(F.linear(x, self.fc1.weight, self.fc1.bias), approximate="tanh")'))
    failed = pytest_run()
    assert failed.returncode == 1
    assert "parity regressed" in failed.stdout and "forward: FAIL" in failed.stdout and "GELU differs" in failed.stdout


def test_a_test_emitted_for_a_pair_that_never_matched_does_not_call_it_a_regression(tmp_path):
    shutil.copy(ROOT / fx("torch/ffn_module.py"), tmp_path / "ref.py")
    shutil.copy(ROOT / fx("torch/ffn_tanh.py"), tmp_path / "port.py")
    run = cli("ref.py::FeedForward", "vs", "port.py::FeedForward", "--quick", "--emit-test", "test_port.py",
              cwd=tmp_path)
    assert run.returncode == 1 and (tmp_path / "test_port.py").is_file()
    failed = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                            capture_output=True, text=True, cwd="/", timeout=300)
    assert failed.returncode == 1 and "parity not reached yet" in failed.stdout and "regressed" not in failed.stdout


# ---- two artifacts -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stacks(tmp_path_factory):
    root = tmp_path_factory.mktemp("stacks")
    for name in ("stack", "stack_broken"):
        assert cli("capture", fx(f"diag/{name}.py::Stack"), "-o", str(root / name), "--quick").returncode == 0
    return root


def test_two_artifacts_give_a_stage_table_and_the_first_divergent_stage(stacks):
    same = cli("compare", str(stacks / "stack"), str(stacks / "stack"), "--json")
    assert same.returncode == 0
    run = cli("compare", str(stacks / "stack"), str(stacks / "stack_broken"), "--json")
    pair = json.loads(run.stdout)["pairs"][0]
    assert run.returncode == 1 and pair["first_divergence"] == "blocks.7"
    status = {c["name"]: c["status"] for c in pair["checks"]}
    assert status["stage:blocks.6"] == "pass" and status["stage:blocks.7"] == "fail"
    assert {"max_abs_diff", "mean_abs_diff", "cosine", "pearson"} <= set(pair["checks"][0])
    text = cli("compare", str(stacks / "stack"), str(stacks / "stack_broken")).stdout
    assert "mean abs" in text and "First divergence: blocks.7\n" in text
    loose = cli("compare", str(stacks / "stack"), str(stacks / "stack_broken"), "--level", "model",
                "--min-correlation", "-1", "--json")
    assert loose.returncode == 0  # the correlation criterion replaces the tolerance


def test_an_artifact_written_by_another_program(stacks, tmp_path):
    """B as a Swift or C++ port would write it: plain names, float64, some stages left out, one of another shape."""
    import numpy as np
    from safetensors.numpy import load_file, save_file

    manifest_a = json.loads((stacks / "stack" / "manifest.json").read_text())
    tensors_a = load_file(str(stacks / "stack" / "tensors.safetensors"))
    tensors, stages = {}, []
    for stage in manifest_a["stages"]:
        name = stage["name"]
        if name.endswith(".norm"):
            continue  # this port does not record its norms
        value = tensors_a[f"stages/{name}/out/0"].astype(np.float64)
        tensors[f"stages/{name}/out/0"] = value.T.copy() if name == "blocks.3.fc" else value
        stages.append({"name": name, "out": [""]})
    tensors["outputs/0"] = tensors_a["outputs/0"].astype(np.float64)
    folder = tmp_path / "swift"
    folder.mkdir()
    save_file(tensors, str(folder / "tensors.safetensors"))
    import hashlib
    digest = hashlib.sha256((folder / "tensors.safetensors").read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps({"schema": "parity-artifact/1", "stages": stages,
                                                      "outputs": [""], "files": {"tensors.safetensors": digest}}))
    run = cli("compare", str(stacks / "stack"), str(folder), "--json")
    report = json.loads(run.stdout)
    checks = {c["name"]: c for c in report["pairs"][0]["checks"]}
    assert checks["stage:blocks.0.norm"]["status"] == "skip" and "missing in B" in checks["stage:blocks.0.norm"]["message"]
    assert checks["stage:blocks.3.fc"]["status"] == "fail" and "shape" in checks["stage:blocks.3.fc"]["message"]
    assert checks["stage:blocks.0.fc"]["status"] == "pass" and "dtype A float32, B float64" in checks["stage:blocks.0.fc"]["message"]
    assert run.returncode == 1 and report["pairs"][0]["first_divergence"] == "blocks.3.fc"
    assert any("blocks.0.norm" in line for line in report["limitations"])


def test_each_side_may_name_its_own_interpreter(tmp_path):
    """Another path to an interpreter takes the two-worker route (one process per side, no shared zygote)."""
    python = tmp_path / "python-b"  # a wrapper, not a symlink: a symlink leaves a virtual environment's packages
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    good = cli(fx("torch/ffn_module.py"), "vs", fx("torch/ffn_functional.py"), "--quick", "--python-b", str(python))
    bad = cli(fx(f"{ISO}/old/mypkg/model.py::Block"), "vs", fx(f"{ISO}/new/mypkg/model.py::Block"), "--quick",
              "--python-a", str(python))
    assert good.returncode == 0, good.stderr
    assert bad.returncode == 1 and "Verdict: FAIL" in bad.stdout


def test_a_side_interpreter_without_the_framework_is_named(tmp_path):
    bare = tmp_path / "bare"  # an interpreter that runs the runtime but has no torch
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True, timeout=120)
    site = subprocess.run([str(bare / "bin/python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    import numpy
    ours = Path(numpy.__file__).parent.parent  # every package of this environment but torch
    for entry in ours.iterdir():
        if not entry.name.lower().startswith("torch") and not Path(site, entry.name).exists():
            Path(site, entry.name).symlink_to(entry)
    Path(site, "deps.pth").write_text(f"{ROOT}\n")
    run = cli(fx("torch/ffn_module.py"), "vs", fx("torch/ffn_functional.py"), "--quick", "--python-b",
              str(bare / "bin/python"))
    assert run.returncode == 2 and f"torch is not installed for {bare / 'bin/python'}" in run.stderr, run.stderr


def test_side_runtime_never_imports_the_analysis_stack():
    """Side processes import the small runtime only (speed: libcst alone costs ~0.15 s per side)."""
    code = ("import sys, parity_skill.runtime.sides.capture, parity_skill.runtime.sides.session, parity_skill.runtime.sides.loading;"
            "print(sorted(m for m in ('libcst', 'jinja2', 'click', 'parity_skill.plan.planner', 'parity_skill.analyze')"
            " if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.stdout.strip() == "[]", run.stdout + run.stderr
