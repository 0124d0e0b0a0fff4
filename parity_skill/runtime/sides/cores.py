"""The CPU threads a side computes with: half the machine's cores each, in every mode, unless the user's
environment says otherwise. Both sides of a one-command run compute at once (thread pools that spin on cores the
other side uses slow both several-fold: torch's, and OpenBLAS's under numpy), and a side's float results may
depend on its thread count (how a reduction is split), so the count is fixed for the whole run and the same
whether the sides run together, one after the other, or as `capture` then `compare`."""
from __future__ import annotations

import os
import sys

_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def threads() -> int:
    """The user's OMP_NUM_THREADS, else half the cores (at least one)."""
    try:
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    except (KeyError, ValueError):
        return max(1, (os.cpu_count() or 1) // 2)


def environment() -> dict[str, str]:
    """Variables for a side's interpreter, read by the thread pools when they load (the user's own win)."""
    n = str(threads())
    return {name: os.environ.get(name, n) for name in _VARS}


def share() -> None:
    """In a side's process: the same count for a framework imported already (torch) or later."""
    n = threads()
    for name in _VARS:
        os.environ.setdefault(name, str(n))
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "set_num_threads"):
        torch.set_num_threads(n)
