"""One IR network -> an ONNX model: Parameters, Consts (read from the .bin) and Results here, every
other op through its handler in ``ir_ops``; written atomically by ``convert_ir``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError
from .ir_graph import ELEM_DTYPE, RAW_DTYPE, Layer, Port, parse_ir
from .ir_ops import HANDLERS
from .onnx_emit import Emitter, Value, onnx_type

# Bump when the emitted graph changes, so stale cached conversions are not reused.
CONVERTER_VERSION = "ir2onnx-1"
OPSET = 17


def _read_const(layer: Layer, blob: memoryview) -> np.ndarray:
    et = layer.data["element_type"]
    if et not in ELEM_DTYPE:
        raise ModelError(f"ir2onnx: Const {layer.name!r} of element type {et}")
    raw = np.dtype(RAW_DTYPE.get(et, ELEM_DTYPE[et]))
    offset, size = int(layer.data["offset"]), int(layer.data["size"])
    shape = layer.outputs[0].dims
    arr = np.frombuffer(blob[offset : offset + size], raw, count=int(np.prod(shape, dtype=np.int64)))
    if et == "bf16":  # numpy has no bfloat16: it is the top half of an f32
        arr = (arr.astype(np.uint32) << 16).view(np.float32)
    return arr.reshape(shape).astype(ELEM_DTYPE[et])


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
            em.inputs.append(helper.make_tensor_value_info(name, onnx_type(port.dtype), list(port.dims)))
            outs: list[Value] = [name]
        elif lay.type == "Const":
            outs = [_read_const(lay, blob)]
        elif lay.type == "Result":
            src_layer, src_port = lay.sources[0]
            port = next(p for p in by_id[src_layer].outputs if p.id == src_port)
            name = _tensor_name(port, lay.name.split("/sink_port")[0])
            em.node("Identity", ins, name, outs=[name])  # the graph output keeps its IR tensor name
            em.outputs.append(helper.make_tensor_value_info(name, onnx_type(port.dtype), list(port.dims)))
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


def import_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ModelError("converting the face generator to ONNX needs the onnx package: pip install onnx") from None
    return onnx


def convert_ir(xml_path: Path, onnx_path: Path) -> None:
    """Write the ONNX conversion of ``xml_path`` to ``onnx_path`` (atomically: temp file + rename)."""
    onnx = import_onnx()
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
