"""Extra runs of a pair that exercise an optional argument the plain run leaves at None: an attention layer run
again with a causal mask on both sides (forward and backward), so a port that ignores or misreads its mask
fails even though the unmasked run agrees."""
from __future__ import annotations

import re
from dataclasses import replace

from parity_skill.analyze.model import Symbol
from parity_skill.safe_io import read_source
from parity_skill.spec import PairSpec

MASK_ARG = re.compile(r"^(attention_mask|attn_mask|mask)$")


def _mask_arg(sym: Symbol, fed: set[str]) -> str | None:
    """The forward's mask argument when the plain run leaves it None (a default, or passed None)."""
    for arg in sym.call_args:
        if MASK_ARG.match(arg.name) and arg.name not in fed and arg.kind in ("positional", "kwonly"):
            return arg.name
    return None


def _rank(path: str, name: str) -> int:
    """How the file slices its mask: `mask[:n, :n]` is (T, T); `attention_mask[:, :, :, :k]` (B, 1, T, T)."""
    try:
        text = read_source(path)
    except (OSError, ValueError):
        return 4
    slices = [m.group(1).count(",") + 1 for m in re.finditer(rf"\b{re.escape(name)}\[([^\]\n]*)\]", text)]
    return 2 if slices and max(set(slices), key=slices.count) == 2 else 4


def mask_variant(spec: PairSpec, sa: Symbol, sb: Symbol) -> PairSpec | None:
    """The pair again with an additive causal mask given to both sides' mask arguments, or None when either
    side takes no mask, or the inputs are token ids (a whole model builds its own mask from a padding mask)."""
    if sa.kind != "module" or sb.kind != "module" or not spec.inputs or not all(i.is_float for i in spec.inputs):
        return None
    ma = _mask_arg(sa, {i.arg_a or i.name for i in spec.inputs})
    mb = _mask_arg(sb, {i.arg_b for i in spec.inputs} | set(spec.b.aliases))
    if ma is None or mb is None:
        return None
    form_a, form_b = f"causal:{_rank(spec.a.file, ma)}", f"causal:{_rank(spec.b.file, mb)}"
    a = replace(spec.a, fixed={k: v for k, v in spec.a.fixed.items() if k != ma}, masks={ma: form_a})
    b = replace(spec.b, fixed={k: v for k, v in spec.b.fixed.items() if k != mb}, masks={mb: form_b})
    checks = replace(spec.checks, names=tuple(n for n in ("forward", "backward") if n in spec.checks.names))
    note = (f"variant: both sides get an additive causal mask (A {ma}, {form_a.split(':')[1]}-d; B {mb}, "
            f"{form_b.split(':')[1]}-d): 0 where a position may attend, the dtype's lowest value above the diagonal")
    return replace(spec, a=a, b=b, checks=checks, notes=spec.notes + (note,),
                   variant=f"causal mask ({ma} / {mb})")
