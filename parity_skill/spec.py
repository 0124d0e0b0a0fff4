"""The values a generated script is written in: what to build, what to feed, how to map weights, how to judge.

The plan stage produces these and the render stage writes them as literals; the runtime reads them back. They
import nothing heavy, so a script's literals stay plain Python.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from parity_skill.thresholds import PRECISION_MULTIPLIER

ALL_EDGES = ("zeros", "large", "tiny", "offset", "seq_len_1")
PROCESSOR_EDGES = ("ties", "one_finite")  # logits processors: ties at the cut-off, all but one logit at -inf
DEFAULT_DTYPES = ("fp32", "fp16", "bf16")
NOT_GIVEN = "-"  # InputSpec.arg_a/arg_b of an input that side does not take (a token history only B reads)
# a forward argument that takes a KV cache (read by the plan's note and by cached decoding at run time)
CACHE_PARAM = r"^(past_key_values?|(kv_|prompt_)?caches?|layer_past|past|kv_states)$"


@dataclass(frozen=True)
class Config:
    """A config object passed to a constructor: `cls` is looked up in the implementation's own module (empty: a
    plain namespace of `kwargs`); `attrs` are fields the code reads that the constructor does not take."""

    cls: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict, compare=False)  # the class's own, read by the plan

    def __repr__(self) -> str:  # the literal generated scripts are written in
        extra = f", attrs={self.attrs!r}" if self.attrs else ""
        return f"Config(cls={self.cls!r}, kwargs={self.kwargs!r}{extra})"


@dataclass(frozen=True)
class Ref:
    """A dotted reference given as a constructor value (`dtype=mlx.core.float32`), imported by the side."""

    path: str

    def resolve(self) -> Any:
        import importlib

        module, _, attr = self.path.rpartition(".")
        return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class Companion:
    """A module of the implementation's own file that computes a forward argument the caller would pass, built
    with `init` and called per forward on the inputs: e.g. a rotary embedding giving `position_embeddings=(cos,
    sin)`. `call` names what each of its arguments gets: "x" (input `source`), "position_ids" (arange over the
    sequence axis `seq_axis` of that input) or "seq_len". Or the enclosing model itself (`call[0] == "model"`):
    run small on token ids of the input's batch and length, it hands the layer the argument, which is recorded."""

    arg: str
    symbol: str
    init: dict[str, Any] = field(default_factory=dict)
    call: tuple[str, ...] = ("x", "position_ids")  # ("model", LAYER_CLASS, IDS_ARG): `symbol` encloses the layer
    source: int = 0
    seq_axis: int = 1
    fallback: Companion | None = None  # used when the enclosing model cannot be built or run


@dataclass(frozen=True)
class Builder:
    """The model class of the implementation's own file that builds it. The side builds that model small (with
    `init`) and compares the first instance of its class inside, built as the model builds it, where the class's
    own constructor would take arguments only the model knows (`is_local` read from a layer pattern), which the plan
    would otherwise guess. `guessed`: the plan's notes on those guesses, used if the model cannot be built."""

    symbol: str
    init: dict[str, Any] = field(default_factory=dict)
    guessed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Implementation:
    """One side: `file` + `symbol`, or `file=None` and a dotted `symbol` such as torch.nn.LayerNorm."""

    file: str | None
    symbol: str
    framework: str
    kind: str = "module"  # module | function
    init: dict[str, Any] = field(default_factory=dict)
    companions: tuple[Companion, ...] = ()
    fixed: dict[str, Any] = field(default_factory=dict)  # forward arguments given one value (None, an int...)
    aliases: dict[str, int] = field(default_factory=dict)  # forward arguments given input i again (keys=x)
    masks: dict[str, str] = field(default_factory=dict)  # argument -> "causal:RANK": an additive causal mask
    reads: str = ""  # "probabilities": a logits processor, judged by softmax of its output (-inf -> 0)
    built_by: Builder | None = None  # built inside this model of its file, as the model builds it

    @property
    def display(self) -> str:
        return f"{self.file}::{self.symbol}" if self.file else self.symbol


@dataclass(frozen=True)
class InputSpec:
    """A forward argument. Floating inputs are N(0, 1) draws; integer inputs are uniform in [low, high).

    `seq_axis` is the axis that `edge:seq_len_1` shrinks; `layout_b` permutes the input for B (e.g. (0, 2, 1)
    feeds B channels-last when A is channels-first) and B's outputs are permuted back before comparing.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    low: int = 0
    high: int = 0
    seq_axis: int | None = None
    layout_b: tuple[int, ...] | None = None
    arg_a: str = ""  # the keyword A receives it as ('' = by position)
    arg_b: str = ""

    @property
    def is_float(self) -> bool:
        return self.dtype.startswith("float")


@dataclass(frozen=True)
class MapEntry:
    """A's parameter `a` is loaded into B's `b` after `transform` (identity, conv_to_channels_last, split:K:I...)."""

    a: str
    b: str
    transform: str = "identity"
    how: str = "name"


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float


@dataclass(frozen=True)
class Checks:
    """Which checks to run and how to judge them."""

    names: tuple[str, ...]
    tolerances: dict[str, Tolerance]
    batch_sizes: tuple[int, ...] = (1, 4)
    cosine: float | None = None
    precision_multiplier: float = PRECISION_MULTIPLIER
    seed: int = 0
    isolate: bool = False  # locate divergence with teacher forcing (each B submodule gets A's inputs)
    sampling: tuple[tuple[str, float], ...] = ()  # decoding settings of the sampling check (temperature, top_p...)
    positions: int = 64  # sequence length of the sampling check's inputs
    generate: int = 0  # --generate N: decoding steps compared (teacher-forced on A's tokens)
    strict: bool = False  # --strict: a warning (fp16/bf16 at the stress scale) fails its check
    stream: bool = False  # --stream: one block at a time, each teacher-forced on A's recorded activations


@dataclass(frozen=True)
class PairSpec:
    a: Implementation
    b: Implementation
    inputs: tuple[InputSpec, ...]
    weight_map: tuple[MapEntry, ...] = ()
    checks: Checks | None = None
    static_findings: tuple[dict, ...] = ()
    notes: tuple[str, ...] = ()
    map_rules: tuple[str, ...] = ()  # --map FILE lines, expanded on the live parameter names (plan/map_rules.py)
    convert: str = ""  # --convert: B's own function that turns A's state dict into B's (runtime/data/convert.py)
    variant: str = ""  # what this extra run of a pair changes (e.g. a causal mask); "" for the plain run
