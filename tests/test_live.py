"""A one-command run's sides work at once: B compares each call as soon as A has recorded it, and A, once its checks
are done, makes the calls only B's comparison needs (runtime/data/live.py, runtime/sides/serve.py)."""
from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest
from conftest import fx, parity

from parity_skill.runtime.data import artifact, live
from parity_skill.runtime.data.manifest import ManifestError, validate
from parity_skill.runtime.sides.failures import MissingRecord, RecordedError
from parity_skill.runtime.sides.replay import RecordingSide, ReplaySide
from parity_skill.runtime.sides.serve import serve


class Doubler:
    """A side whose forward doubles its input and counts its calls; it raises on a negative input."""

    kept_fp32: dict = {}

    def __init__(self) -> None:
        self.calls: list[float] = []

    def seed(self, seed: int) -> None:
        return None

    def run(self, args, dtype="fp32"):
        self.calls.append(float(args[0].sum()))
        if args[0].min() < 0:
            raise ValueError("negative input")
        return [("0", args[0] * 2)]


MANIFEST = {"side": {"file": "a.py", "symbol": "Doubler", "framework": "numpy", "kind": "function",
                     "differentiable": False, "dtypes": ["fp32"]}, "seed": 0, "notes": ["A: built"]}


@pytest.fixture
def pair(tmp_path):
    """(A's recorder, A's side, B's replay of A, the thread where A answers requests) over one folder."""
    side = Doubler()
    rec = RecordingSide(side, str(tmp_path), live=True)
    live.write_early(tmp_path, MANIFEST, [])
    live.announce(tmp_path)
    feed = live.LiveArtifact(tmp_path, tmp_path / artifact.SIDE_DONE, timeout=60)
    replay = ReplaySide(feed.manifest, feed.tensors, feed)
    yield rec, side, replay, tmp_path
    live.release(tmp_path)


def test_b_reads_a_call_as_soon_as_a_has_recorded_it(pair):
    rec, side, replay, _ = pair
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    rec.run([x])  # A's checks make the call
    (key, out), = replay.run([x])
    assert key == "0" and np.array_equal(out, x * 2) and side.calls == [15.0]


def test_a_answers_a_call_its_checks_never_made_once_and_stops_when_released(pair):
    rec, side, replay, folder = pair
    server = threading.Thread(target=serve, args=(rec, str(folder), 0))
    server.start()
    y = np.full((2, 2), 3.0, dtype=np.float32)
    (_, out), = replay.run([y])  # not recorded by A's checks: B asks, A computes it
    assert np.array_equal(out, y * 2)
    assert np.array_equal(replay.run([y])[0][1], y * 2) and side.calls == [12.0]  # asked once
    with pytest.raises(RecordedError, match="negative input"):  # A's failure reaches B as A's
        replay.run([-y])
    live.release(folder)
    server.join(timeout=10)
    assert not server.is_alive()


def test_a_stops_answering_when_b_is_gone(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / live.B_PID).write_text(gone.stdout.strip())
    server = threading.Thread(target=serve, args=(RecordingSide(Doubler(), str(tmp_path), live=True),
                                                  str(tmp_path), 0))
    server.start()
    server.join(timeout=10)
    assert not server.is_alive()


def test_a_one_run_artifact_lists_its_files_without_digests_and_a_kept_one_with_them():
    validate({"files": {"tensors.safetensors": None}}, "manifest.json")
    validate({"files": {"tensors.safetensors": "0" * 64}}, "manifest.json")
    with pytest.raises(ManifestError, match="files"):
        validate({"files": {"tensors.safetensors": "not a digest"}}, "manifest.json")


def test_each_side_computes_with_half_the_cores_unless_the_user_says(monkeypatch):
    from parity_skill.runtime.sides import cores

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cores.os, "cpu_count", lambda: 8)
    assert cores.threads() == 4 and cores.environment()["OPENBLAS_NUM_THREADS"] == "4"
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert cores.threads() == 3 and cores.environment()["OMP_NUM_THREADS"] == "3"


def test_a_passing_pair_traced_with_isolate_claims_no_difference():
    """--isolate asks A for its submodule trace although nothing fails (A makes it when asked); the report then
    says nothing of where a difference would be."""
    run = parity(fx("torch/llama_a.py"), "vs", fx("torch/llama_b.py"), "--quick", "--isolate", "--json")
    pair = run.report["pairs"][0]
    assert run.code == 0 and pair["verdict"] == "pass" and pair["submodules"]
    assert not any("the difference is in" in n for n in pair["notes"])


