"""Convert MobileStyleGAN's OpenVINO IR (v10 .xml + .bin) to ONNX, so it runs on onnxruntime (CUDA).

The IR is parsed directly rather than through OpenVINO so that the conversion needs only ``onnx``.
Every port in this IR carries static dims, which the converter leans on: ``ShapeOf`` becomes a
constant, shape sub-graphs fold to numpy arrays, and Reshape/Squeeze/Unsqueeze/Broadcast/Tile take
their target shape from the declared output dims. Ops outside the handled set are refused by name
(``ModelError``) rather than guessed at.

``cached_onnx_generator`` converts once per user, checks each graph against OpenVINO on fixed
inputs, and only then renames the file into the cache, so a half-written or wrong graph is never
picked up by a later (or concurrent) run.

The modules: ``ir_graph`` reads the IR, ``onnx_emit`` builds the graph, ``ir_ops`` has one handler
per op, ``ir_convert`` converts one network; this one caches and checks the conversions.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .ir_convert import CONVERTER_VERSION, OPSET, convert_ir, import_onnx, ir_to_model
from .ir_graph import Layer, Port, parse_ir
from .ir_ops import HANDLERS

# re-exported: the names importers know from this module
__all__ = [
    "CONVERTER_VERSION",
    "HANDLERS",
    "NETWORKS",
    "OPSET",
    "Layer",
    "Port",
    "cache_dir",
    "cached_onnx_generator",
    "convert_ir",
    "ir_to_model",
    "parse_ir",
]

log = logging.getLogger(__name__)

SYN_ATOL = 1e-2  # synthesis output is an image in about [-1, 1]
MAP_RTOL = 1e-3  # relative to the largest |w| of the reference
NETWORKS = {"mapping": "MappingNetwork", "synthesis": "SynthesisNetwork"}


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
        import_onnx()
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
