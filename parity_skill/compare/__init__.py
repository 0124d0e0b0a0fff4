"""Comparing artifacts: the capture/compare phases and the stage table of two artifacts."""
