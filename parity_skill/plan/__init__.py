"""Stage 2, plan (pure): pairing, constructor arguments, inputs, the weight map and its rules, tolerances, checks."""
