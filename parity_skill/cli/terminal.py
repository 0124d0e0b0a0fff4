"""What the CLI shows on a terminal only: a one-line progress status on stderr, and colour for verdicts."""
from __future__ import annotations

import os
import re
import sys
import time

DELAY = float(os.environ.get("PARITY_SKILL_PROGRESS_DELAY", "1.0"))  # a shorter run shows no progress
COLORS = {"PASS": "\033[32m", "FAIL": "\033[31m", "ERROR": "\033[33m", "SKIP": "\033[2m"}
RESET = "\033[0m"


def _plain_terminal() -> bool:
    return os.environ.get("TERM") == "dumb"


def color_enabled(no_color: bool = False) -> bool:
    """Colour on stdout: only on a terminal, and never with NO_COLOR, TERM=dumb or --no-color."""
    return not no_color and "NO_COLOR" not in os.environ and not _plain_terminal() and sys.stdout.isatty()


def paint(text: str) -> str:
    """PASS/FAIL/ERROR/SKIP as whole words in a report, coloured."""
    return re.sub(r"\b(PASS|FAIL|ERROR|SKIP)\b", lambda m: f"{COLORS[m.group(1)]}{m.group(1)}{RESET}", text)


class Status:
    """`status("compare B: check 3 of 12 (fp16)")` rewrites one stderr line, once the run is past DELAY seconds;
    nothing at all when stderr is not a terminal."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() and not _plain_terminal() if enabled is None else enabled
        self.start, self.shown, self.last = time.monotonic(), False, ""

    def __call__(self, text: str) -> None:
        self.last = text
        if not self.enabled or time.monotonic() - self.start < DELAY:
            return
        sys.stderr.write(f"\r\033[Kparity-skill: {text}")
        sys.stderr.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
            self.shown = False
