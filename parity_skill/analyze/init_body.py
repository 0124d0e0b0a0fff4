"""What a module's `__init__` builds (submodules, parameters, `self.x = ...`, locals) and which config fields
its methods read."""
from __future__ import annotations

import libcst as cst

from parity_skill.analyze import hierarchy
from parity_skill.analyze.body import Context, dotted
from parity_skill.analyze.model import Submodule, Tensor

CONTAINERS = {"ModuleList", "Sequential", "ModuleDict"}


class InitVisitor(cst.CSTVisitor):
    """`self.x = ...` and `self.register_buffer(...)` inside `__init__`."""

    def __init__(self, ctx: Context, framework: str, local_modules: set[str]):
        self.ctx, self.framework, self.local_modules = ctx, framework, local_modules
        self.submodules: list[Submodule] = []
        self.tensors: list[Tensor] = []
        self.assigns: list[tuple[str, str]] = []
        self.locals: list[tuple[str, str]] = []
        self.where: list[tuple[str, str]] = []

    def _submodule(self, attr: str, call: cst.Call) -> Submodule | None:
        name = dotted(call.func)
        if name is None:
            return None
        resolved = self.ctx.resolve(name)
        last = resolved.rsplit(".", 1)[-1]
        is_layer = self.ctx.framework_of(resolved) is not None and last[:1].isupper()
        if not is_layer and resolved not in self.local_modules:
            imported = last[:1].isupper() and resolved != name.split(".")[-1] and \
                hierarchy.framework_of(name, self.ctx.path) is not None  # Conv1D from transformers.pytorch_utils
            if not imported:
                return None
        args = tuple(self.ctx.code(a.value) for a in call.args if a.keyword is None and not a.star)
        kwargs = tuple((a.keyword.value, self.ctx.code(a.value)) for a in call.args if a.keyword is not None)
        children: list[Submodule] = []
        elements = ()
        if last in CONTAINERS:
            items = [a.value for a in call.args if a.keyword is None]
            elements = self._elements(items[0]) if len(items) == 1 else ()
            if len(items) == 1 and isinstance(items[0], (cst.List, cst.Tuple)):
                items = [e.value for e in items[0].elements]
            for i, item in enumerate(items):
                if isinstance(item, cst.Call):
                    child = self._submodule(str(i), item)
                    if child:
                        children.append(child)
        return Submodule(attr, resolved, self.ctx.loc(call), args, kwargs, tuple(children), elements)

    def _elements(self, node: cst.BaseExpression) -> tuple[Submodule, ...]:
        """The layer a comprehension builds for each element (`[Block(config) for _ in range(n)]`)."""
        if not isinstance(node, (cst.ListComp, cst.GeneratorExp)):
            return ()
        built = [node.elt.body, node.elt.orelse] if isinstance(node.elt, cst.IfExp) else [node.elt]
        children = [self._submodule("0", c) for c in built if isinstance(c, cst.Call)]
        return tuple(c for c in children if c)

    def visit_Assign(self, node: cst.Assign) -> None:
        for t in node.targets:
            name = dotted(t.target)
            if name and "." not in name:  # a local (`embed_dim = config.hidden_size`) later lines build with
                self.locals.append((name, self.ctx.code(node.value)))
            elif isinstance(t.target, cst.Tuple) and isinstance(node.value, cst.Tuple) and \
                    len(t.target.elements) == len(node.value.elements):  # `c, d = config.num_channels, config.d`
                for el, val in zip(t.target.elements, node.value.elements):
                    if isinstance(el.value, cst.Name):
                        self.locals.append((el.value.value, self.ctx.code(val.value)))
            if not (name and name.startswith("self.") and name.count(".") == 1):
                continue
            attr, value = name[5:], node.value
            self.assigns.append((attr, self.ctx.code(value)))
            self.where.append((attr, self.ctx.loc(node)))
            if isinstance(value, cst.IfExp) and isinstance(value.body, cst.Call):  # `Pooler(c) if flag else None`
                value = value.body
            if not isinstance(value, cst.Call):
                elements = self._elements(value)
                if elements:  # a plain list of layers (MLX keeps blocks in one)
                    self.submodules.append(Submodule(attr, "builtins.list", self.ctx.loc(node), elements=elements))
                continue
            callee = self.ctx.resolve(dotted(value.func) or "")
            if callee.endswith("Parameter"):
                self.tensors.append(Tensor(attr, "parameter", self.ctx.loc(node), True, self.ctx.code(value)))
            elif (self.framework == "mlx" and callee.startswith("mlx.core") and not attr.startswith("_")):
                self.tensors.append(Tensor(attr, "parameter", self.ctx.loc(node), True, self.ctx.code(value)))
            else:
                sub = self._submodule(attr, value)
                if sub:
                    self.submodules.append(sub)

    def visit_Call(self, node: cst.Call) -> None:
        if dotted(node.func) != "self.register_buffer" or len(node.args) < 2:
            return
        name = self.ctx.code(node.args[0].value).strip("'\"")
        persistent = True
        for a in node.args:
            if a.keyword is not None and a.keyword.value == "persistent":
                persistent = self.ctx.code(a.value) != "False"
        if len(node.args) >= 3 and node.args[2].keyword is None:
            persistent = self.ctx.code(node.args[2].value) != "False"
        self.tensors.append(Tensor(name, "buffer", self.ctx.loc(node), persistent, self.ctx.code(node.args[1].value)))


class ConfigUses(cst.CSTVisitor):
    """`config.field` reads of constructor arguments (also through `self.config = config`), and the classes the
    constructor builds with their argument sources."""

    def __init__(self, ctx: Context, params: set[str], aliases: dict[str, str]):
        self.ctx, self.params, self.aliases = ctx, params, aliases  # aliases: self attr -> parameter
        self.uses: list[tuple[str, str]] = []
        self.constructs: list[tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]]] = []

    def visit_Attribute(self, node: cst.Attribute) -> None:
        base = dotted(node.value)
        param = base if base in self.params else self.aliases.get(base[5:]) if base and base.startswith("self.") \
            else None
        if param:
            self.uses.append((param, node.attr.value))

    def record_calls(self, init: cst.FunctionDef) -> None:
        for call in _calls(init):
            name = dotted(call.func)
            if not name or not name.split(".")[-1][:1].isupper():
                continue
            resolved = self.ctx.resolve(name)
            if self.ctx.framework_of(resolved):
                continue
            args = tuple(self.ctx.code(a.value) for a in call.args if a.keyword is None and not a.star)
            kwargs = tuple((a.keyword.value, self.ctx.code(a.value)) for a in call.args if a.keyword is not None)
            self.constructs.append((name, args, kwargs))


def _calls(node: cst.CSTNode) -> list[cst.Call]:
    found: list[cst.Call] = []

    class _V(cst.CSTVisitor):
        def visit_Call(self, call: cst.Call) -> None:
            found.append(call)

    node.visit(_V())
    return found
