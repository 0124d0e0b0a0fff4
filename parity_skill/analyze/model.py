"""What the analysis finds in one source file: plain frozen values, every finding with `path:line`."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Arg:
    """One parameter of a signature; `default` and `annotation` are source text."""

    name: str
    annotation: str | None = None
    default: str | None = None
    kind: str = "positional"  # positional | kwonly | vararg | varkw
    location: str = ""

    @property
    def required(self) -> bool:
        return self.default is None and self.kind in ("positional", "kwonly")


@dataclass(frozen=True)
class OpCall:
    """A numerical op: `op` from a fixed vocabulary, `name` the resolved callee, args as source text."""

    op: str
    name: str
    location: str
    args: tuple[str, ...] = ()
    kwargs: tuple[tuple[str, str], ...] = ()

    def kwarg(self, key: str) -> str | None:
        return dict(self.kwargs).get(key)


@dataclass(frozen=True)
class Submodule:
    """`self.attr = SomeLayer(...)` in `__init__`; containers list their children."""

    attr: str
    type_name: str  # resolved dotted name, e.g. torch.nn.Linear, or a class of the same file
    location: str
    args: tuple[str, ...] = ()
    kwargs: tuple[tuple[str, str], ...] = ()
    children: tuple["Submodule", ...] = ()
    elements: tuple["Submodule", ...] = ()  # what a comprehension builds (`[Block(c) for _ in range(n)]`), once


@dataclass(frozen=True)
class Tensor:
    """A parameter or buffer declared in `__init__`."""

    name: str
    kind: str  # parameter | buffer
    location: str
    persistent: bool = True
    init: str = ""  # source of the initialiser expression


@dataclass(frozen=True)
class Finding:
    """A seed call, random op, dtype or device assumption."""

    kind: str  # seed | random | dtype | device
    message: str
    location: str


@dataclass(frozen=True)
class InputHint:
    """Evidence of an input's shape or type from the code that consumes it."""

    arg: str
    kind: str  # consumer | unpack | index | int_ids
    value: str
    location: str


@dataclass(frozen=True)
class Symbol:
    name: str
    kind: str  # module | function
    framework: str  # torch | mlx | numpy
    location: str
    init_args: tuple[Arg, ...] = ()
    call_args: tuple[Arg, ...] = ()
    submodules: tuple[Submodule, ...] = ()
    tensors: tuple[Tensor, ...] = ()
    ops: tuple[OpCall, ...] = ()
    findings: tuple[Finding, ...] = ()
    input_hints: tuple[InputHint, ...] = ()
    self_assigns: tuple[tuple[str, str], ...] = ()  # self.x = <expr> in __init__ (source), in order
    bases: tuple[str, ...] = ()
    call_lines: tuple[int, int] = (0, 0)  # first and last line of forward/__call__ (or of the function)
    config_uses: tuple[tuple[str, str], ...] = ()  # (constructor argument, field) for every `config.field` read
    constructs: tuple[tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]], ...] = ()  # Class(args) calls
    init_locals: tuple[tuple[str, str], ...] = ()  # name = <expr> in __init__ (source), in order
    assign_locations: tuple[tuple[str, str], ...] = ()  # (attr, path:line) of each self_assigns entry
    own_init: bool = True  # False: the constructor comes from a base class outside the file (or none)

    def in_call(self, location: str) -> bool:
        line = int(location.rsplit(":", 1)[1])
        return self.call_lines[0] <= line <= self.call_lines[1]


@dataclass(frozen=True)
class ConfigClass:
    """A dataclass (or plain class with annotated defaults) used as a constructor config."""

    name: str
    location: str
    fields: tuple[Arg, ...] = ()
    accepts_any: bool = False  # its constructor takes **kwargs
    aliases: tuple[tuple[str, str], ...] = ()  # attribute_map: (name read, field it reads)


@dataclass(frozen=True)
class FileAnalysis:
    path: str
    framework: str | None
    aliases: tuple[tuple[str, str], ...] = ()
    symbols: tuple[Symbol, ...] = ()
    configs: tuple[ConfigClass, ...] = field(default=())
    helpers: tuple[str, ...] = ()  # private names, kept for suggestions

    def symbol(self, name: str) -> Symbol | None:
        return next((s for s in self.symbols if s.name == name), None)

    def config(self, name: str) -> ConfigClass | None:
        return next((c for c in self.configs if c.name == name), None)
