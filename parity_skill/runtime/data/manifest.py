"""An artifact's manifest read as untrusted data: bounded, validated against its schema, and every file it names
resolved inside the artifact's folder. Each refusal is one line naming the artifact, the field and what was
expected (docs/fixtures.md is the contract)."""
from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

from parity_skill.runtime.data import scratch

MAX_MANIFEST_BYTES = 64 * 2 ** 20
MAX_DEPTH = 64
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ManifestError(ValueError):
    """`str()` is one line: where, which field, what was expected."""


def _regular_inside(folder: Path, name: str, what: str) -> Path:
    """`folder/name`, refused unless it is a regular file whose real path lies inside the folder's."""
    if not isinstance(name, str) or not name or os.path.isabs(name) or "\\" in name or \
            any(part in ("", ".", "..") for part in name.split("/")):
        raise ManifestError(f"{folder}: {what} {name!r} must be a plain path inside the artifact folder")
    path = folder / name
    real, root = os.path.realpath(path), os.path.realpath(folder)
    if os.path.commonpath([real, root]) != root:
        raise ManifestError(f"{folder}: {what} {name!r} resolves outside the artifact folder (to {real})")
    try:
        st = os.stat(real)
    except FileNotFoundError:
        raise ManifestError(f"{path}: missing (listed in the manifest)") from None
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise ManifestError(f"{path}: not a regular file")
    return Path(real)


def load(folder: Path, name: str) -> dict:
    """The manifest's JSON: a regular file inside `folder`, at most MAX_MANIFEST_BYTES, nested at most MAX_DEPTH."""
    if not folder.is_dir():
        raise ManifestError(f"{folder}: not a folder (an artifact is a folder holding {name})")
    if not os.path.lexists(folder / name):
        raise FileNotFoundError(folder / name)
    path = _regular_inside(folder, name, "manifest")
    size = path.stat().st_size
    if size > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{folder / name}: {size} bytes; a manifest is at most {MAX_MANIFEST_BYTES}")
    with open(path, "rb") as fh:
        data = fh.read(MAX_MANIFEST_BYTES + 1)
    try:
        manifest = json.loads(data.decode("utf-8"))
    except RecursionError:
        raise ManifestError(f"{folder / name}: nested too deeply (at most {MAX_DEPTH} levels)") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{folder / name}: not JSON ({exc})") from None
    if _depth(manifest) > MAX_DEPTH:
        raise ManifestError(f"{folder / name}: nested too deeply (at most {MAX_DEPTH} levels)")
    return manifest


def _depth(value) -> int:
    deepest, todo = 0, [(value, 1)]
    while todo:
        v, d = todo.pop()
        deepest = max(deepest, d)
        if d > MAX_DEPTH:
            return d
        if isinstance(v, dict):
            todo.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            todo.extend((x, d + 1) for x in v)
    return deepest


def _is_list_of(value, kind) -> bool:
    return isinstance(value, list) and all(isinstance(x, kind) for x in value)


# field -> (check, what was expected); absent optional fields are fine
_FIELDS = {
    "files": (lambda v: isinstance(v, dict) and all(isinstance(k, str) and (d is None or isinstance(d, str)
                                                                            and _SHA256.fullmatch(d))
                                                    for k, d in v.items()),
              "an object {file name: sha256 hex, or null in a one-run artifact}"),
    "error": (lambda v: isinstance(v, str), "a string"),
    "stages": (lambda v: isinstance(v, list) and all(
        isinstance(s, dict) and isinstance(s.get("name"), str) and s["name"] and
        _is_list_of(s.get("out", [""]), (str, int)) and _is_list_of(s.get("in", []), (str, int)) for s in v),
        'a list of {"name": string, "out": [keys]}'),
    "outputs": (lambda v: _is_list_of(v, (str, int)), "a list of output keys (strings)"),
    "input_names": (lambda v: _is_list_of(v, str), "a list of strings"),
    "checks": (lambda v: _is_list_of(v, str), "a list of check names"),
    "notes": (lambda v: _is_list_of(v, str), "a list of strings"),
    "seed": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "side": (lambda v: isinstance(v, dict) and all(isinstance(v.get(k), (str, type(None)))
                                                   for k in ("file", "symbol", "framework", "kind"))
             and isinstance(v.get("checkpoint", {}), dict)
             and all(isinstance(k, str) and w in ("weights", "checkpoint") for k, w in v.get("checkpoint", {}).items()),
             'an object whose file, symbol, framework and kind are strings (and checkpoint {key: "weights" or '
             '"checkpoint"})'),
    "inputs": (lambda v: isinstance(v, list) and all(isinstance(i, dict) and isinstance(i.get("name"), str)
                                                     and _is_list_of(i.get("shape", []), int) for i in v),
               'a list of {"name": string, "shape": [sizes], ...}'),
    "inputs_used": (lambda v: isinstance(v, list) and all(isinstance(i, dict) for i in v), "a list of input specs"),
    "calls": (lambda v: isinstance(v, list) and all(isinstance(c, dict) and isinstance(c.get("key"), str) for c in v),
              'a list of {"key": string, "kind": ..., ...}'),
}
CAPTURED = ("side", "seed", "inputs", "calls", "checks")  # what running code against an artifact needs of it


def validate(manifest, where: str) -> dict:
    """The manifest, or ManifestError naming the first field that is not of the documented type."""
    if not isinstance(manifest, dict):
        raise ManifestError(f"{where}: the manifest is {type(manifest).__name__}, expected a JSON object")
    for field, (ok, expected) in _FIELDS.items():
        if field in manifest and not ok(manifest[field]):
            raise ManifestError(f"{where}: field '{field}' must be {expected}")
    if "files" not in manifest:
        raise ManifestError(f"{where}: field 'files' is missing (an object {{file name: sha256 hex}})")
    return manifest


def captured(manifest: dict, where: str) -> None:
    """Refuse, with what is missing, a minimal artifact where a parity-skill capture is needed."""
    missing = [f for f in CAPTURED if f not in manifest]
    if missing:
        raise ManifestError(f"{where}: has no {', '.join(missing)}: it can be compared with another artifact "
                            "(compare A_DIR B_DIR), but code runs only against an artifact written by "
                            "`parity-skill capture` (docs/fixtures.md)")


def file_path(folder: Path, name: str) -> Path:
    """A file the manifest lists, resolved inside the folder (see _regular_inside), or inside the run's scratch
    folder for a `scratch/` name when the CLI gave this side one (data/scratch.py)."""
    if scratch.ROOT is not None and isinstance(name, str) and name.startswith(scratch.PREFIX):
        return _regular_inside(Path(scratch.ROOT), name[len(scratch.PREFIX):], "file")
    return _regular_inside(folder, name, "file")
