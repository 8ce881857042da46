"""Export the trained encoder/decoder to ONNX (``dpimage-v1``) with their metadata.

Needs torch and onnx (train extra). The helpers ``weights_sha256`` (onnx) and
``read_model_metadata`` (onnxruntime only, re-exported from ``streamdp.privacy``) do not need torch.

``streamdp.sha256`` is the sha256 of the graph's weights: for every initializer and every
``Constant`` node value, sorted by name, the bytes ``name NUL dtype NUL shape NUL data`` (data as
little-endian C-order array bytes). ``weights_sha256(path)`` recomputes it; metadata edits do not
change it, a changed weight does.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError
from ..privacy.mechanisms import MODEL_FORMAT, REQUIRED_METADATA, read_model_metadata

log = logging.getLogger(__name__)

__all__ = ["export_from_checkpoint", "weights_sha256", "verify_weights_sha256", "read_model_metadata", "model_metadata"]


def _weights_of(model: Any) -> list[tuple[str, np.ndarray]]:
    from onnx import numpy_helper

    out = [(t.name, numpy_helper.to_array(t)) for t in model.graph.initializer]
    for node in model.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    out.append((node.output[0], numpy_helper.to_array(a.t)))
    return sorted(out, key=lambda kv: kv[0])


def weights_sha256(path_or_model: str | Path | Any) -> str:
    import onnx

    model = onnx.load(str(path_or_model)) if isinstance(path_or_model, (str, Path)) else path_or_model
    h = hashlib.sha256()
    for name, arr in _weights_of(model):
        arr = np.ascontiguousarray(arr)
        if arr.dtype.byteorder == ">":
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        h.update(name.encode("utf-8") + b"\0" + arr.dtype.str.encode() + b"\0" + str(arr.shape).encode() + b"\0")
        h.update(arr.tobytes())
    return h.hexdigest()


def verify_weights_sha256(path: str | Path) -> str:
    """Recompute the weights hash and compare with the stored ``streamdp.sha256``."""
    meta = read_model_metadata(path)
    got = weights_sha256(path)
    if got != meta["streamdp.sha256"]:
        raise ModelError(f"model {path}: weights sha256 {got[:12]}... does not match its metadata")
    return got


def _align_version() -> str:
    from .. import align

    return str(getattr(align, "ALIGN_VERSION", "unknown"))


def privacy_metadata(fmt: str, crop_size: int, latent_dim: int, clip_bound: float, identity_dims: int) -> dict[str, str]:
    """The geometry keys every encoder carries: the linf clip box and its true diameters."""
    D, B = int(latent_dim), float(clip_bound)
    return {
        "streamdp.format": fmt,
        "streamdp.crop_size": str(int(crop_size)),
        "streamdp.latent_dim": str(D),
        "streamdp.clip_norm": "linf",
        "streamdp.clip_bound": repr(B),
        "streamdp.delta_l1": repr(2 * B * D),
        "streamdp.delta_l2": repr(2 * B * math.sqrt(D)),
        "streamdp.identity_dims": f"0:{int(identity_dims)}",
    }


def model_metadata(cfg: dict[str, Any], steps: int) -> dict[str, str]:
    return {
        **privacy_metadata(
            MODEL_FORMAT,
            int(cfg["data"]["crop_size"]),
            int(cfg["model"]["latent_dim"]),
            float(cfg["model"]["clip_bound"]),
            int(cfg["model"]["identity_dims"]),
        ),
        "streamdp.mask_feather": repr(float(cfg["data"]["mask_feather"])),
        "streamdp.training_data": str(cfg["export"]["training_data"]),
        "streamdp.version": str(cfg["export"]["version"]),
        "streamdp.latent_prior": "normal",
        "streamdp.align_version": _align_version(),
        "streamdp.training_steps": str(steps),
        "streamdp.exported": time.strftime("%Y-%m-%d", time.gmtime()),
    }


def stamp_metadata(path: Path, meta: dict[str, str]) -> str:
    """Write ``meta`` plus the weights' ``streamdp.sha256`` into an ONNX file; returns the hash."""
    import onnx

    model = onnx.load(str(path))
    digest = weights_sha256(model)
    del model.metadata_props[:]
    for k, v in {**meta, "streamdp.sha256": digest}.items():
        p = model.metadata_props.add()
        p.key, p.value = k, v
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    from ..model_files import is_shipped, write_manifest

    if is_shipped(path):  # a retrained model in the package: its checksum goes in the list
        write_manifest()
    return digest


