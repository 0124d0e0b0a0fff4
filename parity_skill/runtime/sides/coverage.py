"""Layer kinds a side's code can build that the built model does not hold: a PASS says nothing about them (LFM2's
package default config builds no convolution layer, so its short-conv block never runs)."""
from __future__ import annotations

import inspect
import re
from typing import Any

_NAME = re.compile(r"\b([A-Z]\w*)\b")


def unbuilt(model: Any, modules: list[Any]) -> list[str]:
    """'Lfm2ShortConv (named in Lfm2DecoderLayer.__init__)' for each module class of the user's own code that the
    constructor of a class the model did build names, yet of which no instance was built."""
    is_module = next((c for c in type(model).__mro__ if c.__name__ == "Module"
                      and c.__module__.split(".")[0] in ("torch", "mlx")), None)
    if is_module is None:  # a function or a plain class: no layers to speak of
        return []
    built = {type(m) for m in [model, *modules]}
    names = {c.__name__ for c in built}
    out: dict[str, str] = {}
    for cls in sorted(built, key=lambda c: c.__name__):
        module = inspect.getmodule(cls)
        if module is None or _is_library(module.__name__):
            continue
        try:
            source = inspect.getsource(cls.__init__)
        except (TypeError, OSError):
            continue
        for name in _NAME.findall(source):
            found = getattr(module, name, None)
            if (name not in names and name not in out and isinstance(found, type) and issubclass(found, is_module)
                    and inspect.getmodule(found) is module):
                out[name] = f"{name} (named in {cls.__name__}.__init__)"
    return list(out.values())


def _is_library(module_name: str) -> bool:
    return module_name.split(".")[0] in ("torch", "mlx", "numpy")


def note(which: str, found: list[str]) -> str | None:
    if not found:
        return None
    return (f"{which}'s code can build {', '.join(found[:4])}" + (" ..." if len(found) > 4 else "")
            + ", which the built model does not hold with this config: no check exercised it (give a config that "
              "builds it with --config or --init)")
