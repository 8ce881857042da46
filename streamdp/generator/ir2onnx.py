"""Convert MobileStyleGAN's OpenVINO IR (v10 .xml + .bin) to ONNX, so it runs on onnxruntime (CUDA).

The IR is parsed directly rather than through OpenVINO so that the conversion needs only ``onnx``.
Every port in this IR carries static dims, which the converter leans on: ``ShapeOf`` becomes a
constant, shape sub-graphs fold to numpy arrays, and Reshape/Squeeze/Unsqueeze/Broadcast/Tile take
their target shape from the declared output dims. Ops outside the handled set are refused by name
(``ModelError``) rather than guessed at.

``cached_onnx_generator`` converts once per user, checks each graph against OpenVINO on fixed
inputs, and only then renames the file into the cache, so a half-written or wrong graph is never
picked up by a later (or concurrent) run.
"""

from __future__ import annotations

import hashlib
import logging
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import ModelError

log = logging.getLogger(__name__)

# Bump when the emitted graph changes, so stale cached conversions are not reused.
CONVERTER_VERSION = "ir2onnx-1"
OPSET = 17
SYN_ATOL = 1e-2  # synthesis output is an image in about [-1, 1]
MAP_RTOL = 1e-3  # relative to the largest |w| of the reference
NETWORKS = {"mapping": "MappingNetwork", "synthesis": "SynthesisNetwork"}

# Floats become f32 everywhere: onnxruntime's CPU kernels lack many f16 ops, and the IR's
# Convert-from-f16 nodes then reduce to no-ops.
_ELEM = {"f32": np.float32, "f16": np.float32, "bf16": np.float32, "f64": np.float32,
         "i64": np.int64, "i32": np.int32, "i8": np.int8, "u8": np.uint8, "boolean": np.bool_}
_RAW = {"f16": np.float16, "bf16": np.uint16, "f64": np.float64, "boolean": np.uint8}  # on-disk dtype where it differs
_PREC = {"FP32": "f32", "FP16": "f32", "BF16": "f32", "FP64": "f32", "I64": "i64", "I32": "i32",
         "I8": "i8", "U8": "u8", "BOOL": "boolean"}


@dataclass
class Port:
    id: int
    dims: tuple[int, ...]
    dtype: Any
    names: list[str]


@dataclass
class Layer:
    id: int
    name: str
    type: str
    version: str
    data: dict[str, str]
    inputs: list[Port]
    outputs: list[Port]
    sources: list[tuple[int, int]] = field(default_factory=list)  # (layer id, port id) per input


def _ints(s: str) -> list[int]:
    return [int(v) for v in s.replace(" ", "").split(",") if v]


def _port(el: ET.Element) -> Port:
    dims = tuple(int(d.text or "0") for d in el.findall("dim"))
    if any(d < 0 for d in dims):
        raise ModelError("the face generator IR has dynamic shapes, which ir2onnx does not handle")
    names = [n.strip() for n in el.get("names", "").split(",") if n.strip()]
    return Port(int(el.get("id", "0")), dims, _ELEM[_PREC.get(el.get("precision", "FP32"), "f32")], names)


def parse_ir(xml_path: Path) -> list[Layer]:
    """Layers of an IR in dependency order, each with the (layer, port) feeding each input."""
    root = ET.parse(xml_path).getroot()
    layers: dict[int, Layer] = {}
    for el in root.iter("layer"):
        data = el.find("data")
        ins, outs = el.find("input"), el.find("output")
        layers[int(el.get("id", "0"))] = Layer(
            int(el.get("id", "0")), el.get("name", ""), el.get("type", ""), el.get("version", ""),
            dict(data.attrib) if data is not None else {},
            sorted((_port(p) for p in (ins if ins is not None else [])), key=lambda p: p.id),
            sorted((_port(p) for p in (outs if outs is not None else [])), key=lambda p: p.id))
    feeds: dict[tuple[int, int], tuple[int, int]] = {}
    for e in root.iter("edge"):
        feeds[int(e.get("to-layer", "0")), int(e.get("to-port", "0"))] = (
            int(e.get("from-layer", "0")), int(e.get("from-port", "0")))
    for layer in layers.values():
        layer.sources = [feeds[layer.id, p.id] for p in layer.inputs]
    # The IR is normally written in order already; sort anyway rather than trust it.
    order, done = [], set()
    pending = sorted(layers)
    while pending:
        ready = [i for i in pending if all(s[0] in done for s in layers[i].sources)]
        if not ready:
            raise ModelError(f"the IR graph {xml_path.name} has a cycle")
        order += ready
        done.update(ready)
        pending = [i for i in pending if i not in done]
    return [layers[i] for i in order]


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


