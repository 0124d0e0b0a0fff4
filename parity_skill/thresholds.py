"""Every number a verdict depends on, in one place, each with where it comes from.

Which checks decide the verdict: forward, backward, fp16/bf16 at unit activation scale, batch, determinism,
variants, sampling, generate, cached decode and the edge inputs. Which only warn: fp16/bf16 at the stress scale
(STRESS_SCALE x the unit activations); `--strict` makes those warnings failures.

Element-wise tolerances (a pair agrees when |a - b| <= atol + rtol * |a| for every element):
- TOLERANCES are torch.testing.assert_close's defaults per dtype (fp32: rtol 1.3e-6 ~ 11 float32 rounding units,
  atol 1e-5), so a verdict means what the ecosystem's own test helper would say. atol is scaled by the outputs'
  magnitude (judging/metrics.scaled_atol) so a layer whose outputs are ~1e3 is not held to 1e-5 absolute.
- LEVELS multiply atol by 1 / 10 / 100 for one layer / a few layers / a whole stack: float32 rounding compounds
  about linearly with depth in residual stacks, and a stack of ~100 layers is the largest level we name.

Precision (fp16/bf16 forward and backward, judged against A in float64):
- PRECISION_MULTIPLIER = 3: B's RMSE may be up to 3x A's own in the same dtype. A correct port rounds the same
  operations in the same dtype as A; only the order of accumulation differs. Measured on the suite's 9 correct
  fixture pairs (44 fp16/bf16 forward and backward checks), B/A ranges 0.88-1.80; a port that skips A's float32
  upcast overflows or loses far more (the fixtures' fp16-squaring RMSNorm is non-finite at the stress scale).
  Where A is more exact than rounding its input alone allows (a fused kernel), the bar is 3x that rounding's
  error instead (runtime/checks/conditioning.low_precision_floor: A in float64 on the input rounded to the dtype;
  0.37-0.5x A's own error on the fixtures), so an unusually exact A cannot fail an ordinary correct B.
- UNIT_ROUNDOFF is each dtype's unit roundoff (2^-11 for fp16's 11-bit significand, 2^-8 for bf16's 8): a
  gradient error below one unit at the gradients' own RMS is rounding noise and is never judged relative to noise.

Conditioning (judging/condition.py): A is rerun on its input moved by one float32 rounding unit per element, with
CONDITION_SEEDS draws; the largest change of A's outputs is the floor any correct float32 implementation may
differ by on that input.
- CONDITION_FACTOR = 4: the floor is one implementation's deviation; two correct implementations may deviate in
  opposite directions (x2), and three random draws see less than the worst perturbation (x2).
- A check whose floor is itself above the tolerance is `inconclusive`: float32 cannot tell two kernels apart.
- FP32_UNIT = 2^-23, float32's rounding unit: on an edge input of magnitude M, float32 itself costs ~FP32_UNIT * M
  where the input meets its own cancellation (x - mean at a DC offset), so B's float64-judged error below that
  is no evidence of a port difference.

Distributions (sampling, generate):
- TV_MEAN = 1e-3 and TV_MAX = 1e-2: total variation between the two sides' next-token distributions, mean over
  positions and worst position. Logits that differ by d move a softmax's TV by at most d, so float32 logits
  within the fp32 tolerance (~1e-5) stay 100x below TV_MEAN; a wrong temperature, top-k or top-p moves whole
  tokens' mass, TV of 1e-2 and more.
- LOWP_TV_FLOOR = 1e-3: in fp16/bf16 B's TV may be 3x A's own drift (PRECISION_MULTIPLIER) plus this floor.
- STEP_TV = 1e-3 (= TV_MEAN): a decoding step whose distributions differ by more is "differing".

Stages (compare/stages.py) and forward agreement of many-valued outputs:
- STAGE_COSINE = 0.999: a recorded stage whose values keep a cosine below this to A's has changed direction.
  Float32 rounding leaves a cosine within ~1e-6 of 1 on unit-scale values (an error of 1e-3 relative costs 5e-7
  of cosine), so 0.999 flags only differences of a few percent; used where no element tolerance was given.

Stress inputs:
- STRESS_SCALE = 128: fp16/bf16 activations at 128x unit scale bring a dot product over ~512 features of unit
  values to ~2^22, past fp16's largest finite 65504 when squared or summed without float32 accumulation: the
  scale where an overflow shows, not a scale every layer meets in use (so a failure there only warns).
- EDGE_OFFSET = 1e3: a DC offset 1000x the inputs' spread, the cancellation test of one-pass variances.
"""
from __future__ import annotations

TOLERANCES = {  # dtype: (atol, rtol), torch.testing.assert_close's defaults
    "fp64": (1e-7, 1e-7),
    "fp32": (1e-5, 1.3e-6),
    "fp16": (1e-5, 1e-3),
    "bf16": (1e-5, 1.6e-2),
}
LEVELS = {"layer": 1.0, "chain": 10.0, "model": 100.0}

PRECISION_MULTIPLIER = 3.0
UNIT_ROUNDOFF = {"fp16": 2.0 ** -11, "bf16": 2.0 ** -8}

CONDITION_SEEDS = (101, 102, 103)
CONDITION_FACTOR = 4.0
FP32_UNIT = 2.0 ** -23

TV_MEAN = 1e-3
TV_MAX = 1e-2
LOWP_TV_FLOOR = 1e-3
STEP_TV = 1e-3

STAGE_COSINE = 0.999

STRESS_SCALE = 128.0
EDGE_OFFSET = 1e3
