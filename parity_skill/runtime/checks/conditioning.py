"""The conditioning floor as the checks use it: A's outputs on an input moved by one float32 rounding unit
(recorded by A's capture for the default input and every edge input, so phase 2 replays them), and the outcome
of judging B's difference against it (judging/condition.py holds the rule and parity_skill/thresholds.py its numbers)."""
from __future__ import annotations

import numpy as np

from parity_skill.runtime.checks.context import PairRun
from parity_skill.runtime.judging import condition
from parity_skill.thresholds import FP32_UNIT, UNIT_ROUNDOFF


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


def low_precision_floor(run: PairRun, dtype: str) -> dict:
    """{output key: the RMS error rounding the default input to `dtype` alone causes}: A's RMS change under the
    float32 perturbation, scaled to a `dtype` rounding (the change is linear in so small a perturbation). An
    exactly-rounded `dtype` implementation has at least this error. Empty when not recorded."""
    try:
        moved = perturbed_runs(run, run.base)
    except Exception:  # noqa: BLE001 - not recorded or A raises: the ratio rule alone
        return {}
    # the perturbation moves each element by -1/0/+1 float32 spacing (RMS sqrt(2/3) spacing); rounding to `dtype`
    # errs uniformly within half its spacing (RMS spacing/sqrt(12)); the spacings' ratio is 2u/FP32_UNIT
    scale = (2 * UNIT_ROUNDOFF[dtype] / FP32_UNIT) * (1 / np.sqrt(12)) / np.sqrt(2 / 3)
    return {k: v * scale for k, v in condition.rms_floor(run.cache["fp32_a"], moved).items()}
