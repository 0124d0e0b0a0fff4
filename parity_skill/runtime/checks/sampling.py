"""Sampling parity: logits that agree under argmax but not under the user's decoding settings.

Both sides' first output is read as logits over the last axis, turned into the distributions the user samples
from (repetition penalty over the row's input ids, temperature, top-k, top-p, min-p), and compared position by
position: total variation (TV: the probability that the best coupling of the two samplers draws different tokens),
KL(A||B), top-1 agreement, top-k overlap, max |delta log p| over A's nucleus, and a shared-Gumbel-noise estimate.

Thresholds (float32): mean TV <= 1e-3 and max TV <= 1e-2. A correct float32 port sits near 1e-6; a mean TV of 1e-3
means the first differing token after ~1000 sampled tokens, past most generations, while 1e-2 at any position is a
drift a user can hit in a few hundred. In fp16/bf16 the reference is A in float32: B's mean TV from it may be at
most 3x A's own (the precision checks' rule) plus 1e-3."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from parity_skill.runtime.checks.context import PairRun, result
from parity_skill.runtime.data.inputs import base_inputs
from parity_skill.runtime.sides.failures import describe

from parity_skill.thresholds import LOWP_TV_FLOOR as LOWP_FLOOR, PRECISION_MULTIPLIER, TV_MAX, TV_MEAN

TOP_K = 5
GUMBEL_DRAWS = 32


def distribution(logits: np.ndarray, settings: dict, history: list[np.ndarray] | None = None) -> np.ndarray:
    """(N, V) logits -> (N, V) probabilities under the decoding settings, in float64."""
    x = np.array(logits, dtype=np.float64)
    penalty = settings.get("repetition_penalty")
    if penalty and history is not None:
        for row, seen in zip(x, history):
            ids = np.unique(seen[(seen >= 0) & (seen < row.shape[0])])
            row[ids] = np.where(row[ids] > 0, row[ids] / penalty, row[ids] * penalty)
    t = settings.get("temperature", 1.0)
    if t <= 0:
        return np.eye(x.shape[-1])[np.argmax(x, axis=-1)]
    x = x / t
    k = int(settings.get("top_k") or 0)
    if 0 < k < x.shape[-1]:
        kth = np.sort(x, axis=-1)[:, -k][:, None]
        x = np.where(x >= kth, x, -np.inf)
    p = np.exp(x - x.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    top_p = settings.get("top_p")
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-p, axis=-1, kind="stable")
        sorted_p = np.take_along_axis(p, order, axis=-1)
        before = np.cumsum(sorted_p, axis=-1) - sorted_p  # mass above each token: keep it while that is < top_p
        keep = np.zeros_like(p, dtype=bool)
        np.put_along_axis(keep, order, before < top_p, axis=-1)
        p = np.where(keep, p, 0.0)
    min_p = settings.get("min_p")
    if min_p:
        p = np.where(p >= min_p * p.max(axis=-1, keepdims=True), p, 0.0)
    return p / p.sum(axis=-1, keepdims=True)


def compare_distributions(pa: np.ndarray, pb: np.ndarray, la: np.ndarray, lb: np.ndarray, seed: int) -> dict:
    """Per-position figures, summarised: TV, KL, top-1 agreement, top-k overlap, max |dlog p|, Gumbel estimate."""
    tv = 0.5 * np.abs(pa - pb).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        la_p, lb_p = np.log(pa), np.log(pb)
        kl = np.where(pa > 0, pa * (la_p - lb_p), 0.0).sum(axis=-1)
        dlogp = np.where(pa > 0, np.abs(la_p - lb_p), 0.0).max(axis=-1)
    top1 = np.argmax(la, axis=-1) == np.argmax(lb, axis=-1)
    k = min(TOP_K, la.shape[-1])
    top_a, top_b = np.argsort(-la, axis=-1)[:, :k], np.argsort(-lb, axis=-1)[:, :k]
    overlap = np.mean([len(set(a) & set(b)) / k for a, b in zip(top_a, top_b)])
    rng = np.random.default_rng(seed)
    differ = 0
    for _ in range(GUMBEL_DRAWS):  # the same noise for both samplers
        g = -np.log(-np.log(rng.uniform(1e-12, 1.0, size=pa.shape)))
        with np.errstate(divide="ignore"):
            differ += int(np.sum(np.argmax(np.log(pa) + g, axis=-1) != np.argmax(np.log(pb) + g, axis=-1)))
    return {"positions": int(tv.size), "tv_mean": float(tv.mean()), "tv_max": float(tv.max()),
            "tv_curve": [round(float(v), 8) for v in tv[:256]], "kl_mean": float(kl.mean()), "kl_max": float(kl.max()),
            "top1_agreement": float(top1.mean()), "top1_agree": int(top1.sum()), "topk_overlap": float(overlap),
            "max_dlogp": float(dlogp.max()), "gumbel_differ": differ / (GUMBEL_DRAWS * tv.size)}


def _inputs(run: PairRun) -> list[np.ndarray]:
    """The check's inputs: the planned ones with `positions` along each input's sequence axis (where it has one)."""
    def longer(s):
        shape = list(s.shape)
        shape[s.seq_axis] = run.checks.positions
        return replace(s, shape=tuple(shape))
    specs = tuple(longer(s) if s.seq_axis is not None else s for s in run.inputs)
    return base_inputs(specs, run.checks.seed + 7)


def _logits(run: PairRun, side, xs: list[np.ndarray], dtype: str) -> np.ndarray:
    out = run.forward(side, xs, dtype)
    first = np.asarray(out[0][1], dtype=np.float64)
    return first.reshape(-1, first.shape[-1])


def _history(xs: list[np.ndarray], rows: int) -> list[np.ndarray] | None:
    """Per position, the token ids up to it (the repetition penalty's history), when input 0 is (batch, time) ids."""
    ids = xs[0] if xs else None
    if ids is None or ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer) or ids.size != rows:
        return None
    return [ids[b, : t + 1] for b in range(ids.shape[0]) for t in range(ids.shape[1])]