def _const(x: Value) -> bool:
    return isinstance(x, np.ndarray)


def _need_const(layer: Layer, x: Value, what: str) -> np.ndarray:
    if not _const(x):
        raise ModelError(f"ir2onnx: {layer.type} {layer.name!r} has a non-constant {what}")
    return x


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
        if layer.data.get("m_pythondiv", "true") != "true" or not all(map(_const, ins)):
            raise ModelError(f"ir2onnx: integer Divide {layer.name!r} is not constant-foldable")
        fn = np.floor_divide
    if all(map(_const, ins)):
        return [np.asarray(fn(*ins)).astype(layer.outputs[0].dtype)]
    return em.node(onnx_op, ins, layer.name)


@_op("Convert")
def _convert(em: Emitter, layer: Layer, ins: list[Value]) -> list[Value]:
    dtype = _ELEM[layer.data["destination_type"]]
    if _const(ins[0]):
        return [ins[0].astype(dtype)]
    return em.node("Cast", ins, layer.name, to=_onnx_type(dtype))


@_op("ShapeOf")
def _shape_of(em: Emitter, layer: Layer, ins: list[Value]) -> list[Value]:
    return [np.array(layer.inputs[0].dims, _ELEM[layer.data.get("output_type", "i64")])]


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
        axes = [int(a) for a in _need_const(layer, ins[2], "axes_mapping").reshape(-1)]
        dims = [1] * len(out)
        for a, d in zip(axes, layer.inputs[0].dims):
            dims[a] = d
        x = em.reshape(x, dims, layer.name)
    elif mode not in ("numpy", "bidirectional"):
        raise ModelError(f"ir2onnx: Broadcast mode {mode!r}")
    # With the output dims as target, ONNX Expand gives the same result for every mode.
    if _const(x):
        return [np.broadcast_to(x, out).copy()]
    return em.node("Expand", [x, np.array(out, np.int64)], layer.name)


@_op("Tile")
def _tile(em: Emitter, layer: Layer, ins: list[Value]) -> list[Value]:
    reps = [int(r) for r in _need_const(layer, ins[1], "repeats").reshape(-1)]
    dims = list(layer.inputs[0].dims)
    # OpenVINO pads the shorter of (rank, repeats) with leading 1s; ONNX wants them equal.
    reps = [1] * (len(dims) - len(reps)) + reps
    x = em.reshape(ins[0], [1] * (len(reps) - len(dims)) + dims, layer.name) if len(reps) > len(dims) else ins[0]
    if _const(x):
        return [np.tile(x, reps)]
    return em.node("Tile", [x, np.array(reps, np.int64)], layer.name)


@_op("Concat")
def _concat(em: Emitter, layer: Layer, ins: list[Value]) -> list[Value]:
    axis = int(layer.data.get("axis", "0"))
    if all(map(_const, ins)):
        return [np.concatenate(ins, axis=axis).astype(layer.outputs[0].dtype)]
    return em.node("Concat", ins, layer.name, axis=axis)


@_op("Gather")
def _gather(em: Emitter, layer: Layer, ins: list[Value]) -> list[Value]:
    axis = int(_need_const(layer, ins[2], "axis").reshape(()))
    if int(layer.data.get("batch_dims", "0")) != 0:
        raise ModelError(f"ir2onnx: Gather {layer.name!r} with batch_dims != 0")
    if all(map(_const, ins[:2])):
        return [np.take(ins[0], ins[1], axis=axis)]
    return em.node("Gather", ins[:2], layer.name, axis=axis)


@_op("Split", "VariadicSplit")
def _split(em: Emitter, layer: Layer, ins: list[Value]) -> list[Value]:
    axis = int(_need_const(layer, ins[1], "axis").reshape(()))
    # The declared output dims already resolve num_splits and a -1 length.
    lengths = [p.dims[axis] for p in layer.outputs]
    if _const(ins[0]):
        return list(np.split(ins[0], np.cumsum(lengths)[:-1], axis=axis))
    return em.node("Split", [ins[0], np.array(lengths, np.int64)], layer.name, n_out=len(lengths), axis=axis)


