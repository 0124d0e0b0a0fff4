"""A side's artifact on disk: `manifest.json` + `tensors.safetensors` (the public format of docs/fixtures.md).

The manifest is written last, by rename, so its presence means the artifact is complete. Tensor names are plain
strings any safetensors library can write; the manifest says what each recorded call was.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from parity_skill.runtime.data import manifest as manifest_io
from parity_skill.runtime.data import scratch
from parity_skill.runtime.data.tensor_file import Tensors, TensorFileError

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


CHUNK_BYTES = 64 * 2 ** 20  # safetensors serialises a file in memory: bounded files bound that copy
_HASHING: dict[str, Future] = {}  # file written -> its sha256, computed in a thread while the side works on
_POOL: ThreadPoolExecutor | None = None
TRANSIENT = False  # set by a one-command run: its artifact is read once, on this machine, then removed; unhashed


def _hash_later(path: Path) -> None:
    global _POOL
    if TRANSIENT:
        return
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="artifact-sha256")
    _HASHING[str(path)] = _POOL.submit(_sha256, path)


def _digest(path: Path) -> str | None:
    """The file's sha256: the one computed when it was written, else now (None in a transient artifact)."""
    if TRANSIENT:
        return None
    pending = _HASHING.pop(str(path), None)
    return pending.result() if pending is not None else _sha256(path)


def save_chunked(folder: Path, stem: str, tensors: dict[str, np.ndarray], scratch_ok: bool = True) -> list[str]:
    """Write `tensors` (arrays, or callables that make them) as `<stem>.safetensors`, `<stem>-0001.safetensors`,
    ... of at most CHUNK_BYTES each; in a one-command run, to its memory-backed scratch while memory allows
    (data/scratch.py; `scratch_ok=False`: never). Returns the files' names in the artifact."""
    from safetensors.numpy import save_file

    names, chunk, size = [], {}, 0

    def flush() -> None:
        name = f"{stem}.safetensors" if not names else f"{stem}-{len(names):04d}.safetensors"
        where, prefix = scratch.target(folder, size, scratch_ok)
        save_file(chunk, str(where / name))
        names.append(prefix + name)
        _hash_later(where / name)  # hashlib releases the interpreter lock: this overlaps the side's next work

    for key, value in tensors.items():
        value = np.asarray(value() if callable(value) else value, order="C")  # a callable: made when written
        if chunk and size + value.nbytes > CHUNK_BYTES:
            flush()
            chunk, size = {}, 0
        chunk[key] = value
        size += value.nbytes
    flush()
    return names


def write(folder: str | Path, manifest: dict, tensors: dict[str, np.ndarray], more: list[str] = ()) -> None:
    """Write `tensors` and the manifest, which lists the sha256 of every file (`more`: files already written)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = save_chunked(folder, TENSORS.removesuffix(".safetensors"), tensors)
    manifest = dict(manifest, schema=SCHEMA, files={name: _digest(folder / name) for name in (*written, *more)})
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
    """The manifest of an artifact folder, read as untrusted data (runtime/data/manifest.py)."""
    path = Path(folder) / MANIFEST
    try:
        manifest = manifest_io.load(Path(folder), MANIFEST)
    except FileNotFoundError:
        raise ArtifactError(f"{folder}: no {MANIFEST} (not a parity-skill artifact, or its capture did not "
                            "finish; docs/fixtures.md describes the format)") from None
    except manifest_io.ManifestError as exc:
        raise ArtifactError(str(exc)) from None
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        found = manifest.get("schema") if isinstance(manifest, dict) else None
        raise ArtifactError(f"{path}: schema {found!r}, expected {SCHEMA!r} (captured by another parity-skill "
                            "version: capture it again)")
    try:
        return manifest_io.validate(manifest, str(path))
    except manifest_io.ManifestError as exc:
        raise ArtifactError(str(exc)) from None


def read(folder: str | Path) -> tuple[dict, Tensors]:
    """(manifest, tensors): every file resolved inside the folder and checked against the manifest's sha256."""
    manifest, tensors, verified = read_verifying(folder)
    verified()
    return manifest, tensors


def read_verifying(folder: str | Path) -> tuple[dict, Tensors, Callable[[], None]]:
    """(manifest, tensors, verified): the files' sha256 are checked in a thread while the caller works (hashlib
    releases the interpreter lock); `verified()` waits for that and raises ArtifactError on a corrupt file. A
    caller must call it before it reports anything read from the tensors."""
    manifest = read_manifest(folder)
    if manifest.get("error"):
        return manifest, Tensors([]), lambda: None
    bad: list[str] = []

    def check() -> None:
        for name, path in paths.items():  # null: a one-command run's own artifact, read where it was written
            if manifest["files"][name] is not None and _sha256(path) != manifest["files"][name]:
                bad.append(f"{Path(folder) / name}: corrupt or truncated (sha256 differs from {MANIFEST})")
                return

    try:
        paths = {name: manifest_io.file_path(Path(folder), name) for name in sorted(manifest["files"])}
        tensors = Tensors([str(p) for p in paths.values()])
    except manifest_io.ManifestError as exc:
        raise ArtifactError(str(exc)) from None
    except TensorFileError as exc:  # a damaged file: say so the way the digest does, when it does
        check()
        raise ArtifactError(bad[0] if bad else str(exc)) from None

    worker = threading.Thread(target=check, name="artifact-sha256", daemon=True)
    worker.start()

    def verified() -> None:
        worker.join()
        if bad:
            raise ArtifactError(bad[0])

    return manifest, tensors, verified


def wait_for(folder: str | Path, done_marker: Path, timeout: float) -> None:
    """Block until `folder` holds a manifest, or side A's process ended without writing one."""
    manifest = Path(folder) / MANIFEST
    deadline = time.monotonic() + timeout
    while not manifest.exists():
        if done_marker.exists() and not manifest.exists():
            raise ArtifactError("side A's process ended without writing its artifact (its own output says why)")
        if time.monotonic() > deadline:
            raise ArtifactError(f"waited {timeout:g}s for side A's artifact")
        time.sleep(0.02)
