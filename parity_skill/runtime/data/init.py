"""Fresh parameter values drawn from the seed alone, scaled by role, independent of the module's own init.

Real model code often allocates parameters with `torch.empty` because a checkpoint is loaded later: whatever the
constructor left is garbage, different on every run. So every floating parameter and persistent buffer gets a new
value from `(seed, name)` only. What is loaded into B comes from A through the weight map.

Values are float32 draws, uniform and centred with the standard deviation their role asks for (uniform draws are
several times cheaper than normal ones: a 7B model's worth is drawn on every run). Roles (by the owning module's
class, then by name and shape):
- weight matrices and convolutions: std 1/sqrt(fan_in), fan_in = the product of all axes but the first;
- stacked matrices (3-D or more, outside a convolution: a mixture's experts as one tensor): each slice a matrix,
  fan_in = the last axis;
- embeddings and learned position/class tokens: std 0.2;
- norm scales and other 1-D or scalar multipliers: 1 + std 0.1;
- biases and norm shifts: std 0.1; running means std 0.1, running variances U(0.5, 1.5);
- structural buffers (not trainable, finite, and integer-valued like a causal mask, or named like a mask or a
  frequency table) keep the values the constructor computed: they are code, not weights.
"""
from __future__ import annotations

import os
import re
import zlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterator

import numpy as np

_EMBEDDING = re.compile(r"emb|wte|wpe|token|(^|_)pos|cls|codebook")
_SHIFT = re.compile(r"bias|beta|shift|offset|(^|_)b$")
_STRUCTURAL = re.compile(r"mask|tril|causal|freq|(^|_)(cos|sin)(_|$)|window|position_ids|(^|_)idx")


def _leaf(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower()


def role(name: str, shape: tuple[int, ...], owner: str) -> str:
    """matrix | embedding | scale | shift | running_mean | running_var."""
    leaf, owner = _leaf(name), owner.lower()
    if leaf in ("running_mean", "running_var"):
        return leaf
    if "embedding" in owner or (_EMBEDDING.search(leaf) and len(shape) >= 2):
        return "embedding"
    if "norm" in owner:
        return "shift" if _SHIFT.search(leaf) else "scale"
    if len(shape) >= 3 and "conv" not in owner and sum(d > 1 for d in shape) >= 3:
        return "matrices"  # stacked experts (E, out, in): each slice is a matrix of its own
    if len(shape) >= 2 and (leaf in ("weight", "w") or sum(d > 1 for d in shape) >= 2):
        return "matrix"
    return "shift" if _SHIFT.search(leaf) else "scale"


def _centred(rng: np.random.Generator, shape: tuple[int, ...], std: float, mean: float = 0.0) -> np.ndarray:
    """Uniform float32 values with this mean and standard deviation, made in place (no temporaries)."""
    out = rng.random(shape, dtype=np.float32)
    out -= np.float32(0.5)
    out *= np.float32(std * np.sqrt(12.0))
    if mean:
        out += np.float32(mean)
    return out


def draw(name: str, shape: tuple[int, ...], kind: str, seed: int) -> np.ndarray:
    """The value of one parameter: a function of (seed, name, shape, role) only."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])
    if kind == "running_var":
        return _centred(rng, shape, 1 / np.sqrt(12.0), 1.0)
    if kind in ("matrix", "matrices"):
        fan_in = (shape[-1] if kind == "matrices" else int(np.prod(shape[1:]))) or 1
        return _centred(rng, shape, 1 / np.sqrt(fan_in))
    if kind == "embedding":
        return _centred(rng, shape, 0.2)
    if kind == "scale":
        return _centred(rng, shape, 0.1, 1.0)
    return _centred(rng, shape, 0.1)


def structural(name: str, value: np.ndarray) -> bool:
    """A buffer the constructor derives (mask, frequency table): keep it, as long as it is finite."""
    if not np.isfinite(value).all():
        return False
    return bool(_STRUCTURAL.search(_leaf(name))) or bool(value.size and np.all(value == np.round(value)))


def owner_of(name: str, owners: dict[str, str]) -> str:
    return owners.get(name.rsplit(".", 1)[0] if "." in name else "", "")


def fresh_state(state: dict[str, np.ndarray], trainable: set[str], owners: dict[str, str], seed: int,
                kept: list[str]) -> Iterator[tuple[str, np.ndarray]]:
    """(name, new value) for every floating entry that is not a structural buffer, one at a time (a model's worth
    of float64 draws is never in memory at once: the next two are drawn in threads while the caller loads this
    one, numpy drawing without the interpreter lock); the names of structural ones kept go into `kept`."""
    todo = []
    for name in sorted(state):
        value = state[name]
        if not np.issubdtype(value.dtype, np.floating) or value.size == 0:
            continue
        kind = role(name, tuple(value.shape), owner_of(name, owners))
        if name not in trainable and kind not in ("running_mean", "running_var") and structural(name, value):
            kept.append(name)
            continue
        todo.append((name, tuple(value.shape), kind))
    workers = min(2, os.cpu_count() or 1)  # the values do not depend on it: each is drawn from its own seed
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fresh-draw") as pool:
        ahead: deque = deque()
        for item in todo:
            ahead.append((item[0], pool.submit(draw, *item, seed)))
            if len(ahead) > workers:
                name, value = ahead.popleft()
                yield name, value.result()
        while ahead:
            name, value = ahead.popleft()
            yield name, value.result()
