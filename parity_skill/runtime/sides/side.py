"""One built implementation: its adapter, model per dtype, and its input/output layout."""
from __future__ import annotations

import copy
from typing import Any

import numpy as np

from parity_skill.runtime.adapters import get_adapter
from parity_skill.runtime.adapters.base import Flat
from parity_skill.runtime.data.inputs import inverse, permute
from parity_skill.runtime.sides import coverage
from parity_skill.runtime.sides.failures import UserCodeError, describe
from parity_skill.runtime.sides.locations import built_at, class_of, framework_file
from parity_skill.runtime.sides.loading import constructor_kwargs, resolve
from parity_skill.spec import Companion, Implementation


MAX_KEPT = 16
_CALL = {"torch": "forward", "mlx": "__call__"}  # the method a module's own forward code is in


def probabilities(logits: np.ndarray) -> np.ndarray:
    """softmax over the last axis in float64: what a logits processor's output means (-inf becomes exactly 0)."""
    x = np.asarray(logits, dtype=np.float64)
    if x.ndim == 0 or not np.issubdtype(np.asarray(logits).dtype, np.floating):
        return x
    with np.errstate(invalid="ignore", over="ignore"):
        e = np.exp(x - np.max(x, axis=-1, keepdims=True))
        return e / np.sum(e, axis=-1, keepdims=True)


def in_out_weights(shapes: dict[str, tuple[int, ...]], types: dict[str, str]) -> list[str]:
    """Side.in_out_weights from the state's shapes and the submodules' class names."""
    marked = set()
    for name, kind in types.items():
        w, b = shapes.get(f"{name}.weight"), shapes.get(f"{name}.bias")
        if w is not None and b is not None and len(w) == 2 and len(b) == 1 and b[0] == w[1] != w[0]:
            marked.add(kind)
    return [f"{n}.weight" for n, kind in types.items() if kind in marked and f"{n}.weight" in shapes]


_DTYPE_WORDS = ("dtype", "scalar type", "half", "bfloat16", "float", "double")


def _dtype_error(exc: Exception) -> bool:
    return isinstance(exc, (RuntimeError, TypeError)) and any(w in str(exc).lower() for w in _DTYPE_WORDS)


