"""`--generate N`: autoregressive decoding on both sides, teacher-forced on A's tokens so the sequences stay
comparable. Twice: greedy (A's argmax appended) and sampled under the decoding settings with shared randomness
(one uniform number per step, inverse-CDF sampling on both sides: a maximal-agreement coupling per step). Each step
recomputes the whole sequence. Reports the first step where the distributions differ (TV > 1e-3), where top-1
differs and where the sampled token differs, and the per-step KL(A||B) curve. Where a side's forward takes a KV
cache, that side also decodes A's greedy tokens through its cache, and its cached logits must equal its own
recomputed ones at every step (within the fp32 tolerance, TV <= 1e-3)."""
from __future__ import annotations

import numpy as np

from parity_skill.runtime.diagnosis import rootcause
from parity_skill.runtime.checks.sampling import distribution
from parity_skill.thresholds import STEP_TV, TV_MEAN
from parity_skill.runtime.checks.context import PairRun, result
from parity_skill.runtime.sides.failures import describe

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


def _decode(run: PairRun, prompt: np.ndarray, settings: dict, sampled: bool, logits: list | None = None) -> dict:
    """`logits`, when given, collects each step's (A, B) last-position logits."""
    rng = np.random.default_rng(run.checks.seed + 11)
    seq = prompt.copy()
    kl, tv, first = [], [], {"distribution": None, "top1": None, "sampled": None}
    for step in range(run.checks.generate):
        try:
            la, lb = _last_logits(run, run.a, seq), _last_logits(run, run.b, seq)
        except Exception as exc:  # noqa: BLE001 - e.g. past the model's maximum length
            return {"steps": step, "stopped": f"step {step} raised {describe(exc)}", "kl": kl, "tv": tv, **first}
        if logits is not None:
            logits.append((la, lb))
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


def _against_cache(run: PairRun, side, prompt: np.ndarray, tokens: np.ndarray, full: list[np.ndarray],
                   settings: dict) -> dict:
    """One side's cached decoding against its own full recomputation, step by step."""
    try:
        got = side.cached_decode(prompt, tokens)
    except Exception as exc:  # noqa: BLE001 - the cached path of the user's code raised
        return {"how": "raised", "error": describe(exc), "status": "error"}
    if got["logits"] is None:
        return {"how": got["how"], "status": "none"}
    tol = run.checks.tolerances["fp32"]
    cached, steps = np.asarray(got["logits"], dtype=np.float64), min(len(full), len(got["logits"]))
    diffs, tvs, flips, first = [], [], 0, None
    for k in range(steps):
        ref, new = full[k], cached[k]
        diff = np.abs(new - ref)
        p, q = distribution(ref[None], settings)[0], distribution(new[None], settings)[0]
        tvs.append(float(0.5 * np.abs(p - q).sum()))
        diffs.append(float(np.nanmax(diff)) if diff.size else 0.0)
        flips += int(np.argmax(ref) != np.argmax(new))
        out = bool(np.any(~(diff <= tol.atol + tol.rtol * np.abs(ref)))) or tvs[-1] > STEP_TV
        if first is None and out:
            first = k
    return {"how": got["how"], "status": "differs" if first is not None else "agrees", "steps": steps,
            "first_differing_step": first, "max_abs_diff": max(diffs, default=0.0), "max_tv": max(tvs, default=0.0),
            "top1_differs": flips, "abs_diff_curve": diffs}


def _say_cache(label: str, r: dict) -> str:
    if r["status"] == "none":
        return f"{label}: {r['how']}"
    if r["status"] == "error":
        return f"{label}: cached decoding raised {r['error']} (not compared)"
    head = f"{label} (cache {r['how']}): cached decoding "
    if r["status"] == "agrees":
        return head + f"matches its full recomputation at all {r['steps']} steps (max |dlogit| {r['max_abs_diff']:.3g})"
    return head + (f"differs from its full recomputation from step {r['first_differing_step']} of {r['steps']} "
                   f"(max |dlogit| {r['max_abs_diff']:.3g}, TV up to {r['max_tv']:.3g}, top-1 differs at "
                   f"{r['top1_differs']} steps)")


