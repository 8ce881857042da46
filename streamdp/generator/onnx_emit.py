"""Building an ONNX graph: the emitter that collects nodes and initializers, and constant values."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ModelError
from .ir_graph import Layer

Value = Any  # np.ndarray (a known constant) or str (the name of an ONNX tensor)


class Emitter:
    """Accumulates ONNX nodes, initializers and graph inputs/outputs."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.inputs: list[Any] = []
        self.outputs: list[Any] = []
        self._const_names: dict[int, str] = {}
        self._held: list[np.ndarray] = []  # keeps each id() in _const_names from being reused
        self._n = 0

    def fresh(self, hint: str) -> str:
        self._n += 1
        return f"{hint}__{self._n}"

    def tensor(self, v: Value) -> str:
        if isinstance(v, str):
            return v
        key = id(v)  # a Const used by several layers becomes one initializer
        if key not in self._const_names:
            from onnx import numpy_helper

            name = self.fresh("const")
            self.inits.append(numpy_helper.from_array(np.ascontiguousarray(v), name))
            self._const_names[key] = name
            self._held.append(v)
        return self._const_names[key]

    def node(self, op: str, ins: list[Value], name: str, n_out: int = 1, outs: list[str] | None = None,
             **attrs: Any) -> list[str]:
        from onnx import helper

        outs = outs or [self.fresh(name) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op, [self.tensor(v) for v in ins], outs, name=self.fresh(name), **attrs))
        return outs

    def reshape(self, v: Value, dims: tuple[int, ...] | list[int], name: str) -> Value:
        if isinstance(v, np.ndarray):
            return v.reshape(dims)
        return self.node("Reshape", [v, np.array(dims, np.int64)], name)[0]


def is_const(x: Value) -> bool:
    return isinstance(x, np.ndarray)


def need_const(layer: Layer, x: Value, what: str) -> np.ndarray:
    if not is_const(x):
        raise ModelError(f"ir2onnx: {layer.type} {layer.name!r} has a non-constant {what}")
    return x


def onnx_type(dtype: Any) -> int:
    from onnx import helper

    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
