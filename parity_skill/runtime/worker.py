"""A warm interpreter for the CLI: imports a side's framework while the CLI is still analysing, then runs the
script whose path (line 1) and arguments (line 2, a JSON list) arrive on stdin, exactly as
`python script.py ARGS` would."""
from __future__ import annotations

import importlib
import json
import os
import runpy
import signal
import sys


def _die_with_parent() -> None:
    """Linux: SIGKILL this worker when the CLI dies (the CLI's guardian then clears the rest of the group)."""
    parent = os.environ.pop("PARITY_SKILL_PARENT", None)
    if not parent or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != int(parent):  # the CLI died before the signal was armed
        os._exit(137)


def main() -> None:
    _die_with_parent()
    for name in sys.argv[1:]:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - warming only; the script reports real import problems itself
            pass
    import parity_skill.runtime.session  # noqa: F401

    script = sys.stdin.readline().strip()
    if not script:
        return
    sys.argv = [script, *json.loads(sys.stdin.readline() or "[]")]
    sys.path.insert(0, "")
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
