"""The command line's plan options and targets: parsing `A vs B`, `--init`/`--input`/`--sampling` values, and the
option decorators the commands share."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import click

from parity_skill.errors import InputError
from parity_skill.spec import ALL_EDGES


def parse_target(text: str, allow_reference: bool):
    from parity_skill.plan.planner import Target

    path, sep, symbol = text.partition("::")
    if sep:
        if not path.endswith(".py") and not Path(path).exists():
            raise InputError(f"{path}: no such file")
        return Target(path, symbol or None)
    if text.endswith(".py") or Path(text).exists():
        return Target(text)
    if allow_reference and "." in text and all(p.isidentifier() for p in text.split(".")):
        if text.split(".")[0] not in FRAMEWORK_ROOTS:
            return Target(*library_source(text))
        return Target(None, text)
    raise InputError(f"{text}: no such file (expected path.py, path.py::Name or a dotted reference like torch.nn.GELU)")


FRAMEWORK_ROOTS = ("torch", "mlx", "numpy", "np", "mx")  # references run as such; others are read as files
_SOURCE = ("import importlib, inspect, sys\n"
           "module, _, name = sys.argv[1].rpartition('.')\n"
           "obj = getattr(importlib.import_module(module), name)\n"
           "print(inspect.getsourcefile(obj) or '')\n"
           "print(obj.__name__)")


def library_source(text: str) -> tuple[str, str]:
    """(file, name) that defines a dotted reference outside the frameworks (`transformers.TopPLogitsWarper`), so it
    is read and planned like a file of the user's: found by importing its package in a subprocess."""
    try:
        done = subprocess.run([sys.executable, "-c", _SOURCE, text], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        raise InputError(f"{text}: importing it to find its source took over 120 s") from None
    lines = done.stdout.split("\n")
    if done.returncode != 0 or len(lines) < 2 or not lines[0].endswith(".py"):
        why = (done.stderr.strip().splitlines() or ["it has no Python source"])[-1]
        raise InputError(f"{text}: cannot find its source file ({why})")
    return lines[0], lines[1]


def split_targets(args: tuple[str, ...]):
    words = [a for a in args if a.lower() != "vs"]
    if len(words) == 3 and len(args) == 3 and not words[1].endswith(".py") and "::" not in words[1]:
        raise InputError(f"expected two targets: A vs B; '{words[1]}' between them is not 'vs' (did you mean "
                         f"{words[0]} vs {words[2]}?)")
    if len(words) != 2:
        raise InputError("expected two targets: A vs B (e.g. a.py::FeedForward vs b.py::FeedForward)")
    return parse_target(words[0], allow_reference=False), parse_target(words[1], allow_reference=True)


_REF = re.compile(r"(torch|mlx|numpy|np|mx)(\.[A-Za-z_]\w*)+")
_REF_ROOTS = {"np": "numpy", "mx": "mlx.core"}


def _literal(text: str):
    """A Python literal, a dotted framework reference (`mlx.core.float32`, `torch.float32`), else the text."""
    from parity_skill.spec import Ref

    text = text.strip()
    if _REF.fullmatch(text):
        head, _, rest = text.partition(".")
        return Ref(f"{_REF_ROOTS.get(head, head)}.{rest}")
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


SAMPLING_KEYS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty")


def _sampling(text: str | None, logits: bool) -> tuple[tuple[str, float], ...]:
    """`temperature=0.8,top_p=0.95` -> settings (temperature 1.0 unless given); () when neither option is used."""
    if text is None and not logits:
        return ()
    settings = {"temperature": 1.0}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        try:
            number = float(value)
        except ValueError:
            number = None
        if not sep or key not in SAMPLING_KEYS or number is None:
            raise InputError(f"--sampling {item.strip()!r}: expected KEY=NUMBER with KEY one of {', '.join(SAMPLING_KEYS)}")
        settings[key] = number
    return tuple(settings.items())


def _options(init, inputs, atol, rtol, level, cosine, dtypes, batch_sizes, edge, no_backward, quick, seed, layout,
             isolate, map_file=None, convert="", sampling=None, logits=False, generate=0, strict=False,
             config_file=None, stream=False):
    from parity_skill.plan.map_rules import read_rules
    from parity_skill.plan.planner import PlanOptions
    from parity_skill.plan.inputs import parse_input_override

    inits = {}
    for item in init:
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"--init {item!r}: expected name=value")
        inits[key.strip()] = _literal(value)
    specs = {}
    for item in inputs:
        try:
            spec = parse_input_override(item)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        specs[spec.name] = spec
    layout_b = None
    if layout:
        axes = {"ncl": (), "nchw": (), "nlc": (0, 2, 1), "nhwc": (0, 2, 3, 1)}
        side, _, name = layout.partition("=")
        if side != "b" or name not in axes:
            raise InputError(f"--layout {layout!r}: expected b=nlc, b=nhwc (B channels-last) or b=ncl, b=nchw (same as A)")
        layout_b = axes[name]
    try:
        dts = tuple(d.strip() for d in dtypes.split(",") if d.strip())
        sizes = tuple(int(s) for s in batch_sizes.split(",") if s.strip())
    except ValueError:
        raise InputError(f"--batch-sizes {batch_sizes!r}: expected integers like 1,4") from None
    bad = [d for d in dts if d not in ("fp32", "fp16", "bf16")]
    edges = tuple(e.strip() for e in edge.split(",") if e.strip()) if edge is not None else ALL_EDGES
    bad += [e for e in edges if e not in ALL_EDGES]
    if bad:
        raise InputError(f"unknown dtype or edge case: {', '.join(bad)}")
    return PlanOptions(init=inits, inputs=specs, atol=atol, rtol=rtol, level=level, cosine=cosine, dtypes=dts,
                       batch_sizes=sizes or (1,), edges=edges, backward=not no_backward, quick=quick, seed=seed,
                       layout_b=layout_b, isolate=isolate, map_rules=read_rules(map_file), convert=convert,
                       sampling=_sampling(sampling, logits), generate=generate or 0, strict=strict,
                       config=_config_json(config_file), stream=stream)


