"""The IR ops the converter handles: one handler per op type, each folding constants with numpy or
emitting the equivalent ONNX node(s). ``HANDLERS`` maps an IR op type to its handler."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..errors import ModelError
from .ir_graph import ELEM_DTYPE, Layer
from .onnx_emit import Emitter, Value, is_const, need_const, onnx_type


def _ints(s: str) -> list[int]:
    return [int(v) for v in s.replace(" ", "").split(",") if v]


# --- op handlers: (emitter, layer, input values) -> one value per output port -----------------

Handler = Callable[[Emitter, Layer, list[Value]], list[Value]]
HANDLERS: dict[str, Handler] = {}


def _op(*types: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for t in types:
            HANDLERS[t] = fn
        return fn
    return register


_ELTWISE = {"Add": ("Add", np.add), "Subtract": ("Sub", np.subtract), "Multiply": ("Mul", np.multiply),
            "Divide": ("Div", np.divide), "Power": ("Pow", np.power), "Maximum": ("Max", np.maximum),
            "Minimum": ("Min", np.minimum), "Sqrt": ("Sqrt", np.sqrt), "Exp": ("Exp", np.exp),
            "Abs": ("Abs", np.abs), "Negative": ("Neg", np.negative), "Tanh": ("Tanh", np.tanh),
            "Relu": ("Relu", lambda x: np.maximum(x, 0)), "Sigmoid": ("Sigmoid", lambda x: 1 / (1 + np.exp(-x)))}


@_op(*_ELTWISE)
def _eltwise(em: Emitter, layer: Layer, ins: list[Value]) -> list[Value]:
    # "none" means equal shapes, which numpy broadcasting covers; "pdpd" aligns differently.
    if layer.data.get("auto_broadcast", "numpy") not in ("numpy", "none"):
        raise ModelError(f"ir2onnx: {layer.type} with auto_broadcast={layer.data['auto_broadcast']}")
    onnx_op, fn = _ELTWISE[layer.type]
    if layer.type == "Divide" and np.issubdtype(layer.outputs[0].dtype, np.integer):
        # OpenVINO's integer division floors by default (m_pythondiv); ONNX Div truncates.
        if layer.data.get("m_pythondiv", "true") != "true" or not all(map(is_const, ins)):
            raise ModelError(f"ir2onnx: integer Divide {layer.name!r} is not constant-foldable")
        fn = np.floor_divide
    if all(map(is_const, ins)):
        return [np.asarray(fn(*ins)).astype(layer.outputs[0].dtype)]
    return em.node(onnx_op, ins, layer.name)


@_op("Convert")
def _convert(em: Emitter, layer: Layer, ins: list[Value]) -> list[Value]:
    dtype = ELEM_DTYPE[layer.data["destination_type"]]
    if is_const(ins[0]):
        return [ins[0].astype(dtype)]
    return em.node("Cast", ins, layer.name, to=onnx_type(dtype))


@_op("ShapeOf")
def _shape_of(em: Emitter, layer: Layer, ins: list[Value]) -> list[Value]:
    return [np.array(layer.inputs[0].dims, ELEM_DTYPE[layer.data.get("output_type", "i64")])]


@_op("Reshape", "Squeeze", "Unsqueeze")
def _reshape(em: Emitter, layer: Layer, ins: list[Value]) -> list[Value]:
    # The declared output dims already resolve special_zero, -1 and the squeezed axes.
    return [em.reshape(ins[0], layer.outputs[0].dims, layer.name)]


@_op("Broadcast")
def _broadcast(em: Emitter, layer: Layer, ins: list[Value]) -> list[Value]:
    out = layer.outputs[0].dims
    x = ins[0]
    mode = layer.data.get("mode", "numpy")
    if mode == "explicit":  # place the input's dims at axes_mapping, 1 elsewhere, then expand
        axes = [int(a) for a in need_const(layer, ins[2], "axes_mapping").reshape(-1)]
        dims = [1] * len(out)
        for a, d in zip(axes, layer.inputs[0].dims):
            dims[a] = d
        x = em.reshape(x, dims, layer.name)
    elif mode not in ("numpy", "bidirectional"):
        raise ModelError(f"ir2onnx: Broadcast mode {mode!r}")
    # With the output dims as target, ONNX Expand gives the same result for every mode.
    if is_const(x):
        return [np.broadcast_to(x, out).copy()]
    return em.node("Expand", [x, np.array(out, np.int64)], layer.name)


@_op("Tile")
def _tile(em: Emitter, layer: Layer, ins: list[Value]) -> list[Value]:
    reps = [int(r) for r in need_const(layer, ins[1], "repeats").reshape(-1)]
    dims = list(layer.inputs[0].dims)
    # OpenVINO pads the shorter of (rank, repeats) with leading 1s; ONNX wants them equal.
    reps = [1] * (len(dims) - len(reps)) + reps
    x = em.reshape(ins[0], [1] * (len(reps) - len(dims)) + dims, layer.name) if len(reps) > len(dims) else ins[0]
    if is_const(x):
        return [np.tile(x, reps)]
    return em.node("Tile", [x, np.array(reps, np.int64)], layer.name)


@_op("Concat")
def _concat(em: Emitter, layer: Layer, ins: list[Value]) -> list[Value]:
    axis = int(layer.data.get("axis", "0"))
    if all(map(is_const, ins)):
        return [np.concatenate(ins, axis=axis).astype(layer.outputs[0].dtype)]
    return em.node("Concat", ins, layer.name, axis=axis)


@_op("Gather")
def _gather(em: Emitter, layer: Layer, ins: list[Value]) -> list[Value]:
    axis = int(need_const(layer, ins[2], "axis").reshape(()))
    if int(layer.data.get("batch_dims", "0")) != 0:
        raise ModelError(f"ir2onnx: Gather {layer.name!r} with batch_dims != 0")
    if all(map(is_const, ins[:2])):
        return [np.take(ins[0], ins[1], axis=axis)]
    return em.node("Gather", ins[:2], layer.name, axis=axis)


@_op("Split", "VariadicSplit")
def _split(em: Emitter, layer: Layer, ins: list[Value]) -> list[Value]:
    axis = int(need_const(layer, ins[1], "axis").reshape(()))
    # The declared output dims already resolve num_splits and a -1 length.
    lengths = [p.dims[axis] for p in layer.outputs]
    if is_const(ins[0]):
        return list(np.split(ins[0], np.cumsum(lengths)[:-1], axis=axis))
    return em.node("Split", [ins[0], np.array(lengths, np.int64)], layer.name, n_out=len(lengths), axis=axis)


@_op("Transpose")
def _transpose(em: Emitter, layer: Layer, ins: list[Value]) -> list[Value]:
    perm = [int(p) for p in need_const(layer, ins[1], "order").reshape(-1)]
    perm = perm or list(range(len(layer.inputs[0].dims)))[::-1]  # empty order = reverse
    if is_const(ins[0]):
        return [np.transpose(ins[0], perm)]
    return em.node("Transpose", ins[:1], layer.name, perm=perm)


@_op("ReduceMean", "ReduceSum")
def _reduce(em: Emitter, layer: Layer, ins: list[Value]) -> list[Value]:
    axes = [int(a) for a in need_const(layer, ins[1], "axes").reshape(-1)]
    keep = layer.data.get("keep_dims", "false") == "true"
    if is_const(ins[0]):
        fn = np.mean if layer.type == "ReduceMean" else np.sum
        return [np.asarray(fn(ins[0], axis=tuple(axes), keepdims=keep)).astype(layer.outputs[0].dtype)]
    if layer.type == "ReduceSum":  # opset 13+: axes as an input; ReduceMean's stays an attribute
        return em.node("ReduceSum", [ins[0], np.array(axes, np.int64)], layer.name, keepdims=int(keep))
    return em.node(layer.type, ins[:1], layer.name, axes=axes, keepdims=int(keep))


@_op("MatMul")
def _matmul(em: Emitter, layer: Layer, ins: list[Value]) -> list[Value]:
    a, b = ins
    for i, flag in ((0, "transpose_a"), (1, "transpose_b")):
        rank = len(layer.inputs[i].dims)
        if layer.data.get(flag, "false") == "true" and rank >= 2:  # 1-D operands ignore the flag
            x = ins[i]
            perm = list(range(rank - 2)) + [rank - 1, rank - 2]
            x = np.ascontiguousarray(np.transpose(x, perm)) if is_const(x) else em.node(
                "Transpose", [x], layer.name, perm=perm)[0]
            a, b = (x, b) if i == 0 else (a, x)
    if is_const(a) and is_const(b):
        return [np.matmul(a, b)]
    return em.node("MatMul", [a, b], layer.name)


@_op("PReLU")
def _prelu(em: Emitter, layer: Layer, ins: list[Value]) -> list[Value]:
    x_dims, s_dims = layer.inputs[0].dims, layer.inputs[1].dims
    slope = ins[1]
    # OpenVINO applies a 1-D slope of size C along axis 1; ONNX broadcasts it from the last axis.
    if len(s_dims) == 1 and s_dims[0] > 1 and len(x_dims) >= 2 and s_dims[0] == x_dims[1]:
        slope = em.reshape(slope, [s_dims[0]] + [1] * (len(x_dims) - 2), layer.name)
    return em.node("PRelu", [ins[0], slope], layer.name)


def _conv_attrs(layer: Layer, transposed: bool) -> dict[str, Any]:
    d = layer.data
    attrs: dict[str, Any] = {"strides": _ints(d["strides"]), "dilations": _ints(d["dilations"])}
    auto_pad = d.get("auto_pad", "explicit")
    if auto_pad in ("explicit", "notset"):
        attrs["pads"] = _ints(d["pads_begin"]) + _ints(d["pads_end"])
    elif auto_pad == "valid":
        attrs["pads"] = [0] * (2 * len(attrs["strides"]))
    elif auto_pad in ("same_upper", "same_lower") and not transposed:
        attrs["auto_pad"] = auto_pad.upper()
    else:  # onnxruntime's SAME_* for ConvTranspose has differed from the spec; not needed here
        raise ModelError(f"ir2onnx: {layer.type} {layer.name!r} with auto_pad={auto_pad}")
    if transposed and any(_ints(d.get("output_padding", "0"))):
        attrs["output_padding"] = _ints(d["output_padding"])
    return attrs


@_op("Convolution", "GroupConvolution", "ConvolutionBackpropData", "GroupConvolutionBackpropData")
def _conv(em: Emitter, layer: Layer, ins: list[Value]) -> list[Value]:
    transposed = layer.type.endswith("BackpropData")
    if transposed and len(ins) > 2:
        raise ModelError(f"ir2onnx: {layer.type} {layer.name!r} with an output_shape input")
    w, w_dims = ins[1], layer.inputs[1].dims
    group = 1
    if layer.type.startswith("Group"):
        # GroupConvolution [G, Cout/G, Cin/G, k..] -> Conv [Cout, Cin/G, k..];
        # GroupConvolutionBackpropData [G, Cin/G, Cout/G, k..] -> ConvTranspose [Cin, Cout/G, k..].
        # Both merge the two leading dims, so a plain reshape (also of a run-time weight) does it.
        group = w_dims[0]
        w = em.reshape(w, (w_dims[0] * w_dims[1],) + w_dims[2:], layer.name)
    op = "ConvTranspose" if transposed else "Conv"
    return em.node(op, [ins[0], w], layer.name, group=group, **_conv_attrs(layer, transposed))
