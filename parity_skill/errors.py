"""Every way parity-skill can fail to check, and the exit code each maps to."""
from __future__ import annotations

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130  # Ctrl-C, after the worker was stopped
EXIT_TERMINATED = 143  # SIGTERM, likewise


class ParityError(Exception):
    """Could not check (exit 2). `str(err)` is the one line the user sees (file, symbol, reason)."""


class InputError(ParityError):
    """Bad command line or file: missing, unparsable, unknown symbol, nothing to pair."""


class RunError(ParityError):
    """The generated script crashed, timed out, or printed no report."""


def exit_code_for(verdict: str) -> int:
    return {"pass": EXIT_PASS, "fail": EXIT_FAIL}.get(verdict, EXIT_ERROR)
