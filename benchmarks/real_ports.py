"""Real published ports, run exactly as a user would (no --init/--input hints): verdict and seconds per pair.

    python benchmarks/real_ports.py [--quick] [NAME_FILTER]

References come from transformers (PyTorch), ports from mlx-embeddings, mlx-audio, mlx-image and mlx-lm, installed
at the versions pinned in requirements/ports*.txt. Prints one row per pair: expected verdict, verdict, seconds, and the first
problem when the verdict is not the expected one.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def package_file(module: str) -> str:
    """A module's source path, found without importing it (its package __init__ may pull heavy imports)."""
    import importlib.util

    top, _, rest = module.partition(".")
    spec = importlib.util.find_spec(top)
    base = Path(spec.submodule_search_locations[0])
    path = base.joinpath(*rest.split(".")) if rest else base
    return str(path.with_suffix(".py")) if path.with_suffix(".py").is_file() else str(path / "__init__.py")


HF = "transformers.models"
# (A module, A symbol, B module, B symbol, expected verdict[, hints]): hints are the flags a pair still needs
PAIRS = [
    (f"{HF}.bert.modeling_bert", "BertSelfOutput", "mlx_embeddings.models.bert", "BertSelfOutput", "pass"),
    (f"{HF}.bert.modeling_bert", "BertIntermediate", "mlx_embeddings.models.bert", "BertIntermediate", "pass"),
    (f"{HF}.bert.modeling_bert", "BertOutput", "mlx_embeddings.models.bert", "BertOutput", "pass"),
    (f"{HF}.bert.modeling_bert", "BertSelfAttention", "mlx_embeddings.models.bert", "BertSelfAttention", "pass"),
    (f"{HF}.bert.modeling_bert", "BertAttention", "mlx_embeddings.models.bert", "BertAttention", "pass"),
    (f"{HF}.bert.modeling_bert", "BertLayer", "mlx_embeddings.models.bert", "BertLayer", "pass"),
    (f"{HF}.bert.modeling_bert", "BertEncoder", "mlx_embeddings.models.bert", "BertEncoder", "pass"),
    (f"{HF}.bert.modeling_bert", "BertEmbeddings", "mlx_embeddings.models.bert", "BertEmbeddings", "pass"),
    (f"{HF}.bert.modeling_bert", "BertPooler", "mlx_embeddings.models.bert", "BertPooler", "pass"),
    (f"{HF}.xlm_roberta.modeling_xlm_roberta", "XLMRobertaLayer", "mlx_embeddings.models.xlm_roberta",
     "XLMRobertaLayer", "pass"),
    (f"{HF}.xlm_roberta.modeling_xlm_roberta", "XLMRobertaSelfAttention", "mlx_embeddings.models.xlm_roberta",
     "XLMRobertaSelfAttention", "pass"),
    # a real difference: mlx-embeddings uses nn.GELU(approx="precise") (tanh), transformers the exact erf GELU
    (f"{HF}.modernbert.modeling_modernbert", "ModernBertMLP", "mlx_embeddings.models.modernbert", "ModernBertMLP",
     "fail"),
    (f"{HF}.modernbert.modeling_modernbert", "ModernBertEmbeddings", "mlx_embeddings.models.modernbert",
     "ModernBertEmbeddings", "pass"),
    # a real difference at the edge: transformers pads inputs shorter than the reflect padding first, mlx-audio's
    # _pad1d does not, so B raises on a sequence of length 1 (every other check passes)
    (f"{HF}.encodec.modeling_encodec", "EncodecConv1d", "mlx_audio.codec.models.encodec.encodec", "EncodecConv1d",
     "fail"),
    (f"{HF}.encodec.modeling_encodec", "EncodecResnetBlock", "mlx_audio.codec.models.encodec.encodec",
     "EncodecResnetBlock", "fail"),
    (f"{HF}.encodec.modeling_encodec", "EncodecLSTM", "mlx_audio.codec.models.encodec.encodec", "EncodecLSTM",
     "pass"),
    # a real difference: transformers ViT normalises with the config's eps 1e-12, mlx-image's EncoderBlock with
    # nn.LayerNorm's default 1e-5 (with --init config.layer_norm_eps=1e-5 the pair passes)
    (f"{HF}.vit.modeling_vit", "ViTLayer", "mlxim.model.vit.vit", "EncoderBlock", "fail"),
    # transformers' Conv1D stores (in, out): found from its bias, mapped transposed. GPT2MLP takes its width as an
    # argument (its block passes 4 * n_embd); mlx-lm's MLP derives 4 * n_embd itself: A is built with that width
    (f"{HF}.gpt2.modeling_gpt2", "GPT2MLP", "mlx_lm.models.gpt2", "MLP", "pass"),
    # OpenAI-style names on the port (query/key/value/out, attn_ln, mlp1/mlp2); its MLP width is 4 * n_state,
    # hard-coded: A's config.encoder_ffn_dim follows. Attention returns (out, (k, v), qk) vs (out, probs)
    (f"{HF}.whisper.modeling_whisper", "WhisperAttention", "mlx_audio.stt.models.whisper.whisper",
     "MultiHeadAttention", "pass"),
    (f"{HF}.whisper.modeling_whisper", "WhisperEncoderLayer", "mlx_audio.stt.models.whisper.whisper",
     "ResidualAttentionBlock", "pass"),
    # transformers >= 4.48 layers take position_embeddings=(cos, sin) from the model's rotary module and a required
    # Optional mask; mlx-lm applies RoPE inside the layer: cos/sin come from the file's own rotary class
    (f"{HF}.llama.modeling_llama", "LlamaAttention", "mlx_lm.models.llama", "Attention", "pass"),
    (f"{HF}.llama.modeling_llama", "LlamaMLP", "mlx_lm.models.llama", "MLP", "pass"),
    (f"{HF}.llama.modeling_llama", "LlamaDecoderLayer", "mlx_lm.models.llama", "TransformerBlock", "pass"),
    (f"{HF}.qwen2.modeling_qwen2", "Qwen2DecoderLayer", "mlx_lm.models.qwen2", "TransformerBlock", "pass"),
    (f"{HF}.qwen3.modeling_qwen3", "Qwen3DecoderLayer", "mlx_lm.models.qwen3", "TransformerBlock", "pass"),
    (f"{HF}.phi3.modeling_phi3", "Phi3DecoderLayer", "mlx_lm.models.phi3", "TransformerBlock", "pass"),
    (f"{HF}.gemma2.modeling_gemma2", "Gemma2DecoderLayer", "mlx_lm.models.gemma2", "TransformerBlock", "pass"),
    (f"{HF}.cohere.modeling_cohere", "CohereDecoderLayer", "mlx_lm.models.cohere", "TransformerBlock", "pass"),
    (f"{HF}.granite.modeling_granite", "GraniteAttention", "mlx_lm.models.granite", "Attention", "pass"),
    # a real difference: Gemma's config chooses ACT2FN["gelu_pytorch_tanh"], mlx-lm's gemma MLP calls exact nn.gelu
    (f"{HF}.gemma.modeling_gemma", "GemmaMLP", "mlx_lm.models.gemma", "MLP", "fail"),
    # mlx-vlm's DINOv2: a fused qkv against separate query/key/value one level deeper (attention.attention.*),
    # LayerScale's lambda1 vs gamma, a patchifying conv (kernel 14) in each layout
    (f"{HF}.dinov2.modeling_dinov2", "Dinov2Layer", "mlx_vlm.models.dinov2.dinov2", "Block", "pass"),
    (f"{HF}.dinov2.modeling_dinov2", "Dinov2Attention", "mlx_vlm.models.dinov2.dinov2", "Attention", "pass"),
    (f"{HF}.dinov2.modeling_dinov2", "Dinov2PatchEmbeddings", "mlx_vlm.models.dinov2.dinov2", "PatchEmbed", "pass"),
    # mixture of experts: per-expert Linears against mlx-lm's stacked SwitchGLU, one config dict for both sides
    (f"{HF}.qwen2_moe.modeling_qwen2_moe", "Qwen2MoeSparseMoeBlock", "mlx_lm.models.qwen2_moe",
     "Qwen2MoeSparseMoeBlock", "pass"),
    (f"{HF}.olmoe.modeling_olmoe", "OlmoeDecoderLayer", "mlx_lm.models.olmoe", "TransformerBlock", "pass"),
    (f"{HF}.cohere2.modeling_cohere2", "Cohere2DecoderLayer", "mlx_lm.models.cohere2", "TransformerBlock", "pass"),
    # held out for #22 (measured before being added): Mixtral, Mamba, Gemma 3, SigLIP
    (f"{HF}.mixtral.modeling_mixtral", "MixtralAttention", "mlx_lm.models.mixtral", "MixtralAttention", "pass"),
    (f"{HF}.mixtral.modeling_mixtral", "MixtralSparseMoeBlock", "mlx_lm.models.mixtral", "MixtralSparseMoeBlock",
     "pass"),
    (f"{HF}.mixtral.modeling_mixtral", "MixtralDecoderLayer", "mlx_lm.models.mixtral", "MixtralDecoderLayer", "pass"),
    (f"{HF}.mamba.modeling_mamba", "MambaMixer", "mlx_lm.models.mamba", "MambaBlock", "pass"),
    (f"{HF}.mamba.modeling_mamba", "MambaBlock", "mlx_lm.models.mamba", "ResidualBlock", "pass"),
    (f"{HF}.gemma3.modeling_gemma3", "Gemma3MLP", "mlx_lm.models.gemma3_text", "MLP", "pass"),
    (f"{HF}.gemma3.modeling_gemma3", "Gemma3DecoderLayer", "mlx_lm.models.gemma3_text", "TransformerBlock", "pass"),
    # a real difference: mlx-lm rounds the embedding scale sqrt(hidden_size) to bfloat16 (as Gemma's own reference
    # does), transformers keeps it in float32 (relative 1.2e-4); the depth is one whole sliding_window_pattern (6)
    (f"{HF}.gemma3.modeling_gemma3", "Gemma3TextModel", "mlx_lm.models.gemma3_text", "Gemma3Model", "fail"),
    # held out this round, added after their no-hint measurement: DeepSeek-V3 keeps as many kv heads as heads;
    # mlx-lm's Jamba renormalises its top-k routing weights (softmax over the chosen experts' logits) where
    # transformers takes the top-k of the softmax over all experts: a real difference, in the MoE block
    (f"{HF}.deepseek_v3.modeling_deepseek_v3", "DeepseekV3ForCausalLM", "mlx_lm.models.deepseek_v3", "Model", "pass"),
    (f"{HF}.jamba.modeling_jamba", "JambaForCausalLM", "mlx_lm.models.jamba", "Model", "fail"),
    # DBRX's package default config has clip_qkv=None, which mlx-lm's port negates (it raises): given a config as a
    # user has one (clip_qkv set), it passes, the experts' fused (E*F, D) tensors traced through mlx-lm's sanitize
    (f"{HF}.dbrx.modeling_dbrx", "DbrxForCausalLM", "mlx_lm.models.dbrx", "Model", "pass",
     ("--config", str(ROOT / "benchmarks" / "configs" / "dbrx_small.json"))),
    # LFM2's package default config has no convolution layer (full_attn_idxs None: all attention), which mlx-lm's
    # port assumes it has (it raises); a config with one (layers 0 and 2 convolutions) passes, conv weights traced
    # through mlx-lm's sanitize (channels last)
    (f"{HF}.lfm2.modeling_lfm2", "Lfm2ForCausalLM", "mlx_lm.models.lfm2", "Model", "pass",
     ("--config", str(ROOT / "benchmarks" / "configs" / "lfm2_small.json"))),
    (f"{HF}.siglip.modeling_siglip", "SiglipAttention", "mlx_embeddings.models.siglip", "Attention", "pass"),
    (f"{HF}.siglip.modeling_siglip", "SiglipEncoderLayer", "mlx_embeddings.models.siglip", "EncoderLayer", "pass"),
    # the image is the config's own image size, shrunk to a grid of 3 x 3 patches (the position table's rows)
    (f"{HF}.siglip.modeling_siglip", "SiglipVisionEmbeddings", "mlx_embeddings.models.siglip", "VisionEmbeddings",
     "pass"),
    (f"{HF}.siglip.modeling_siglip", "SiglipVisionTransformer", "mlx_embeddings.models.siglip",
     "SiglipVisionTransformer", "pass"),
    # held out this round (Exaone 4 last round), added after their no-hint measurement. Exaone 4's block takes
    # is_local, which only ExaoneModel derives: the block is taken from that model built small
    (f"{HF}.exaone4.modeling_exaone4", "Exaone4DecoderLayer", "mlx_lm.models.exaone4", "TransformerBlock", "pass"),
    (f"{HF}.ernie4_5.modeling_ernie4_5", "Ernie4_5DecoderLayer", "mlx_lm.models.ernie4_5", "DecoderLayer", "pass"),
    # a real difference: transformers 4.57 keeps XIELU's alpha/beta/eps in bfloat16 inside a float32 model (5.x holds
    # them in float32, as mlx-lm does); its alpha is (1,) where mlx-lm's is a scalar: mapped by reshaping
    (f"{HF}.apertus.modeling_apertus", "ApertusDecoderLayer", "mlx_lm.models.apertus", "ApertusDecoderLayer", "fail"),
    # a real difference in training only: transformers' Embedding has padding_idx=pad_token_id (that row gets no
    # gradient), mlx-lm's none; outputs agree, the diagnosis names the row (frozen_rows)
    (f"{HF}.seed_oss.modeling_seed_oss", "SeedOssModel", "mlx_lm.models.seed_oss", "SeedModel", "fail"),
    # the package default config has n_routed_experts=None, which A's own constructor cannot take: a config as a user
    # has one (small, MoE from layer 1)
    (f"{HF}.dots1.modeling_dots1", "Dots1ForCausalLM", "mlx_lm.models.dots1", "Model", "pass",
     ("--config", str(ROOT / "benchmarks" / "configs" / "dots1_small.json"))),
    # mlx-image's BasicBlock only adds its residual when in == out channels (no downsample given): one hint
    (f"{HF}.resnet.modeling_resnet", "ResNetBasicLayer", "mlxim.model.resnet.resnet", "BasicBlock", "pass",
     ("--init", "out_channels=16")),
]


