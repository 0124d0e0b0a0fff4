"""Multi-head self-attention in PyTorch (the reference)."""
import math

import torch
import torch.nn as nn


class Attention(nn.Module):
    def __init__(self, dim: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, t, c = x.shape
        h = self.n_heads
        q = self.q_proj(x).view(b, t, h, c // h).transpose(1, 2)
        k = self.k_proj(x).view(b, t, h, c // h).transpose(1, 2)
        v = self.v_proj(x).view(b, t, h, c // h).transpose(1, 2)
        scores = q @ k.transpose(-2, -1) / math.sqrt(c // h)
        out = torch.softmax(scores, dim=-1) @ v
        return self.out_proj(out.transpose(1, 2).reshape(b, t, c))
