"""User code never outlives the command: killing the CLI or a timeout stops every process the sides started and
removes their folders; a side's output is read into a bounded tail; a side killed by a signal is named."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, fx

pytest.importorskip("torch")
FFN = fx("torch/ffn_module.py")


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m parity_skill ARGS` in a fresh interpreter."""
    return subprocess.run([sys.executable, "-m", "parity_skill", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def alive(marker: str) -> int:
    out = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
    return len(out.split())


def _start(marker: str, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, PARITY_TEST_MARKER=marker)
    # as from a terminal: a test run started in the background (`bash .ci/run &`) inherits SIGINT ignored, and a
    # Python started with SIGINT ignored keeps ignoring it
    proc = subprocess.Popen([sys.executable, "-m", "parity_skill", FFN, "vs", fx("adversarial/spawns_child.py"),
                             "--quick", *extra], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while alive(marker) == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert alive(marker) == 1, "the forward never started its child"
    return proc


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGKILL, -9)])
def test_killing_the_cli_leaves_no_descendant(sig, code):
    """Nor a folder: the sides' artifacts are removed by the CLI, or by its guardian when the CLI is SIGKILLed, once
    the sides are gone (a side killed while writing made its folder again after it was removed)."""
    import glob
    import tempfile

    made = [os.path.join(tempfile.gettempdir(), "parity-artifacts-*"), "/dev/shm/parity-scratch-*"]
    before = {p for pattern in made for p in glob.glob(pattern)}
    marker = f"parity-orphan-{sig.name}-{os.getpid()}"
    proc = _start(marker)
    proc.send_signal(sig)
    proc.communicate(timeout=30)
    assert proc.returncode == code
    time.sleep(1.0)
    assert alive(marker) == 0 and alive(f"parity_skill.runtime.worker.*{marker}") == 0
    assert {p for pattern in made for p in glob.glob(pattern)} <= before  # its memory-backed scratch too


def test_timeout_stops_a_forward_that_started_its_own_child():
    marker = f"parity-timeout-{os.getpid()}"
    proc = _start(marker, "--timeout", "8")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "timed out after 8s" in err
    assert alive(marker) == 0


def test_output_is_read_into_a_bounded_tail():
    from parity_skill.run.processes import TAIL_BYTES, _Tail

    proc = subprocess.Popen([sys.executable, "-c", "import sys\nfor _ in range(50): sys.stdout.write('x' * 2**20)"],
                            stdout=subprocess.PIPE)
    tail = _Tail(proc.stdout)
    proc.wait()
    assert len(tail.text()) == TAIL_BYTES and tail.size <= TAIL_BYTES + 2 ** 20


def test_a_forward_printing_10_mb_per_call_still_gets_a_verdict():
    run = cli(FFN, "vs", fx("adversarial/chatty.py"), "--quick")
    assert run.returncode == 0 and "Verdict: PASS" in run.stdout


@pytest.mark.parametrize("a, b, side", [("adversarial/killed.py", "torch/ffn_module.py", "A"),
                                        ("torch/ffn_module.py", "adversarial/killed.py", "B")])
def test_a_side_killed_by_a_signal_is_named_with_its_last_words(a, b, side):
    run = cli(fx(a), "vs", fx(b), "--quick", "--json")
    assert run.returncode == 2 and json.loads(run.stdout)["verdict"] == "error"
    assert f"side {side} crashed (exit -9) before a verdict: about to crash" in run.stderr
