"""The package's version, in a module of its own so that anything can read it without importing the package's
lazy public API (parity_skill/__init__.py)."""

__version__ = "0.1.0"