class Side:
    """`layout`: axes that turn the plan's (A-layout) inputs into this side's layout; outputs of the same rank
    are turned back, so every comparison happens in A's layout."""

    def __init__(self, which: str, impl: Implementation, layout: tuple[int, ...] | None = None,
                 shared: dict[str, dict] | None = None):
        """`shared`: config arguments to build from the other side's resolved config (runtime/sides/configs.py)."""
        self.which, self.impl, self.layout = which, impl, layout
        self.permute_outputs = True  # False when this side already returns A's layout (decided on a live call)
        self.adapter = copy.copy(get_adapter(impl.framework))  # its own: it carries this side's argument names
        factory, module = resolve(impl)
        self.factory = factory
        self.shared, self.notes = shared, []
        self._enclosing_models: dict[str, tuple[Any, dict]] = {}
        self.kwargs = constructor_kwargs(impl, factory, module, shared)
        self.adapter.seed(0)
        self.model = self._inside_its_model(impl, module) if impl.built_by else None
        self.inside = impl.built_by.symbol if self.model is not None else None  # the model it was taken from
        try:
            if self.model is None:
                self.model = factory if impl.kind == "function" else self.adapter.build(factory, self.kwargs, True)
        except Exception as exc:  # noqa: BLE001
            raise UserCodeError(f"{impl.display}: constructor raised {describe(exc)}") from exc
        self.adapter.derived = tuple(self._companion(c, module) for c in impl.companions) + \
            tuple((name, lambda xs, v=value: v) for name, value in impl.fixed.items()) + \
            tuple((name, lambda xs, i=i: xs[i]) for name, i in impl.aliases.items()) + \
            tuple((name, self.adapter.mask(form, *self._mask_source(impl))) for name, form in impl.masks.items())
        self._models: dict[str, Any] = {"fp32": self.model}
        self._in_place, self._in_place_keep = "fp32", ()  # the dtype self.model is in right now
        self.kept_fp32: dict[str, list[str]] = {}  # dtype -> submodules that had to stay in float32

    def _inside_its_model(self, impl: Implementation, module: Any) -> Any:
        """The first `impl.symbol` inside its model built small (spec.Builder), or None, with the guesses' notes
        restored, when that model cannot be built or builds none."""
        from parity_skill.runtime.sides import configs

        by = impl.built_by
        try:
            factory = getattr(module, by.symbol)
            model = self.adapter.build(factory, constructor_kwargs(
                Implementation(impl.file, by.symbol, impl.framework, "module", by.init), factory, module,
                self.shared), True)
            found = next((m for _, m in self.adapter.submodules(model) if type(m).__name__ == impl.symbol), None)
            if found is None:
                raise ValueError(f"it builds no {impl.symbol}")
        except Exception as exc:  # noqa: BLE001 - user code: the class's own constructor is tried instead
            configs.NOTES.append(f"{impl.symbol}: {by.symbol} could not be built small to take it from "
                                 f"({describe(exc)}); built from its own constructor")
            configs.NOTES.extend(by.guessed)
            return None
        if hasattr(found, "eval"):
            found.eval()
        return found

    def _companion(self, c: Companion, module: Any) -> tuple[str, Any]:
        """(argument, fn) for a module of this side's file that computes a forward argument (rotary cos/sin), or
        the enclosing model that hands it to the layer (recorded; its rotary fallback when it cannot run)."""
        if c.call[:1] == ("model",):
            try:
                recorded = self._enclosing(c, module)
            except Exception as exc:  # noqa: BLE001 - user code: the fallback, or the reason
                return self._instead(c, module, exc)
            chosen: list = []

            def fn(xs):
                if not chosen:
                    try:
                        value = recorded(xs)
                        chosen.append(recorded)
                        return value
                    except Exception as exc:  # noqa: BLE001 - user code: decided on the first call, then kept
                        chosen.append(self._instead(c, module, exc)[1])
                return chosen[0](xs)
            return c.arg, fn
        impl = Implementation(self.impl.file, c.symbol, self.impl.framework, "module", c.init)
        try:
            factory = getattr(module, c.symbol)
            built = self.adapter.build(factory, constructor_kwargs(impl, factory, module, self.shared, False))
        except Exception as exc:  # noqa: BLE001
            raise UserCodeError(f"{self.impl.display}: building {c.symbol} for its argument '{c.arg}' raised "
                                f"{describe(exc)}") from exc
        return c.arg, self.adapter.companion(built, c.call, c.source, c.seq_axis)

    def _instead(self, c: Companion, module: Any, exc: Exception) -> tuple[str, Any]:
        """The rotary fallback of an enclosing model that could not be built or run, or the reason as an error."""
        if c.fallback is None:
            raise UserCodeError(f"{self.impl.display}: the model around it ({c.symbol}) could not give '{c.arg}': "
                                f"{describe(exc)}") from exc
        self.notes.append(f"'{c.arg}': {c.symbol} could not be run small ({describe(exc)}); computed by "
                          f"{c.fallback.symbol} instead")
        return self._companion(c.fallback, module)

    def _enclosing(self, c: Companion, module: Any) -> Any:
        """fn(xs) recording `c.arg` from the enclosing model (built once per model class, one recording per input
        shape shared by its arguments)."""
        if c.symbol not in self._enclosing_models:
            impl = Implementation(self.impl.file, c.symbol, self.impl.framework, "module", c.init)
            factory = getattr(module, c.symbol)
            self._enclosing_models[c.symbol] = (self.adapter.build(factory, constructor_kwargs(
                impl, factory, module, self.shared, False)), {})
        built, cache = self._enclosing_models[c.symbol]
        return self.adapter.enclosing(built, c.arg, c.call[1], c.call[2], c.source, c.seq_axis, cache)

    @staticmethod
    def _mask_source(impl: Implementation) -> tuple[int, int]:
        """(input index, sequence axis) a mask takes its length from: a companion's source, else input 0."""
        c = impl.companions[0] if impl.companions else None
        return (c.source, c.seq_axis) if c else (0, 1)

    @property
    def label(self) -> str:
        return f"{self.which.upper()} ({self.impl.display})"

    def supports(self, dtype: str) -> bool:
        return dtype in self.adapter.dtypes

    def model_for(self, dtype: str) -> Any:
        """The model in `dtype`. Besides fp32 at most one cast copy is alive; float64 (where the adapter can) is the
        fp32 model converted in place and back, losslessly, so memory never holds a float32 and a float64 copy."""
        keep = tuple(self.kept_fp32.get(dtype, ()))
        if self._in_place != "fp32" and (dtype != self._in_place or keep != self._in_place_keep):
            self.adapter.retype(self.model, "fp32")
            self._in_place = "fp32"
        if dtype == "fp64" and hasattr(self.adapter, "retype"):
            if self._in_place != "fp64":
                self._models = {"fp32": self.model}
                self.adapter.retype(self.model, "fp64", keep)
                self._in_place, self._in_place_keep = "fp64", keep
            return self.model
        if dtype not in self._models:
            for other in [d for d in self._models if d != "fp32"]:
                del self._models[other]
            self._models[dtype] = self.adapter.cast(self.model, dtype, keep=keep)
        return self._models[dtype]

    def refresh(self) -> None:
        """Forget dtype copies (after weights changed)."""
        if self._in_place != "fp32":
            self.adapter.retype(self.model, "fp32")
            self._in_place = "fp32"
        self._models = {"fp32": self.model}
        self.kept_fp32 = {}

    def _tolerant(self, fn, dtype: str, args: list[np.ndarray]):
        """fn(model in dtype); when the code requires float32 parameters in some submodule (a LayerNorm subclass
        that upcasts its input), keep that submodule in float32 and retry, rather than skip the dtype."""
        for _ in range(MAX_KEPT):
            try:
                return fn(self.model_for(dtype))
            except Exception as exc:  # noqa: BLE001
                if dtype == "fp32" or not hasattr(self.adapter, "culprit") or not _dtype_error(exc):
                    raise
                name = self.adapter.culprit(self.model_for(dtype), self._in(args), dtype)
                kept = self.kept_fp32.get(dtype, [])
                if name is None or name in kept:
                    raise
                self.kept_fp32[dtype] = kept + [name]
                self._models.pop(dtype, None)  # recast (or re-convert) with the kept submodules
        return fn(self.model_for(dtype))

    def _in(self, args: list[np.ndarray]) -> list[np.ndarray]:
        if not self.layout:
            return args
        return [permute(x, self.layout) if x.ndim == len(self.layout) else x for x in args]

    def _out(self, flat: Flat) -> Flat:
        """The forward's outputs in A's layout (unless this side returns A's layout already)."""
        return self._back(flat) if self.permute_outputs else flat

    def _back(self, flat: Flat) -> Flat:
        """Values inside the forward (submodule inputs and outputs) in A's layout."""
        if not self.layout:
            return flat
        back = inverse(self.layout)
        return [(k, permute(v, back) if v.ndim == len(back) else v) for k, v in flat]

    def _upstream(self, upstream: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A gradient for the outputs (A's layout) in the layout this side returns them in."""
        if not self.layout or not self.permute_outputs:
            return upstream
        return {k: permute(v, self.layout) if v.ndim == len(self.layout) else v for k, v in upstream.items()}

    def run(self, args: list[np.ndarray], dtype: str = "fp32") -> Flat:
        out = self._out(self._tolerant(lambda m: self.adapter.call(m, self._in(args), dtype), dtype, args))
        return [(k, probabilities(v)) for k, v in out] if self.impl.reads == "probabilities" else out

    def lines(self, args: list[np.ndarray], modules: tuple[str, ...] = ()) -> list[list]:
        """[`file:line name`, [], [("", value)]] for every assignment and the return of this side's own forward (or
        function) on `args`, in execution order (runtime/diagnosis/lines.py); with `modules`, of those submodules'
        forwards instead, each label prefixed `name|`. [] when nothing can be instrumented."""
        from parity_skill.runtime.diagnosis.lines import side_lines

        return side_lines(self, args, modules, _CALL.get(self.impl.framework, "__call__"))

    def user_modules(self) -> tuple[str, ...]:
        """The first submodule of each class of the user's own code (not the framework's), in module order: the
        ones whose forward A records statement by statement, in case one is where a difference starts."""
        seen, out = set(), []
        for name, obj in self.adapter.submodules(self.model_for("fp32")):
            cls = type(obj)
            if cls not in seen and not framework_file(class_of(obj).get("location")):
                seen.add(cls)
                out.append(name)
        return tuple(out)

    def run_twice(self, args: list[np.ndarray]) -> tuple[Flat, Flat]:
        """Two identical fp32 calls in a row (the determinism check)."""
        return self.run(args), self.run(args)

    def grads(self, args: list[np.ndarray], dtype: str, upstream: dict[str, np.ndarray]):
        """(outputs, input grads by index, parameter grads by name), all in A's layout."""
        upstream = self._upstream(upstream)
        out, in_grads, p_grads = self._tolerant(lambda m: self.adapter.grads(m, self._in(args), dtype, upstream),
                                                dtype, args)
        if self.layout:
            back = inverse(self.layout)
            in_grads = {i: permute(g, back) if g.ndim == len(back) else g for i, g in in_grads.items()}
        return self._out(out), in_grads, p_grads

    def trace(self, args: list[np.ndarray], feed: dict[str, list] | None = None) -> list[list]:
        """[name, inputs, outputs] per submodule call, arrays in A's layout; `feed` is in A's layout too."""
        if feed and self.layout:
            feed = {k: [self._in(list(call)) for call in calls] for k, calls in feed.items()}
        records = self.adapter.trace(self.model_for("fp32"), self._in(args), "fp32", feed)
        return [[name, self._back(inp), self._back(out)] for name, inp, out in records]

    def call_order(self, args: list[np.ndarray]) -> list[str]:
        """Submodule names in the order one call starts them (each once)."""
        if hasattr(self.adapter, "call_order"):
            return self.adapter.call_order(self.model_for("fp32"), self._in(args), "fp32")
        return list(dict.fromkeys(name for name, _, _ in self.trace(args)))

    def grad_trace(self, args: list[np.ndarray], upstream: dict[str, np.ndarray]) -> list[list]:
        """[name, input grads, output grads] per submodule call (fp32), in A's layout."""
        records = self.adapter.grad_trace(self.model_for("fp32"), self._in(args), "fp32", self._upstream(upstream))
        return [[name, self._back(gin), self._back(gout)] for name, gin, gout in records]

    def cached_decode(self, prompt: np.ndarray, tokens: np.ndarray) -> dict:
        """{how, logits}: fp32 decoding through this side's own KV cache (runtime/checks/cached_decode.py)."""
        from parity_skill.runtime.checks.cached_decode import cached_logits

        self.seed(0)
        return cached_logits(self.adapter, self.model_for("fp32"), self.impl, prompt, tokens)

    def cache_rows(self, prompt: np.ndarray, tokens: np.ndarray, step: int, tol) -> list[dict]:
        """Per submodule call at decoding step `step`: the cached call against the full recomputation's last
        positions (rows as trace.py compares two sides)."""
        from parity_skill.runtime.checks.cached_decode import cache_trace
        from parity_skill.runtime.diagnosis.calls import compare_calls

        self.seed(0)
        full, cached = cache_trace(self.adapter, self.model_for("fp32"), self.impl, prompt, tokens, step)
        return compare_calls(full, cached, {name: name for name, _, _ in full}, tol)

    def defaults(self) -> dict[str, dict]:
        """Constructor arguments left at their defaults, with where each is written (diagnosis/defaults.py)."""
        from parity_skill.runtime.diagnosis.defaults import defaults_of

        return defaults_of(self.factory, self.kwargs) if self.impl.kind == "module" else {}

    def module_names(self) -> list[str]:
        return [n for n, _ in self.adapter.submodules(self.model)]

    def unbuilt_note(self) -> str | None:
        """What the side's code could build that this built model does not hold (sides/coverage.py)."""
        found = coverage.unbuilt(self.model, [m for _, m in self.adapter.submodules(self.model)])
        return coverage.note(self.which.upper(), found)

    def module_classes(self) -> dict[str, dict]:
        """submodule -> {class, location (path:line of its class)}, read from the live objects; "" is the module
        itself."""
        top = {"": class_of(self.model)} if self.impl.kind == "module" else {}
        found = {n: m for n, m in self.adapter.submodules(self.model)}
        out = {n: class_of(m) for n, m in found.items()}
        every = {**found, "": self.model}
        for n, info in out.items():  # a framework layer is located where the user's code builds it
            built = built_at(n, every) if framework_file(info.get("location")) else None
            if built:
                info["built_at"] = built
        return {**top, **out}

    # ---- what the checks ask of a side (a replayed side answers the same from an artifact) ----------------
    @property
    def differentiable(self) -> bool:
        return self.adapter.differentiable

    def seed(self, seed: int) -> None:
        self.adapter.seed(seed)

    def state(self) -> dict[str, np.ndarray]:
        return self.adapter.state(self.model_for("fp32"))

    def in_out_weights(self) -> list[str]:
        """Weights stored (in, out) instead of (out, in), like GPT-2's Conv1D: a layer class whose bias is as long
        as its weight's second axis only. Decided per class, so its square instances count too."""
        return in_out_weights({k: tuple(v.shape) for k, v in self.state().items()},
                              {n: type(m).__name__ for n, m in self.adapter.submodules(self.model)})

    def trainable(self) -> list[str]:
        return self.adapter.trainable(self.model)

    def param_names(self) -> list[str]:
        return self.adapter.names(self.model)
