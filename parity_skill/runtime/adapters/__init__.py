"""One adapter per framework, imported only when a pair needs it."""
from __future__ import annotations

import importlib
import sys

_MODULES = {"torch": ("torch_adapter", "TorchAdapter"), "mlx": ("mlx_adapter", "MLXAdapter"),
            "numpy": ("numpy_adapter", "NumpyAdapter")}
_CACHE: dict[str, object] = {}


def get_adapter(framework: str):
    if framework not in _MODULES:
        raise ValueError(f"unsupported framework '{framework}' (supported: {', '.join(_MODULES)})")
    if framework not in _CACHE:
        module, cls = _MODULES[framework]
        try:
            mod = importlib.import_module(f"parity_skill.runtime.adapters.{module}")
        except ImportError as exc:
            raise ValueError(f"{framework} is not installed for {sys.executable} ({exc}): install it there "
                             f"(pip install 'parity-skill[{framework}]'), or name another interpreter with "
                             "--python-a/--python-b") from None
        _CACHE[framework] = getattr(mod, cls)()
    return _CACHE[framework]
