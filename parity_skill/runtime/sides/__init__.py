"""The side processes: a side built, captured (phase 1) or replayed and checked (phase 2)."""
