"""How a side's failures are told: user code that raised, and calls replayed from (or missing in) an artifact.

`describe` gives the one line every error message carries: the exception's last line and the user file:line."""
from __future__ import annotations

import os
import re
import traceback

import parity_skill

USER_FILES: set[str] = set()  # absolute paths of the user files loaded in this process


class RecordedError(Exception):
    """A call that raised when A was captured; `str()` is the original one-line description."""


class MissingRecord(Exception):
    """B's checks asked A for something the capture did not record."""


class UserCodeError(Exception):
    """User code raised; `str()` is '<exception last line> (<user file:line>)'."""


def describe(exc: BaseException) -> str:
    """The exception's last line plus the innermost frame that lies in a user file."""
    if isinstance(exc, (RecordedError, MissingRecord)):
        return str(exc)  # already described when side A was captured
    last = traceback.format_exception_only(type(exc), exc)[-1].strip()
    where = None
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in frames:
        if os.path.abspath(frame.filename) in USER_FILES:
            where = f"{os.path.relpath(frame.filename)}:{frame.lineno}"
    if where is None:  # raised in a library the user code called: name the innermost frame outside this tool
        ours = os.path.dirname(os.path.abspath(parity_skill.__file__))
        outside = [f for f in frames if not os.path.abspath(f.filename).startswith(ours + os.sep)]
        if outside:
            where = f"{outside[-1].filename}:{outside[-1].lineno}"
    if where is None and isinstance(exc, SyntaxError) and exc.filename:
        where = f"{os.path.relpath(exc.filename)}:{exc.lineno}"
    return f"{last} ({where})" if where else last


_BACKEND_LIMIT = re.compile(
    r"only supports? (float32|fp32|float)|not implemented for '?(half|bfloat16|float16|bf16)|"
    r"(float16|bfloat16|half|fp16|bf16)\b.{0,40}\bnot (yet )?supported|not (yet )?supported\b.{0,40}"
    r"\b(float16|bfloat16|half|fp16|bf16)|unsupported (data ?type|dtype)|no (kernel|implementation) for", re.I)


def backend_limit(message: str) -> bool:
    """Whether an error says the framework lacks an op in a dtype (MLX's CPU GatherMM is float32 only; torch's
    'not implemented for Half'), which is a limitation of the machine, never a failure of the port."""
    return bool(_BACKEND_LIMIT.search(message))
