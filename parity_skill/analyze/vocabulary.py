"""The fixed vocabularies analysis maps code onto: frameworks, module base classes, numerical ops."""
from __future__ import annotations

import re

IDS_NAMES = re.compile(r"^(input_ids|ids|tokens|token_ids|inputs)$")  # a model's first argument: it takes tokens
ROTARY_CLASS = re.compile(r"rotary|rope", re.I)  # a class computing (cos, sin) tables: a layer's companion

FRAMEWORK_ROOTS = {"torch": "torch", "mlx": "mlx", "numpy": "numpy"}

MODULE_BASES = {
    "torch.nn.Module": "torch",
    "torch.nn.modules.module.Module": "torch",
    "mlx.nn.Module": "mlx",
    "mlx.nn.layers.base.Module": "mlx",
}

# last component of a resolved callee -> op name
OPS = {
    "matmul": "matmul", "mm": "matmul", "bmm": "matmul", "addmm": "matmul", "einsum": "einsum",
    "linear": "linear", "Linear": "linear",
    "softmax": "softmax", "Softmax": "softmax", "log_softmax": "log_softmax", "LogSoftmax": "log_softmax",
    "logsumexp": "logsumexp",
    "layer_norm": "layer_norm", "LayerNorm": "layer_norm", "rms_norm": "rms_norm", "RMSNorm": "rms_norm",
    "group_norm": "group_norm", "GroupNorm": "group_norm", "batch_norm": "batch_norm",
    "BatchNorm1d": "batch_norm", "BatchNorm2d": "batch_norm", "BatchNorm": "batch_norm",
    "gelu": "gelu", "GELU": "gelu", "gelu_approx": "gelu", "gelu_fast_approx": "gelu",
    "silu": "silu", "SiLU": "silu", "swish": "silu", "relu": "relu", "ReLU": "relu",
    "tanh": "tanh", "Tanh": "tanh", "sigmoid": "sigmoid", "Sigmoid": "sigmoid",
    "exp": "exp", "sqrt": "sqrt", "rsqrt": "rsqrt", "mean": "mean", "var": "var", "std": "std",
    "conv1d": "conv1d", "Conv1d": "conv1d", "conv2d": "conv2d", "Conv2d": "conv2d",
    "conv3d": "conv3d", "Conv3d": "conv3d", "ConvTranspose1d": "conv_transpose1d",
    "conv_transpose1d": "conv_transpose1d", "ConvTranspose2d": "conv_transpose2d",
    "scaled_dot_product_attention": "scaled_dot_product_attention",
    "MultiheadAttention": "scaled_dot_product_attention",
    "dropout": "dropout", "Dropout": "dropout", "embedding": "embedding", "Embedding": "embedding",
    "RoPE": "rope", "rope": "rope",
}

# framework-default constants that matter for ports (analysis records them when an op omits the argument)
DEFAULT_EPS = {
    ("torch", "layer_norm"): "1e-05", ("torch", "rms_norm"): "None", ("torch", "group_norm"): "1e-05",
    ("torch", "batch_norm"): "1e-05", ("mlx", "layer_norm"): "1e-05", ("mlx", "rms_norm"): "1e-05",
    ("mlx", "group_norm"): "1e-05", ("mlx", "batch_norm"): "1e-05",
}

CAST_METHODS = {"float": "float32", "half": "float16", "double": "float64", "bfloat16": "bfloat16"}
CAST_CALLS = {"to", "type", "astype"}
DTYPE_WORDS = ("float16", "bfloat16", "float32", "float64", "half", "double", "float")

RANDOM_CALLS = {
    "randn", "rand", "randint", "randn_like", "rand_like", "randint_like", "normal", "bernoulli",
    "multinomial", "uniform", "randperm", "permutation", "choice", "gumbel", "categorical",
    "truncated_normal", "random", "standard_normal",
}
SEED_CALLS = {"manual_seed", "seed", "default_rng", "set_seed", "RandomState"}

# layers whose first constructor argument is the input feature size
FEATURE_LAYERS = {
    "linear": "last", "layer_norm": "last", "rms_norm": "last", "embedding": "ids",
    "conv1d": "channels", "conv2d": "channels", "conv3d": "channels", "conv_transpose1d": "channels",
    "conv_transpose2d": "channels", "group_norm": "channels2", "batch_norm": "channels",
}


ROPE_NAME = re.compile(r"(^|_)rope($|_)|RoPE")  # initialize_rope, apply_rope: rotary helpers


def op_for(dotted: str) -> str | None:
    return OPS.get(dotted.rsplit(".", 1)[-1])
