"""Roles of constructor arguments by name, and the small value each role gets: shared by the plan and by the side
processes (which must not import the analysis stack)."""
from __future__ import annotations

import re
from typing import Any

BATCH, SEQ = 3, 6  # input batch and sequence length: distinct from every role size below, so no axis is ambiguous

# (pattern on the lower-cased name, role, value); first match wins. Sizes differ by role so that a transposed
# weight or a swapped axis cannot hide behind a square matrix.
ROLES: tuple[tuple[str, str, Any], ...] = (
    (r"^top_p$|nucleus", "top_p", 0.9),  # decoding settings of logits processors
    (r"^top_k$", "top_k", 5),
    (r"^min_p$", "min_p", 0.05),
    (r"^temperature$|^temp$", "temperature", 0.7),
    (r"repetition_penalty|^penalty$|presence_penalty|frequency_penalty", "penalty", 1.3),
    (r"guidance_scale|cfg_scale|cfg_weight|cfg_coef", "guidance", 3.0),
    (r"kv_heads|key_value_heads|n_kv_head|num_kv", "kv_heads", 2),
    (r"head_dim|head_size|d_head|dim_head|d_k$|d_v$", "head_dim", 8),
    (r"(^|_)n?heads?$|n_head|num_heads|nhead|attention_heads", "heads", 4),
    (r"vocab|num_embeddings|num_classes|n_vocab|codebook", "vocab", 64),
    (r"hidden_dim|hidden_features|intermediate|ffn|d_ff|mlp_dim|inner|^hidden$|mlp_hidden", "hidden", 64),
    (r"out_features|out_dim|dim_out|out_channels|output_dim", "out", 24),
    (r"in_channels|^in_chans$|^channels$|num_channels|n_channels|^in_?planes$|^inplanes$", "channels", 16),
    (r"^(out_)?planes$", "out", 24),
    (r"token_id$|token_ids$|^padding_idx$|^pad_id$|^(bos|eos|pad|unk|sep|cls|mask)_id$", "token_id", 0),
    (r"^(start_pos|offset|start|past_length|cache_offset|position_offset|past_key_values_length)$", "offset", 0),
    (r"^(length|seq_len|seq_length|num_tokens|n_tokens|num_patches|n_patches|block_size|n_ctx|context_length)$", "seq", SEQ),
    (r"max_seq|seq_len|context|max_position|max_len|max_length", "max_seq", 64),
    (r"^layer_(id|idx|index|number)$|^block_(id|idx)$", "layer_index", 0),
    (r"kernel_sizes$|dilations$|strides$", "per_layer", [1, 1]),
    (r"kernel", "kernel", 3),
    (r"stride|dilation", "stride", 1),
    (r"padding", "padding", 1),
    (r"num_groups|n_groups", "groups", 4),
    (r"^groups$", "conv_groups", 1),
    (r"(^|_)layers$|^depth$|n_layer|num_blocks|n_blocks|num_hidden_layers|num_layers", "layers", 2),
    (r"^(img|image)_size$|^(img|image)_res(olution)?$", "image_size", 28),
    (r"multiple_of", "multiple_of", 16),
    (r"eps|epsilon", "eps", 1e-5),
    (r"base|theta", "base", 10000.0),
    (r"dropout|^p$|drop", "dropout", 0.0),
    (r"(^|_)act(ivation)?(_fn|_func|_function)?$", "activation", "gelu"),
    (r"scale", "scale", 1.0),
    (r"dim|d_model|embed|n_embd|hidden_size|features|width|normalized_shape|size|dims|n_state", "dim", 32),
)
SAMPLING_ROLES = ("top_p", "top_k", "min_p", "temperature", "penalty", "guidance")
SIZE_ROLES = {"dim": 512, "hidden": 512, "vocab": 1024, "max_seq": 512, "channels": 256, "out": 512,
              "heads": 8, "kv_heads": 8, "layers": 12, "head_dim": 64, "seq": 64, "image_size": 64,
              "vocab_small": 64}  # defaults above these are shrunk


_FFN = re.compile(r"mlp|ffn|intermediate|d_ff|ff_dim|inner")


def role_of(name: str, siblings: tuple[str, ...] = ()) -> tuple[str, Any] | None:
    """(role, small value) by name; `siblings` are the other arguments of the same signature: next to an
    `mlp_dim`, a `hidden_dim` is the model width, not the feed-forward width."""
    low = name.lower()
    if "chunk" in low:  # `chunk_size_feed_forward = 0`: no chunking, a setting, not a size of the model
        return None
    if re.fullmatch(r"hidden_(dim|size|features)", low) and any(_FFN.search(s.lower()) for s in siblings if s != name):
        return "dim", 32
    for pattern, role, value in ROLES:
        if re.search(pattern, low):
            return role, value
    return None
