"""`--plot FILE.png|svg`: the per-submodule error profile (log10 max |B - A| by module in call order, the fp32
tolerance line, the root cause marked), or for two artifacts the per-stage error and correlation. matplotlib is an
optional extra (`pip install 'parity-skill[plot]'`), drawn headless."""
from __future__ import annotations

import math

from parity_skill.errors import InputError

FORMATS = (".png", ".svg")


def require(path: str) -> None:
    """Refuse a --plot the run could not honour, before anything runs."""
    if not path.lower().endswith(FORMATS):
        raise InputError(f"--plot {path}: the chart is written as .png or .svg")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise InputError("--plot needs matplotlib, which is not installed: pip install 'parity-skill[plot]' "
                         "(or pip install matplotlib)") from None


def _log(x) -> float:
    return math.log10(x) if x is not None and x > 0 and math.isfinite(x) else (-12.0 if x == 0 else float("nan"))


def _fp32_atol(p: dict) -> float | None:
    return next((c["tolerance"]["atol"] for c in p["checks"] if c["name"] == "forward" and c.get("tolerance")), None)


def draw(rep: dict, path: str) -> str | None:
    """Draw the first pair that has a profile; returns what was drawn, or None when nothing can be."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pair = next((p for p in rep["pairs"] if p.get("submodules")), None)
    stages = next((p for p in rep["pairs"] if p["checks"] and all(c["name"].startswith("stage:") for c in p["checks"])),
                  None)
    if pair is None and stages is None:
        return None
    if pair is not None:
        rows = pair["submodules"]
        fig, ax = plt.subplots(figsize=(max(6.0, 0.28 * len(rows) + 2), 4.2))
        xs = range(len(rows))
        ax.plot(xs, [_log(r["max_abs_diff"]) for r in rows], "o-", ms=3, label="B vs A, float32 (max |B - A|; exact 0 drawn at 1e-12)")
        atol = _fp32_atol(pair)
        if atol:
            ax.axhline(math.log10(atol), color="grey", ls="--", lw=1, label=f"tolerance atol {atol:g}")
        cause = (pair.get("root_cause") or {}).get("a")
        for i, r in enumerate(rows):
            if r["a"].split("#")[0] == cause:
                ax.axvline(i, color="red", lw=1)
                ax.annotate(f"root cause: {cause}", (i, _log(r["max_abs_diff"])), textcoords="offset points",
                            xytext=(4, 6), color="red", fontsize=8)
                break
        ax.set_xticks(list(xs), [r["a"] for r in rows], rotation=90, fontsize=7)
        ax.set_ylabel("log10 max abs difference")
        ax.set_title(f"{pair['a']['symbol']} vs {pair['b']['symbol']}: per-submodule error (call order)")
        ax.legend(fontsize=8, loc="upper left")
        what = f"per-submodule error of {len(rows)} submodules"
    else:
        checks = stages["checks"]
        fig, (ax, ax2) = plt.subplots(2, 1, sharex=True, figsize=(max(6.0, 0.3 * len(checks) + 2), 5.5))
        xs = range(len(checks))
        ax.plot(xs, [_log(c.get("max_abs_diff")) for c in checks], "o-", ms=3)
        ax.set_ylabel("log10 max abs difference")
        ax2.plot(xs, [c.get("pearson") if c.get("pearson") is not None else float("nan") for c in checks], "o-", ms=3)
        ax2.set_ylabel("Pearson correlation")
        ax2.set_xticks(list(xs), [c["name"][6:] for c in checks], rotation=90, fontsize=7)
        ax.set_title("per-stage error and correlation (A's call order)")
        what = f"per-stage error and correlation of {len(checks)} stages"
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return what
