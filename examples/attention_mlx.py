"""The same attention ported to MLX (correct): fused scaled-dot-product attention."""
import mlx.core as mx
import mlx.nn as nn


class Attention(nn.Module):
    def __init__(self, dim: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.scale = (dim // n_heads) ** -0.5
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def __call__(self, x):
        b, t, c = x.shape
        h = self.n_heads
        q = self.q_proj(x).reshape(b, t, h, -1).transpose(0, 2, 1, 3)
        k = self.k_proj(x).reshape(b, t, h, -1).transpose(0, 2, 1, 3)
        v = self.v_proj(x).reshape(b, t, h, -1).transpose(0, 2, 1, 3)
        out = mx.fast.scaled_dot_product_attention(q, k, v, scale=self.scale)
        return self.out_proj(out.transpose(0, 2, 1, 3).reshape(b, t, c))