def _diagnose_cache(run: PairRun, which: str, side, prompt: np.ndarray, tokens: np.ndarray, r: dict) -> None:
    """Where the cached path departs: at the first differing step, each submodule call of the cached call against
    the same positions of the full recomputation (rootcause.py's rule: inputs agree, output differs)."""
    step, classes = r["first_differing_step"], side.module_classes()
    try:
        rows = side.cache_rows(prompt, tokens, step, run.checks.tolerances["fp32"])
    except Exception as exc:  # noqa: BLE001 - localisation is a bonus: the verdict stands without it
        rows, r["localisation_error"] = [], describe(exc)
    cause = rootcause.find(rows, classes, classes, []) if rows else None
    head = (f"{which.upper()}'s cached decoding (cache {r['how']}) differs from its own full recomputation from step "
            f"{step} (max |dlogit| {r['max_abs_diff']:.3g})")
    if cause is None:
        run.diagnose("cache", f"{head}: the cached path computes something else (positions or rotary offset, the "
                              "mask at one query, or the cache update)", "generate",
                     (classes.get("") or {}).get("location"))
        return
    r["root_cause"] = {k: cause[k] for k in ("a", "a_class", "a_location", "where", "evidence")}
    location = cause["a_location"]
    if cause["a"] == "":
        where = f"{cause['a_class'] or '?'}'s own forward code ({cause['evidence']})"
    else:
        where = f"{cause['a']} ({cause['a_class']}{', its own code' if cause['where'] == 'own code' else ''})"
        parent = cause["a"].rsplit(".", 1)[0] if "." in cause["a"] else ""
        caller = classes.get(parent) or {}
        if cause["where"] == "leaf" and caller.get("location"):  # a library layer: the caller passes its arguments
            where += f", called by {parent or 'the top level'} ({caller.get('class')} at {caller['location']})"
            if location and _installed(location):
                location = caller["location"]
        where += f": {cause['evidence']}"
    run.diagnose("cache", f"{head}; at step {step} the cached call first departs from the recomputed positions in "
                          f"{where}", "generate", location)


def _installed(location: str) -> bool:
    return any(part in location for part in ("site-packages", "dist-packages"))


def _check_caches(run: PairRun, prompt: np.ndarray, greedy: dict, logits: list, settings: dict) -> dict:
    tokens = np.asarray(greedy["tokens"] if greedy.get("tokens") else [], dtype=prompt.dtype)[:len(logits)]
    if tokens.size == 0:
        return {}
    out = {}
    for which, side in (("a", run.a), ("b", run.b)):
        out[which] = _against_cache(run, side, prompt, tokens, [pair[which == "b"] for pair in logits], settings)
    return out


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
    logits: list = []
    greedy = _decode(run, prompt, settings, sampled=False, logits=logits)  # A's argmax appended
    sampled = _decode(run, prompt, settings, sampled=True)
    caches = _check_caches(run, prompt, greedy, logits, settings)
    setting_text = ", ".join(f"{k}={v:g}" for k, v in settings.items())
    failed = [r for r in (greedy, sampled) if r["top1"] is not None or r["sampled"] is not None]
    mean_tv = float(np.mean(sampled["tv"])) if sampled["tv"] else 0.0
    message = (f"{run.checks.generate} steps from a {prompt.shape[1]}-token prompt, teacher-forced on A's tokens; "
               f"{_say('greedy', greedy)}; {_say(f'sampled ({setting_text})', sampled)}")
    if caches:
        message += "; " + "; ".join(_say_cache(w.upper(), r) for w, r in caches.items())
    broken = [w.upper() for w, r in caches.items() if r["status"] == "differs"]
    status = "fail" if failed or mean_tv > TV_MEAN or broken else "pass"
    if mean_tv > TV_MEAN:
        message += f" (fails: mean TV per step {mean_tv:.3g} > {TV_MEAN:g})"
    for w, r in caches.items():
        side = run.a if w == "a" else run.b
        if r["status"] == "differs":
            _diagnose_cache(run, w, side, prompt, np.asarray(greedy["tokens"], dtype=prompt.dtype), r)
        elif r["status"] == "error":
            run.limit(f"{w.upper()}'s cached decoding raised {r['error']} (cache not compared)")
    out = result("generate", status, message, settings=settings, greedy=greedy, sampled=sampled,
                 kl_curve=sampled["kl"], cache=caches or None)
    out.update(first_top1_step=greedy["top1"], first_sampled_step=sampled["sampled"])  # null: never differed
    return out
