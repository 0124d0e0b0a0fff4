"""Command line: parse, run the pipeline, print, pick the exit code."""
