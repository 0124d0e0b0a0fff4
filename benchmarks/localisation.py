"""How close to the patched line does the report land? One bug at a time is injected into a copy of a published
port (mlx-lm 0.32.2's Llama; its Qwen2 for a dropped bias, as Llama has none), which is compared with transformers' reference exactly as a user would (no hints);
each row says where the report points and whether that is the patched line.

    python benchmarks/localisation.py

Columns: bug, verdict, seconds, the first place the report names (line cause, else root cause, else the first
diagnosis with a location), and whether it is the patched line (`line`), the `__init__` line of a setting the
differing statement reads, named beside it (`line (the setting it reads)`), the patched class with the patched
line among the statements listed before the differing one (B values with no counterpart in A), the patched class
(`class`) or elsewhere.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from real_ports import package_file  # noqa: E402

# name -> (pair's B class, original text, patched text[, family[, "variant": judged on the causal-mask pair]]);
# a patched block's bug line is the one marked `# BUG`, else any of its lines
BUGS = {
    "attention scale": ("Attention", "self.scale = head_dim**-0.5", "self.scale = head_dim**-1.0"),
    "eps": ("TransformerBlock", "self.input_layernorm = nn.RMSNorm(args.hidden_size, eps=args.rms_norm_eps)",
            "self.input_layernorm = nn.RMSNorm(args.hidden_size, eps=args.rms_norm_eps * 100)"),
    "RoPE convention": ("Attention", "queries = self.rope(queries)\n",
                        "queries = self.rope(queries.reshape(*queries.shape[:-1], 2, -1).swapaxes(-1, -2)"
                        ".reshape(queries.shape))\n"),
    "missing residual": ("TransformerBlock", "        out = h + r\n", "        out = r\n"),
    "MLP activation": ("MLP", "return self.down_proj(swiglu(self.gate_proj(x), self.up_proj(x)))",
                       "return self.down_proj(nn.gelu(self.gate_proj(x)) * self.up_proj(x))"),
    "values from the keys": ("Attention", "queries, keys, values = self.q_proj(x), self.k_proj(x), self.v_proj(x)",
                             "queries, keys, values = self.q_proj(x), self.k_proj(x), self.k_proj(x)"),
    # the same bugs with the pair one level up: the difference starts inside a submodule of the pair
    "MLP activation, layer pair": ("TransformerBlock",
                                   "return self.down_proj(swiglu(self.gate_proj(x), self.up_proj(x)))",
                                   "return self.down_proj(swiglu(self.up_proj(x), self.gate_proj(x)))"),
    "values from the keys, layer pair": ("TransformerBlock",
                                         "queries, keys, values = self.q_proj(x), self.k_proj(x), self.v_proj(x)",
                                         "queries, keys, values = self.q_proj(x), self.k_proj(x), self.k_proj(x)"),
    "softmax axis": ("Attention", "        output = scaled_dot_product_attention(\n"
                                  "            queries, keys, values, cache=cache, scale=self.scale, mask=mask\n"
                                  "        )\n",
                     "        n = self.n_heads // self.n_kv_heads\n"
                     "        output = mx.softmax((queries * self.scale) @ mx.repeat(keys, n, axis=1).swapaxes(-1, -2), "
                     "axis=-2) @ mx.repeat(values, n, axis=1)\n"),
    "transposed weight": ("Attention", "return self.o_proj(output)", "return output @ self.o_proj.weight"),
    # an explicit attention whose causal mask fills with 0 instead of -inf; judged on the causal-mask pair
    "wrong mask fill": ("Attention", "        output = scaled_dot_product_attention(\n"
                                     "            queries, keys, values, cache=cache, scale=self.scale, mask=mask\n"
                                     "        )\n",
                        "        n = self.n_heads // self.n_kv_heads\n"
                        "        scores = (queries * self.scale) @ mx.repeat(keys, n, axis=1).swapaxes(-1, -2)\n"
                        "        if mask is not None:\n"
                        "            causal = mx.tril(mx.ones(scores.shape[-2:], dtype=mx.bool_))\n"
                        "            scores = mx.where(causal, scores, 0.0)  # BUG\n"
                        "        output = mx.softmax(scores, axis=-1) @ mx.repeat(values, n, axis=1)\n", "llama",
                        "variant"),
    # mlx-lm's Qwen2 (its attention projections have biases) against transformers' Qwen2
    "dropped bias": ("Attention", "self.v_proj = nn.Linear(dim, n_kv_heads * head_dim, bias=True)",
                     "self.v_proj = nn.Linear(dim, n_kv_heads * head_dim, bias=False)", "qwen2"),
}
A = {"Attention": "Attention", "TransformerBlock": "DecoderLayer", "MLP": "MLP"}
PREFIX = {"llama": "Llama", "qwen2": "Qwen2"}


def where(pair: dict) -> str | None:
    if pair.get("line_cause"):
        return pair["line_cause"]["b_location"]
    if pair.get("root_cause"):
        return pair["root_cause"].get("b_location")
    return next((d["location"] for d in pair.get("diagnosis", []) if d.get("location")), None)


def settings(pair: dict) -> list[str]:
    """The constructor lines the differing statement reads (`self.scale = ...`), as the report names them."""
    return [s["location"] for s in ((pair.get("line_cause") or {}).get("settings") or {}).get("b", [])]


def main() -> None:
    print(f"{'bug':<34} {'verdict':<8} {'s':>5}  {'points at':<40} {'is':<8}")
    with tempfile.TemporaryDirectory() as tmp:
        for bug, (cls, before, after, *more) in BUGS.items():
            family = more[0] if more else "llama"
            variant = "variant" in more[1:]
            source = Path(package_file(f"mlx_lm.models.{family}")).read_text().replace("from .", "from mlx_lm.models.")
            reference = package_file(f"transformers.models.{family}.modeling_{family}")
            assert before in source, bug
            stem = re.sub(r"\W+", "_", bug)
            port = Path(tmp) / f"{family}_{stem}.py"
            patched = source.replace(before, after, 1)
            port.write_text(patched)
            start = time.perf_counter()
            run = subprocess.run([sys.executable, "-m", "parity_skill", f"{reference}::{PREFIX[family]}{A[cls]}", "vs",
                                  f"{port}::{cls}", "--json", "--quick"], capture_output=True, text=True, cwd=ROOT,
                                 timeout=600)
            seconds = time.perf_counter() - start
            try:
                pair = next(p for p in json.loads(run.stdout)["pairs"] if bool(p.get("variant")) == variant)
            except (ValueError, StopIteration):
                print(f"{bug:<34} {'crash':<8} {seconds:5.1f}  {run.stderr.strip()[-60:]}")
                continue
            found = where(pair) or "-"
            start_line = patched[:patched.index(after)].count("\n") + 1
            marked = [k for k, text in enumerate(after.rstrip("\n").split("\n")) if "# BUG" in text]
            lines = {f"{port}:{start_line + k}" for k in (marked or range(after.rstrip("\n").count("\n") + 1))}
            is_line = found in lines
            via = [loc for loc in settings(pair) if loc in lines]
            before = [loc for loc in (pair.get("line_cause") or {}).get("b_since", []) if loc in lines]
            kind = "line" if is_line else "line (the setting it reads)" if via else \
                "class (the line listed before it)" if before else "class" if port.name in found else "elsewhere"
            shown = f"{Path(found.rsplit(':', 1)[0]).name}:{found.rsplit(':', 1)[-1]}" if found != "-" else "-"
            print(f"{bug:<34} {pair['verdict']:<8} {seconds:5.1f}  {shown:<40} {kind:<8}", flush=True)


if __name__ == "__main__":
    main()