def _setting_text(settings: dict) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in settings.items())


def check_sampling(run: PairRun) -> dict:
    settings = dict(run.checks.sampling) or {"temperature": 1.0}
    xs = _inputs(run)
    try:
        la, lb = _logits(run, run.a, xs, "fp32"), _logits(run, run.b, xs, "fp32")
    except Exception as exc:  # noqa: BLE001
        return result("sampling", "error", f"could not run on {run.checks.positions} positions: {describe(exc)}")
    if la.shape != lb.shape or la.shape[-1] < 2:
        return result("sampling", "skip", f"the first outputs are not logits of one shape ({la.shape} vs {lb.shape})")
    history = _history(xs, la.shape[0])
    pa, pb = distribution(la, settings, history), distribution(lb, settings, history)
    figs = compare_distributions(pa, pb, la, lb, run.checks.seed)
    lowp, problems = {}, []
    for dt in [d for d in ("fp16", "bf16") if d in run.checks.names]:
        if not (run.a.supports(dt) and run.b.supports(dt)):
            continue
        try:
            a_dt, b_dt = _logits(run, run.a, xs, dt), _logits(run, run.b, xs, dt)
        except Exception as exc:  # noqa: BLE001 - the precision checks report a side that fails in a dtype
            lowp[dt] = {"error": describe(exc)}
            continue
        drift_a = 0.5 * np.abs(distribution(a_dt, settings, history) - pa).sum(axis=-1).mean()
        drift_b = 0.5 * np.abs(distribution(b_dt, settings, history) - pa).sum(axis=-1).mean()
        allowed = PRECISION_MULTIPLIER * drift_a + LOWP_FLOOR
        lowp[dt] = {"tv_mean_a": float(drift_a), "tv_mean_b": float(drift_b), "allowed": float(allowed)}
        if drift_b > allowed:
            problems.append(f"{dt}: B's mean TV from A's float32 distribution {drift_b:.2g} > allowed {allowed:.2g} "
                            f"({PRECISION_MULTIPLIER:g}x A's own {drift_a:.2g} + {LOWP_FLOOR:g})")
    figs["low_precision"] = lowp
    if figs["tv_mean"] > TV_MEAN:
        problems.insert(0, f"mean TV {figs['tv_mean']:.3g} > {TV_MEAN:g}")
    if figs["tv_max"] > TV_MAX:
        problems.insert(0, f"worst position TV {figs['tv_max']:.3g} > {TV_MAX:g}")
    message = _story(figs, settings, bool(problems)) + (f" (fails: {'; '.join(problems)})" if problems else "")
    status = "fail" if problems else "pass"
    if status == "fail":
        run.diagnose("sampling", message, "sampling")
    return result("sampling", status, message, thresholds={"tv_mean": TV_MEAN, "tv_max": TV_MAX},
                  settings=settings, **figs)


def _story(f: dict, settings: dict, failed: bool) -> str:
    n, agree = f["positions"], f["top1_agree"]
    argmax = f"argmax agrees at all {n} positions" if agree == n else f"argmax agrees at {agree} of {n} positions"
    p = f["tv_mean"]
    steps = "no divergence expected" if p <= 0 else f"expect the first divergence after ~{max(1.0, 1.0 / p):.3g} tokens"
    kl = f"KL(A||B) mean {f['kl_mean']:.3g}" if np.isfinite(f["kl_mean"]) else \
        "KL(A||B) infinite (B's filters remove tokens A can sample)"
    joint = ", but" if failed and agree == n else ";"
    return (f"{argmax}{joint} under {_setting_text(settings)} the sampled token differs with probability "
            f"{100 * p:.3g}% per step on average (TV; worst position {100 * f['tv_max']:.3g}%; shared-Gumbel estimate "
            f"{100 * f['gumbel_differ']:.3g}%): {steps}; {kl}, top-{TOP_K} overlap {f['topk_overlap']:.3f}, "
            f"max |dlog p| over A's nucleus {f['max_dlogp']:.3g}")
