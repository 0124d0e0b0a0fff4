"""Stages of any program, written as a parity-skill artifact that `parity-skill compare A_DIR B_DIR` reads:

    import parity_skill

    with parity_skill.record("fixtures/run_a"):
        text = encoder(prompt)
        parity_skill.stage("text_encoder", text)
        for t in steps:
            with parity_skill.scope("denoise"):
                latents = transformer(latents, t, text)
                parity_skill.stage("transformer_step", latents)   # denoise.transformer_step, #1, #2...
        parity_skill.stage("image", vae.decode(latents))

Values may be torch tensors, MLX or NumPy arrays, or (nested) tuples/lists of them; bfloat16 is kept as float32
(exact). Outside `record`, `stage` does nothing, so a pipeline keeps its calls in production. A name used again
is numbered as parity-skill numbers repeated calls (`name`, `name#1`, `name#2`)."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

import numpy as np

_ACTIVE: list["_Recording"] = []


class _Recording:
    def __init__(self, folder: str, weights: dict | None) -> None:
        self.folder = Path(folder)
        self.stages: list[dict] = []
        self.tensors: dict[str, np.ndarray] = {}
        self.seen: dict[str, int] = {}
        self.prefix: list[str] = []
        for name, value in (weights or {}).items():
            self.tensors[f"weights/{name}"] = to_numpy(value)

    def add(self, name: str, value: Any, given: Any = None) -> str:
        full = ".".join([*self.prefix, name])
        k = self.seen.get(full, 0)
        self.seen[full] = k + 1
        stage = full + (f"#{k}" if k else "")
        flat = _flatten(value)
        for i, (_, arr) in enumerate(flat):
            self.tensors[f"stages/{stage}/out/{i}"] = arr
        entry = {"name": stage, "out": [key for key, _ in flat]}
        if given is not None:
            ins = _flatten(given)
            for i, (_, arr) in enumerate(ins):
                self.tensors[f"stages/{stage}/in/{i}"] = arr
            entry["in"] = [key for key, _ in ins]
        self.stages.append(entry)
        return stage

    def write(self) -> None:
        from parity_skill.version import __version__
        from parity_skill.runtime.data import artifact

        manifest = {"tool_version": __version__, "stages": self.stages, "outputs": [],
                    "side": {"symbol": "(recorded program)", "framework": "-"}}
        artifact.write(self.folder, manifest, self.tensors)


def to_numpy(value: Any) -> np.ndarray:
    """A torch tensor, an MLX array or anything NumPy takes, as a NumPy array (bfloat16 as float32)."""
    module = type(value).__module__
    if module.startswith("torch"):
        t = value.detach().cpu()
        if str(t.dtype) == "torch.bfloat16":
            t = t.float()
        return t.numpy()
    if module.startswith("mlx"):
        import mlx.core as mx

        if value.dtype == mx.bfloat16:
            value = value.astype(mx.float32)
        return np.array(value)
    return np.asarray(value)


def _flatten(value: Any, key: str = "") -> list[tuple[str, np.ndarray]]:
    if isinstance(value, (tuple, list)):
        return [kv for i, v in enumerate(value) for kv in _flatten(v, f"{key}[{i}]")]
    if isinstance(value, dict):
        return [kv for k, v in value.items() for kv in _flatten(v, f"{key}[{k!r}]")]
    return [(key, to_numpy(value))]


@contextlib.contextmanager
def record(folder: str, weights: dict | None = None) -> Iterator[None]:
    """Record every `stage()` called inside into an artifact folder (written when the block ends, also when it
    raises: what ran is kept); `weights` (name -> array) are stored too, and compared before any stage."""
    rec = _Recording(folder, weights)
    _ACTIVE.append(rec)
    try:
        yield
    finally:
        _ACTIVE.remove(rec)
        rec.write()


def stage(name: str, value: Any, given: Any = None) -> Any:
    """Record `value` as stage `name` (and `given`, what the stage was fed) in the active recording; returns
    `value`, so it can wrap an expression. Does nothing outside `record`."""
    if _ACTIVE:
        _ACTIVE[-1].add(name, value, given)
    return value


@contextlib.contextmanager
def collecting() -> Iterator["_Recording"]:
    """`record` in memory: the stages called inside, kept on the returned object (`stages`, `tensors`), nothing
    written (parity-skill's own capture puts them in its artifact)."""
    rec = _Recording("", None)
    _ACTIVE.append(rec)
    try:
        yield rec
    finally:
        _ACTIVE.remove(rec)


@contextlib.contextmanager
def scope(name: str) -> Iterator[None]:
    """Prefix the stages recorded inside with `name.` (nested scopes join: `vae.decoder.block`)."""
    rec = _ACTIVE[-1] if _ACTIVE else None
    if rec is not None:
        rec.prefix.append(name)
    try:
        yield
    finally:
        if rec is not None:
            rec.prefix.pop()
