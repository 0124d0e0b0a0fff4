"""Collect ops, random/seed/dtype/device findings and input hints from a class or function body."""
from __future__ import annotations

import re

import libcst as cst

from parity_skill.analyze import vocabulary as V
from parity_skill.analyze.model import Finding, InputHint, OpCall


def dotted(expr: cst.BaseExpression) -> str | None:
    if isinstance(expr, cst.Name):
        return expr.value
    if isinstance(expr, cst.Attribute):
        base = dotted(expr.value)
        return f"{base}.{expr.attr.value}" if base else None
    return None


_DIM = re.compile(r"(head_dim|head_size|d_k|\bdk|dim_head|\bd)\)?$")  # scores / head_dim


class Context:
    """Shared per-file facts a body visitor needs: import aliases, positions, source text."""

    def __init__(self, path: str, module: cst.Module, positions, aliases: dict[str, str]):
        self.path, self.module, self.positions, self.aliases = path, module, positions, aliases

    def loc(self, node: cst.CSTNode) -> str:
        return f"{self.path}:{self.positions.lines(node)[0]}"

    def code(self, node: cst.CSTNode) -> str:
        return self.module.code_for_node(node).strip()

    def resolve(self, name: str) -> str:
        head, _, rest = name.partition(".")
        if head in self.aliases:
            return self.aliases[head] + (f".{rest}" if rest else "")
        return name

    def framework_of(self, resolved: str) -> str | None:
        root = resolved.split(".", 1)[0]
        return V.FRAMEWORK_ROOTS.get(root)


def _is_dtype_text(text: str) -> bool:
    return any(w in text for w in V.DTYPE_WORDS)


