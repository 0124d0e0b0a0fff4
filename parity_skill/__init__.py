"""parity-skill: do two implementations of a layer compute the same thing?

`parity_skill.record(folder)`, `parity_skill.stage(name, value)` and `parity_skill.scope(name)` record the stages
of any program as an artifact (runtime/data/recording.py); they are imported on first use, so `import parity_skill`
stays light."""

from parity_skill.version import __version__

__all__ = ["__version__", "record", "scope", "stage"]


def __getattr__(name: str):
    if name in ("record", "scope", "stage"):
        from parity_skill.runtime.data import recording

        return getattr(recording, name)
    raise AttributeError(f"module 'parity_skill' has no attribute {name!r}")
