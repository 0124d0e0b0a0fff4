"""Analysis reads code without importing it; every finding carries path:line."""
from __future__ import annotations

import textwrap

import pytest

from parity_skill.analyze import analyze_file
from parity_skill.errors import InputError


def write(tmp_path, source: str, name: str = "m.py") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return str(path)


def test_module_with_aliases_params_buffers_and_ops(tmp_path):
    path = write(tmp_path, """
        import torch
        from torch import nn
        import torch.nn.functional as F

        class Block(nn.Module):
            def __init__(self, dim: int, hidden: int = 64, *, eps=1e-6):
                super().__init__()
                self.fc = nn.Linear(dim, hidden, bias=False)
                self.scale = nn.Parameter(torch.ones(dim))
                self.register_buffer("inv_freq", torch.arange(4), persistent=False)
                self.register_buffer("mask", torch.ones(4))
                self.act = nn.GELU(approximate="tanh")

            def forward(self, x, mask=None):
                B, T, C = x.shape
                h = self.fc(x).float()
                torch.manual_seed(0)
                h = h + torch.randn_like(h).cuda()
                return F.softmax(h @ h.transpose(-1, -2), dim=-1)
    """)
    fa = analyze_file(path)
    assert fa.framework == "torch"
    (sym,) = fa.symbols
    assert (sym.name, sym.kind, sym.framework) == ("Block", "module", "torch")
    assert [(a.name, a.annotation, a.default, a.kind) for a in sym.init_args] == [
        ("dim", "int", None, "positional"), ("hidden", "int", "64", "positional"), ("eps", None, "1e-6", "kwonly")]
    assert [a.name for a in sym.call_args] == ["x", "mask"]
    fc = sym.submodules[0]
    assert (fc.attr, fc.type_name, fc.args, fc.kwargs) == ("fc", "torch.nn.Linear", ("dim", "hidden"), (("bias", "False"),))
    tensors = {t.name: (t.kind, t.persistent) for t in sym.tensors}
    assert tensors == {"scale": ("parameter", True), "inv_freq": ("buffer", False), "mask": ("buffer", True)}
    ops = {(o.op, o.kwarg("approximate")) for o in sym.ops}
    assert ("gelu", '"tanh"') in ops and ("softmax", None) in ops and ("matmul", None) in ops and ("cast", None) in ops
    kinds = {f.kind for f in sym.findings}
    assert kinds == {"seed", "random", "device"}
    device = next(f for f in sym.findings if f.kind == "device")
    assert device.location == f"{path}:19"
    hints = {(h.arg, h.kind, h.value) for h in sym.input_hints}
    assert ("x", "unpack", "3") in hints and ("x", "consumer", "fc") in hints


def test_dataclass_config_and_functions(tmp_path):
    path = write(tmp_path, """
        from dataclasses import dataclass
        import numpy as np

        @dataclass
        class Args:
            dim: int = 4096
            n_heads: int = 32

        def softmax(x, axis=-1):
            e = np.exp(x - x.max(axis=axis, keepdims=True))
            return e / e.sum(axis=axis, keepdims=True)

        def _private(x):
            return x
    """)
    fa = analyze_file(path)
    assert fa.framework == "numpy"
    assert [(f.name, f.default) for f in fa.config("Args").fields] == [("dim", "4096"), ("n_heads", "32")]
    (fn,) = fa.symbols
    assert (fn.name, fn.kind, fn.framework) == ("softmax", "function", "numpy")
    assert fa.helpers == ("_private",)


def test_mlx_module_parameters_are_public_arrays(tmp_path):
    path = write(tmp_path, """
        import mlx.core as mx
        import mlx.nn as nn

        class Norm(nn.Module):
            def __init__(self, dims: int):
                super().__init__()
                self.weight = mx.ones((dims,))
                self._freqs = mx.arange(4)
                self.rope = nn.RoPE(8, traditional=True)

            def __call__(self, x):
                return mx.fast.rms_norm(x, self.weight, 1e-5)
    """)
    (sym,) = analyze_file(path).symbols
    assert sym.framework == "mlx" and [t.name for t in sym.tensors] == ["weight"]
    assert {(o.op, o.kwarg("traditional")) for o in sym.ops} >= {("rope", "True"), ("rms_norm", None)}


def test_syntax_error_names_path_and_line(tmp_path):
    path = write(tmp_path, "def f(:\n    pass\n")
    with pytest.raises(InputError, match=r"m\.py:1: syntax error"):
        analyze_file(path)


def test_missing_file():
    with pytest.raises(InputError, match="no such file"):
        analyze_file("does/not/exist.py")


def test_static_diff_softmax_precise_and_rope_convention(tmp_path):
    from parity_skill.plan.static_diff import static_diff

    a = write(tmp_path, """
        import torch
        import torch.nn as nn

        class Att(nn.Module):
            def forward(self, s):
                x1, x2 = s.chunk(2, dim=-1)
                r = torch.cat((-x2, x1), dim=-1)
                return torch.softmax(r, dim=-1)
    """, "a.py")
    b = write(tmp_path, """
        import mlx.core as mx
        import mlx.nn as nn

        class Att(nn.Module):
            def __init__(self):
                super().__init__()
                self.rope = nn.RoPE(8, traditional=True)

            def __call__(self, s):
                return mx.softmax(self.rope(s), axis=-1, precise=True)
    """, "b.py")
    fa, fb = analyze_file(a), analyze_file(b)
    found = {f["kind"]: f for f in static_diff(fa.symbols[0], fa, fb.symbols[0], fb)}
    assert found["permutation"]["a_location"] == f"{a}:8" and found["permutation"]["b_location"] == f"{b}:8"
    assert "precise=True" in found["precision"]["message"] and found["precision"]["b_location"] == f"{b}:11"
