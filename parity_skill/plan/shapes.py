"""How an A-shaped parameter becomes a B-shaped one: the transform names of the weight map and their shapes."""
from __future__ import annotations


def transform_for(a: tuple[int, ...] | None, b: tuple[int, ...] | None, layout_change: bool) -> str | None:
    """The transform that turns an A-shaped array into a B-shaped one, or None if none applies."""
    if a is None or b is None or a == b:
        return "identity"
    if len(a) != len(b):
        return None
    if layout_change and len(a) >= 3 and b == (a[0], *a[2:], a[1]):
        return "conv_to_channels_last"
    if layout_change and len(a) >= 3 and a == (b[0], *b[2:], b[1]):
        return "conv_to_channels_first"
    return None


def squeezed(shape: tuple[int, ...] | None) -> tuple[int, ...] | None:
    return None if shape is None else tuple(d for d in shape if d != 1)


def apply_shape(transform: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    if transform.startswith("reshape:"):
        return tuple(int(d) for d in transform.partition(":")[2].split(",") if d)
    if transform == "transpose":
        return shape[::-1]
    if transform == "conv_to_channels_last":
        return (shape[0], *shape[2:], shape[1])
    if transform == "conv_to_channels_first":
        return (shape[0], shape[-1], *shape[1:-1])
    return shape