def run_pair(a: str, b: str, extra: list[str]) -> tuple[dict | None, str, float]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "parity_skill", a, "vs", b, "--json", *extra], capture_output=True,
                          text=True, cwd=ROOT, timeout=600)
    seconds = time.perf_counter() - start
    try:
        return json.loads(proc.stdout), proc.stderr.strip(), seconds
    except json.JSONDecodeError:
        return None, (proc.stderr or proc.stdout).strip()[-300:], seconds


def problem(report: dict | None, err: str) -> str:
    if report is None:
        return err
    for pair in report.get("pairs", []):
        if pair.get("error"):
            return pair["error"]
        bad = [c for c in pair.get("checks", []) if c["status"] not in ("pass", "skip")]
        if bad:
            return f"{bad[0]['name']}: {bad[0]['message']}"
    return err.splitlines()[-1] if err else ""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("filter", nargs="?", default="")
    args = parser.parse_args()
    extra = ["--quick"] if args.quick else []
    print(f"{'pair':<58} {'hints':<24} {'expect':<6} {'got':<6} {'s':>5}  problem")
    for ma, sa, mb, sb, expect, *hints in PAIRS:
        hints = list(hints[0]) if hints else []
        name = f"{sa} vs {mb.split('.')[0]}::{sb}"
        if args.filter not in name:
            continue
        report, err, seconds = run_pair(f"{package_file(ma)}::{sa}", f"{package_file(mb)}::{sb}", extra + hints)
        verdict = report.get("verdict", "?") if report else "crash"
        why = "" if verdict == expect else problem(report, err)[:160]
        print(f"{name:<58} {' '.join(hints) or 'none':<24} {expect:<6} {verdict:<6} {seconds:5.1f}  {why}",
              flush=True)


if __name__ == "__main__":
    main()
