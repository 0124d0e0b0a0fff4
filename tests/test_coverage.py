"""A PASS says which layer kinds it never exercised: classes the side's own constructors name that the built model
does not hold (LFM2's default config builds no convolution layer; its short-conv block never ran)."""
from __future__ import annotations

from conftest import fx, parity


def _unbuilt(run) -> list[str]:
    return [n for n in run.pair["notes"] if "which the built model does not hold" in n]


def test_a_layer_kind_the_config_does_not_build_is_named():
    run = parity(fx("torch/two_kinds.py::Layer"), "vs", fx("torch/two_kinds.py::Layer"), "--quick", "--json")
    assert run.code == 0
    found = _unbuilt(run)
    assert found and found[0].startswith("A's code can build ShortConv (named in Layer.__init__)")


def test_nothing_is_said_once_the_kind_is_built():
    run = parity(fx("torch/two_kinds.py::Layer"), "vs", fx("torch/two_kinds.py::Layer"), "--quick", "--json",
                 "--init", "convolve=True")
    assert run.code == 0 and not any("ShortConv" in n for n in _unbuilt(run))
