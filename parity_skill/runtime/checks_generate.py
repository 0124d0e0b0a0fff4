"""`--generate N`: autoregressive decoding on both sides, teacher-forced on A's tokens so the sequences stay
comparable. Twice: greedy (A's argmax appended) and sampled under the decoding settings with shared randomness
(one uniform number per step, inverse-CDF sampling on both sides: a maximal-agreement coupling per step). Each step
recomputes the whole sequence (no cache). Reports the first step where the distributions differ (TV > 1e-3), where
top-1 differs and where the sampled token differs, and the per-step KL(A||B) curve."""
from __future__ import annotations

import numpy as np

from parity_skill.runtime.checks_sampling import TV_MEAN, distribution
from parity_skill.runtime.context import PairRun, result
from parity_skill.runtime.loading import describe

STEP_TV = 1e-3  # a step whose distributions differ by more than this is "differing"
BARS = " ▁▂▃▄▅▆▇█"


def sparkline(values: list[float]) -> str:
    """log10 of each value from 1e-9 (blank) to 1 (full block), one character per step."""
    out = []
    for v in values:
        if not np.isfinite(v):
            out.append(BARS[-1])
            continue
        level = (min(max(np.log10(v) if v > 0 else -9.0, -9.0), 0.0) + 9.0) / 9.0
        out.append(BARS[int(round(level * (len(BARS) - 1)))])
    return "".join(out)


def _last_logits(run: PairRun, side, seq: np.ndarray) -> np.ndarray:
    out = run.forward(side, [seq])
    logits = np.asarray(out[0][1], dtype=np.float64)
    return logits.reshape(-1, logits.shape[-1])[-1]


def _decode(run: PairRun, prompt: np.ndarray, settings: dict, sampled: bool) -> dict:
    rng = np.random.default_rng(run.checks.seed + 11)
    seq = prompt.copy()
    kl, tv, first = [], [], {"distribution": None, "top1": None, "sampled": None}
    for step in range(run.checks.generate):
        try:
            la, lb = _last_logits(run, run.a, seq), _last_logits(run, run.b, seq)
        except Exception as exc:  # noqa: BLE001 - e.g. past the model's maximum length
            return {"steps": step, "stopped": f"step {step} raised {describe(exc)}", "kl": kl, "tv": tv, **first}
        pa, pb = distribution(la[None], settings)[0], distribution(lb[None], settings)[0]
        with np.errstate(divide="ignore", invalid="ignore"):
            kl.append(float(np.where(pa > 0, pa * (np.log(pa) - np.log(pb)), 0.0).sum()))
        tv.append(float(0.5 * np.abs(pa - pb).sum()))
        if first["distribution"] is None and tv[-1] > STEP_TV:
            first["distribution"] = step
        if first["top1"] is None and int(np.argmax(la)) != int(np.argmax(lb)):
            first["top1"] = step
        token = int(np.argmax(la))
        if sampled:
            u = rng.random()
            token = min(int(np.searchsorted(np.cumsum(pa), u)), pa.size - 1)
            other = min(int(np.searchsorted(np.cumsum(pb), u)), pb.size - 1)
            if first["sampled"] is None and other != token:
                first["sampled"] = step
        seq = np.concatenate([seq, np.array([[token]], dtype=seq.dtype)], axis=1)
    return {"steps": run.checks.generate, "stopped": None, "kl": kl, "tv": tv, **first,
            "tokens": [int(t) for t in seq[0, prompt.shape[1]:]]}


def _say(name: str, r: dict) -> str:
    parts = [f"{name}: " + (f"top-1 first differs at step {r['top1']}" if r["top1"] is not None else
                            f"top-1 agrees at all {r['steps']} steps")]
    if name != "greedy":
        parts.append(f"the sampled token first differs at step {r['sampled']}" if r["sampled"] is not None else
                     "the sampled tokens agree")
    if r["distribution"] is not None:
        parts.append(f"distributions first differ (TV > {STEP_TV:g}) at step {r['distribution']}")
    parts.append(f"KL per step |{sparkline(r['kl'])}| max {max(r['kl'], default=0.0):.3g}")
    if r["stopped"]:
        parts.append(f"stopped early: {r['stopped']}")
    return ", ".join(parts)


def check_generate(run: PairRun) -> dict:
    if not run.base or run.base[0].ndim != 2 or not np.issubdtype(run.base[0].dtype, np.integer):
        return result("generate", "skip", "needs token ids (batch, time) as the first input")
    if len(run.base) > 1:
        return result("generate", "skip", "decodes a model that takes token ids alone; this one takes more inputs")
    settings = dict(run.checks.sampling) or {"temperature": 1.0}
    prompt = run.base[0][:1]
    greedy = _decode(run, prompt, settings, sampled=False)  # A's argmax appended; distributions under the settings
    sampled = _decode(run, prompt, settings, sampled=True)
    setting_text = ", ".join(f"{k}={v:g}" for k, v in settings.items())
    failed = [r for r in (greedy, sampled) if r["top1"] is not None or r["sampled"] is not None]
    mean_tv = float(np.mean(sampled["tv"])) if sampled["tv"] else 0.0
    message = (f"{run.checks.generate} steps from a {prompt.shape[1]}-token prompt, teacher-forced on A's tokens; "
               f"{_say('greedy', greedy)}; {_say(f'sampled ({setting_text})', sampled)}")
    status = "fail" if failed or mean_tv > TV_MEAN else "pass"
    if mean_tv > TV_MEAN:
        message += f" (fails: mean TV per step {mean_tv:.3g} > {TV_MEAN:g})"
    out = result("generate", status, message, settings=settings, greedy=greedy, sampled=sampled, kl_curve=sampled["kl"])
    out.update(first_top1_step=greedy["top1"], first_sampled_step=sampled["sampled"])  # null: never differed
    return out
