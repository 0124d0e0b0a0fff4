"""Inputs from the model around a layer: a layer whose forward takes what its model computes (two rotary tables,
one per attention kind) is fed what the enclosing model, built small from the same config, hands it."""
from __future__ import annotations

import pytest

from conftest import fx, parity

pytest.importorskip("torch")
pytest.importorskip("mlx.core")

A = fx("enclosing/dual_rope_torch.py::DualLayer")


def test_a_layer_fed_two_rotary_tables_by_its_model_passes_against_a_port_that_computes_them():
    run = parity(A, "vs", fx("enclosing/dual_rope_mlx.py::DualLayer"), "--json")
    assert run.report["verdict"] == "pass", run.stderr
    recorded = [n for n in run.pair["notes"] if "recorded per call from the model around it: DualModel" in n]
    assert len(recorded) == 2  # position_embeddings_global and position_embeddings_local
    assert run.status("edge:seq_len_1") == "pass" and run.status("batch") == "pass"  # recorded per input shape


def test_the_wrong_rotary_base_on_a_local_layer_fails(tmp_path):
    source = (fx("enclosing/dual_rope_mlx.py")).replace("::DualLayer", "")
    from pathlib import Path

    text = Path(source).read_text()
    bug = "base=args.rope_local_base_freq if is_local else args.rope_theta"
    assert bug in text
    port = tmp_path / "dual_rope_port.py"
    port.write_text(text.replace(bug, "base=args.rope_theta"))
    run = parity(A, "vs", f"{port}::DualLayer", "--json", "--quick")
    assert run.report["verdict"] == "fail" and run.status("forward") == "fail"
    assert run.pair["root_cause"]["b_location"].startswith(str(port))