@_op("Transpose")
def _transpose(em: Emitter, layer: Layer, ins: list[Value]) -> list[Value]:
    perm = [int(p) for p in _need_const(layer, ins[1], "order").reshape(-1)]
    perm = perm or list(range(len(layer.inputs[0].dims)))[::-1]  # empty order = reverse
    if _const(ins[0]):
        return [np.transpose(ins[0], perm)]
    return em.node("Transpose", ins[:1], layer.name, perm=perm)


@_op("ReduceMean", "ReduceSum")
def _reduce(em: Emitter, layer: Layer, ins: list[Value]) -> list[Value]:
    axes = [int(a) for a in _need_const(layer, ins[1], "axes").reshape(-1)]
    keep = layer.data.get("keep_dims", "false") == "true"
    if _const(ins[0]):
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
            x = np.ascontiguousarray(np.transpose(x, perm)) if _const(x) else em.node(
                "Transpose", [x], layer.name, perm=perm)[0]
            a, b = (x, b) if i == 0 else (a, x)
    if _const(a) and _const(b):
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


# --- conversion ------------------------------------------------------------------------------


def _read_const(layer: Layer, blob: memoryview) -> np.ndarray:
    et = layer.data["element_type"]
    if et not in _ELEM:
        raise ModelError(f"ir2onnx: Const {layer.name!r} of element type {et}")
    raw = np.dtype(_RAW.get(et, _ELEM[et]))
    offset, size = int(layer.data["offset"]), int(layer.data["size"])
    shape = layer.outputs[0].dims
    arr = np.frombuffer(blob[offset : offset + size], raw, count=int(np.prod(shape, dtype=np.int64)))
    if et == "bf16":  # numpy has no bfloat16: it is the top half of an f32
        arr = (arr.astype(np.uint32) << 16).view(np.float32)
    return arr.reshape(shape).astype(_ELEM[et])


def _onnx_type(dtype: Any) -> int:
    from onnx import helper

    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def _tensor_name(port: Port, fallback: str) -> str:
    return port.names[0] if port.names else fallback


def ir_to_model(xml_path: Path) -> Any:
    """The ONNX ModelProto for an IR .xml (its .bin beside it)."""
    from onnx import helper

    layers = parse_ir(xml_path)
    unsupported = sorted({lay.type for lay in layers} - set(HANDLERS) - {"Parameter", "Const", "Result"})
    if unsupported:
        raise ModelError(f"ir2onnx: {xml_path.name} uses unsupported ops: {', '.join(unsupported)}")
    blob = memoryview(xml_path.with_suffix(".bin").read_bytes())
    em = Emitter()
    values: dict[tuple[int, int], Value] = {}
    by_id = {lay.id: lay for lay in layers}
    for lay in layers:
        ins = [values[s] for s in lay.sources]
        if lay.type == "Parameter":
            port = lay.outputs[0]
            name = _tensor_name(port, lay.name)
            em.inputs.append(helper.make_tensor_value_info(name, _onnx_type(port.dtype), list(port.dims)))
            outs: list[Value] = [name]
        elif lay.type == "Const":
            outs = [_read_const(lay, blob)]
        elif lay.type == "Result":
            src_layer, src_port = lay.sources[0]
            port = next(p for p in by_id[src_layer].outputs if p.id == src_port)
            name = _tensor_name(port, lay.name.split("/sink_port")[0])
            em.node("Identity", ins, name, outs=[name])  # the graph output keeps its IR tensor name
            em.outputs.append(helper.make_tensor_value_info(name, _onnx_type(port.dtype), list(port.dims)))
            outs = []
        else:
            outs = HANDLERS[lay.type](em, lay, ins)
        if len(outs) != len(lay.outputs):
            raise ModelError(f"ir2onnx: {lay.type} {lay.name!r}: {len(outs)} outputs for {len(lay.outputs)} ports")
        for port, v in zip(lay.outputs, outs):
            # numpy folds of 0-d arrays (np.take, np.mean) return scalars; keep them arrays
            values[lay.id, port.id] = np.asarray(v, port.dtype) if isinstance(v, np.generic) else v
    graph = helper.make_graph(em.nodes, xml_path.stem, em.inputs, em.outputs, em.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="streamdp.ir2onnx", producer_version=CONVERTER_VERSION)
    model.ir_version = 8  # opset 17's IR version: loadable by older onnxruntime builds too
    return model


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ModelError("converting the face generator to ONNX needs the onnx package: pip install onnx") from None
    return onnx


