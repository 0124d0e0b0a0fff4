"""A port of mlp.py with a classic bug: MLX's gelu_approx is the tanh approximation, not the exact GELU."""
import mlx.nn as nn


class MLP(nn.Module):
    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, dim)

    def __call__(self, x):
        return self.fc2(nn.gelu_approx(self.fc1(x)))
