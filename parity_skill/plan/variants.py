"""Extra runs of a pair that exercise an optional argument the plain run leaves at None: an attention layer run
again with a causal mask on both sides, or with a cross-attention memory (forward and backward), so a port that
ignores or misreads it fails even though the plain run agrees."""
from __future__ import annotations

import re
from dataclasses import replace

from parity_skill.analyze.model import Symbol
from parity_skill.safe_io import read_source
from parity_skill.roles import BATCH
from parity_skill.spec import InputSpec, PairSpec

MASK_ARG = re.compile(r"^(attention_mask|attn_mask|mask)$")
CROSS_ARG = re.compile(r"^(encoder_hidden_states|key_value_states|xa|context|memory|cross_states|encoder_out|encoder_outputs)$")
MEMORY_LEN = 5  # not the queries' length: a memory read along the wrong axis cannot hide


def _mask_arg(sym: Symbol, fed: set[str], pattern: re.Pattern = MASK_ARG) -> str | None:
    """The forward's mask (or memory) argument when the plain run leaves it None (a default, or passed None)."""
    for arg in sym.call_args:
        if pattern.match(arg.name) and arg.name not in fed and arg.kind in ("positional", "kwonly"):
            return arg.name
    return None


def _form(path: str, name: str) -> str:
    """`causal:RANK:KIND` as the file uses its mask. RANK: `mask[:n, :n]` is (T, T), else (1, 1, T, T). KIND:
    `masked_fill(mask == 0, ...)` keeps where the mask is 1 (`keep`), `masked_fill(mask, ...)` masks where it
    is True (`masked`), anything else adds it to the scores (`additive`, which SDPA also takes)."""
    try:
        text = read_source(path)
    except (OSError, ValueError):
        return "causal:4:additive"
    n = re.escape(name)
    slices = [m.group(1).count(",") + 1 for m in re.finditer(rf"\b{n}\[([^\]\n]*)\]", text)]
    rank = 2 if slices and max(set(slices), key=slices.count) == 2 else 4
    if re.search(rf"masked_fill_?\(\s*\(?\s*{n}\s*==\s*0", text):
        return f"causal:{rank}:keep"
    if re.search(rf"masked_fill_?\(\s*{n}\s*,", text):
        return f"causal:{rank}:masked"
    return f"causal:{rank}:additive"


def _say(form: str) -> str:
    _, rank, kind = form.split(":")
    shape = "(T, T)" if rank == "2" else "(1, 1, T, T)"
    return {"additive": f"additive {shape}, 0 or the dtype's lowest value", "keep": f"{shape}, True where kept",
            "masked": f"{shape}, True where masked"}[kind]


def mask_variant(spec: PairSpec, sa: Symbol, sb: Symbol) -> PairSpec | None:
    """The pair again with an additive causal mask given to both sides' mask arguments, or None when either
    side takes no mask, or the inputs are token ids (a whole model builds its own mask from a padding mask)."""
    if sa.kind != "module" or sb.kind != "module" or not spec.inputs or not all(i.is_float for i in spec.inputs):
        return None
    ma = _mask_arg(sa, {i.arg_a or i.name for i in spec.inputs})
    mb = _mask_arg(sb, {i.arg_b for i in spec.inputs} | set(spec.b.aliases))
    if ma is None or mb is None:
        return None
    form_a, form_b = _form(spec.a.file, ma), _form(spec.b.file, mb)
    a = replace(spec.a, fixed={k: v for k, v in spec.a.fixed.items() if k != ma}, masks={ma: form_a})
    b = replace(spec.b, fixed={k: v for k, v in spec.b.fixed.items() if k != mb}, masks={mb: form_b})
    checks = replace(spec.checks, names=tuple(n for n in ("forward", "backward") if n in spec.checks.names))
    note = (f"variant: both sides get a causal mask in the form their code uses it (A {ma}: {_say(form_a)}; "
            f"B {mb}: {_say(form_b)})")
    return replace(spec, a=a, b=b, checks=checks, notes=spec.notes + (note,),
                   variant=f"causal mask ({ma} / {mb})")


def cross_variant(spec: PairSpec, sa: Symbol, sb: Symbol) -> PairSpec | None:
    """The pair again with a memory of another length given to both sides' cross-attention argument
    (`encoder_hidden_states` / `xa`), the model width of the queries; None when either side has none."""
    if sa.kind != "module" or sb.kind != "module" or not spec.inputs or not spec.inputs[0].is_float:
        return None
    ca = _mask_arg(sa, {i.arg_a or i.name for i in spec.inputs}, CROSS_ARG)
    cb = _mask_arg(sb, {i.arg_b for i in spec.inputs} | set(spec.b.aliases), CROSS_ARG)
    first = spec.inputs[0]
    if ca is None or cb is None or len(first.shape) != 3:
        return None
    # by keyword after the others (positional inputs may lead); its sequence axis shrinks with edge:seq_len_1 too
    memory = InputSpec(ca, (BATCH, MEMORY_LEN, first.shape[-1]), "float32", seq_axis=1, arg_a=ca, arg_b=cb)
    inputs = spec.inputs
    checks = replace(spec.checks, names=tuple(n for n in ("forward", "backward") if n in spec.checks.names))
    note = (f"variant: both sides attend to a memory of {MEMORY_LEN} positions (A {ca}, B {cb}), as cross-attention; "
            "the plain run leaves it None (self-attention)")
    return replace(spec, inputs=inputs + (memory,), checks=checks, notes=spec.notes + (note,),
                   variant=f"cross-attention memory ({ca} / {cb})")
