"""Writing ONNX graphs deterministically: the same layers always give the same bytes (so a converted model's
sha256 can stand on the model card). Shared by every converter."""

from __future__ import annotations

from leadmatch.lazy import lazy

np = lazy("numpy")

OPSET = 13


class Graph:
    """An ONNX graph being built: its nodes and initializers, each named uniquely in the order added (so the
    same layers always give the same file)."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.inits: list = []
        self._counter = iter(range(10_000))

    def const(self, array: np.ndarray, stem: str) -> str:
        """Add `array` as an initializer; returns its name."""
        from onnx import numpy_helper

        name = f"{stem}_{next(self._counter)}"
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        """Add one `op` node on `inputs`; returns the name of its output."""
        from onnx import helper

        out = f"{op.lower()}_{next(self._counter)}"
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out