def test_a_side_that_ended_without_its_manifest_is_named_as_such(pair):
    rec, side, replay, folder = pair
    (folder / artifact.SIDE_DONE).touch()  # A's process ended: no manifest, no answer
    with pytest.raises(MissingRecord, match="side A's process ended before it made this run call"):
        replay.run([np.ones(3, np.float32)])


def test_asking_whether_a_gradient_exists_reads_nothing(tmp_path):
    """A model's gradients are read from disk when used; `name in grads` must not read them (it did, twice per
    mapped parameter)."""
    from parity_skill.runtime.data.tensor_file import Tensors
    from parity_skill.runtime.data.calls import LazyArrays

    class Counting(Tensors):
        reads = 0

        def __getitem__(self, name):
            Counting.reads += 1
            return super().__getitem__(name)

    from safetensors.numpy import save_file

    save_file({"g/w": np.ones(4, np.float32)}, str(tmp_path / "g.safetensors"))
    grads = LazyArrays(Counting([str(tmp_path / "g.safetensors")]), {"w": "g/w"})
    assert "w" in grads and "v" not in grads and Counting.reads == 0


def test_a_that_stops_while_recording_tells_b_why(pair):
    rec, side, replay, folder = pair
    artifact.write_error(folder, dict(MANIFEST), "A stopped while recording: RuntimeError: out of memory")
    with pytest.raises(RecordedError, match="out of memory"):
        replay.run([np.ones(3, np.float32)])


def test_a_one_command_run_spills_to_its_memory_scratch_while_memory_allows(tmp_path, monkeypatch):
    """Large files of a one-command run go to a tmpfs folder (runtime/data/scratch.py) only while the machine keeps
    its reserve of available memory; their `scratch/` names resolve there only for a side given that folder."""
    from parity_skill.runtime.data import scratch
    from parity_skill.runtime.data.manifest import file_path

    disk, memory = tmp_path / "artifact", tmp_path / "memory"
    disk.mkdir()
    memory.mkdir()
    monkeypatch.setattr(scratch, "ROOT", str(memory))
    gib = 2 ** 30
    monkeypatch.setattr(scratch, "_meminfo", lambda: {"MemTotal": 16 * gib, "MemAvailable": 12 * gib})
    names = artifact.save_chunked(disk, "calls-0000", {"g": np.ones(4, np.float32)})
    assert names == ["scratch/calls-0000.safetensors"] and (memory / "calls-0000.safetensors").is_file()
    assert file_path(disk, names[0]) == (memory / "calls-0000.safetensors").resolve()
    assert artifact.save_chunked(disk, "kept", {"g": np.ones(4, np.float32)}, scratch_ok=False) == ["kept.safetensors"]
    monkeypatch.setattr(scratch, "_meminfo", lambda: {"MemTotal": 16 * gib, "MemAvailable": 4 * gib + 1000})
    assert not scratch.fits(2000)  # a quarter of the machine stays available: 4 GiB here
    assert artifact.save_chunked(disk, "late", {"g": np.ones(1000, np.float32)}) == ["late.safetensors"]
    monkeypatch.setattr(scratch, "ROOT", None)  # a side not given the folder: the name stays inside the artifact
    with pytest.raises(ManifestError, match="missing"):
        file_path(disk, names[0])


def test_a_one_command_run_leaves_no_scratch_behind():
    import glob

    before = set(glob.glob("/dev/shm/parity-scratch-*"))
    run = parity(fx("torch/llama_a.py"), "vs", fx("torch/llama_b.py"), "--quick", "--json")
    assert run.code == 0
    assert set(glob.glob("/dev/shm/parity-scratch-*")) <= before


def test_a_mapped_tensor_is_writable_and_a_file_cut_short_is_refused(tmp_path):
    """Tensors are read by mapping their file copy-on-write: the array can be written without touching the file;
    a file shorter than its header says is an error, not a crash on the missing page."""
    from safetensors.numpy import save_file

    from parity_skill.runtime.data.tensor_file import TensorFileError, Tensors

    path = tmp_path / "t.safetensors"
    save_file({"w": np.arange(5000, dtype=np.float32)}, str(path))
    tensors = Tensors([str(path)])
    w = tensors["w"]
    w[0] = -1.0
    assert tensors["w"][0] == 0.0 and w[4999] == 4999.0
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size - 8)
    with pytest.raises(TensorFileError, match="truncated"):
        tensors["w"]
