"""The ``streamdp.*`` privacy metadata of a model file: the required keys, reading and validation."""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelError
from .geometry import LatentGeometry

MODEL_FORMAT = "dpimage-v1"
#: Formats whose privacy metadata this module validates: the autoencoder and the generator encoder.
MODEL_FORMATS = (MODEL_FORMAT, "dpimage-gan-v1")
REQUIRED_METADATA = (
    "streamdp.format",
    "streamdp.crop_size",
    "streamdp.latent_dim",
    "streamdp.clip_norm",
    "streamdp.clip_bound",
    "streamdp.delta_l1",
    "streamdp.delta_l2",
    "streamdp.identity_dims",
    "streamdp.mask_feather",
    "streamdp.training_data",
    "streamdp.version",
    "streamdp.sha256",
)


def read_model_metadata(path: str | Path) -> dict[str, str]:
    """The ``streamdp.*`` metadata of one ONNX file, validated (onnxruntime only, no onnx package).

    Raises ``ModelError`` when the file is missing or unreadable, lacks a required key, or has
    another format.
    """
    import onnxruntime as ort

    p = Path(path)
    if not p.is_file():
        raise ModelError(f"model file not found: {p}")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        sess = ort.InferenceSession(str(p), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types
        raise ModelError(f"cannot load model {p}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    meta = dict(sess.get_modelmeta().custom_metadata_map)
    validate_metadata(meta, p)
    return meta


def validate_metadata(meta: dict[str, str], path: str | Path = "(in memory)") -> None:
    missing = [k for k in REQUIRED_METADATA if k not in meta]
    if missing:
        raise ModelError(f"model {path} lacks required metadata: {', '.join(missing)}")
    if meta["streamdp.format"] not in MODEL_FORMATS:
        raise ModelError(f"model {path} has format {meta['streamdp.format']!r}, expected one of {', '.join(MODEL_FORMATS)}")
    LatentGeometry.from_metadata(meta, path)

