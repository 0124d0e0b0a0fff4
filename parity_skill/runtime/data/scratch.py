"""Memory-backed scratch for a one-command run's artifact.

A one-command run's artifact is written by side A and read once by side B on the same machine, then removed. Its
large files (weights, gradients) go to a tmpfs folder the CLI made (`/dev/shm`), while memory allows, instead of
through the disk's page cache: writeback to disk took 1.5 s of an 8 s run on benchmarks/scale.py (85 M parameters,
1.2 GB of files) on a 2-core machine. A file there is named `scratch/<name>` in the artifact; only a side given
the same folder by the CLI (`--scratch`) resolves such a name there. A kept artifact (`capture`) never uses it.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

PREFIX = "scratch/"
ROOT: str | None = None  # set from --scratch in both sides of a one-command run
_BASE = "/dev/shm"
_MIN_RESERVE = 2 * 2 ** 30  # memory left available (and a quarter of the machine's, if more) after a file is written


def make() -> str | None:
    """A new scratch folder on tmpfs, or None where there is none (not Linux, or not writable)."""
    if not (os.path.isdir(_BASE) and os.access(_BASE, os.W_OK | os.X_OK)):
        return None
    try:
        return tempfile.mkdtemp(prefix="parity-scratch-", dir=_BASE)
    except OSError:
        return None


def _meminfo() -> dict[str, int]:
    out = {}
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                out[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return {}
    return out


def fits(nbytes: int) -> bool:
    """Whether a file of `nbytes` may go to scratch: room on the tmpfs, and the machine keeps its reserve of
    available memory afterwards (a tmpfs page cannot be evicted as a disk file's page can)."""
    if ROOT is None:
        return False
    info = _meminfo()
    if "MemAvailable" not in info or "MemTotal" not in info:
        return False
    try:
        free = shutil.disk_usage(ROOT).free
    except OSError:
        return False
    reserve = max(_MIN_RESERVE, info["MemTotal"] // 4)
    return nbytes + (64 << 20) < free and info["MemAvailable"] - nbytes > reserve


def target(folder: Path, nbytes: int, allowed: bool = True) -> tuple[Path, str]:
    """(where to write a file of `nbytes`, the prefix of its name in the artifact)."""
    if allowed and fits(nbytes):
        return Path(ROOT), PREFIX
    return folder, ""


def path(folder: Path, name: str) -> Path:
    """A file this run wrote, by its artifact name (the writer's own reads; readers check names first)."""
    if ROOT is not None and name.startswith(PREFIX):
        return Path(ROOT) / name[len(PREFIX):]
    return folder / name
