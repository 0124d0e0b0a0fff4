"""Its MLX port, recorded the same way. With BUG=1 its third denoising step reverses the features (a port bug).

    python examples/pipeline_mlx.py /tmp/pipeline_b
"""
import os
import sys

import mlx.core as mx
import numpy as np

import parity_skill

weights = dict(np.load("/tmp/pipeline_weights.npz"))


def linear(name, x):
    return x @ mx.array(weights[f"{name}.weight"]).T + mx.array(weights[f"{name}.bias"])


prompt = mx.array(np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32))
with parity_skill.record(sys.argv[1], weights=weights):
    h = parity_skill.stage("text_encoder", linear("encoder", prompt), given=prompt)
    for step in range(4):
        with parity_skill.scope("denoise"):
            h = mx.tanh(linear("transformer", h)) + 0.1 * step
            if os.environ.get("BUG") and step >= 2:
                h = h[:, ::-1]
            h = parity_skill.stage("transformer_step", h)
    parity_skill.stage("image", linear("decoder", h))
