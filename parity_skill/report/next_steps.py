"""What to try when a pair could not be checked: each line names what was guessed and the exact option that
changes it, filled with the values this run used."""
from __future__ import annotations

import re

_SHAPE = re.compile(r"shape|size|dimension|mat1 and mat2|expected input|broadcast|reshape|view|index|out of range|"
                    r"rank|channels", re.I)
_CTOR = re.compile(r"constructor raised|missing \d+ required|unexpected keyword|__init__", re.I)
_MAP = re.compile(r"weight|parameter|state dict|--map|mapping|unmapped", re.I)
_LAYOUT = re.compile(r"channels|expected input\[|in_channels|conv", re.I)


def _input_option(i: dict) -> str:
    shape = ",".join(str(n) for n in i["shape"])
    if i.get("dtype", "float32").startswith("float"):
        return f"--input {i['name']}={shape}"
    return f"--input {i['name']}={shape}:{i['dtype']}:{i.get('low', 0)}-{i.get('high', 2)}"


def _init_options(side: dict) -> list[str]:
    return [f"--init {k}={v}" for k, v in side.get("init", {}).items() if "Config(" not in v][:4]


def next_steps(p: dict) -> list[str]:
    """Lines for the text report of a pair that errored before its checks could run."""
    steps = suggestions(p)
    return ["", "Next steps:"] + [f"  - {s}" for s in steps] if steps else []


def suggestions(p: dict) -> list[str]:
    """What to try next for a pair that errored before its checks could run ([] otherwise): the JSON's
    `next_steps`, and the text report's "Next steps"."""
    error = p.get("error") or ""
    if not error or p.get("checks"):
        return []
    steps = []
    inputs = [_input_option(i) for i in p.get("inputs") or []]
    configured = any("Config(" in v for side in ("a", "b") for v in p[side].get("init", {}).values())
    if configured and not any("built from --config" in n for n in p.get("notes", [])):
        steps.append("the config was built from its class's defaults, shrunk, which some ports do not handle (a "
                     "field their code assumes set): give the model's own config.json with --config FILE.json")
    if _CTOR.search(error):
        side = p["b"] if (p["b"].get("path") and p["b"]["path"] in error) else p["a"]
        built = _init_options(side)
        steps.append("constructor arguments were guessed" + (f" ({', '.join(built)})" if built else "")
                     + ": give the one it needs with --init NAME=VALUE (a config field: --init config.FIELD=VALUE)")
    elif _SHAPE.search(error):
        if inputs:
            steps.append(f"inputs were guessed as {' '.join(inputs)}: give the shape the code expects with "
                         "--input NAME=D0,D1,... (integer ids: --input NAME=2,8:int64:0-VOCAB)")
        sizes = _init_options(p["a"]) + [o for o in _init_options(p["b"]) if o not in _init_options(p["a"])]
        if sizes:
            steps.append(f"sizes were built as {', '.join(sizes)}: make both sides agree with --init NAME=VALUE")
        if _LAYOUT.search(error):
            steps.append("if B takes channels last: --layout b=nlc (1-d) or --layout b=nhwc (2-d)")
    if _MAP.search(error) and not _CTOR.search(error):
        steps.append("weights are mapped by name, module order and shape: pin the pairs with --map FILE "
                     "(lines like `a.name -> b.name`, `blocks.{i}.qkv -> layers.{i}.[q,k,v]`)")
    if not steps:
        steps.append("rerun with --debug to keep the generated script, and run it to see the full traceback")
    return steps
