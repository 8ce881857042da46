"""Builds a tiny dpimage-v1 model pair with onnx.helper (no torch), for runtime tests.

encoder: latent = mean colour of the crop (3 values) projected to D dims.
decoder: face   = the context crop plus the latent's colour (projected back) everywhere, so the
output visibly depends on the (noised) latent and on the context.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REQUIRED = {
    "streamdp.format": "dpimage-v1",
    "streamdp.clip_norm": "linf",
    "streamdp.clip_bound": "1.0",
    "streamdp.identity_dims": "0:4",
    "streamdp.mask_feather": "0.1",
    "streamdp.training_data": "none (test model)",
    "streamdp.version": "test-0",
    "streamdp.sha256": "0" * 64,
}


def _save(graph: onnx.GraphProto, path: Path, metadata: dict[str, str]) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for k, v in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def build_tiny_model(folder: Path, crop_size: int = 32, latent_dim: int = 8, drop_keys: tuple[str, ...] = ()) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    S, D = crop_size, latent_dim
    rng = np.random.default_rng(0)
    w_enc = rng.normal(size=(3, D)).astype(np.float32)
    w_dec = np.linalg.pinv(w_enc).astype(np.float32)  # (D, 3): decoder recovers the colour
    meta = dict(REQUIRED)
    meta["streamdp.crop_size"] = str(S)
    meta["streamdp.latent_dim"] = str(D)
    meta["streamdp.delta_l1"] = str(2.0 * D)
    meta["streamdp.delta_l2"] = str(2.0 * np.sqrt(D))
    for k in drop_keys:
        meta.pop(k, None)

    enc = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["face"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "w_enc"], ["latent"]),
        ],
        "tiny_encoder",
        [helper.make_tensor_value_info("face", TensorProto.FLOAT, ["N", 3, S, S])],
        [helper.make_tensor_value_info("latent", TensorProto.FLOAT, ["N", D])],
        [numpy_helper.from_array(w_enc, "w_enc")],
    )
    dec = helper.make_graph(
        [
            helper.make_node("MatMul", ["latent", "w_dec"], ["rgb"]),
            helper.make_node("Reshape", ["rgb", "shape4"], ["rgb4"]),
            helper.make_node("ReduceSum", ["keypoints", "axes1"], ["kpsum"], keepdims=1),
            helper.make_node("Mul", ["kpsum", "zero"], ["kpzero"]),
            helper.make_node("Reshape", ["kpzero", "shape4b"], ["kp4"]),
            helper.make_node("Add", ["context", "rgb4"], ["sum1"]),
            helper.make_node("Add", ["sum1", "kp4"], ["face"]),
        ],
        "tiny_decoder",
        [
            helper.make_tensor_value_info("latent", TensorProto.FLOAT, ["N", D]),
            helper.make_tensor_value_info("context", TensorProto.FLOAT, ["N", 3, S, S]),
            helper.make_tensor_value_info("keypoints", TensorProto.FLOAT, ["N", 12]),
        ],
        [helper.make_tensor_value_info("face", TensorProto.FLOAT, ["N", 3, S, S])],
        [
            numpy_helper.from_array(w_dec, "w_dec"),
            numpy_helper.from_array(np.array([-1, 3, 1, 1], np.int64), "shape4"),
            numpy_helper.from_array(np.array([-1, 1, 1, 1], np.int64), "shape4b"),
            numpy_helper.from_array(np.array([1], np.int64), "axes1"),
            numpy_helper.from_array(np.zeros(1, np.float32), "zero"),
        ],
    )
    _save(enc, folder / "encoder.onnx", meta)
    _save(dec, folder / "decoder.onnx", meta)
    return folder