def latent_prior_std(enc: Any, crops_u8: np.ndarray, bound: float) -> float:
    """Mean per-coordinate std of the clipped latents of some *training* crops (for the prior)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(crops_u8.transpose(0, 3, 1, 2))).float() / 255.0
    with torch.no_grad():
        z = torch.cat([enc(x[i : i + 64]) for i in range(0, len(x), 64)]).clamp(-bound, bound).numpy()
    return float(np.sqrt((z.var(0) + z.mean(0) ** 2).mean()))  # spread around 0, as the prior is centred


def export_from_checkpoint(
    cfg: dict[str, Any], ckpt: Path, mask: np.ndarray, out_dir: Path, calib_crops: np.ndarray | None = None
) -> dict[str, str]:
    """Export, stamp metadata, verify. ``calib_crops``: training crops (uint8 NHWC) used to measure
    the latent's spread for ``streamdp.latent_prior`` (default: the trained-for N(0, 1))."""
    import onnxruntime as ort
    import torch

    from .train import load_ema

    enc, dec, st = load_ema(ckpt, cfg, mask)
    # The mask is baked into both graphs; it must be the one the runtime computes.
    cur = np.asarray(mask, np.float32).reshape(enc.mask.shape[-2:])
    for name, mod in (("encoder", enc), ("decoder", dec)):
        if not np.allclose(mod.mask.reshape(cur.shape).numpy(), cur, atol=1e-6):
            raise ModelError(f"checkpoint {ckpt}: the {name}'s face mask differs from streamdp.align.face_mask; fine-tune first")
    S = int(cfg["data"]["crop_size"])
    D = int(cfg["model"]["latent_dim"])
    opset = int(cfg["export"].get("opset", 17))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    enc_path, dec_path = out_dir / "encoder.onnx", out_dir / "decoder.onnx"
    g = torch.Generator().manual_seed(0)
    face = torch.rand(2, 3, S, S, generator=g)
    m = torch.from_numpy(np.asarray(mask, np.float32))
    ctx = face * (1 - m)
    kp = torch.rand(2, 12, generator=g)
    lat = torch.randn(2, D, generator=g)
    with torch.no_grad():
        torch.onnx.export(
            enc, (face,), str(enc_path), input_names=["face"], output_names=["latent"],
            dynamic_axes={"face": {0: "N"}, "latent": {0: "N"}}, opset_version=opset, dynamo=False,
        )
        torch.onnx.export(
            dec, (lat, ctx, kp), str(dec_path), input_names=["latent", "context", "keypoints"],
            output_names=["face"],
            dynamic_axes={"latent": {0: "N"}, "context": {0: "N"}, "keypoints": {0: "N"}, "face": {0: "N"}},
            opset_version=opset, dynamo=False,
        )
    meta = model_metadata(cfg, int(st["step"]))
    if calib_crops is not None and len(calib_crops):
        meta["streamdp.latent_prior"] = f"normal:{latent_prior_std(enc, calib_crops, float(cfg['model']['clip_bound'])):.3f}"
    sha = {"encoder": stamp_metadata(enc_path, meta), "decoder": stamp_metadata(dec_path, meta)}
    # verify with onnxruntime (no torch in the runtime) against torch, at another batch size
    n = 5
    face = torch.rand(n, 3, S, S, generator=g)
    ctx = face * (1 - m)
    kp = torch.rand(n, 12, generator=g) * 0.2 + 0.4
    lat = torch.clamp(torch.randn(n, D, generator=g), -2.5, 2.5)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    e_s = ort.InferenceSession(str(enc_path), so, providers=["CPUExecutionProvider"])
    d_s = ort.InferenceSession(str(dec_path), so, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        z_t, f_t = enc(face).numpy(), dec(lat, ctx, kp).numpy()
    z_o = e_s.run(["latent"], {"face": face.numpy()})[0]
    f_o = d_s.run(["face"], {"latent": lat.numpy(), "context": ctx.numpy(), "keypoints": kp.numpy()})[0]
    dz, df = float(np.abs(z_t - z_o).max()), float(np.abs(f_t - f_o).max())
    if dz > 1e-3 or df > 1e-3:
        raise ModelError(f"ONNX export mismatch: latent {dz:g}, face {df:g}")
    for p in (enc_path, dec_path):
        read_model_metadata(p)  # all required keys present and valid
    size = (enc_path.stat().st_size + dec_path.stat().st_size) / 2**20
    log.info("exported %s (%.1f MB; max |torch-onnx|: latent %.2g, face %.2g)", out_dir, size, dz, df)
    missing = [k for k in REQUIRED_METADATA if k not in {**meta, "streamdp.sha256": ""}]
    assert not missing, missing
    return {**meta, "sha256_encoder": sha["encoder"], "sha256_decoder": sha["decoder"], "max_abs_diff": f"{max(dz, df):.3g}"}
