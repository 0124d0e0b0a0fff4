"""Data on disk and in memory: artifacts, input arrays, fresh parameters, weight loading."""
