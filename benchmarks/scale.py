"""Scale: a 12-layer GPT-2-size stack (d=768, 12 heads, 85 M parameters, 340 MB in fp32) through the full default
check matrix with localisation (--isolate traces every submodule), A with a fused qkv and explicit causal
attention, B with separate q/k/v and scaled_dot_product_attention.

    python benchmarks/scale.py [--layers 12] [--dim 768]

Prints the wall time, the verdict, and the peak RSS (VmHWM, a high-water mark, polled from /proc every 100 ms: at
20 ms the polling itself took a tenth of a core) of every process: the CLI, the worker that imports the framework,
side A and side B (forked from it), and the guardians; and the peak size of the run's memory-backed scratch (the
artifact's large files on /dev/shm: memory no process's RSS shows until it is read). Beside it, the same checks
hand-written in one process (benchmarks/scale_bare.py), run before and after parity-skill in the same invocation
(interleaved, so drift in machine load hits both), and the ratio of the two wall times.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "benchmarks" / "models"


def _status(pid: int) -> dict[str, str]:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _tree(root: int) -> dict[int, int]:
    """pid -> parent pid for every live descendant of root (root included)."""
    out, todo = {root: 0}, [root]
    while todo:
        pid = todo.pop()
        for child in _children(pid):
            out[child] = pid
            todo.append(child)
    return out


def _scratch_bytes() -> int:
    """Bytes in the one-command runs' scratch folders (runtime/data/scratch.py) right now."""
    total = 0
    for folder in Path("/dev/shm").glob("parity-scratch-*"):
        for f in folder.iterdir():
            try:
                total += f.stat().st_size
            except OSError:
                pass
    return total


def _timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--heads", type=int, default=12)
    args = parser.parse_args()
    command = [sys.executable, "-m", "parity_skill", f"{MODELS / 'gpt2_fused.py'}::GPT2Stack", "vs",
               f"{MODELS / 'gpt2_split.py'}::GPT2Stack", "--init", f"dim={args.dim}", "--init", f"heads={args.heads}",
               "--init", f"n_layer={args.layers}", "--isolate", "--level", "model"]
    bare_cmd = [sys.executable, str(ROOT / "benchmarks" / "scale_bare.py"), "--layers", str(args.layers), "--dim",
                str(args.dim), "--heads", str(args.heads)]
    bares = [_timed(bare_cmd)]
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak: dict[int, int] = {}
    roles: dict[int, str] = {proc.pid: "cli"}
    scratch_peak = 0
    while proc.poll() is None:
        scratch_peak = max(scratch_peak, _scratch_bytes())
        for pid, parent in _tree(proc.pid).items():
            status = _status(pid)
            if not status:
                continue
            peak[pid] = max(peak.get(pid, 0), int(status.get("VmHWM", "0 kB").split()[0]))
            if pid not in roles:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                if "-I -S -c" in cmd:
                    roles[pid] = "guardian"
                elif roles.get(parent) == "worker":
                    roles[pid] = "side " + "ab"[sum(1 for r in roles.values() if r.startswith("side"))]
                else:
                    roles[pid] = "worker"
        time.sleep(0.1)
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    bares.append(_timed(bare_cmd))
    params = 12 * args.dim * args.dim * args.layers + 13 * args.dim * args.layers + 2 * args.dim
    weights_mb = params * 4 / 2 ** 20
    verdict = next((ln for ln in out.splitlines() if ln.startswith("Verdict")), err.strip()[-300:])
    print(f"GPT-2-style stack: {args.layers} layers, d={args.dim}, {params / 1e6:.1f} M parameters, "
          f"{weights_mb:.0f} MB in fp32")
    print(f"wall {wall:.1f} s, exit {proc.returncode}, {verdict}")
    bare = sum(bares) / len(bares)
    print(f"bare script (the same checks by hand, one process): {bare:.1f} s (runs {', '.join(f'{b:.1f}' for b in bares)}); "
          f"ratio {wall / bare:.2f}x")
    for pid, kb in sorted(peak.items(), key=lambda item: roles.get(item[0], "")):
        print(f"  {roles.get(pid, '?'):<9} peak RSS {kb / 1024:7.0f} MB  ({kb / 1024 / weights_mb:.2f}x the fp32 weights)")
    mb = scratch_peak / 2 ** 20
    print(f"  scratch   peak     {mb:7.0f} MB  ({mb / weights_mb:.2f}x the fp32 weights, on /dev/shm; 0 where there is none)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
