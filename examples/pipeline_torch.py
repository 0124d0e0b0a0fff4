"""A tiny text-to-image-shaped pipeline in PyTorch, its stages recorded with parity_skill.record/stage.

    python examples/pipeline_torch.py /tmp/pipeline_a
"""
import sys

import numpy as np
import torch

import parity_skill

torch.manual_seed(0)
encoder, transformer, decoder = torch.nn.Linear(8, 16), torch.nn.Linear(16, 16), torch.nn.Linear(16, 4)
weights = {f"{name}.{k}": v.detach().numpy() for name, m in (("encoder", encoder), ("transformer", transformer),
                                                               ("decoder", decoder)) for k, v in m.state_dict().items()}
np.savez("/tmp/pipeline_weights.npz", **weights)  # the port loads the same weights
prompt = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32))

with parity_skill.record(sys.argv[1], weights=weights), torch.no_grad():
    h = parity_skill.stage("text_encoder", encoder(prompt), given=prompt)
    for step in range(4):
        with parity_skill.scope("denoise"):
            h = parity_skill.stage("transformer_step", torch.tanh(transformer(h)) + 0.1 * step)
    parity_skill.stage("image", decoder(h))
