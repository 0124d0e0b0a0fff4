"""Judging: array metrics in float64 and output matching against a tolerance."""
