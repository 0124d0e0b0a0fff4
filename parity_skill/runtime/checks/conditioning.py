"""The conditioning floor as the checks use it: A's outputs on an input moved by one float32 rounding unit
(recorded by A's capture for the default input and every edge input, so phase 2 replays them), and the outcome
of judging B's difference against it (judging/condition.py holds the rule and parity_skill/thresholds.py its numbers)."""
from __future__ import annotations

import numpy as np

from parity_skill.runtime.checks.context import PairRun
from parity_skill.runtime.judging import condition


def perturbed_runs(run: PairRun, xs: list[np.ndarray]) -> list:
    """A's outputs on `xs` moved by one float32 rounding unit, one run per seed."""
    return [run.forward(run.a, condition.perturbed(xs, seed)) for seed in condition.SEEDS]


def conditioned(run: PairRun, j: dict, xs, fa) -> tuple[str, dict] | None:
    """('pass' | 'inconclusive', figure) when B's difference from A is within the conditioning floor of A on `xs`,
    or None (the strict rule stands: not recorded, A raises there, or B differs by more)."""
    w = j["worst"]
    if "probabilities" in (run.a.impl.reads, run.b.impl.reads):
        return None  # a logits processor is discontinuous at its cut-off by design: ties have their own rule
    try:
        spread = condition.floor(fa, perturbed_runs(run, xs))
    except Exception:  # noqa: BLE001 - not recorded or A raises: the strict rule stands
        return None
    outcome = condition.judge(w["max_abs_diff"], w["atol"], spread)
    if outcome is None:
        return None
    return outcome, {"floor": spread, "factor": condition.FACTOR, "tolerance": w["atol"]}


def said(figure: dict, diff: float) -> str:
    """The conditioned verdict in words, with its figures."""
    text = (f"A and B differ by {diff:.3g}, within {figure['factor']:g}x the conditioning floor {figure['floor']:.3g} "
            "(A itself moves by that much when its input moves by one float32 rounding unit)")
    if figure["floor"] > figure["tolerance"]:
        text += (f"; the floor exceeds the tolerance {figure['tolerance']:.3g}, so float32 cannot tell a correct "
                 "kernel from a wrong one here")
    return text


def rounded(xs: list[np.ndarray], dtype: str) -> list[np.ndarray]:
    """The floating inputs rounded to `dtype` (to nearest, ties to even), in float64; other inputs unchanged."""
    out = []
    for x in xs:
        x = np.asarray(x)
        if not np.issubdtype(x.dtype, np.floating):
            out.append(x)
        elif dtype == "fp16":
            out.append(x.astype(np.float16).astype(np.float64))
        else:  # bf16: the upper half of a float32, rounded
            bits = x.astype(np.float32).view(np.uint32).astype(np.uint64)
            bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
            out.append(bits.astype(np.uint32).view(np.float32).astype(np.float64))
    return out


def low_precision_floor(run: PairRun, dtype: str, ref: list) -> dict:
    """{output key: the RMS error rounding the default input to `dtype` alone causes}: A in float64 on the input
    rounded to `dtype`, against `ref`, A in float64 on the input itself (both recorded by A's capture). An
    exactly-rounded `dtype` implementation has at least this error. Empty when not recorded."""
    try:
        moved = run.forward(run.a, rounded(run.base, dtype), "fp64")
    except Exception:  # noqa: BLE001 - not recorded or A raises: the ratio rule alone
        return {}
    return condition.rms_floor(ref, [moved])
