"""An OpenVINO IR v10 (.xml) read into layers and ports, in dependency order (no OpenVINO needed)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError

# Floats become f32 everywhere: onnxruntime's CPU kernels lack many f16 ops, and the IR's
# Convert-from-f16 nodes then reduce to no-ops.
ELEM_DTYPE = {"f32": np.float32, "f16": np.float32, "bf16": np.float32, "f64": np.float32,
              "i64": np.int64, "i32": np.int32, "i8": np.int8, "u8": np.uint8, "boolean": np.bool_}
RAW_DTYPE = {"f16": np.float16, "bf16": np.uint16, "f64": np.float64, "boolean": np.uint8}  # on-disk dtype where it differs
PRECISION_TYPE = {"FP32": "f32", "FP16": "f32", "BF16": "f32", "FP64": "f32", "I64": "i64", "I32": "i32",
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


def _port(el: ET.Element) -> Port:
    dims = tuple(int(d.text or "0") for d in el.findall("dim"))
    if any(d < 0 for d in dims):
        raise ModelError("the face generator IR has dynamic shapes, which ir2onnx does not handle")
    names = [n.strip() for n in el.get("names", "").split(",") if n.strip()]
    return Port(int(el.get("id", "0")), dims, ELEM_DTYPE[PRECISION_TYPE.get(el.get("precision", "FP32"), "f32")], names)


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
