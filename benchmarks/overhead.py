"""Wall time of a full parity-skill run next to a bare script that only imports the framework, builds both
modules and runs one forward each. Prints figures; asserts nothing.

    python benchmarks/overhead.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"

BARE_TORCH = """
import importlib.util, sys, torch
def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod); return mod
a = load({a!r}, "a").{sym}(32, 64).eval()
b = load({b!r}, "b").{sym}(32, 64).eval()
x = torch.randn(2, 8, 32)
with torch.no_grad():
    a(x); b(x)
"""

BARE_TORCH_MLX = """
import importlib.util, sys, numpy as np, torch, mlx.core as mx
def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod); return mod
a = load({a!r}, "a").{sym}(32).eval()
b = load({b!r}, "b").{sym}(32)
x = np.random.randn(2, 8, 32).astype(np.float32)
with torch.no_grad():
    a(torch.from_numpy(x))
mx.eval(b(mx.array(x)))
"""

CASES = [
    # (label, A, B, symbol, bare template, extra CLI args)
    ("torch FeedForward, full matrix", FIX / "torch/ffn_module.py", FIX / "torch/ffn_functional.py", "FeedForward",
     BARE_TORCH, []),
    ("torch FeedForward, --quick", FIX / "torch/ffn_module.py", FIX / "torch/ffn_functional.py", "FeedForward",
     BARE_TORCH, ["--quick"]),
    ("torch vs MLX RMSNorm, full matrix", FIX / "mlx/rmsnorm_torch.py", FIX / "mlx/rmsnorm_mlx.py", "RMSNorm",
     BARE_TORCH_MLX, []),
]


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{'case':<36} {'bare (s)':>9} {'parity-skill (s)':>17} {'ratio':>6}")
    for label, a, b, sym, template, extra in CASES:
        if not a.exists() or not b.exists():
            print(f"{label:<36} (fixtures missing)")
            continue
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
            fh.write(template.format(a=str(a), b=str(b), sym=sym))
            bare_script = fh.name
        cli = [sys.executable, "-m", "parity_skill", f"{a}::{sym}", "vs", f"{b}::{sym}", *extra]
        timed([sys.executable, bare_script])  # warm the file cache
        bares, fulls = [], []
        for _ in range(args.repeats):  # interleaved, so drift in machine load hits both alike
            bares.append(timed([sys.executable, bare_script]))
            fulls.append(timed(cli))
        bare, full = statistics.median(bares), statistics.median(fulls)
        print(f"{label:<36} {bare:>9.2f} {full:>17.2f} {full / bare:>6.2f}")
        Path(bare_script).unlink()


if __name__ == "__main__":
    main()
