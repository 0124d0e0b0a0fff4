"""NumPy: plain functions (or classes with a __call__ and public array attributes); no autograd, no bfloat16."""
from __future__ import annotations

import types
from typing import Any, Callable

import numpy as np

from parity_skill.runtime.adapters.base import Flat, flatten, invoke

DT = {"fp64": np.float64, "fp32": np.float32, "fp16": np.float16}


def _is(a: Any) -> bool:
    return isinstance(a, np.ndarray) or isinstance(a, np.generic)


def _np(a: Any) -> np.ndarray:
    a = np.asarray(a)
    return a.astype(np.float64) if np.issubdtype(a.dtype, np.floating) else a


class NumpyAdapter:
    arg_names: tuple[str, ...] = ()  # per input: the keyword it is passed as ('' = by position)
    derived: tuple = ()  # (argument, fn(inputs)) computed per call
    name = "numpy"
    differentiable = False
    dtypes = ("fp64", "fp32", "fp16")

    def build(self, factory: Callable, kwargs: dict[str, Any], drawn_afresh: bool = False) -> Any:
        return factory(**kwargs) if isinstance(factory, type) else factory

    def _arrays(self, model: Any) -> dict[str, Any]:
        """Public array attributes of an instance (a plain function has none)."""
        if isinstance(model, (type, types.FunctionType, types.BuiltinFunctionType)) or not hasattr(model, "__dict__"):
            return {}
        return {k: v for k, v in vars(model).items() if isinstance(v, np.ndarray) and not k.startswith("_")}

    def native(self, value: np.ndarray) -> Any:
        return value

    def numpy(self, value: Any) -> np.ndarray:
        return np.asarray(value)

    def state(self, model: Any) -> dict[str, np.ndarray]:
        return {k: _np(v) for k, v in self._arrays(model).items()}

    def load(self, model: Any, values: dict[str, np.ndarray]) -> None:
        arrays = self._arrays(model)
        for k, v in values.items():
            if k not in arrays or arrays[k].shape != v.shape:
                raise ValueError(f"'{k}' is not an array attribute of shape {v.shape}")
            setattr(model, k, v.astype(arrays[k].dtype))

    def names(self, model: Any) -> list[str]:
        return list(self._arrays(model))

    def trainable(self, model: Any) -> list[str]:
        return []

    def cast(self, model: Any, dtype: str, keep: tuple[str, ...] = ()) -> Any:
        for k, v in self._arrays(model).items():
            if np.issubdtype(v.dtype, np.floating):
                setattr(model, k, v.astype(DT[dtype]))
        return model

    def call(self, model: Any, args: list[np.ndarray], dtype: str) -> Flat:
        xs = [a.astype(DT[dtype]) if np.issubdtype(a.dtype, np.floating) else a for a in args]
        with np.errstate(all="ignore"):
            return flatten(invoke(model, xs, self.arg_names, self.derived), _is, _np)

    def grads(self, model: Any, args, dtype, upstream):
        raise NotImplementedError("NumPy has no automatic differentiation")

    def seed(self, seed: int) -> None:
        np.random.seed(seed)

    def submodules(self, model: Any) -> list[tuple[str, Any]]:
        return []

    def trace(self, model: Any, args, dtype, feed=None):
        return []

    def grad_trace(self, model: Any, args, dtype, upstream):
        return []