def _config_json(path: str | None) -> dict:
    """--config FILE.json: a model's config.json (an object of fields), read bounded; one line when it is not."""
    if not path:
        return {}
    import json

    from parity_skill.safe_io import read_source

    try:
        found = json.loads(read_source(path))
    except (OSError, ValueError, RecursionError) as exc:
        raise InputError(f"--config {path}: not a readable JSON file ({exc})") from None
    if not isinstance(found, dict):
        raise InputError(f"--config {path}: expected a JSON object of config fields")
    return found


def _options_of(*decorators):
    def apply(f):
        for d in reversed(decorators):
            f = d(f)
        return f
    return apply


PLAN_OPTIONS = _options_of(
    click.option("--init", multiple=True, help="Constructor argument: name=value (repeatable)."),
    click.option("--input", "inputs", multiple=True, help="Input: name=2,8,64[:int64[:low-high]] (repeatable)."),
    click.option("--atol", type=float, help="fp32 absolute tolerance (default 1e-5 at --level layer)."),
    click.option("--rtol", type=float, help="fp32 relative tolerance (default 1.3e-6)."),
    click.option("--level", type=click.Choice(["layer", "chain", "model", "auto"]), default="layer",
                 show_default=True, help="Tolerance level: atol 1e-5 / 1e-4 / 1e-3 for fp32; auto: by what is "
                 "compared (a layer, a module of layers, a model with a layer stack; per stage for two artifacts)."),
    click.option("--cosine", type=float, help="Also require this cosine similarity per output (e.g. 0.999)."),
    click.option("--dtypes", default="fp32,fp16,bf16", show_default=True, help="Dtypes to check."),
    click.option("--batch-sizes", default="1,4", show_default=True, help="Batch sizes for the batch check."),
    click.option("--edge", default=None, help=f"Edge cases (default all: {','.join(ALL_EDGES)}); '' for none."),
    click.option("--no-backward", is_flag=True, help="Skip gradient checks."),
    click.option("--quick", is_flag=True, help="Forward and backward only."),
    click.option("--layout", help="B's input layout when it differs from A's, e.g. b=nlc."),
    click.option("--convert", default="", help="B's converter for A's state dict: sanitize (a method of B's "
                 "model or a function of its file) or file.py::fn."),
    click.option("--map", "map_file", type=click.Path(dir_okay=False),
                 help="Weight-map rules, one per line: 'h.{i}.attn.c_attn.weight -> layers.{i}.attn.[q,k,v].weight'."),
    click.option("--isolate", is_flag=True,
                 help="Locate divergence with teacher forcing: each B submodule gets the input A's counterpart got."),
    click.option("--seed", type=int, default=0, show_default=True),
    click.option("--sampling", help="Sampling check under these decoding settings: temperature=0.8,top_p=0.95,"
                 "top_k=30,min_p=0.05,repetition_penalty=1.05 (each optional; temperature 1.0 by default)."),
    click.option("--generate", type=click.IntRange(1, 512), help="Decode N steps on both sides from the input ids, "
                 "teacher-forced on A's tokens (greedy, and sampled with shared randomness): the first differing step."),
    click.option("--logits", is_flag=True, help="The first output is logits over a vocabulary: add the sampling "
                 "check at temperature 1.0."),
    click.option("--config", "config_file", type=click.Path(dir_okay=False),
                 help="A config.json for both sides' config objects (the real sizes, not shrunk)."),
    click.option("--strict", is_flag=True, help="Warnings fail (fp16/bf16 at 128x the activation scale, where "
                 "realism is unknown, only warns by default)."),
    click.option("--stream", is_flag=True, help="Models larger than memory (torch): each module's weights are "
                 "loaded just before it runs, each block is fed A's recorded input and judged alone; the report "
                 "is the per-block table with the first divergent block."),
)
PLAN_OPTION_NAMES = ("init", "inputs", "atol", "rtol", "level", "cosine", "dtypes", "batch_sizes", "edge",
                     "no_backward", "quick", "layout", "isolate", "seed", "sampling", "logits", "generate", "strict", "config_file",
                     "stream")
