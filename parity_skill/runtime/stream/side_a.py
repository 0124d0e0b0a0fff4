"""`--stream`, phase 1 in A's process: A built without parameter memory, its fresh seeded weights written once to a
safetensors checkpoint in the artifact (one tensor at a time), then one forward in which each module's weights are
read just before it runs and dropped after; the input and output of every block are recorded for B."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from parity_skill.runtime.data import artifact
from parity_skill.runtime.data.init import draw, owner_of, role, structural
from parity_skill.runtime.data.inputs import base_inputs
from parity_skill.runtime.data.tensor_file import Tensors
from parity_skill.runtime.sides.failures import UserCodeError, describe
from parity_skill.runtime.sides.side import Side, in_out_weights
from parity_skill.runtime.stream import blocks as B
from parity_skill.spec import PairSpec

WEIGHTS = "weights"


def peak_rss_mb() -> float | None:
    """This process's peak resident memory (VmHWM), in MB; None where /proc is not there."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def build_light(which: str, spec: PairSpec) -> Side:
    """The side's model with every parameter on the meta device (a UserCodeError names why it cannot be)."""
    impl = spec.a if which == "a" else spec.b
    if impl.framework != "torch" or impl.kind != "module":
        raise UserCodeError(f"{impl.display}: --stream compares torch modules ({impl.framework} {impl.kind} given)")
    with B.parameters_on_meta():
        side = Side(which, impl)
    if not isinstance(side.model, torch.nn.Module):
        raise UserCodeError(f"{impl.display}: --stream compares torch modules; the constructor returned "
                            f"{type(side.model).__name__}")
    derived = B.unload_all(side.model)
    if derived:
        side.notes.append(f"{which.upper()}'s buffers {', '.join(derived)} are computed from parameters at "
                          "construction: streamed, they have no value (NaN)")
    return side


def fresh_values(model: torch.nn.Module, seed: int):
    """name -> a function making A's fresh value of that parameter (the rule of data/init.py, by name), and the
    names of the floating buffers that are redrawn too. Tied parameters take one value, as a loaded state does:
    the last of their names in sorted order."""
    shapes = B.shapes(model)
    owners = B.owners(model)
    by_id: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        by_id.setdefault(id(p), []).append(name)
    canonical = {n: sorted(names)[-1] for names in by_id.values() for n in names}

    def value(name: str) -> np.ndarray:
        src = canonical.get(name, name)
        kind = role(src, shapes[src], owner_of(src, owners))
        return np.asarray(draw(src, shapes[src], kind, seed), np.float32)

    persistent = set(shapes)  # a non-persistent buffer (an embedding scale) keeps its constructed value, as a loaded
    buffers = []             # state dict does
    for name, buf in model.named_buffers():
        if name in persistent and buf.is_floating_point() and buf.numel() and \
                not structural(name, buf.detach().numpy()):
            buffers.append(name)
    return value, sorted(canonical), buffers


def capture_streamed(spec: PairSpec, folder: str, manifest: dict) -> None:
    """Write A's streamed artifact into `folder` (an error artifact when A cannot be built or run)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    try:
        _capture(spec, folder, manifest)
    except Exception as exc:  # noqa: BLE001 - user code or its state: reported by the comparison as the pair's error
        artifact.write_error(folder, manifest, str(exc) if isinstance(exc, UserCodeError) else describe(exc))


def _capture(spec: PairSpec, folder: str, manifest: dict) -> None:
    out = Path(folder)
    a = build_light("a", spec)
    model = a.model
    value, names, buffers = fresh_values(model, spec.checks.seed)
    owners = B.owners(model)
    with torch.no_grad():
        for name in buffers:  # running statistics: redrawn as a loaded state would be (they are small)
            buf = model.get_buffer(name)
            kind = role(name, tuple(buf.shape), owner_of(name, owners))
            buf.copy_(torch.from_numpy(np.asarray(draw(name, tuple(buf.shape), kind, spec.checks.seed))).to(buf.dtype))
    started = time.perf_counter()
    files = artifact.save_chunked(out, WEIGHTS, {n: (lambda n=n: value(n)) for n in names}, scratch_ok=False)
    written = time.perf_counter() - started
    checkpoint = Tensors([str(out / f) for f in files])
    handles = B.load_on_call(model, lambda n: checkpoint[n])
    calls, tensors = _record_blocks(model)
    xs = base_inputs(spec.inputs, spec.checks.seed)
    started = time.perf_counter()
    try:
        outputs = a.run(xs)
    except Exception as exc:  # noqa: BLE001 - user code
        artifact.write_error(folder, manifest, f"A's streamed forward raised {describe(exc)}")
        return
    finally:
        for h in handles:
            h.remove()
    ran = time.perf_counter() - started
    if not all(np.isfinite(v).all() for _, v in outputs if np.issubdtype(np.asarray(v).dtype, np.floating)):
        artifact.write_error(folder, manifest, "A's streamed output is not finite: A reads a parameter outside its "
                             "own module's forward (e.g. `x @ self.proj.weight.T` in a parent), which --stream "
                             "does not load there, or A itself overflows on the default input; run without "
                             "--stream to tell which")
        return
    for i, (key, v) in enumerate(outputs):
        tensors[f"outputs/{i}"] = v
    shapes = B.shapes(model)
    manifest["stream"] = {
        "params": {n: list(shapes[n]) for n in names}, "buffers": {n: list(s) for n, s in shapes.items()
                                                                   if n not in names},
        "blocks": calls, "outputs": [key for key, _ in outputs], "weights": files,
        "in_out_weights": in_out_weights(shapes, B.owners(model)),
        "seconds": {"weights": round(written, 3), "forward": round(ran, 3)}, "peak_rss_mb": peak_rss_mb(),
        "buffer_values": sorted(buffers)}
    for name, buf in model.named_buffers():
        tensors[f"buffers/{name}"] = buf.detach().numpy()
    manifest["calls"] = []  # a streamed artifact records blocks, not calls of the check matrix
    artifact.write(folder, manifest, tensors, files)


def _record_blocks(model: torch.nn.Module) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Hooks recording the first tensor each block receives and returns, in call order (filled while A runs)."""
    calls: list[dict] = []
    tensors: dict[str, np.ndarray] = {}
    seen: dict[str, int] = {}
    for name, block in B.blocks(model):
        def pre(mod, args, kwargs, name=name):
            x = B.first_tensor(args) if B.first_tensor(args) is not None else B.first_tensor(kwargs)
            k = seen.get(name, 0)
            seen[name] = k + 1
            key = f"blocks/{len(calls):04d}"
            calls.append({"block": name, "call": k, "key": key, "class": type(mod).__name__,
                          "params": any(True for _ in mod.parameters()), "started": time.perf_counter()})
            if x is not None:
                tensors[f"{key}/in"] = x.detach().float().numpy().copy()

        def post(mod, args, kwargs, result, name=name):
            call = next(c for c in reversed(calls) if c["block"] == name)
            call["seconds"] = round(time.perf_counter() - call.pop("started"), 4)
            y = B.first_tensor(result)
            if y is not None:
                tensors[f"{call['key']}/out"] = y.detach().float().numpy().copy()

        block.register_forward_pre_hook(pre, with_kwargs=True)
        block.register_forward_hook(post, with_kwargs=True)
    return calls, tensors
