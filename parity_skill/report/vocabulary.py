"""What each check and each diagnosis kind means, and the usual fix: the tables the Agent Skill's references and
the docs are generated from, so they never drift from the code."""
from __future__ import annotations

CHECKS: dict[str, str] = {
    "weights": "every parameter of A has a counterpart in B (mapped by name, module order, shape or --map)",
    "forward": "fp32 outputs of A and B on the same inputs and weights",
    "backward": "fp32 gradients of the inputs and of every mapped parameter, for the same upstream gradient",
    "fp16": "B's fp16 error against a float64 ground truth, compared with A's own fp16 error (ratio B/A)",
    "bf16": "as fp16, in bfloat16",
    "backward_fp16": "B's fp16 gradients against A's float32 gradients, compared with A's own fp16 gradients",
    "backward_bf16": "as backward_fp16, in bfloat16",
    "batch": "each sample of a batch equals that sample run alone, on both sides; then A vs B at the batch size",
    "edge:zeros": "all inputs zero (integer ids 0)",
    "edge:large": "inputs x1e4 (ids at vocab-1)",
    "edge:tiny": "inputs x1e-6: where an eps dominates",
    "edge:offset": "inputs +1e3: cancellation in mean/variance",
    "edge:seq_len_1": "batch 1, sequence length 1",
    "sampling": "distributions the user samples from (--sampling temperature=..,top_p=..): TV, KL, top-1 and top-k "
                "agreement, the chance a sampled token differs and the expected step of the first difference",
    "generate": "--generate N: N decoding steps teacher-forced on A's tokens, greedy and sampled with shared "
                "randomness: the first step where top-1, the sampled token or the distribution differs; a side "
                "with a KV cache also decodes through it, against its own full recomputation",
    "edge:ties": "logits processors: logits on a 0.5 grid, so ties fall at every cut-off",
    "edge:one_finite": "logits processors: all but one logit per row at -inf",
    "determinism:a": "A run twice on the same input agrees bit for bit",
    "determinism:b": "B run twice on the same input agrees bit for bit",
}

# kind -> (what it means, the usual fix)
DIAGNOSIS: dict[str, tuple[str, str]] = {
    "zeros": ("B's output is all zeros where A's is not", "a weight that was never loaded, or a branch never taken"),
    "constant_offset": ("B - A is the same at every position (per feature)", "load or add the missing bias"),
    "softmax_invariant": ("B - A is constant along the last axis in each row",
                          "harmless for logits fed to softmax; a bug only if the raw values are used"),
    "scale": ("B = c * A", "a missing or extra factor: attention 1/sqrt(d), embedding sqrt(d), a residual scale"),
    "sign_flip": ("B = -A", "a subtraction reversed or a negated weight"),
    "transpose": ("B is A with axes swapped", "a missing transpose back (channels-last vs channels-first)"),
    "permutation": ("B is A reordered along one axis",
                    "heads or channels in another order; RoPE interleaved vs rotate-half (traditional)"),
    "shape": ("outputs of different shapes", "a stray squeeze/unsqueeze, keepdim, or a layout difference"),
    "nan_inf": ("non-finite values on one side where the other is finite",
                "an overflow in fp16, a log/sqrt of zero, a mask with -inf rows"),
    "batch_coupling": ("a sample's output depends on the other samples of the batch",
                       "statistics over the batch axis (BatchNorm in train mode), a reshape mixing batch and time"),
    "nondeterministic": ("a side disagrees with itself between two identical calls",
                         "dropout or random ops in forward (call eval()), a nondeterministic kernel"),
    "missing_parameter": ("a parameter of A has no counterpart in B", "B dropped a bias or a norm weight"),
    "guessed_arguments": ("constructor arguments of unknown role were guessed (no config or model said them)",
                          "give them with --init NAME=VALUE as the model builds the layer, or its config.json with "
                          "--config"),
    "unmapped_parameter": ("a parameter of B has no counterpart in A", "an extra layer, or pin the pair with --map"),
    "approximation": ("an activation or op computed another way",
                      "exact (erf) vs tanh GELU, SiLU vs GELU: use the same variant"),
    "eps": ("a norm's epsilon differs", "pass the config's eps; mind eps inside vs outside the sqrt"),
    "dtype": ("a hard-coded cast", "compute in the input dtype, or upcast where the reference does"),
    "device": ("a hard-coded device", "use the input's device instead of 'cuda'"),
    "layout": ("inputs or outputs in another layout", "--layout b=nlc / b=nhwc, or transpose back"),
    "precision": ("B loses precision A keeps in fp16/bf16", "upcast softmax/norm statistics to float32 as A does"),
    "sampling": ("logits agree under argmax but the sampled token differs too often under the decoding settings",
                 "find the small logit drift (an eps, a cast to fp16, an approximation) with the forward checks"),
    "order": ("two steps applied in another order (temperature before vs after top-p/min-p filtering)",
              "apply them in the reference's order"),
    "setting": ("a constructor or config setting differs", "build B with A's value"),
    "frozen_rows": ("a parameter's gradient is exactly zero in a few rows on A's side only (outputs agree)",
                    "an embedding's padding_idx (the config's pad_token_id): give B's embedding the same, if B is "
                    "trained"),
}

EXIT_CODES = {0: "parity holds (every check passed)", 1: "a check failed (a real difference)",
              2: "could not check (bad input, user code raised, timeout): the report's `error` says why",
              130: "interrupted"}
