"""Adversarial cases (issue: trust): false-PASS paths, nondeterminism, hijacking names (hangs and orphans:
test_processes.py).

Each test runs the tool as a user would (the CLI, or a subprocess where signals or fresh interpreters matter)."""
from __future__ import annotations

import ast
import builtins
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, fx, parity, without_timings

pytest.importorskip("torch")
TRUST = "trust"
FFN = fx("torch/ffn_module.py")


def cli(*args: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m parity_skill ARGS` in a fresh interpreter."""
    return subprocess.run([sys.executable, "-m", "parity_skill", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)


# ---- 1. non-finite values are never agreement -----------------------------------------------------------------
@pytest.mark.parametrize("extra", [(), ("--quick",), ("--dtypes", "fp32")])
def test_nan_on_both_sides_is_an_error_never_a_pass(extra):
    run = parity(fx(f"{TRUST}/log_a.py"), "vs", fx(f"{TRUST}/log_b.py"), *extra, "--json")
    assert run.code == 2 and run.report["verdict"] == "error"
    assert "is not finite on the default input" in run.report["error"] and "--input" in run.report["error"]


def test_one_side_overflowing_fails_with_side_count_and_index():
    run = parity(fx(f"{TRUST}/softmax_hot_a.py"), "vs", fx(f"{TRUST}/softmax_hot_b.py"), "--quick", "--json")
    assert run.code == 1 and run.status("forward") == "fail"
    fwd = run.check("forward")
    assert fwd["nonfinite_b"] > 0 and fwd["excluded"] == fwd["nonfinite_b"] and not fwd.get("min_tolerance")
    nan = [d for d in run.pair["diagnosis"] if d["kind"] == "nan_inf" and d["check"] == "forward"]
    assert nan and nan[0]["side"] == "B" and nan[0]["count"] == fwd["nonfinite_b"] and len(nan[0]["index"]) == 3
    text = parity(fx(f"{TRUST}/softmax_hot_a.py"), "vs", fx(f"{TRUST}/softmax_hot_b.py"), "--quick").stdout
    line = next(ln for ln in text.splitlines() if ln.startswith("Forward pass:"))
    assert "FAIL" in line and "B non-finite at" in line and "on the finite values" in line


# ---- 2. fresh, deterministic parameters ---------------------------------------------------------------------
def test_torch_empty_parameters_give_identical_json_in_three_processes():
    a = fx(f"{TRUST}/empty_params_a.py")
    reports = [without_timings(json.loads(cli(a, "vs", a, "--json").stdout)) for _ in range(3)]
    assert reports[0]["verdict"] == "pass"
    assert reports[0] == reports[1] == reports[2]


def test_a_dropped_bias_is_found_behind_uninitialised_parameters():
    run = parity(fx(f"{TRUST}/empty_params_a.py"), "vs", fx(f"{TRUST}/empty_params_nobias.py"), "--quick", "--json")
    assert run.code == 1 and run.status("forward") == "fail" and "constant_offset" in run.kinds()


# ---- 3. the ground truth is never the side under test; skipped checks are visible -----------------------------
def test_reference_comes_from_a_only_and_weakened_checks_are_limitations():
    run = parity(fx(f"{TRUST}/ln_fp32_only_a.py"), "vs", fx(f"{TRUST}/ln_eps_b.py"), "--json")
    assert run.code == 1
    for c in run.pair["checks"]:
        assert not str(c.get("reference") or "A").startswith("B"), c
        assert "ill-conditioned" not in c["message"], c  # no exoneration without an exact float64 A
    assert run.status("edge:tiny") == "fail"
    assert any("kept in float32" in line for line in run.report["limitations"])


def test_a_that_upcasts_in_a_layernorm_subclass_still_gets_fp16_and_bf16_checked():
    a, b = fx(f"{TRUST}/upcast_ln_a.py::Block"), fx(f"{TRUST}/upcast_ln_b.py::Block")
    run = parity(a, "vs", b, "--json")
    assert run.code == 0
    assert run.status("fp16") == run.status("bf16") == "pass"
    assert any("ln kept in float32" in line for line in run.pair["limitations"])
    assert run.report["limitations"] == run.pair["limitations"]
    assert "Verdict: PASS with limitations" in parity(a, "vs", b).stdout


def test_skipped_checks_make_a_pass_with_limitations():
    run = parity(fx("numpy/ops_numpy.py::softmax"), "vs", fx("numpy/ops_torch.py::softmax"))
    assert run.code == 0
    assert "Verdict: PASS with limitations: backward" in run.stdout and "not checked" in run.stdout


# ---- 4. exit codes mean what they say ---------------------------------------------------------------------------
@pytest.mark.parametrize("name, call", [("exits_sysexit", "sys.exit(0)"), ("exits_os_exit", "os._exit(0)")])
def test_user_code_ending_the_process_is_exit_2_in_cli_and_emitted_script(tmp_path, name, call):
    script = tmp_path / "check.py"
    run = cli(FFN, "vs", fx(f"adversarial/{name}.py"), "--quick", "--emit", str(script))
    assert run.returncode == 2 and f"user code called {call}" in run.stderr
    rerun = subprocess.run([sys.executable, str(script), "--json"], capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 2 and json.loads(rerun.stdout)["verdict"] == "error"


def test_debug_keeps_exit_2_and_the_json_report():
    run = cli(fx("errors/nope.py"), "vs", FFN, "--json", "--debug")
    assert run.returncode == 2 and json.loads(run.stdout)["verdict"] == "error"
    assert "Traceback" in run.stderr and "nope.py: no such file" in run.stderr


def test_usage_errors_with_json_still_print_a_json_report():
    run = cli(FFN, "vs", FFN, "--level", "bogus", "--json")
    assert run.returncode == 2 and json.loads(run.stdout)["verdict"] == "error" and "--level" in run.stderr


def test_a_crash_names_the_pair_not_a_deleted_script():
    run = parity(FFN, "vs", fx("adversarial/exits_os_exit.py"), "--quick")
    assert "exits_os_exit.py" in run.stderr and "parity_check.py" not in run.stderr


# ---- 5. nothing a file contains can hijack the tool ---------------------------------------------------------
FUZZ = ['a"""b', "x\ny", "back\\slash\\", "it's \"q\"", "\u00f1ame-\u00fc \u2028 \u0000", "-dash",
        "'''" + '"""', '"""; __import__("builtins").PWNED = 1; """', "\r\nimport os\r\n", "\\N{BULLET}", "#",
        "{{ x }}"]


def test_fuzzed_names_render_to_scripts_that_parse_and_execute_nothing(tmp_path):
    from parity_skill.plan.planner import Target
    from parity_skill.render.script import render_script
    from parity_skill.spec import Checks, Implementation, PairSpec, Tolerance

    executed = 0
    for i, name in enumerate(FUZZ):
        impl = Implementation(f"{name}.py", "Layer", "torch", init={"note": name})
        pair = PairSpec(impl, impl, (), (), Checks(("forward",), {"fp32": Tolerance(1e-5, 0)}), (), (name,))
        plan = type("Plan", (), {"pairs": (pair,)})()
        source = render_script(plan, str(tmp_path / f"{name}.py".replace("/", "_").replace("\x00", "")))
        tree = ast.parse(source)
        assert [type(n).__name__ for n in tree.body] == ["Expr", "Import", "ImportFrom", "ImportFrom", "Assign",
                                                         "Assign", "Assign", "If"], name
        namespace: dict = {"__name__": "fuzz", "__file__": str(tmp_path / "x.py")}
        exec(compile(tree, "fuzz", "exec"), namespace)  # module level only: main() is behind __name__
        executed += hasattr(builtins, "PWNED")
        assert namespace["PAIRS"][0].a.file == f"{name}.py" and namespace["PAIRS"][0].notes == (name,)
        assert Target(f"{name}.py", "Layer").display  # the target type accepts it too
    assert executed == 0


@pytest.mark.parametrize("maker, expected", [
    ("fifo", "not a regular file"),
    ("dev_zero", "not a regular file"),
    ("deep", "too deep to analyze"),
])
def test_hostile_files_give_one_clear_line(tmp_path, maker, expected):
    if maker == "fifo":
        path = tmp_path / "x.py"
        os.mkfifo(path)
    elif maker == "dev_zero":
        path = Path("/dev/zero")
    else:
        path = tmp_path / "deep.py"
        path.write_text("x = " + "+".join(["1"] * 5000) + "\n")
    run = cli(str(path), "vs", FFN, timeout=60)  # the timeout only guards against a hang
    assert run.returncode == 2 and expected in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_the_analyzer_never_evaluates_a_huge_default(tmp_path):
    from parity_skill.plan.planner import PlanOptions, Target, build_plan

    src = (ROOT / FFN).read_text().replace("def __init__(self, dim: int, hidden: int, dropout: float = 0.1)",
                                           "def __init__(self, dim: int = 10 ** 10 ** 8, hidden: int = 64)")
    (tmp_path / "huge.py").write_text(src)
    code = ("from parity_skill.plan.planner import PlanOptions, Target, build_plan\n"
            f"build_plan(Target({str(tmp_path / 'huge.py')!r}, 'FeedForward'), Target({FFN!r}), PlanOptions())\n")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=60).returncode == 0
    del PlanOptions, Target, build_plan


def test_a_coding_line_is_honoured(tmp_path):
    path = tmp_path / "latin.py"
    path.write_bytes((ROOT / FFN).read_text().replace("import torch", "# -*- coding: latin-1 -*-\nimport torch  # caf\xe9")
                     .encode("latin-1"))
    assert cli(f"{path}::FeedForward", "vs", FFN, "--quick").returncode == 0


@pytest.mark.parametrize("name", ["layer.v2.py", "my layer's \"q\".py", "\u00f1ame-\u00fc.py", "-dash.py",
                                  "pkg/layer.v2.py"])
def test_any_legal_file_name_is_compared(tmp_path, name):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / name).write_text((ROOT / FFN).read_text())
    run = subprocess.run([sys.executable, "-m", "parity_skill", f"{name}::FeedForward", "vs",
                          str(ROOT / FFN) + "::FeedForward", "--quick"], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    assert run.returncode == 0, run.stderr


@pytest.mark.slow
def test_analyzer_sweep_raises_on_no_valid_file():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from analyzer_sweep import sweep

    total, results = sweep(quick=True)
    failed = [(p, e) for p, e, _ in results if e]
    assert len(results) > 500 and failed == []


def test_an_input_neither_side_uses_is_no_gradient_check_and_one_side_ignoring_it_fails(tmp_path):
    """A block built without cross-attention never reads its memory `xa`: torch gives no gradient, MLX zeros;
    that is not a failure. A port that reads a memory its reference ignores fails, and says so."""
    a, b = fx(f"{TRUST}/unused_memory_torch.py::Block"), fx(f"{TRUST}/unused_memory_mlx.py::Block")
    run = parity(a, "vs", b, "--json", "--quick")
    assert run.report["verdict"] == "pass", [c["message"] for v in run.variants for c in v["checks"]]
    (cross,) = run.variants
    assert all(c["status"] == "pass" for c in cross["checks"])
    port = tmp_path / "reads_memory.py"
    port.write_text((ROOT / fx(f"{TRUST}/unused_memory_mlx.py")).read_text().replace(
        "        return h\n", "        return h + 0.01 * xa.mean() if xa is not None else h\n"))
    broken = parity(a, "vs", f"{port}::Block", "--json", "--quick")
    (cross,) = broken.variants
    backward = next(c for c in cross["checks"] if c["name"] == "backward")
    assert backward["status"] == "fail" and "input grad 'xa': A ignores the input (B's output depends on it)" in \
        backward["message"]


def test_an_ill_conditioned_edge_is_inconclusive_for_correct_kernels_and_still_fails_a_one_pass_variance():
    """A fused LayerNorm with no float64 variant (no float64 truth) against MLX's kernel and a two-pass torch one:
    at a DC offset of 1000 any float32 kernel moves by ~1.6e-4, above the tolerance, so the check is inconclusive
    (a named limitation, with the conditioning floor), never a FAIL; a one-pass variance misses by 0.3 and FAILs."""
    a = fx(f"{TRUST}/fused_layernorm.py::LayerNorm")
    for b in (fx(f"{TRUST}/mlx_layernorm.py::LayerNorm"), fx("torch/layernorm_manual.py::LayerNorm")):
        run = parity(a, "vs", b, "--json")
        edge = run.check("edge:offset")
        assert run.report["verdict"] == "pass" and edge["status"] == "inconclusive", edge["message"]
        assert edge["condition"]["floor"] > edge["condition"]["tolerance"] and edge["condition"]["factor"] == 4.0
        assert any(line.startswith("edge:offset inconclusive:") for line in run.pair["limitations"])
    broken = parity(a, "vs", fx("torch/layernorm_onepass.py::LayerNorm"), "--json")
    assert broken.status("edge:offset") == "fail" and broken.code == 1


def test_the_conditioning_rule():
    from parity_skill.runtime.judging import condition

    assert condition.judge(1e-4, 3e-5, 1.6e-4) == "inconclusive"  # the floor itself exceeds the tolerance
    assert condition.judge(5e-5, 3e-5, 2e-5) == "pass"  # beyond the tolerance, within 4x a floor below it
    assert condition.judge(0.3, 3e-5, 1.6e-4) is None  # far beyond what any correct kernel differs by
    assert condition.judge(1e-4, 3e-5, None) is None
    x = np.full((2, 3), 1000.0, np.float32)
    moved = condition.perturbed([x], 101)[0]
    assert np.all(np.abs(moved - x) <= np.spacing(np.float32(1000.0))) and not np.array_equal(moved, x)


def test_a_submodule_one_side_never_calls_is_shown_first():
    """The reference forgot its position embeddings: "A never calls pos_embed" leads the causes, before any
    figure, so the user can see which side is wrong."""
    run = parity(fx(f"{TRUST}/tts_reference_no_pos.py"), "vs", fx(f"{TRUST}/tts_port.py"), "--quick")
    causes = run.stdout.split("Likely causes (most likely first):\n", 1)[1]
    assert causes.startswith("  [call_graph] A never calls pos_embed; B calls pos_embed"), causes


def test_fp16_overflow_only_at_the_stress_scale_is_a_warning_and_fails_with_strict(tmp_path):
    """An attention port that keeps its scores in fp16: it agrees at the unit scale and overflows at 128x the
    activation scale where the float32-accumulating reference does not. PASS with warnings, naming it; --strict
    fails it. A port whose softmax is always fp16 still fails at the operating point. (Both ports are the
    reference with one line patched.)"""
    ref = ROOT / fx(f"{TRUST}/attn_fp32_scores.py")
    scores = "scores = (q.float() @ k.float().transpose(-1, -2)) / self.d ** 0.5"
    softmax = "w = scores.softmax(-1).to(v.dtype)"
    assert scores in ref.read_text() and softmax in ref.read_text()
    fp16, half = tmp_path / "fp16_scores.py", tmp_path / "half_softmax.py"
    fp16.write_text(ref.read_text().replace(scores, "scores = (q @ k.transpose(-1, -2)) / self.d ** 0.5"))
    half.write_text(ref.read_text().replace(softmax, "w = scores.half().softmax(-1).to(v.dtype)"))
    a = f"{ref}::Attention"
    run = parity(a, "vs", f"{fp16}::Attention", "--json")
    assert run.code == 0 and run.status("fp16") == "pass"
    assert "B overflows in fp16 at activation scale x128" in run.check("fp16")["warning"]
    assert run.report["warnings"] and "PASS with warnings" in parity(a, "vs", f"{fp16}::Attention").stdout
    strict = parity(a, "vs", f"{fp16}::Attention", "--json", "--strict")
    assert strict.code == 1 and strict.status("fp16") == "fail"
    broken = parity(a, "vs", f"{half}::Attention", "--json", "--quick")
    assert broken.code == 1 and broken.status("forward") == "fail"


def test_config_notes_belong_to_the_pair_that_built_the_config():
    """A side process builds several pairs of a whole file: a note is taken once, by its own pair."""
    from parity_skill.runtime.sides import configs

    configs.NOTES.append("Cfg refused the shrunk sizes (...)")
    assert configs.take_notes() == ["Cfg refused the shrunk sizes (...)"] and configs.take_notes() == []


def test_a_wrong_reference_in_code_is_attributed_to_a_with_a_third_implementation():
    """The text-to-speech case with running code: the reference forgot its position embeddings; a third
    implementation (MLX) makes it "A disagrees with B and C", located in A's code by C's run against A."""
    a, b = fx(f"{TRUST}/tts_reference_no_pos.py"), fx(f"{TRUST}/tts_port.py")
    run = parity(a, "vs", b, "--ref", fx(f"{TRUST}/tts_mlx.py"), "--quick", "--json")
    pair = run.report["pairs"][0]
    assert run.code == 1 and {f["side"] for f in pair["attribution"]} == {"A"}
    assert [f["check"] for f in pair["attribution"]] == ["forward", "backward"]
    lead = pair["diagnosis"][0]
    assert lead["kind"] == "attribution" and lead["message"].startswith("A disagrees with B and C at every failing")
    assert "tts_reference_no_pos.py:13" in lead["message"] and " C's " in lead["message"]  # C's run, in our names
    text = parity(a, "vs", b, "--ref", fx(f"{TRUST}/tts_mlx.py"), "--quick").stdout
    causes = text.split("Likely causes (most likely first):\n", 1)[1]
    assert causes.startswith("  [attribution] A disagrees with B and C"), causes


def test_a_port_bug_is_attributed_to_b_and_a_framework_reference_can_be_c():
    """The usual case, B wrong: eps outside the square root (only tiny inputs see it) against a third correct file,
    and a detached statistic against torch.nn.LayerNorm as C (a framework reference is the port of C's runs)."""
    rsqrt, outside, div = (fx(f"torch/rmsnorm_{n}.py") for n in ("rsqrt", "eps_outside", "div_sqrt"))
    run = parity(rsqrt, "vs", outside, "--ref", div, "--json", "--dtypes", "fp32", "--edge", "tiny")
    pair = run.report["pairs"][0]
    assert run.code == 1 and [(f["check"], f["side"]) for f in pair["attribution"]] == [("edge:tiny", "B")]
    assert "edge:tiny: B disagrees with A and C (A vs B fail, A vs C pass, B vs C fail)" in pair["notes"][-1]
    ln = parity(fx("torch/layernorm_manual.py"), "vs", fx("torch/layernorm_detached.py"), "--ref",
                "torch.nn.LayerNorm", "--quick", "--json")
    assert [(f["check"], f["side"]) for f in ln.report["pairs"][0]["attribution"]] == [("backward", "B")]
    passing = parity(rsqrt, "vs", div, "--ref", outside, "--json", "--quick")  # A and B agree: nothing attributed
    assert passing.code == 0 and "attribution" not in passing.report["pairs"][0]


def test_ref_options_that_cannot_apply_are_refused():
    only = parity(fx(f"{TRUST}/tts_port.py"), "vs", fx(f"{TRUST}/tts_port.py"), "--python-ref", sys.executable)
    assert only.code == 2 and "--python-ref is the interpreter of --ref's side" in only.stderr
    missing = parity(fx(f"{TRUST}/tts_port.py"), "vs", fx(f"{TRUST}/tts_port.py"), "--ref", "nowhere.py::TTS")
    assert missing.code == 2 and "--ref nowhere.py::TTS: nowhere.py: no such file" in missing.stderr
    broken = parity(fx(f"{TRUST}/tts_reference_no_pos.py"), "vs", fx(f"{TRUST}/tts_port.py"), "--ref",
                    fx("errors/forward_raises.py"), "--quick", "--json")  # A vs B stands; C settles nothing
    assert broken.code == 1 and "attribution" not in broken.report["pairs"][0]
    assert any("C could not be compared with A: " in n and "forward raised RuntimeError" in n
               for n in broken.report["pairs"][0]["notes"])
