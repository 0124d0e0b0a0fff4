"""The bare cost of benchmarks/scale.py's comparison: the same checks on the same two models, hand-written in one
process with torch's own tools (no artifacts, no localisation), judged in float32 as a hand script would.

    python benchmarks/scale_bare.py [--layers 12] [--dim 768] [--heads 12]

What it does, per the full default matrix: fp32 forward + backward of both sides; A in float64 (the reference);
fp16 forward at unit and 128x scale and fp16 backward; bf16 forward and backward; a batch of 4 against 4 singles;
5 edge inputs; two determinism calls per side. Prints its wall time (including importing torch)."""
from __future__ import annotations

import time

START = time.perf_counter()

import argparse  # noqa: E402
import copy  # noqa: E402
import importlib.util  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

MODELS = Path(__file__).resolve().parent / "models"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, MODELS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--heads", type=int, default=12)
    args = parser.parse_args()
    torch.manual_seed(0)
    a = load("gpt2_fused").GPT2Stack(args.dim, args.heads, args.layers)
    b = load("gpt2_split").GPT2Stack(args.dim, args.heads, args.layers)
    state = {}
    for k, v in a.state_dict().items():  # the weight map: A's fused qkv split into B's q, k, v
        if ".qkv." in k:
            for part, chunk in zip("qkv", v.chunk(3, dim=0)):
                state[k.replace(".qkv.", f".{part}.")] = chunk
        else:
            state[k] = v
    b.load_state_dict(state)
    x = torch.randn(3, 6, args.dim)

    def _as_b(grads):  # A's names and fused qkv as B's
        out = {}
        for k, v in grads.items():
            if ".qkv." in k:
                out.update({k.replace(".qkv.", f".{p}."): c for p, c in zip("qkv", v.chunk(3, dim=0))})
            else:
                out[k] = v
        return out

    def fwd_bwd(model, dtype, inp):
        m = copy.deepcopy(model).to(dtype)
        xi = inp.detach().to(dtype).clone().requires_grad_(True)
        out = m(xi)
        out.backward(torch.ones_like(out))
        grads = {k: p.grad.float() for k, p in m.named_parameters()}
        return out.detach().float(), _as_b(grads) | {"x": xi.grad.float()}

    def close(u, v, atol=1e-3, rtol=1.3e-6):
        return bool(torch.allclose(u, v, atol=atol, rtol=rtol))

    def rmse(u, v):
        return float(((u.double() - v.double()) ** 2).mean().sqrt())

    oa, ga = fwd_bwd(a, torch.float32, x)
    ob, gb = fwd_bwd(b, torch.float32, x)
    close(oa, ob)
    all(close(ga[k], gb[k]) for k in ga)
    with torch.no_grad():
        ref = copy.deepcopy(a).double()(x.double())
        ref_hot = copy.deepcopy(a).double()(x.double() * 128)
    for dtype in (torch.float16, torch.bfloat16):
        ra, la = fwd_bwd(a, dtype, x)
        rb, lb = fwd_bwd(b, dtype, x)
        rmse(ra, ref), rmse(rb, ref)
        [(rmse(la[k], ga[k]), rmse(lb[k], ga[k])) for k in ga]
        if dtype == torch.float16:
            with torch.no_grad():
                ha = copy.deepcopy(a).half()(x.half() * 128)
                hb = copy.deepcopy(b).half()(x.half() * 128)
            rmse(ha, ref_hot), rmse(hb, ref_hot)
    with torch.no_grad():
        xb = torch.randn(4, 6, args.dim)
        for m in (a, b):
            full = m(xb)
            close(full, torch.cat([m(xb[i:i + 1]) for i in range(4)]))
        edges = [x * 0, x * 1e4, x * 1e-6, x + 1e3, x[:1, :1]]
        for e in edges:
            close(a(e), b(e))
        for m in (a, b):
            torch.equal(m(x), m(x))
    print(f"bare wall {time.perf_counter() - START:.1f} s")


if __name__ == "__main__":
    main()
