"""Analysis speed: seconds to analyse large real files, whole and for one requested symbol (what a run reads).

    python benchmarks/analysis.py [--repeat 3]

For each file: its lines, the whole-file analysis (every symbol: `parity-skill a.py vs b.py`), and a request for
one symbol (`a.py::X vs ...`: that symbol and what it reaches, reach.py), the best of --repeat runs each, with the
analysis cache cleared between runs. The request is the file's top-level class named below, or for files without
one in the table, its largest module class (the worst case). Target (issue #26): a request under 0.5 s per 5,000
lines of the file.
"""
from __future__ import annotations

import argparse
import ast
import importlib.util
import time
from pathlib import Path

from parity_skill.analyze import reader

FILES = [  # (module, symbol requested or None for the largest module class)
    ("transformers.modeling_utils", "PreTrainedAudioTokenizerBase"),
    ("transformers.generation.utils", None),
    ("transformers.models.gpt2.modeling_gpt2", "GPT2Block"),
    ("transformers.models.llama.modeling_llama", "LlamaDecoderLayer"),
    ("transformers.models.mixtral.modeling_mixtral", "MixtralSparseMoeBlock"),
    ("transformers.models.whisper.modeling_whisper", "WhisperEncoderLayer"),
    ("mlx_lm.models.llama", "TransformerBlock"),
]


def source_file(module: str) -> Path | None:
    top, _, rest = module.partition(".")
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]).joinpath(*rest.split(".")).with_suffix(".py")
    return path if path.is_file() else None


def largest_class(path: Path) -> str | None:
    tree = ast.parse(path.read_text())
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    return max(classes, key=lambda n: n.end_lineno - n.lineno).name if classes else None


def best(path: Path, only: tuple[str, ...], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        reader._CACHE.clear()
        start = time.perf_counter()
        reader.analyze_file(str(path), only)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'file':<46} {'lines':>6} {'whole s':>8} {'request':<30} {'request s':>9} {'s/5k lines':>10}")
    for module, symbol in FILES:
        path = source_file(module)
        if path is None:
            print(f"{module:<46} not installed")
            continue
        symbol = symbol or largest_class(path)
        lines = len(path.read_text().splitlines())
        whole = best(path, (), args.repeat)
        request = best(path, (symbol,), args.repeat)
        print(f"{module:<46} {lines:>6} {whole:>8.3f} {symbol:<30} {request:>9.3f} {request * 5000 / lines:>10.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
