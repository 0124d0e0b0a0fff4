"""Stage 3, render: a ParityPlan as a readable, re-runnable Python script."""
