"""Make the input arrays for each check from the InputSpecs (numpy, seeded, framework-free)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from parity_skill.thresholds import EDGE_OFFSET, STRESS_SCALE as HOT_SCALE
from parity_skill.spec import InputSpec

EDGE_SCALE = {"large": 1e4, "tiny": 1e-6}
# per-sample scale and offset for the batch check: samples deliberately unlike each other
BATCH_SCALES = (1.0, 0.25, 4.0, 1.5, 0.5, 2.0, 8.0, 0.75)
BATCH_OFFSETS = (0.0, 0.5, -1.0, 2.0, -0.25, 1.0, -2.0, 0.1)


def draw(spec: InputSpec, rng: np.random.Generator, shape: tuple[int, ...] | None = None) -> np.ndarray:
    shape = shape or spec.shape
    if spec.is_float:
        return rng.standard_normal(shape).astype(np.float64)
    high = spec.high or 64
    return rng.integers(spec.low, high, size=shape).astype(np.int64)


def base_inputs(specs: tuple[InputSpec, ...], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [draw(s, rng) for s in specs]


def batch_inputs(specs: tuple[InputSpec, ...], n: int, seed: int) -> list[np.ndarray]:
    """A batch of n samples, sample i scaled by BATCH_SCALES[i] and offset by BATCH_OFFSETS[i]."""
    rng = np.random.default_rng(seed + 1)
    out = []
    for s in specs:
        x = draw(s, rng, (n, *s.shape[1:]))
        if s.is_float:
            for i in range(n):
                x[i] = x[i] * BATCH_SCALES[i % len(BATCH_SCALES)] + BATCH_OFFSETS[i % len(BATCH_OFFSETS)]
        out.append(x)
    return out


def edge_inputs(edge: str, specs: tuple[InputSpec, ...], base: list[np.ndarray]) -> tuple[list[np.ndarray] | None, str]:
    """Inputs for `edge:<edge>`, or (None, reason) when the edge case does not apply."""
    floats = [s.is_float for s in specs]
    if not specs:
        return None, "the call takes no array input to vary"
    if edge == "seq_len_1":
        if not any(s.seq_axis is not None for s in specs):
            return None, "no sequence axis is known for any input (give one with --input)"
        out = []
        for s, x in zip(specs, base):
            idx = [slice(0, 1)] + [slice(None)] * (x.ndim - 1)
            if s.seq_axis is not None:
                idx[s.seq_axis] = slice(0, 1)
            out.append(np.asarray(x[tuple(idx)], order="C"))
        return out, "batch 1, sequence length 1"
    if edge == "zeros":
        return [np.zeros_like(x) for x in base], "all inputs zero (ids 0)"
    if edge in ("ties", "one_finite"):
        i = next((k for k, f in enumerate(floats) if f), None)
        if i is None:
            return None, "no floating input (logits) to shape"
        out = list(base)
        x = base[i]
        if edge == "ties":  # values on a coarse grid: many logits tie, also where a filter cuts
            out[i] = (np.round(x * 2.0) / 2.0).astype(x.dtype)
            return out, "logits on a 0.5 grid (ties at every cut-off)"
        keep = np.random.default_rng(1).integers(0, x.shape[-1], size=x.shape[:-1])
        one = np.full_like(x, -np.inf)
        np.put_along_axis(one, keep[..., None], np.take_along_axis(x, keep[..., None], axis=-1), axis=-1)
        out[i] = one
        return out, "all but one logit per row at -inf"
    if not any(floats):
        if edge == "large":
            return [np.full_like(x, (s.high or 64) - 1) for s, x in zip(specs, base)], "ids at vocab-1"
        return None, "integer inputs are not scaled"
    if edge in EDGE_SCALE:
        k = EDGE_SCALE[edge]
        return [x * k if f else x for x, f in zip(base, floats)], f"floating inputs scaled by {k:g}"
    if edge == "offset":
        return [x + EDGE_OFFSET if f else x for x, f in zip(base, floats)], f"DC offset {EDGE_OFFSET:g} added"
    return None, f"unknown edge case '{edge}'"


def layouts_to_try(rank: int) -> list[tuple[int, ...]]:
    """Channels-first <-> channels-last moves for an input of this rank (the retry when a layer rejects it)."""
    return {3: [(0, 2, 1)], 4: [(0, 3, 1, 2), (0, 2, 3, 1)], 5: [(0, 4, 1, 2, 3), (0, 2, 3, 4, 1)]}.get(rank, [])


def permuted_spec(spec: InputSpec, axes: tuple[int, ...]) -> InputSpec:
    """The spec of the input moved by `axes`; its sequence axis follows."""
    seq = axes.index(spec.seq_axis) if spec.seq_axis is not None else None
    return replace(spec, shape=tuple(spec.shape[i] for i in axes), seq_axis=seq)


def permute(x: np.ndarray, axes: tuple[int, ...] | None) -> np.ndarray:
    return np.asarray(np.transpose(x, axes), order="C") if axes else x


def inverse(axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argsort(axes))


def hot_inputs(specs: tuple[InputSpec, ...], base: list[np.ndarray]) -> list[np.ndarray] | None:
    if not any(s.is_float for s in specs):
        return None
    return [x * HOT_SCALE if s.is_float else x for s, x in zip(specs, base)]