def convert_ir(xml_path: Path, onnx_path: Path) -> None:
    """Write the ONNX conversion of ``xml_path`` to ``onnx_path`` (atomically: temp file + rename)."""
    onnx = _import_onnx()
    model = ir_to_model(Path(xml_path))
    onnx.checker.check_model(model)
    onnx_path = Path(onnx_path)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = onnx_path.with_name(f".{onnx_path.name}.{os.getpid()}.tmp")
    try:
        onnx.save(model, str(tmp))
        os.replace(tmp, onnx_path)
    finally:
        tmp.unlink(missing_ok=True)


def cache_dir() -> Path:
    if os.environ.get("STREAMDP_CACHE_DIR"):
        return Path(os.environ["STREAMDP_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "streamdp" / "generator"


def _cache_key(data_dir: Path) -> str:
    # Size + first MB of each weight file: cheap, and enough to tell random-face releases apart.
    h = hashlib.sha256(CONVERTER_VERSION.encode())
    for net in NETWORKS.values():
        path = data_dir / f"{net}.bin"
        h.update(f"{net}:{path.stat().st_size}:".encode())
        with open(path, "rb") as f:
            h.update(f.read(1 << 20))
    return h.hexdigest()[:16]


def cached_onnx_generator(data_dir: Path) -> tuple[Path, Path]:
    """Paths of (mapping.onnx, synthesis.onnx) in the user cache, converting and checking on first use."""
    data_dir = Path(data_dir)
    folder = cache_dir() / _cache_key(data_dir)
    paths = {kind: folder / f"{kind}.onnx" for kind in NETWORKS}
    missing = [kind for kind, p in paths.items() if not p.is_file()]
    if missing:
        _import_onnx()
        log.info("converting the face generator (%s) to ONNX in %s", ", ".join(missing), folder)
        # Unverified conversions keep a hidden per-process name until they pass the check.
        pending = {kind: folder / f".{kind}.onnx.{os.getpid()}.unverified" for kind in missing}
        try:
            for kind, tmp in pending.items():
                convert_ir(data_dir / f"{NETWORKS[kind]}.xml", tmp)
            _verify(data_dir, pending)
            for kind, tmp in pending.items():
                os.replace(tmp, paths[kind])  # a concurrent converter's identical file may win
        finally:
            for tmp in pending.values():
                tmp.unlink(missing_ok=True)
        log.info("face generator converted to ONNX: %s", folder)
    return paths["mapping"], paths["synthesis"]


def _verify(data_dir: Path, onnx_paths: dict[str, Path]) -> None:
    """Compare each converted graph with OpenVINO on the IR; raise ModelError when they disagree."""
    try:
        import openvino as ov
    except ImportError:
        log.warning("OpenVINO is not installed: the ONNX face generator is used unchecked")
        return
    import onnxruntime as ort

    core = ov.Core()
    # f32 explicitly: on CPUs with bf16 support OpenVINO's default precision hint is bf16, which
    # alone differs from f32 by up to ~0.5 in synthesis pixels (measured), hiding real errors.
    cfg = {"INFERENCE_PRECISION_HINT": "f32"}
    ov_net = {k: core.compile_model(core.read_model(str(data_dir / f"{n}.xml")), "CPU", cfg)
              for k, n in NETWORKS.items()}
    z = np.random.default_rng(20210721).standard_normal((2, 1, 512)).astype(np.float32)
    # Synthesis is checked on real styles (the mapping of z), the inputs it will see in use.
    inputs = {"mapping": list(z), "synthesis": [ov_net["mapping"](zi)[0] for zi in z]}
    for kind, path in onnx_paths.items():
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        worst = 0.0
        for x in inputs[kind]:
            ref = ov_net[kind](x)[0]
            diff = float(np.max(np.abs(sess.run(None, {name: x})[0] - ref)))
            worst = max(worst, diff / float(np.max(np.abs(ref))) if kind == "mapping" else diff)
        limit = MAP_RTOL if kind == "mapping" else SYN_ATOL
        log.info("ONNX %s vs OpenVINO: max %s difference %.2e (limit %.0e)",
                 kind, "relative" if kind == "mapping" else "absolute", worst, limit)
        if not worst <= limit:  # also refuses NaN
            raise ModelError(f"the ONNX conversion of the face generator's {kind} network disagrees with "
                             f"OpenVINO (max difference {worst:.3g} > {limit:g}); please report this")
