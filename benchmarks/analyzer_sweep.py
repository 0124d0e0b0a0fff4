"""Run the analyzer over every valid Python file of the standard library, numpy, mlx and torch.

    python benchmarks/analyzer_sweep.py          # the full sweep (about 7 minutes on 2 cores)
    python benchmarks/analyzer_sweep.py --quick  # the subset the test suite sweeps (every fourth file of a smaller set)

Prints files, valid files, failures (any exception, including a clear InputError: valid Python must analyze),
the time, and the slowest files. The analyzer never imports these files; it only reads them.
"""
from __future__ import annotations

import ast
import importlib.util
import multiprocessing
import os
import sys
import sysconfig
import time


def roots(quick: bool) -> list[str]:
    """Folders to sweep: stdlib, numpy, mlx, torch (quick: torch/nn and torch's top level only)."""
    out = [sysconfig.get_paths()["stdlib"]]
    for name in ("numpy", "mlx", "torch"):
        spec = importlib.util.find_spec(name)
        if spec and spec.submodule_search_locations:
            out.append(list(spec.submodule_search_locations)[0])
    if quick and out[-1].endswith("torch"):
        torch = out.pop()
        out.append(os.path.join(torch, "nn"))
        out.extend(os.path.join(torch, f) for f in sorted(os.listdir(torch)) if f.endswith(".py"))
    return out


def files(paths: list[str]) -> list[str]:
    found = []
    for root in paths:
        if root.endswith(".py"):
            found.append(root)
            continue
        for folder, dirs, names in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d not in ("site-packages", "__pycache__"))
            found.extend(os.path.join(folder, n) for n in sorted(names) if n.endswith(".py"))
    return found


def check(path: str) -> tuple[str, str | None, float] | None:
    """(path, error or None, seconds); None for files that are not valid Python (test data)."""
    from parity_skill.analyze import analyze_file

    try:
        with open(path, "rb") as fh:
            ast.parse(fh.read())
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    start = time.perf_counter()
    try:
        analyze_file(path)
        error = None
    except Exception as exc:  # noqa: BLE001 - any exception on valid Python is a failure of the sweep
        error = f"{type(exc).__name__}: {exc}"
    return path, error, time.perf_counter() - start


def sweep(quick: bool, processes: int = 2) -> tuple[int, list[tuple[str, str | None, float]]]:
    paths = files(roots(quick))
    if quick:  # every fourth file, in a stable order: the suite's share of the sweep (~40 s on 2 cores)
        paths = paths[::4]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        results = [r for r in pool.imap_unordered(check, paths, chunksize=16) if r]
    return len(paths), results


def main() -> int:
    quick = "--quick" in sys.argv
    start = time.perf_counter()
    total, results = sweep(quick)
    failed = [r for r in results if r[1]]
    print(f"{'quick' if quick else 'full'} sweep: {total} files, {len(results)} valid Python, {len(failed)} raised, "
          f"{time.perf_counter() - start:.0f} s")
    for path, _, seconds in sorted(results, key=lambda r: -r[2])[:5]:
        print(f"  slowest {seconds:6.2f} s  {path}")
    for path, error, _ in failed:
        print(f"  RAISED {path}: {error[:200]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
