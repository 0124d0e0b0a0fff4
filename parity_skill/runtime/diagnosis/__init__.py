"""Diagnosis: traces, root cause, symptoms and the findings they confirm."""
