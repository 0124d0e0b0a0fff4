"""parity-skill: do two implementations of a layer compute the same thing?

`parity_skill.record(folder)`, `parity_skill.stage(name, value)` and `parity_skill.scope(name)` record the stages
of any program as an artifact (runtime/data/recording.py); they are imported on first use, so `import parity_skill`
stays light."""

__version__ = "0.1.0"

__all__ = ["record", "scope", "stage"]


def __getattr__(name: str):
    if name in __all__:
        from parity_skill.runtime.data import recording

        return getattr(recording, name)
    raise AttributeError(f"module 'parity_skill' has no attribute {name!r}")
