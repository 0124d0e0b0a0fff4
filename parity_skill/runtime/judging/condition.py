"""How much any correct float32 implementation may differ from A on one input: the conditioning floor.

A is run on its input perturbed by at most one float32 rounding unit per element (each element moved by -1, 0 or
+1 unit, a few seeded draws). An exactly-rounded float32 implementation of the same math starts from an input that
is itself only known to one rounding unit, so the spread of A's outputs under these perturbations is the error such
an implementation may have on this input: about 1 unit of the output where the computation is well conditioned,
far more where it is not (a LayerNorm at a DC offset of 1000 times its spread loses ~1e-4 in any float32 kernel).

Rule (one place, used by the edge checks):
- B agrees with A within the check's tolerance: pass, as always.
- B differs from A by at most FACTOR x the floor, and the floor itself is above the tolerance: `inconclusive` (the
  input is too ill-conditioned for float32 to tell two correct kernels apart; a limitation, named with its figure).
- B differs by at most FACTOR x the floor, and the floor is within the tolerance: pass, with the figure.
- B differs by more: fail. A one-pass variance at that offset misses by orders of magnitude, so it still fails.

FACTOR = 4: the floor measures one implementation's deviation from the exact result; two correct implementations
may deviate in opposite directions (x2), and SEEDS = 3 random draws see less than the worst perturbation (x2).
"""
from __future__ import annotations

import numpy as np

from parity_skill.thresholds import CONDITION_FACTOR, CONDITION_SEEDS

SEEDS, FACTOR = CONDITION_SEEDS, CONDITION_FACTOR


def perturbed(xs: list[np.ndarray], seed: int) -> list[np.ndarray]:
    """The floating inputs, each element moved by -1, 0 or +1 float32 rounding unit of itself (seeded)."""
    rng = np.random.default_rng(seed)
    out = []
    for x in xs:
        x = np.asarray(x)
        if not np.issubdtype(x.dtype, np.floating):
            out.append(x)
            continue
        step = np.spacing(np.abs(x).astype(np.float32)).astype(x.dtype)
        out.append((x + rng.integers(-1, 2, size=x.shape).astype(x.dtype) * step).astype(x.dtype))
    return out


def _changes(fa: list, moved: list[list]):
    """(output key, |change| of its elements finite on both sides) for each perturbed run and output of A."""
    for run in moved:
        by_key = dict(run)
        for key, a in fa:
            b = by_key.get(key)
            if b is None or np.shape(a) != np.shape(b):
                continue
            a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
            both = np.isfinite(a64) & np.isfinite(b64)
            if both.any():
                yield key, np.abs(a64[both] - b64[both])


def floor(fa: list, moved: list[list]) -> float | None:
    """The largest change of A's outputs (finite, same shapes) under the perturbations; None if none compares."""
    return max((float(d.max()) for _, d in _changes(fa, moved)), default=None)


def rms_floor(fa: list, moved: list[list]) -> dict:
    """{output key: the largest RMS change of that output of A under the perturbations} (finite elements)."""
    out: dict = {}
    for key, d in _changes(fa, moved):
        out[key] = max(out.get(key, 0.0), float(np.sqrt(np.mean(d ** 2))))
    return out


def judge(diff: float, tolerance: float, spread: float | None) -> str | None:
    """'pass', 'inconclusive' or None (the strict rule stands) for B's max difference from A beyond the tolerance."""
    if spread is None or diff > FACTOR * spread:
        return None
    return "inconclusive" if spread > tolerance else "pass"
