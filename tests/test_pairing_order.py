"""Pairing is a function of the code, not of its order: the same files with their classes and functions in reverse
order give the same pairs, the same verdicts and the same JSON (apart from timings and the files' paths)."""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from conftest import ROOT, FIX, parity, without_timings

pytest.importorskip("torch")


def reversed_source(path: Path) -> str:
    """The file with its top-level classes and functions in reverse order (everything else kept in place)."""
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    tree = ast.parse(text)
    defs = [n for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))]
    names = {n.name for n in defs}
    for n in defs:  # a base or decorator naming another top-level def would break when reordered
        header = [*getattr(n, "bases", []), *n.decorator_list]
        assert not {x.id for h in header for x in ast.walk(h) if isinstance(x, ast.Name)} & names, path
    spans = [(min([n.lineno, *(d.lineno for d in n.decorator_list)]) - 1, n.end_lineno) for n in defs]
    blocks = ["".join(lines[a:b]).rstrip() + "\n" for a, b in spans]
    head = "".join(lines[:spans[0][0]]).rstrip() + "\n"
    return head + "\n\n" + "\n\n\n".join(reversed(blocks)) + "".join(lines[spans[-1][1]:])


PAIRS = [
    ("pairing/norms_a.py", "pairing/norms_b.py"),
    ("torch/blocks_a.py", "torch/blocks_b.py"),
    ("numpy/ops_numpy.py", "numpy/ops_torch.py"),
    ("sampling/processors_torch.py", "sampling/processors_numpy.py"),
]


def _json(a: str, b: str) -> dict:
    """The report without timings; `file.py:LINE` locations without their line (moving a class moves its lines)."""
    run = parity(a, "vs", b, "--json", "--quick")
    return json.loads(re.sub(r"(\.py):\d+", r"\1:#", json.dumps(without_timings(run.report))))


@pytest.mark.parametrize("a, b", PAIRS)
def test_reversed_classes_give_identical_json(tmp_path, a, b):
    original = _json(f"{FIX}/{a}", f"{FIX}/{b}")
    copies = []
    for rel in (a, b):
        dest = tmp_path / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(reversed_source(ROOT / FIX / rel))
        copies.append(str(dest))
    flipped = json.loads(json.dumps(_json(*copies)).replace(str(tmp_path), FIX))
    assert flipped == original


def test_a_name_two_classes_share_is_settled_by_structure_in_either_order(tmp_path):
    flipped = tmp_path / "norms_a.py"
    flipped.write_text(reversed_source(ROOT / FIX / "pairing/norms_a.py"))
    for a in (f"{FIX}/pairing/norms_a.py", str(flipped)):
        run = parity(a, "vs", f"{FIX}/pairing/norms_b.py", "--json", "--quick")
        assert [(p["a"]["symbol"], p["b"]["symbol"]) for p in run.report["pairs"]] == [("MyNorm", "Norm")]
        assert run.report["verdict"] == "pass" and run.report["unpaired"] == {"a": ["NormTorch"], "b": []}


def test_explicit_softmax_attention_pairs_with_fused_self_attention():
    run = parity(f"{FIX}/pairing/attn_a.py", "vs", f"{FIX}/pairing/attn_b.py", "--json", "--quick")
    assert [(p["a"]["symbol"], p["b"]["symbol"]) for p in run.report["pairs"]] == [("Attention", "SelfAttention")]
    assert run.report["verdict"] == "pass"


def test_the_same_name_on_unrelated_composites_is_not_a_pair(tmp_path):
    """transformers' MambaBlock is norm + mixer, mlx-lm's MambaBlock is the mixer itself: names alone must not pair
    them (a false FAIL, or a full-size multimodal model against a text model)."""
    from parity_skill.analyze import analyze_file
    from parity_skill.plan.pairing import pair_symbols

    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("import torch.nn as nn\n\n\nclass Mixer(nn.Module):\n    def __init__(self, d):\n        super().__init__()\n"
                 "        self.in_proj = nn.Linear(d, d)\n        self.conv = nn.Conv1d(d, d, 3)\n\n    def forward(self, x):\n"
                 "        return self.in_proj(x)\n\n\nclass Block(nn.Module):\n    def __init__(self, d):\n        super().__init__()\n"
                 "        self.norm = nn.LayerNorm(d)\n        self.mixer = Mixer(d)\n\n    def forward(self, x):\n"
                 "        return x + self.mixer(self.norm(x))\n")
    b.write_text("import torch.nn as nn\n\n\nclass Block(nn.Module):\n    def __init__(self, d):\n        super().__init__()\n"
                 "        self.in_proj = nn.Linear(d, d)\n        self.conv = nn.Conv1d(d, d, 3)\n\n    def forward(self, x):\n"
                 "        return self.in_proj(x)\n")
    pairs = pair_symbols(analyze_file(str(a)), analyze_file(str(b)), None, None)
    assert [(x.name, y.name) for x, y, _ in pairs] == [("Mixer", "Block")]


def test_versioned_and_two_word_model_names_are_prefixes(tmp_path):
    """(Held out for #22.) Ernie4_5DecoderLayer ~ DecoderLayer: the prefix keeps its `_5`; SeedOssDecoderLayer's
    prefix is SeedOss, and mlx-lm's SeedModel pairs with SeedOssModel and Ernie45Model with Ernie4_5Model."""
    from parity_skill.analyze import analyze_file
    from parity_skill.plan.pairing import model_prefix, pair_symbols

    def write(name: str, classes: list[str]) -> str:
        body = "\n".join(f"class {c}(nn.Module):\n    def __init__(self, dim: int):\n        super().__init__()\n"
                         f"        self.fc = nn.Linear(dim, dim)\n\n    def forward(self, x):\n        return self.fc(x)\n"
                         for c in classes)
        path = tmp_path / name
        path.write_text("from torch import nn\n\n\n" + body)
        return str(path)

    ernie = analyze_file(write("modeling_ernie.py", ["Ernie4_5MLP", "Ernie4_5DecoderLayer", "Ernie4_5Model"]))
    port = analyze_file(write("ernie_port.py", ["MLP", "DecoderLayer", "Ernie45Model"]))
    assert model_prefix(ernie) == "Ernie4_5"
    assert {(a.name, b.name) for a, b, _ in pair_symbols(ernie, port, None, None)} == {
        ("Ernie4_5MLP", "MLP"), ("Ernie4_5DecoderLayer", "DecoderLayer"), ("Ernie4_5Model", "Ernie45Model")}
    seed = analyze_file(write("modeling_seed.py", ["SeedOssMLP", "SeedOssAttention", "SeedOssModel"]))
    seed_port = analyze_file(write("seed_port.py", ["MLP", "Attention", "SeedModel"]))
    assert model_prefix(seed) == "SeedOss"
    assert ("SeedOssModel", "SeedModel") in {(a.name, b.name) for a, b, _ in pair_symbols(seed, seed_port, None, None)}
