"""Stage 4, run: the generated script's sides in subprocesses, bounded by a timeout."""
