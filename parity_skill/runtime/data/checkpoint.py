"""Checkpoints as the libraries write and read them. A: the state dict its library saves, where that differs
from its live parameters (transformers 5 fuses experts in memory and reverts the fusion when saving). B: its own
checkpoint loading as its converter: a model of a library that loads checkpoints (transformers' `from_pretrained`)
is given A's checkpoint the way a user's reaches it, a folder with `model.safetensors` and B's `config.json`, and
B's library converts it (renamed keys, per-expert tensors fused into one stacked tensor, transposes). Which A
parameter each loaded value came from is then traced by value (`convert.convert_state`)."""
from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from typing import Callable


def saved_view(model) -> tuple[list[str], dict] | None:
    """(every key of A's checkpoint as its library writes it, {key: array} for those that are not live state
    names), or None when the two agree (or the library has no such step): transformers' own reverse of its
    load-time conversions, the step `save_pretrained` takes."""
    if "transformers" not in sys.modules:  # not a transformers model: importing the library costs seconds
        return None
    try:
        from transformers.core_model_loading import revert_weight_conversion
    except ImportError:
        return None
    if not callable(getattr(type(model), "from_pretrained", None)) or not callable(getattr(model, "state_dict", None)):
        return None
    live = model.state_dict()
    try:
        saved = revert_weight_conversion(model, dict(live))
    except Exception:  # noqa: BLE001 - the library cannot say: A's live names stand
        return None
    if set(saved) == set(live):
        return None
    return sorted(saved), {k: v.detach().float().cpu().numpy() for k, v in saved.items() if k not in live}


def loader(model) -> Callable | None:
    """A converter `weights -> B's state dict` through B's `from_pretrained`, or None when B's model is not a
    checkpoint-loading model (a torch module whose class has `from_pretrained` and whose config saves itself)."""
    cls = type(model)
    config = getattr(model, "config", None)
    if not callable(getattr(cls, "from_pretrained", None)) or not callable(getattr(config, "save_pretrained", None)):
        return None
    if not callable(getattr(model, "state_dict", None)):
        return None

    def load(weights: dict) -> dict:
        import torch
        from safetensors.torch import save_file

        with tempfile.TemporaryDirectory(prefix="parity-checkpoint-") as folder:
            save_file({k: v.detach().to(torch.float32).contiguous() for k, v in weights.items()},
                      os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
            config.save_pretrained(folder)
            with _quiet():  # hub kernels would swap B's own layers for downloaded ones: not the code under test
                try:
                    loaded = cls.from_pretrained(folder, config=config, dtype=torch.float32, use_kernels=False)
                except TypeError:  # a version before `use_kernels`
                    loaded = cls.from_pretrained(folder, config=config, dtype=torch.float32)
            return {k: v.detach() for k, v in loaded.state_dict().items()}
    return load


@contextlib.contextmanager
def _quiet():
    """transformers reports missing and unexpected keys in its log; which weights were loaded is ours to say."""
    try:
        from transformers.utils import logging
    except ImportError:
        yield
        return
    level = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logging.set_verbosity(level)