class BodyVisitor(cst.CSTVisitor):
    """Walks one class or function. `inputs` are the forward/call argument names to collect hints for."""

    def __init__(self, ctx: Context, inputs: tuple[str, ...] = (), layers: frozenset[str] = frozenset()):
        self.ctx = ctx
        self.inputs = set(inputs)
        self.layers = layers  # attributes holding submodules
        self.ops: list[OpCall] = []
        self.findings: list[Finding] = []
        self.hints: list[InputHint] = []
        self.frameworks: list[str] = []

    # ---- calls -------------------------------------------------------------------------------------------
    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        args = tuple(ctx.code(a.value) for a in node.args if a.keyword is None and not a.star)
        kwargs = tuple((a.keyword.value, ctx.code(a.value)) for a in node.args if a.keyword is not None)
        name = dotted(node.func)
        loc = ctx.loc(node)
        if name is not None:
            resolved = ctx.resolve(name)
            fw = ctx.framework_of(resolved)
            if fw:
                self.frameworks.append(fw)
        else:
            resolved, fw = None, None
        method = node.func.attr.value if isinstance(node.func, cst.Attribute) else None
        on_value = fw is None and method is not None  # x.softmax(...), self.fc(x).float()
        last = (resolved or "").rsplit(".", 1)[-1] if not on_value else method

        op = V.op_for(last) if (fw or on_value) else None
        label = resolved if not on_value else f"<tensor>.{method}"
        if on_value and method in V.CAST_METHODS:
            self.ops.append(OpCall("cast", label, loc, (V.CAST_METHODS[method],), kwargs))
        elif on_value and method in V.CAST_CALLS and any(_is_dtype_text(a) for a in args + tuple(v for _, v in kwargs)):
            self.ops.append(OpCall("cast", label, loc, args, kwargs))
        elif op:
            self.ops.append(OpCall(op, label, loc, args, kwargs))
        elif not fw and not on_value and name and V.ROPE_NAME.search(last):  # initialize_rope(...), a helper
            self.ops.append(OpCall("rope", resolved or name, loc, args, kwargs))
        elif not fw and not on_value and name and "." not in name:  # a helper of the file: followed by the diff
            self.ops.append(OpCall("call", name, loc, args, kwargs))
        elif last in ("cat", "concatenate", "stack") and _negated_first(node):
            # rotate-half RoPE: cat((-x2, x1)); interleaved RoPE: stack((-x2, x1), -1)
            traditional = "True" if last == "stack" else "False"
            self.ops.append(OpCall("rope", f"{label} (hand-written)", loc, args, (("traditional", traditional),)))

        if fw and last in V.SEED_CALLS:
            self.findings.append(Finding("seed", f"seed call {name}({', '.join(args)})", loc))
        elif (fw and last in V.RANDOM_CALLS) or (on_value and method and method.endswith("_")
                                                  and method.rstrip("_") in V.RANDOM_CALLS):
            self.findings.append(Finding("random", f"random op {name or label}(...)", loc))
        if op == "dropout":
            self.findings.append(Finding("random", f"dropout {label} (train-only; checks run in eval mode)", loc))

        if on_value and method == "cuda":
            self.findings.append(Finding("device", "hard-coded .cuda()", loc))
        for key, val in kwargs:
            if key == "device" and any(d in val for d in ("cuda", "mps")):
                self.findings.append(Finding("device", f"hard-coded device={val}", loc))
            if key == "dtype" and any(w in val for w in ("float16", "bfloat16", "half", "float64", "double")):
                self.findings.append(Finding("dtype", f"explicit dtype={val}", loc))
        if method == "to" and any(("cuda" in a or "mps" in a) for a in args):
            self.findings.append(Finding("device", f"hard-coded .to({', '.join(args)})", loc))
        if resolved == "torch.device" and any("cuda" in a for a in args):
            self.findings.append(Finding("device", f"torch.device({', '.join(args)})", loc))
        if on_value and method in ("half", "bfloat16", "double"):
            self.findings.append(Finding("dtype", f"cast .{method}()", loc))

        self._input_consumer(node, name, resolved, op)

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        left, right = self.ctx.code(node.left), self.ctx.code(node.right)
        if isinstance(node.operator, cst.MatrixMultiply):
            self.ops.append(OpCall("matmul", "@", self.ctx.loc(node), (left, right)))
        elif isinstance(node.operator, cst.Divide) and ("sqrt" in right or "** 0.5" in right or _DIM.search(right)):
            self.ops.append(OpCall("attn_scale", f"/ {right}", self.ctx.loc(node), (left, right)))
        elif isinstance(node.operator, cst.Multiply) and any(re.search(r"\*\*\s*\(?-", t) or "rsqrt" in t or
                                                            re.search(r"scal(e|ing)\b", t) for t in (left, right)):
            self.ops.append(OpCall("attn_scale", f"{left} * {right}", self.ctx.loc(node), (left, right)))

    # ---- input hints -------------------------------------------------------------------------------------
    def _input_consumer(self, node: cst.Call, name: str | None, resolved: str | None, op: str | None) -> None:
        if not self.inputs or not node.args:
            return
        func = node.func
        if (isinstance(func, cst.Attribute) and func.attr.value == "size" and isinstance(func.value, cst.Name)
                and func.value.value in self.inputs):
            self.hints.append(InputHint(func.value.value, "index", self.ctx.code(node.args[0].value), self.ctx.loc(node)))
            return
        first = node.args[0].value
        while isinstance(first, cst.Call) and isinstance(first.func, cst.Attribute) and \
                first.func.attr.value in ("to", "float", "type", "contiguous", "half", "double", "astype"):
            first = first.func.value  # self.proj(x.to(dtype)) consumes x
        if not (isinstance(first, cst.Name) and first.value in self.inputs):
            return
        arg = first.value
        if name and name.startswith("self.") and name.count(".") == 1:
            self.hints.append(InputHint(arg, "consumer", name[5:], self.ctx.loc(node)))
        elif op in V.FEATURE_LAYERS or op in ("scaled_dot_product_attention", "softmax"):
            self.hints.append(InputHint(arg, "op", op, self.ctx.loc(node)))

    def leave_Assign(self, original_node: cst.Assign) -> None:
        """Once `x = self.fc(x)` rebinds an argument to a layer's output, later uses of the name say nothing about
        the input (`x = self._pad(x)` or `x = x.float()` keep its features: still followed)."""
        value = original_node.value
        name = dotted(value.func) if isinstance(value, cst.Call) else None
        if not (name and name.startswith("self.") and name[5:] in self.layers):
            return
        for t in original_node.targets:
            if isinstance(t.target, cst.Name):
                self.inputs.discard(t.target.value)

    def visit_Assign(self, node: cst.Assign) -> None:
        if not self.inputs or len(node.targets) != 1:
            return
        target, value = node.targets[0].target, node.value
        if isinstance(target, (cst.Tuple, cst.List)):
            src = _shape_source(value)
            if src in self.inputs:
                n = len(target.elements)
                self.hints.append(InputHint(src, "unpack", str(n), self.ctx.loc(node)))

    def visit_Subscript(self, node: cst.Subscript) -> None:
        src = _shape_source(node.value)
        if src in self.inputs and len(node.slice) == 1:
            idx = node.slice[0].slice
            if isinstance(idx, cst.Index):
                self.hints.append(InputHint(src, "index", self.ctx.code(idx.value), self.ctx.loc(node)))


def _negated_first(node: cst.Call) -> bool:
    if not node.args or not isinstance(node.args[0].value, (cst.Tuple, cst.List)):
        return False
    elements = node.args[0].value.elements
    return bool(elements) and isinstance(elements[0].value, cst.UnaryOperation) and \
        isinstance(elements[0].value.operator, cst.Minus)


def _shape_source(expr: cst.BaseExpression) -> str | None:
    """`x.shape` or `x.size()` -> 'x'."""
    if isinstance(expr, cst.Attribute) and expr.attr.value == "shape" and isinstance(expr.value, cst.Name):
        return expr.value.value
    if (isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and expr.func.attr.value == "size"
            and not expr.args and isinstance(expr.func.value, cst.Name)):
        return expr.func.value.value
    return None
