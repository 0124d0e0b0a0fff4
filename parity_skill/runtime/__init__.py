"""The small runtime generated scripts import: spec values, checks, adapters, report."""
from parity_skill.runtime.main import main
from parity_skill.spec import Builder, Checks, Companion, Config, Implementation, InputSpec, MapEntry, PairSpec, Ref, Tolerance

__all__ = ["Builder", "Checks", "Companion", "Config", "Implementation", "InputSpec", "MapEntry", "PairSpec", "Ref", "Tolerance", "main"]
