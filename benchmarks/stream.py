"""Models larger than memory: `--stream` on a GPT-2-style stack whose fp32 weights are at least twice a memory
limit this benchmark imposes on every process of the run, then again with one block of B broken.

    python benchmarks/stream.py [--limit-mb 1024] [--dim 1024] [--layers 0 (= enough for 2x the limit)]

The limit is enforced by polling each process's resident memory (VmRSS, every 20 ms) and killing the whole run
the moment one process exceeds it (the run then counts as failed). Prints the model size, each side's peak RSS,
the wall time, seconds per block, the verdict, and for the broken B the first divergent block.
"""
from __future__ import annotations

import argparse
import json
import math
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "benchmarks" / "models"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale import _status, _tree  # noqa: E402


def run_limited(command: list[str], limit_mb: float) -> tuple[int, str, float, dict[int, float], bool]:
    """(exit, stdout, wall seconds, {pid: peak RSS MB}, killed for exceeding the limit)."""
    start = time.perf_counter()
    out_file = tempfile.TemporaryFile("w+")  # not a pipe: nobody reads it while the run goes on
    proc = subprocess.Popen(command, cwd=ROOT, stdout=out_file, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    peak: dict[int, float] = {}
    killed = False
    while proc.poll() is None:
        for pid in _tree(proc.pid):
            rss = _status(pid).get("VmRSS")
            if rss:
                peak[pid] = max(peak.get(pid, 0.0), int(rss.split()[0]) / 1024)
                if peak[pid] > limit_mb and not killed:
                    killed = True
                    subprocess.run(["kill", "-9", f"-{proc.pid}"], check=False)
        time.sleep(0.02)
    proc.wait()
    out_file.seek(0)
    return proc.returncode, out_file.read(), time.perf_counter() - start, peak, killed


def broken_copy(folder: Path, layer: int) -> Path:
    """B with one block's second LayerNorm eps changed (1e-5 -> 1e-2): a one-line port bug in one block."""
    source = (MODELS / "gpt2_split.py").read_text()
    marker = "        self.ln_f = nn.LayerNorm(dim)\n"
    path = folder / "gpt2_split_broken.py"
    path.write_text(source.replace(marker, marker + f"        self.h[{layer}].ln_2.eps = 1e-2\n"))
    return path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit-mb", type=float, default=1024)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--layers", type=int, default=0)
    args = parser.parse_args()
    per_layer = (12 * args.dim * args.dim + 13 * args.dim) * 4 / 2 ** 20
    layers = args.layers or math.ceil(2 * args.limit_mb / per_layer)
    weights_mb = layers * per_layer + 2 * args.dim * 4 / 2 ** 20
    print(f"GPT-2-style stack: {layers} layers, d={args.dim}, {weights_mb:.0f} MB of fp32 weights; limit "
          f"{args.limit_mb:.0f} MB per process ({weights_mb / args.limit_mb:.2f}x)")
    with tempfile.TemporaryDirectory() as tmp:
        broken_at = layers // 2
        for label, b_file in (("correct port", MODELS / "gpt2_split.py"),
                              (f"h.{broken_at}.ln_2.eps broken", broken_copy(Path(tmp), broken_at))):
            command = [sys.executable, "-m", "parity_skill", f"{MODELS / 'gpt2_fused.py'}::GPT2Stack", "vs",
                       f"{b_file}::GPT2Stack", "--init", f"dim={args.dim}", "--init", f"heads={args.heads}",
                       "--init", f"n_layer={layers}", "--stream", "--json", "--timeout", "3000"]
            code, out, wall, peak, killed = run_limited(command, args.limit_mb)
            top = max(peak.values(), default=0.0)
            if killed:
                print(f"{label}: KILLED, a process exceeded {args.limit_mb:.0f} MB (peak {top:.0f} MB)")
                continue
            try:
                pair = json.loads(out)["pairs"][0]
            except (ValueError, KeyError, IndexError):
                print(f"{label}: exit {code}, no report: {out[-500:]}")
                continue
            stream = pair.get("stream") or {}
            blocks = [c for c in pair["checks"] if c["name"].startswith("stage:")]
            forward = (stream.get("a") or {}).get("forward")
            print(f"{label}: verdict {pair['verdict'].upper()} (exit {code}), wall {wall:.1f} s, largest process "
                  f"{top:.0f} MB ({top / weights_mb:.2f}x the weights); A {_mb(stream, 'a')}, B {_mb(stream, 'b')}; "
                  f"A's weights written in {(stream.get('a') or {}).get('weights', 0):.1f} s, its forward "
                  f"{forward or 0:.1f} s ({(forward or 0) / max(1, len(blocks)):.3f} s per block)")
            if pair.get("first_divergence"):
                print(f"  first divergence: {pair['first_divergence']}")
    return 0


def _mb(stream: dict, side: str) -> str:
    value = (stream.get(side) or {}).get("peak_rss_mb")
    return f"peak {value:.0f} MB" if value else "peak unknown"


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    raise SystemExit(main())
