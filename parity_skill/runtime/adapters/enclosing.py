"""Inputs from the model around a layer: the enclosing model, built small from the same config, runs on token ids of
the layer input's batch and length; the arguments it hands its first instance of the layer class (two rotary
tables, a time embedding) are recorded and passed to the layer under test. The call stops at that layer: nothing
after it runs. Framework-neutral: each adapter passes how to make ids, run without gradients and cast."""
from __future__ import annotations

import inspect
from typing import Any, Callable


class _Reached(Exception):
    def __init__(self, arguments: dict[str, Any]) -> None:
        super().__init__("reached the layer")
        self.arguments = arguments


def record_call(model: Any, layer_class: str, instances: list, attr: str, run: Callable[[], Any]) -> dict[str, Any]:
    """{argument: value} the model passes to its first `layer_class` instance when `run()` calls it."""
    target = next((m for m in instances if type(m).__name__ == layer_class), None)
    if target is None:
        raise RuntimeError(f"{type(model).__name__} builds no {layer_class}")
    cls = type(target)
    original = getattr(cls, attr)
    had = attr in vars(cls)
    saved = vars(cls).get(attr)

    def spy(self, *args, **kwargs):
        if self is target:
            bound = inspect.signature(original).bind(self, *args, **kwargs)
            raise _Reached({k: v for k, v in bound.arguments.items() if k != "self"})
        return original(self, *args, **kwargs)

    setattr(cls, attr, spy)
    try:
        run()
    except _Reached as reached:
        return reached.arguments
    finally:
        if had:
            setattr(cls, attr, saved)
        else:
            delattr(cls, attr)
    raise RuntimeError(f"{type(model).__name__} never called its {layer_class}")


def enclosing_fn(model: Any, arg: str, layer_class: str, ids_arg: str, source: int, seq_axis: int,
                 instances: list, attr: str, make_ids: Callable[[int, int], Any], frozen: Callable,
                 cast_like: Callable[[Any, Any], Any], cache: dict) -> Callable:
    """fn(xs) -> the value of `arg` the model hands its layer for input `source`'s batch and length (recorded
    once per shape in `cache`, shared by every argument of one model), cast to that input's dtype."""
    def fn(xs: list) -> Any:
        x = xs[source]
        key = (int(x.shape[0]), int(x.shape[seq_axis]))
        if key not in cache:
            cache[key] = record_call(model, layer_class, instances, attr,
                                     lambda: frozen(lambda: model(**{ids_arg: make_ids(*key)})))
        return cast_like(cache[key].get(arg), x)
    return fn
