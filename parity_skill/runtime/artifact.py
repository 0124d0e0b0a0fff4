"""A side's artifact on disk: `manifest.json` + `tensors.safetensors` (the public format of docs/fixtures.md).

The manifest is written last, by rename, so its presence means the artifact is complete. Tensor names are plain
strings any safetensors library can write; the manifest says what each recorded call was.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

SCHEMA = "parity-artifact/1"
MANIFEST = "manifest.json"
TENSORS = "tensors.safetensors"
SIDE_DONE = "side-a.done"  # written by whoever ran side A when that process ended, however it ended


class ArtifactError(Exception):
    """An artifact that cannot be used: missing, corrupt, truncated, another schema. `str()` is one line."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write(folder: str | Path, manifest: dict, tensors: dict[str, np.ndarray]) -> None:
    from safetensors.numpy import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    save_file(arrays, str(folder / TENSORS))
    manifest = dict(manifest, schema=SCHEMA, files={TENSORS: _sha256(folder / TENSORS)})
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True, default=str), encoding="utf-8")
    os.replace(tmp, folder / MANIFEST)


def write_error(folder: str | Path, manifest: dict, error: str) -> None:
    """An artifact that records why the side could not run (the other side reports it instead of waiting)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(dict(manifest, schema=SCHEMA, error=error, files={}), indent=1, default=str),
                   encoding="utf-8")
    os.replace(tmp, folder / MANIFEST)


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{folder}: no {MANIFEST} (not a parity-skill artifact, or its capture did not "
                            "finish)") from None
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        found = manifest.get("schema") if isinstance(manifest, dict) else None
        raise ArtifactError(f"{path}: schema {found!r}, expected {SCHEMA!r} (captured by another parity-skill "
                            "version: capture it again)")
    return manifest


class Tensors(Mapping):
    """The tensors of an artifact, read from disk one at a time when asked for (a model's worth of gradients is
    never all in memory)."""

    def __init__(self, handles: list) -> None:
        self._where = {name: h for h in handles for name in h.keys()}

    def __getitem__(self, name: str) -> np.ndarray:
        return self._where[name].get_tensor(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)


def read(folder: str | Path) -> tuple[dict, Tensors]:
    """(manifest, tensors), every file checked against the manifest's sha256."""
    from safetensors import safe_open

    manifest = read_manifest(folder)
    if manifest.get("error"):
        return manifest, Tensors([])
    handles = []
    for name, digest in sorted(manifest.get("files", {}).items()):
        path = Path(folder) / name
        if not path.is_file():
            raise ArtifactError(f"{path}: missing (listed in {MANIFEST})")
        if _sha256(path) != digest:
            raise ArtifactError(f"{path}: corrupt or truncated (sha256 differs from {MANIFEST})")
        try:
            handles.append(safe_open(str(path), framework="numpy"))
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own types
            raise ArtifactError(f"{path}: not a readable safetensors file ({exc})") from None
    return manifest, Tensors(handles)


def wait_for(folder: str | Path, done_marker: Path, timeout: float) -> None:
    """Block until `folder` holds a manifest, or side A's process ended without writing one."""
    manifest = Path(folder) / MANIFEST
    deadline = time.monotonic() + timeout
    while not manifest.exists():
        if done_marker.exists() and not manifest.exists():
            raise ArtifactError("side A ended without writing its artifact (see its error above)")
        if time.monotonic() > deadline:
            raise ArtifactError(f"waited {timeout:g}s for side A's artifact")
        time.sleep(0.02)
