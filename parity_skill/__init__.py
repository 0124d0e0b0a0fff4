"""parity-skill: do two implementations of a layer compute the same thing?"""

__version__ = "0.1.0"
