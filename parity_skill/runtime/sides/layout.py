"""B's input and output layout, decided by the live modules: which channels-first/-last move B's inputs need, and
whether B's outputs come back in A's layout (by shape, or by value where the shapes are the same either way)."""
from __future__ import annotations

import numpy as np

from parity_skill.runtime.data.inputs import base_inputs, layouts_to_try
from parity_skill.runtime.sides.failures import describe
from parity_skill.runtime.sides.side import Side
from parity_skill.spec import PairSpec


def _shapes(flat) -> list[tuple]:
    return [tuple(v.shape) for _, v in flat]


def settle_layout(a, b: Side, spec: PairSpec, notes: list[str]) -> None:
    """The live module decides B's layout: when B rejects A's inputs, each channels-first/-last move is tried
    once; and outputs are turned back into A's layout only when that is what makes their shapes A's."""
    base = base_inputs(spec.inputs, spec.checks.seed)

    def call(side):
        side.seed(spec.checks.seed)
        return side.run(base)

    try:
        fa = call(a)
    except Exception:  # noqa: BLE001 - A's error is reported by the first forward
        return
    try:
        fb = call(b)
    except Exception as exc:  # noqa: BLE001 - the reason is kept for the note
        first, fb, planned = describe(exc), None, b.layout
        for rank in sorted({x.ndim for x, s in zip(base, spec.inputs) if s.is_float}):
            for axes in layouts_to_try(rank):
                b.layout = axes
                try:
                    fb = call(b)
                except Exception:  # noqa: BLE001 - not this layout
                    continue
                notes.append(f"B rejected A's input layout ({first}); it runs with its inputs permuted {axes}")
                break
            if fb is not None:
                break
        if fb is None:
            b.layout = planned
            return
    if b.layout and _shapes(fb) != _shapes(fa):
        b.permute_outputs = False
        if _shapes(call(b)) == _shapes(fa):
            notes.append("B returns its outputs in A's layout already: they are not permuted back")
        else:
            b.permute_outputs = True


def symmetric_layout(a, b: Side, spec: PairSpec, notes: list[str]) -> None:
    """When B's outputs have the same shape in either layout (a width equal to the length), shapes cannot say
    whether B returns them channels-last or already in A's layout: with A's weights loaded, the arrangement that
    agrees with A decides, and the note says so."""
    if not b.layout:
        return
    base = base_inputs(spec.inputs, spec.checks.seed)
    try:
        a.seed(spec.checks.seed)
        fa = a.run(base)
        kept = b.permute_outputs
        found = {}
        for permuted in (True, False):
            b.permute_outputs = permuted
            b.seed(spec.checks.seed)
            found[permuted] = b.run(base)
    except Exception:  # noqa: BLE001 - the first forward reports either side's error
        return
    if _shapes(found[True]) != _shapes(found[False]) or _shapes(found[True]) != _shapes(fa):
        b.permute_outputs = kept
        return
    worst = {k: max((float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))) if x.size else 0.0
                     for (_, x), (_, y) in zip(fa, v)), default=0.0) for k, v in found.items()}
    if worst[True] == worst[False]:
        b.permute_outputs = kept
        return
    b.permute_outputs = worst[True] < worst[False]
    notes.append(f"B's outputs have the same shape in either layout: {'turned back into' if b.permute_outputs else 'taken as'}"
                 f" A's layout, the arrangement that agrees with A (max diff {min(worst.values()):.3g} against "
                 f"{max(worst.values()):.3g})")
