"""How close to the patched line does the report land? One bug at a time is injected into a copy of a published
port (mlx-lm 0.32.2's Llama), which is compared with transformers' reference exactly as a user would (no hints);
each row says where the report points and whether that is the patched line.

    python benchmarks/localisation.py

Columns: bug, verdict, seconds, the first place the report names (line cause, else root cause, else the first
diagnosis with a location), and whether it is the patched line (`line`), the `__init__` line of a setting the
differing statement reads, named beside it (`line (the setting it reads)`), the patched class (`class`) or
elsewhere.
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

# name -> (pair's B class, original text, patched text)
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
}
A = {"Attention": "LlamaAttention", "TransformerBlock": "LlamaDecoderLayer", "MLP": "LlamaMLP"}


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
    source = Path(package_file("mlx_lm.models.llama")).read_text().replace("from .", "from mlx_lm.models.")
    reference = package_file("transformers.models.llama.modeling_llama")
    print(f"{'bug':<34} {'verdict':<8} {'s':>5}  {'points at':<40} {'is':<8}")
    with tempfile.TemporaryDirectory() as tmp:
        for bug, (cls, before, after) in BUGS.items():
            assert before in source, bug
            stem = re.sub(r"\W+", "_", bug)
            port = Path(tmp) / f"llama_{stem}.py"
            patched = source.replace(before, after, 1)
            port.write_text(patched)
            start = time.perf_counter()
            run = subprocess.run([sys.executable, "-m", "parity_skill", f"{reference}::{A[cls]}", "vs",
                                  f"{port}::{cls}", "--json", "--quick"], capture_output=True, text=True, cwd=ROOT,
                                 timeout=600)
            seconds = time.perf_counter() - start
            try:
                pair = next(p for p in json.loads(run.stdout)["pairs"] if not p.get("variant"))
            except (ValueError, StopIteration):
                print(f"{bug:<34} {'crash':<8} {seconds:5.1f}  {run.stderr.strip()[-60:]}")
                continue
            found = where(pair) or "-"
            start_line = patched[:patched.index(after)].count("\n") + 1
            is_line = found.endswith(f"{port.name}:{start_line}")
            via = [loc for loc in settings(pair) if loc.endswith(f"{port.name}:{start_line}")]
            kind = "line" if is_line else "line (the setting it reads)" if via else "class" if port.name in found \
                else "elsewhere"
            shown = f"{Path(found.rsplit(':', 1)[0]).name}:{found.rsplit(':', 1)[-1]}" if found != "-" else "-"
            print(f"{bug:<34} {pair['verdict']:<8} {seconds:5.1f}  {shown:<40} {kind:<8}", flush=True)


if __name__ == "__main__":
    main()
