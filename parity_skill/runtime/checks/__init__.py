"""The checks: forward/backward, the dtype/batch/edge matrix, sampling, generate."""
