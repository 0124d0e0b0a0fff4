"""Read a user's source file safely: regular files only (a FIFO or /dev/zero never hangs the CLI), bounded in
size, decoded the way Python would (a PEP 263 coding line, else UTF-8)."""
from __future__ import annotations

import io
import os
import stat
import tokenize

MAX_SOURCE_BYTES = 16 * 1024 * 1024


def read_source(path: str) -> str:
    """The text of `path`. Raises OSError (missing, unreadable) or ValueError (not a regular file, too large,
    undecodable) with a one-line reason."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise ValueError("not a regular file")
    if st.st_size > MAX_SOURCE_BYTES:
        raise ValueError(f"too large to analyze ({st.st_size} bytes; the limit is {MAX_SOURCE_BYTES})")
    with open(path, "rb") as fh:
        data = fh.read(MAX_SOURCE_BYTES + 1)
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        return data.decode(encoding)
    except (SyntaxError, LookupError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot decode: {exc}") from None
