"""--stream: models larger than memory, compared one block at a time (torch)."""
