"""Fixtures in the layouts teams already have, read into the artifact's in-memory form (a manifest with `stages`,
`outputs`, `inputs_of` and tensors named `stages/<name>/out/<i>`, `inputs/<name>`, `weights/<name>`), detected from
what the path holds (docs/fixtures.md):

- a parity-skill artifact folder (`manifest.json`);
- a folder of `.npy` / `.npz` files: one stage per file (an `.npz` file: one stage per array, `file.key`), in the
  natural order of their names (`step_2` before `step_10`);
- `.safetensors` files that hold `input`/`output` keys (and others, each its own stage), with a `<name>_weights
  .safetensors` companion holding that stage's weights; a folder of them, or a single file.

Every file is read as untrusted data: regular files inside the folder, bounded, headers checked (tensor_file.py)."""
from __future__ import annotations

import os
import re
import stat
import zipfile
from pathlib import Path

import numpy as np

from parity_skill.runtime.data.artifact import MANIFEST, ArtifactError, read
from parity_skill.runtime.data.tensor_file import Tensors, TensorFileError

MAX_NPY_BYTES = 2 * 2 ** 30
MAX_FILES = 10_000


def _natural(name: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _regular(folder: Path) -> list[Path]:
    """The regular files directly inside `folder` whose real path stays inside it, in natural name order."""
    root = os.path.realpath(folder)
    out = []
    for entry in sorted(folder.iterdir(), key=lambda p: _natural(p.name))[:MAX_FILES]:
        real = os.path.realpath(entry)
        if os.path.commonpath([real, root]) == root and stat.S_ISREG(os.stat(real).st_mode):
            out.append(entry)
    return out


def _npy(path: Path) -> np.ndarray:
    if path.stat().st_size > MAX_NPY_BYTES:
        raise ArtifactError(f"{path}: larger than {MAX_NPY_BYTES} bytes")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ArtifactError(f"{path}: not a readable .npy file ({exc})") from None


def _npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise ArtifactError(f"{path}: not a readable .npz file ({exc})") from None


def _safetensors(path: Path) -> dict[str, np.ndarray]:
    try:
        t = Tensors([str(path)])
        return {k: t[k] for k in t}
    except TensorFileError as exc:
        raise ArtifactError(str(exc)) from None


class _Builder:
    def __init__(self) -> None:
        self.manifest: dict = {"schema": "foreign", "stages": [], "outputs": [], "inputs_of": {}}
        self.tensors: dict[str, np.ndarray] = {}

    def stage(self, name: str, value: np.ndarray, given: np.ndarray | None = None) -> None:
        self.manifest["stages"].append({"name": name, "out": [""]})
        self.tensors[f"stages/{name}/out/0"] = value
        if given is not None:
            self.tensors[f"stages/{name}/in/0"] = given
            self.manifest["inputs_of"][name] = f"stages/{name}/in/0"

    def weights(self, prefix: str, found: dict[str, np.ndarray]) -> None:
        for k, v in found.items():
            self.tensors[f"weights/{prefix}{k}"] = v

    def layer_file(self, name: str, found: dict[str, np.ndarray], weights: dict[str, np.ndarray]) -> None:
        """`name.safetensors` holding `input` and `output` (and more): the output is the stage, the input what it
        was given; any other key is a stage of its own; `name_weights.safetensors` the stage's weights."""
        given = next((found[k] for k in ("input", "inputs", "x") if k in found), None)
        out_key = next((k for k in ("output", "outputs", "out", "y") if k in found), None)
        for k, v in found.items():
            if k in ("input", "inputs", "x") or k == out_key:
                continue
            self.stage(f"{name}.{k}" if name else k, v)
        if out_key is not None:
            self.stage(name or "output", found[out_key], given)
        self.weights(f"{name}." if name else "", weights)


def read_fixture(path: str) -> tuple[dict, dict]:
    """(manifest, tensors) of whatever `path` holds; ArtifactError with one line naming what was expected."""
    p = Path(path)
    if p.is_dir() and os.path.lexists(p / MANIFEST):
        return read(p)
    b = _Builder()
    if p.is_file() and p.suffix == ".safetensors":
        companion = p.with_name(f"{p.stem}_weights.safetensors")
        b.layer_file("", _safetensors(p), _safetensors(companion) if companion.is_file() else {})
        return b.manifest, b.tensors
    if p.is_file() and p.suffix in (".npy", ".npz"):
        found = {p.stem: _npy(p)} if p.suffix == ".npy" else _npz(p)
        for k, v in found.items():
            b.stage(k, v)
        return b.manifest, b.tensors
    if not p.is_dir():
        raise ArtifactError(f"{path}: neither an artifact folder nor a fixture file (.safetensors, .npy, .npz); "
                            "docs/fixtures.md lists the layouts read")
    files = _regular(p)
    weights = {f.name[:-len("_weights.safetensors")]: f for f in files if f.name.endswith("_weights.safetensors")}
    for f in files:
        if f.suffix == ".npy":
            b.stage(f.stem, _npy(f))
        elif f.suffix == ".npz":
            for k, v in _npz(f).items():
                b.stage(f"{f.stem}.{k}", v)
        elif f.suffix == ".safetensors" and not f.name.endswith("_weights.safetensors"):
            b.layer_file(f.stem, _safetensors(f), _safetensors(weights[f.stem]) if f.stem in weights else {})
    if not b.manifest["stages"]:
        raise ArtifactError(f"{path}: no {MANIFEST}, and no .npy, .npz or .safetensors fixture in it "
                            "(docs/fixtures.md lists the layouts read)")
    b.manifest["stages"] = _chained(b.manifest["stages"], b.manifest["inputs_of"], b.tensors)
    return b.manifest, b.tensors


def _chained(stages: list[dict], inputs_of: dict, tensors: dict) -> list[dict]:
    """Stages in the order they ran: one whose input is another's output comes after it (file names, such as
    `block0`, `embed`, `head`, need not sort in execution order); otherwise in natural name order."""
    outputs = {s["name"]: tensors[f"stages/{s['name']}/out/0"] for s in stages}
    after: dict[str, str] = {}
    for name, key in inputs_of.items():
        fed = tensors[key]
        source = next((n for n, o in outputs.items() if n != name and o.shape == fed.shape and np.array_equal(o, fed)),
                      None)
        if source is not None:
            after[name] = source
    ordered: list[dict] = []
    placed: set[str] = set()
    pending = list(stages)
    while pending:
        ready = [s for s in pending if after.get(s["name"]) in placed or after.get(s["name"]) is None
                 or after[s["name"]] not in outputs]
        nxt = ready[0] if ready else pending[0]  # a cycle: keep the name order
        ordered.append(nxt)
        placed.add(nxt["name"])
        pending.remove(nxt)
    return ordered

