"""Untrusted data stays in its folder: artifacts and install records written by someone else can neither fake a
PASS, nor delete outside their scope, nor hang, exhaust memory or crash the command (one line, exit 2)."""
from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from conftest import ROOT

RECORD = ".parity-skill-install.json"


def cli(*args: str, cwd: Path = ROOT, home: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, **({"HOME": str(home)} if home else {}))
    return subprocess.run([sys.executable, "-m", "parity_skill", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=timeout)


def one_line_error(run: subprocess.CompletedProcess, *words: str) -> str:
    """Exit 2 with a single stderr line that contains every word, and no traceback."""
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert run.returncode == 2, (run.returncode, run.stdout, run.stderr)
    assert len(lines) == 1 and "Traceback" not in run.stderr and "internal error" not in run.stderr, run.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def artifact(folder: Path, out: np.ndarray, files: dict | None = None, **manifest) -> Path:
    """The minimal artifact docs/fixtures.md tells other programs to write: one stage and one output."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file({"stages/enc/out/0": out, "outputs/0": out * 2}, str(folder / "tensors.safetensors"))
    body = {"schema": "parity-artifact/1", "stages": [{"name": "enc", "out": [""]}], "outputs": [""],
            "files": files if files is not None else {"tensors.safetensors": sha(folder / "tensors.safetensors")}}
    (folder / "manifest.json").write_text(json.dumps({**body, **manifest}))
    return folder


@pytest.fixture
def pair(tmp_path):
    rng = np.random.default_rng(0)
    a = artifact(tmp_path / "art_a", rng.standard_normal((2, 8)).astype(np.float32))
    b = artifact(tmp_path / "art_b", rng.standard_normal((2, 8)).astype(np.float32))  # differs everywhere
    return a, b


def test_the_honest_pair_fails(pair):
    a, b = pair
    assert cli("compare", str(a), str(b)).returncode == 1


# ---- a manifest that points outside its folder ------------------------------------------------------------------
@pytest.mark.parametrize("how", ["relative", "absolute"])
def test_b_cannot_borrow_a_tensors_through_its_manifest(pair, how):
    a, b = pair
    name = "../art_a/tensors.safetensors" if how == "relative" else str(a / "tensors.safetensors")
    artifact(b, np.zeros((2, 8), np.float32), files={name: sha(a / "tensors.safetensors")})
    one_line_error(cli("compare", str(a), str(b)), "must be a plain path inside the artifact folder")


def test_b_cannot_borrow_a_tensors_through_a_symlink(pair):
    a, b = pair
    (b / "tensors.safetensors").unlink()
    (b / "tensors.safetensors").symlink_to(a / "tensors.safetensors")
    manifest = json.loads((b / "manifest.json").read_text())
    manifest["files"] = {"tensors.safetensors": sha(a / "tensors.safetensors")}
    (b / "manifest.json").write_text(json.dumps(manifest))
    one_line_error(cli("compare", str(a), str(b)), "resolves outside the artifact folder")


# ---- reads that never hang nor exhaust memory ------------------------------------------------------------------
def test_a_fifo_manifest_does_not_hang(pair):
    a, b = pair
    (b / "manifest.json").unlink()
    os.mkfifo(b / "manifest.json")
    one_line_error(cli("compare", str(a), str(b), "--timeout", "5", timeout=60), "not a regular file")


def test_a_manifest_linked_to_dev_zero_is_refused(pair):
    a, b = pair
    (b / "manifest.json").unlink()
    (b / "manifest.json").symlink_to("/dev/zero")
    one_line_error(cli("compare", str(a), str(b), timeout=60), "manifest")


def test_a_huge_sparse_manifest_is_refused_before_it_is_read(pair):
    a, b = pair
    with open(b / "manifest.json", "wb") as fh:
        fh.truncate(2 * 2 ** 30)
    one_line_error(cli("compare", str(a), str(b), timeout=60), "a manifest is at most")


def test_a_tensor_header_larger_than_its_file_is_refused(pair):
    a, b = pair
    bad = b / "tensors.safetensors"
    bad.write_bytes(struct.pack("<Q", 2 ** 40) + b"{}")
    artifact_files = {"tensors.safetensors": sha(bad)}
    manifest = json.loads((b / "manifest.json").read_text())
    (b / "manifest.json").write_text(json.dumps({**manifest, "files": artifact_files}))
    one_line_error(cli("compare", str(a), str(b)), "not a safetensors file")


# ---- a manifest of the wrong shape is one line -------------------------------------------------------------------
def test_a_deeply_nested_manifest_is_one_line(pair):
    a, b = pair
    (b / "manifest.json").write_text("[" * 1_000_000 + "]" * 1_000_000)
    one_line_error(cli("compare", str(a), str(b)), "nested too deeply")


@pytest.mark.parametrize("field, value, words", [
    ("files", "tensors.safetensors", ["field 'files'"]),
    ("stages", [{"name": ["enc"], "out": [""]}], ["field 'stages'"]),
    ("outputs", {"0": ""}, ["field 'outputs'"]),
])
def test_a_field_of_the_wrong_type_is_named(pair, field, value, words):
    a, b = pair
    manifest = json.loads((b / "manifest.json").read_text())
    (b / "manifest.json").write_text(json.dumps({**manifest, field: value}))
    one_line_error(cli("compare", str(a), str(b)), str(b), *words)


def test_bfloat16_and_float8_tensors_are_read(tmp_path):
    """bfloat16 is a standard safetensors dtype: B written in bfloat16 is compared, in float64, with A's float32."""
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file as save_torch

    x = torch.randn(4, 16)
    a = artifact(tmp_path / "a", x.to(torch.bfloat16).float().numpy())  # values bfloat16 holds exactly
    b = tmp_path / "b"
    b.mkdir()
    save_torch({"stages/enc/out/0": x.to(torch.bfloat16), "outputs/0": (x * 2).to(torch.float8_e4m3fn)},
               str(b / "tensors.safetensors"))
    (b / "manifest.json").write_text(json.dumps({
        "schema": "parity-artifact/1", "stages": [{"name": "enc", "out": [""]}], "outputs": [""],
        "files": {"tensors.safetensors": sha(b / "tensors.safetensors")}}))
    run = cli("compare", str(a), str(b), "--json")
    checks = {c["name"]: c for c in json.loads(run.stdout)["pairs"][0]["checks"]}
    assert checks["stage:enc"]["status"] == "pass" and checks["stage:enc"]["max_abs_diff"] == 0
    assert "dtype A float32, B float32" not in checks["stage:enc"]["message"]
    e4m3 = (x * 2).to(torch.float8_e4m3fn).float().numpy()  # the float8 output arrives with its exact values
    from parity_skill.runtime.data.tensor_file import Tensors

    assert np.array_equal(Tensors([str(b / "tensors.safetensors")])["outputs/0"], e4m3)


def test_code_against_a_minimal_artifact_says_what_it_lacks(pair):
    a, _ = pair
    one_line_error(cli("compare", str(a), "tests/fixtures/torch/ffn_module.py::FeedForward", "--quick"),
                   "has no side, seed, inputs, calls, checks", "compare A_DIR B_DIR")


# ---- figures that are undefined are shown as undefined -----------------------------------------------------------
def test_two_all_zero_outputs_show_an_undefined_cosine(tmp_path):
    zeros = np.zeros((2, 8), np.float32)
    a, b = artifact(tmp_path / "a", zeros), artifact(tmp_path / "b", zeros)
    run = cli("compare", str(a), str(b), "--json")
    stage = json.loads(run.stdout)["pairs"][0]["checks"][0]
    assert run.returncode == 0 and stage["cosine"] is None and stage["pearson"] is None
    assert "cosine undefined" in stage["message"] and "judged by max abs" in stage["message"]
    text = cli("compare", str(a), str(b)).stdout
    assert "1.000000" not in text and "undef" in text
    corr = cli("compare", str(a), str(b), "--min-correlation", "0.95", "--json")
    assert corr.returncode == 0 and "pearson undefined" in json.loads(corr.stdout)["pairs"][0]["checks"][0]["message"]


def test_a_constant_output_is_not_correlated_with_anything(tmp_path):
    a = artifact(tmp_path / "a", np.full((2, 8), 3.0, np.float32))
    b = artifact(tmp_path / "b", np.full((2, 8), 5.0, np.float32))
    run = cli("compare", str(a), str(b), "--min-correlation", "0.95", "--json")
    stage = json.loads(run.stdout)["pairs"][0]["checks"][0]
    assert run.returncode == 1 and stage["pearson"] is None and "fails max abs" in stage["message"]


# ---- an install record that points outside its scope -------------------------------------------------------------
def _installed(tmp_path: Path) -> tuple[Path, Path]:
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    assert cli("install", "--assistant", "claude", home=home, cwd=project).returncode == 0
    return home, project


@pytest.mark.parametrize("entry", ["../outside/victim.txt", "ABSOLUTE"])
@pytest.mark.parametrize("scope", ["project", "user"])
def test_uninstall_never_deletes_outside_the_scope(tmp_path, entry, scope):
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    root = home if scope == "user" else project
    assert cli("install", "--assistant", "claude", "--scope", scope, home=home, cwd=project).returncode == 0
    victim = tmp_path / "outside" / "victim.txt"
    victim.parent.mkdir()
    victim.write_text("keep me")
    record = json.loads((root / RECORD).read_text())
    rel = str(victim) if entry == "ABSOLUTE" else os.path.relpath(victim, root)
    record["files"][rel] = {"assistant": "claude", "sha256": sha(victim)}
    (root / RECORD).write_text(json.dumps(record))
    one_line_error(cli("uninstall", "--assistant", "claude", "--scope", scope, "--force", home=home, cwd=project),
                   "nothing was removed")
    assert victim.read_text() == "keep me" and (root / ".claude/skills/parity/SKILL.md").is_file()


def test_a_symlinked_skills_folder_is_refused_both_ways(tmp_path):
    home, project = tmp_path / "home", tmp_path / "project"
    elsewhere = tmp_path / "elsewhere"
    for d in (home, project, elsewhere):
        d.mkdir()
    (project / ".claude").mkdir()
    (project / ".claude/skills").symlink_to(elsewhere)
    one_line_error(cli("install", "--assistant", "claude", home=home, cwd=project), "outside", "--force")
    assert list(elsewhere.iterdir()) == []
    assert cli("install", "--assistant", "claude", "--force", home=home, cwd=project).returncode == 0
    assert (elsewhere / "parity/SKILL.md").is_file()
    one_line_error(cli("uninstall", "--assistant", "claude", home=home, cwd=project), "outside", "by hand")
    assert (elsewhere / "parity/SKILL.md").is_file() and (project / ".claude/skills").is_symlink()


@pytest.mark.parametrize("record", [
    {"files": []},
    {"files": {".claude/skills/parity/SKILL.md": {"sha256": "0" * 64}}},
    {"files": {".claude/skills/parity/SKILL.md": "claude"}},
    [],
])
def test_a_malformed_record_is_one_line_and_deletes_nothing(tmp_path, record):
    home, project = _installed(tmp_path)
    (project / RECORD).write_text(json.dumps(record))
    one_line_error(cli("uninstall", "--assistant", "claude", home=home, cwd=project), RECORD)
    assert (project / ".claude/skills/parity/SKILL.md").is_file()


def test_uninstall_leaves_folders_it_did_not_create(tmp_path):
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    (project / ".claude/skills").mkdir(parents=True)  # the user's own folders, empty before the install
    assert cli("install", "--assistant", "claude", home=home, cwd=project).returncode == 0
    assert cli("uninstall", "--assistant", "claude", home=home, cwd=project).returncode == 0
    assert (project / ".claude/skills").is_dir() and not (project / ".claude/skills/parity").exists()


def test_a_module_check_on_all_zero_outputs_says_cosine_is_undefined():
    pytest.importorskip("torch")
    run = cli("tests/fixtures/trust/zeros_numpy.py::shut_gate", "vs", "tests/fixtures/trust/zeros_torch.py::shut_gate",
              "--quick", "--json")
    forward = next(c for c in json.loads(run.stdout)["pairs"][0]["checks"] if c["name"] == "forward")
    assert run.returncode == 0 and forward["status"] == "pass" and forward.get("cosine") is None
    assert forward["undefined"]["cosine"] == "A and B are all zeros"
    assert "cosine undefined (A and B are all zeros)" in forward["message"]
    text = cli("tests/fixtures/trust/zeros_numpy.py::shut_gate", "vs", "tests/fixtures/trust/zeros_torch.py::shut_gate",
               "--quick").stdout
    assert "cos undef r undef" in text and "cosine 1.000000" not in text


@pytest.mark.parametrize("bad", [["w"], {"w": "elsewhere"}, {"w": 3}])
def test_a_malformed_checkpoint_listing_is_refused_in_one_line(bad):
    from parity_skill.runtime.data.manifest import ManifestError, validate

    with pytest.raises(ManifestError, match="field 'side' must be an object .*checkpoint"):
        validate({"files": {}, "side": {"file": "a.py", "symbol": "X", "framework": "torch", "kind": "module",
                                        "checkpoint": bad}}, "art")
