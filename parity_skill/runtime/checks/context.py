"""State shared by the checks of one pair, and the result/diagnosis records they produce."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from parity_skill.runtime.adapters.base import Flat
from parity_skill.runtime.sides.side import Side
from parity_skill.spec import Checks, InputSpec, MapEntry


@dataclass
class PairRun:
    a: Side
    b: Side
    inputs: tuple[InputSpec, ...]
    checks: Checks
    base: list[np.ndarray]
    entries: list[MapEntry]
    unmapped_a: list[str]
    unmapped_b: list[str]
    diagnosis: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cache: dict[str, Any] = field(default_factory=dict)
    limitations: list[str] = field(default_factory=list)

    @property
    def recording(self) -> bool:
        """B is A itself (phase 1, runtime/sides/capture.py): a check only makes A's calls, its verdict is dropped,
        so a model's worth of gradients need not be judged against themselves."""
        return getattr(self.b, "mirror", False)

    def limit(self, reason: str) -> None:
        """Record a check that was weakened (it ran, but under a looser or substitute rule)."""
        if reason not in self.limitations:
            self.limitations.append(reason)

    def diagnose(self, kind: str, message: str, check: str, location: str | None = None, **evidence: Any) -> None:
        if any(d["kind"] == kind and d["message"] == message for d in self.diagnosis):
            return
        entry = {"kind": kind, "message": message, "location": location, "check": check}
        entry.update(evidence)
        self.diagnosis.append(entry)

    def forward(self, side: Side, args: list[np.ndarray], dtype: str = "fp32") -> Flat:
        side.seed(self.checks.seed)  # both sides start from the same random state
        return side.run(args, dtype)


def result(name: str, status: str, message: str, tol: Any = None, **fields: Any) -> dict:
    out = {"name": name, "status": status, "message": message,
           "max_abs_diff": None, "max_rel_diff": None, "tolerance": None}
    if tol is not None:
        out["tolerance"] = {"atol": tol.atol, "rtol": tol.rtol} if hasattr(tol, "atol") else tol
    out.update({k: v for k, v in fields.items() if v is not None})
    return out
