"""Side A's artifact while A still writes it, so that B compares each call as soon as A has recorded it.

In a one-command run both sides work at once: A writes `live.json` (its manifest as it stands once A is built and
its weights are on disk) and then appends one line per recorded call to `live-calls.jsonl`, each after its tensor
file is complete. B starts from `live.json` and, when it asks for a call A has not recorded yet, waits for that
line. `manifest.json`, written last as always, remains the artifact: `compare` and a second machine read only it.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from parity_skill.runtime.data.artifact import MANIFEST, ArtifactError, read_manifest
from parity_skill.runtime.data.manifest import ManifestError, file_path, validate
from parity_skill.runtime.data.tensor_file import Tensors

EARLY = "live.json"
CALLS = "live-calls.jsonl"
REQUESTS = "live-requests.jsonl"  # B's questions A's checks did not ask, answered once A's checks are done
SERVING = "live-serving"  # A's checks are done: A only answers requests now
RELEASED = "live-released"  # B needs nothing more of A for this pair
B_PID = "live-b.pid"  # B's process, so that A stops answering when B is gone


def announce(folder: str | Path) -> None:
    """B has started on this pair: A answers its requests until B releases it or B's process is gone."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / B_PID).write_text(str(os.getpid()), encoding="utf-8")


def release(folder: str | Path) -> None:
    """B needs nothing more of A for this pair: A writes its manifest and moves on."""
    (Path(folder) / RELEASED).touch()


def write_early(folder: str | Path, manifest: dict, files: list[str]) -> None:
    """A's manifest before its checks ran (no calls yet), naming the files already written (its weights)."""
    folder = Path(folder)
    tmp = folder / (EARLY + ".tmp")
    tmp.write_text(json.dumps(dict(manifest, files={}, live_files=files), default=str), encoding="utf-8")
    os.replace(tmp, folder / EARLY)


def append_call(folder: str | Path, n: int, entry: dict, files: list[str], kept_fp32: dict) -> None:
    """One recorded call, once its files are complete (one line, written whole)."""
    line = json.dumps({"n": n, "entry": entry, "files": files, "kept_fp32": kept_fp32}, default=str) + "\n"
    with open(Path(folder) / CALLS, "a", encoding="utf-8") as fh:
        fh.write(line)


def wait_for_start(folder: str | Path, done_marker: Path, timeout: float) -> bool:
    """Block until A's artifact can be read: True when A is still writing it (live), False when it is complete
    (or A wrote an error). ArtifactError when A's process ended without either, or after `timeout` s."""
    folder = Path(folder)
    deadline = time.monotonic() + timeout
    while True:
        if (folder / MANIFEST).exists():
            return False
        if (folder / EARLY).exists():
            return True
        if done_marker.exists():
            if (folder / MANIFEST).exists():
                return False
            raise ArtifactError("side A's process ended without writing its artifact (its own output says why)")
        if time.monotonic() > deadline:
            raise ArtifactError(f"waited {timeout:g}s for side A's artifact")
        time.sleep(0.01)


def read_lines(path: Path, offset: int) -> tuple[list[dict], int]:
    """The complete JSON lines of `path` from byte `offset` on, and the offset after them."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1  # a line still being written is taken next time
    return [json.loads(raw) for raw in data[:end].splitlines()], offset + end


class LiveArtifact:
    """A's calls as A records them: `more()` reads the lines written since the last look."""

    def __init__(self, folder: str | Path, done_marker: Path, timeout: float) -> None:
        self.folder, self.done_marker = Path(folder), done_marker
        self.deadline = time.monotonic() + timeout
        try:
            self.manifest = validate(json.loads((self.folder / EARLY).read_text(encoding="utf-8")), EARLY)
            self.tensors = Tensors([str(file_path(self.folder, name)) for name in self.manifest.get("live_files", [])])
        except (OSError, ValueError, ManifestError) as exc:
            raise ArtifactError(f"{self.folder / EARLY}: {exc}") from None
        self.kept_fp32: dict = self.manifest.get("side", {}).get("kept_fp32", {})
        self._read = 0  # bytes of the calls file taken so far
        self.final: dict | None = None  # A's manifest, once A has written it
        self._asked: set[str] = set()

    def ask(self, key: str, kind: str, dtype: str, args: list, upstream: dict | None) -> None:
        """Ask A for a call its checks did not make (A answers once its checks are done)."""
        from safetensors.numpy import save_file

        if key in self._asked:
            return
        self._asked.add(key)
        arrays = {f"in/{i}": np.asarray(a, order="C") for i, a in enumerate(args)}
        arrays.update({f"up/{k}": np.asarray(v, order="C") for k, v in (upstream or {}).items()})
        name = f"request-{len(self._asked):04d}.safetensors"
        save_file(arrays, str(self.folder / name))
        line = {"key": key, "kind": kind, "dtype": dtype, "file": name, "args": len(args),
                "upstream": None if upstream is None else sorted(upstream)}
        with open(self.folder / REQUESTS, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")

    def more(self) -> list[tuple[int, dict]]:
        """(call number, manifest entry) for each call recorded since the last look; their files join `tensors`."""
        lines, self._read = read_lines(self.folder / CALLS, self._read)
        out = []
        for line in lines:
            self.tensors.add([str(file_path(self.folder, name)) for name in line["files"]])
            self.kept_fp32 = line["kept_fp32"]
            out.append((line["n"], line["entry"]))
        return out

    def serving(self) -> bool:
        """Whether A's checks are done (A now only answers requests)."""
        return (self.folder / SERVING).exists()

    def ended(self) -> bool:
        """Whether A has written everything it will (its manifest, or its process ended)."""
        done = self.done_marker.exists()  # first: a manifest is written before A's process ends
        if self.final is None and (self.folder / MANIFEST).exists():
            self.final = read_manifest(self.folder)
            self.kept_fp32 = self.final.get("side", {}).get("kept_fp32", self.kept_fp32)
        return self.final is not None or done

    def wait(self) -> None:
        """Sleep a little before looking again; ArtifactError once the run's time is spent."""
        if time.monotonic() > self.deadline:
            raise ArtifactError("waited too long for side A's next recorded call")
        time.sleep(0.005)

    def finish(self) -> dict | None:
        """A's complete manifest (waiting for it), or None when A's process ended without writing it."""
        while not self.ended():
            self.wait()
        return self.final
