"""Reading a safetensors file that someone else wrote: the header checked against the file's size before anything is
allocated, every dtype the format defines turned into a numpy array (bfloat16 and the float8s as float32, exactly).

The format: 8 bytes little-endian N, N bytes of JSON `{name: {dtype, shape, data_offsets: [begin, end]}, ...}`,
then the data; offsets count from the end of the header."""
from __future__ import annotations

import json
import mmap
import os
import stat
import struct
from collections.abc import Iterator, Mapping

import numpy as np

MAX_HEADER = 100 * 2 ** 20  # the format's own reference reader refuses larger headers

_PLAIN = {"BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "U16": np.uint16, "I16": np.int16, "U32": np.uint32,
          "I32": np.int32, "U64": np.uint64, "I64": np.int64, "F16": np.float16, "F32": np.float32,
          "F64": np.float64, "C64": np.complex64}
_WIDENED = {"BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1}  # read as float32; value = bytes per element
DTYPES = (*_PLAIN, *_WIDENED)


class TensorFileError(ValueError):
    """A file that is not a readable safetensors file; `str()` is one line naming the file and the reason."""


def _e4m3_table() -> np.ndarray:
    """float8 e4m3fn: bias 7, no infinities, NaN at exponent and mantissa all ones."""
    out = np.empty(256, np.float32)
    for byte in range(256):
        sign = -1.0 if byte & 0x80 else 1.0
        exp, man = (byte >> 3) & 0xF, byte & 0x7
        if exp == 0xF and man == 0x7:
            out[byte] = np.nan
        elif exp == 0:
            out[byte] = sign * man / 8 * 2.0 ** -6
        else:
            out[byte] = sign * (1 + man / 8) * 2.0 ** (exp - 7)
    return out


def _e8m0_table() -> np.ndarray:
    """float8 e8m0fnu: a power of two 2**(byte - 127); 0xFF is NaN."""
    out = np.array([2.0 ** (b - 127) for b in range(256)], np.float32)
    out[255] = np.nan
    return out


def widen(dtype: str, raw, shape: tuple[int, ...]) -> np.ndarray:
    """The values of a dtype numpy lacks, as float32 (each of them is exactly representable there)."""
    if dtype == "BF16":
        return (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32).reshape(shape)
    codes = np.frombuffer(raw, np.uint8)
    if dtype == "F8_E5M2":  # the upper byte of a float16
        return (codes.astype(np.uint16) << 8).view(np.float16).astype(np.float32).reshape(shape)
    table = _e4m3_table() if dtype == "F8_E4M3" else _e8m0_table()
    return table[codes].reshape(shape)


def _itemsize(dtype: str) -> int:
    return _WIDENED[dtype] if dtype in _WIDENED else np.dtype(_PLAIN[dtype]).itemsize


def read_header(path: str) -> tuple[dict[str, dict], int]:
    """({name: {dtype, shape, begin, end}}, offset of the data), every entry checked against the file's size."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise TensorFileError(f"{path}: cannot read ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise TensorFileError(f"{path}: not a regular file")
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise TensorFileError(f"{path}: not a safetensors file (shorter than its 8-byte header length)")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER or 8 + n > st.st_size:
            raise TensorFileError(f"{path}: not a safetensors file (header of {n} bytes in a file of {st.st_size})")
        try:
            header = json.loads(fh.read(n))
        except (ValueError, RecursionError) as exc:
            raise TensorFileError(f"{path}: unreadable safetensors header ({type(exc).__name__})") from None
    if not isinstance(header, dict):
        raise TensorFileError(f"{path}: safetensors header is not a JSON object")
    data_size = st.st_size - 8 - n
    entries = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        entries[name] = _entry(path, name, info, data_size)
    return entries, 8 + n


def _entry(path: str, name: str, info, data_size: int) -> dict:
    where = f"{path}: tensor {name!r}"
    if not isinstance(info, dict):
        raise TensorFileError(f"{where}: entry is not an object")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if dtype not in DTYPES:
        raise TensorFileError(f"{where}: dtype {dtype!r} is not read (known: {', '.join(DTYPES)})")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise TensorFileError(f"{where}: shape {shape!r} is not a list of sizes")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)
            and 0 <= offsets[0] <= offsets[1] <= data_size):
        raise TensorFileError(f"{where}: data_offsets {offsets!r} lie outside the file's {data_size} data bytes")
    count = int(np.prod(shape, dtype=object)) if shape else 1
    if offsets[1] - offsets[0] != count * _itemsize(dtype):
        raise TensorFileError(f"{where}: {offsets[1] - offsets[0]} bytes for shape {shape} of {dtype}")
    return {"dtype": dtype, "shape": tuple(shape), "begin": offsets[0], "end": offsets[1]}


def read_tensor(path: str, entry: dict, data_at: int) -> np.ndarray:
    """One tensor, its file mapped copy-on-write: pages come straight from the page cache when read, and the array
    is still writable (a private copy of a page is made only where it is written). Reading into fresh memory
    instead faulted in and zeroed every page first, then copied: twice the time of comparing a gradient."""
    size = entry["end"] - entry["begin"]
    dtype = entry["dtype"]
    plain = np.dtype(_PLAIN[dtype]).newbyteorder("<") if dtype in _PLAIN else np.dtype("<u1")
    if size == 0:
        return np.zeros(entry["shape"], np.float32 if dtype in _WIDENED else plain)
    start = data_at + entry["begin"]
    aligned = start - start % mmap.ALLOCATIONGRANULARITY
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size < start + size:  # a page mapped past the end would kill the process
            raise TensorFileError(f"{path}: truncated while reading")
        mapped = mmap.mmap(fh.fileno(), start + size - aligned, access=mmap.ACCESS_COPY, offset=aligned)
    raw = np.frombuffer(mapped, np.uint8, size, start - aligned)
    if dtype in _WIDENED:
        return widen(dtype, raw, entry["shape"])
    return raw.view(plain).reshape(entry["shape"])


class Tensors(Mapping):
    """The tensors of one or more safetensors files, read from disk one at a time when asked for and not kept, so
    a model's worth of gradients is never resident. Headers are checked when the files are opened."""

    def __init__(self, paths: list[str]) -> None:
        self._where: dict[str, tuple[str, dict, int]] = {}
        self.add(paths)

    def add(self, paths: list[str]) -> None:
        """Read these files' tensors too (a side's files as it writes them)."""
        for path in paths:
            entries, data_at = read_header(path)
            for name, entry in entries.items():
                self._where[name] = (path, entry, data_at)

    def __contains__(self, name) -> bool:  # Mapping's would read the tensor to answer
        return name in self._where

    def __getitem__(self, name: str) -> np.ndarray:
        path, entry, data_at = self._where[name]
        return read_tensor(path, entry, data_at)

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)
