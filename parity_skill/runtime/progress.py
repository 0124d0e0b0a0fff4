"""Progress lines a side appends to a file the CLI watches (`--progress PATH`); nothing when no file is given."""
from __future__ import annotations

PATH: str | None = None
PREFIX = ""


def say(text: str) -> None:
    if PATH is None:
        return
    try:
        with open(PATH, "a", encoding="utf-8") as fh:
            fh.write(f"{PREFIX}{text}\n")
    except OSError:
        pass
