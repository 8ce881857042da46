"""The shipped dp-image model (streamdp/models/dpimage): metadata, sizes, onnxruntime outputs.

The shipped-model checks need only onnxruntime (+ onnx for the weights hash and opset); the export
round trip needs torch (the optional ``train`` extra) and is skipped without it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from streamdp.privacy import REQUIRED_METADATA, build_latent_mechanism, read_model_metadata

MODEL_DIR = Path(__file__).resolve().parents[1] / "streamdp" / "models" / "dpimage"
ENC, DEC = MODEL_DIR / "encoder.onnx", MODEL_DIR / "decoder.onnx"


def _sessions():
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    return (
        ort.InferenceSession(str(ENC), so, providers=["CPUExecutionProvider"]),
        ort.InferenceSession(str(DEC), so, providers=["CPUExecutionProvider"]),
    )


def test_shipped_model_files_and_size():
    assert ENC.is_file() and DEC.is_file()
    assert ENC.stat().st_size + DEC.stat().st_size < 20 * 2**20


def test_shipped_model_metadata():
    me, md = read_model_metadata(ENC), read_model_metadata(DEC)
    for m in (me, md):
        assert all(k in m for k in REQUIRED_METADATA)
        assert m["streamdp.format"] == "dpimage-v1"
        S, D, B = int(m["streamdp.crop_size"]), int(m["streamdp.latent_dim"]), float(m["streamdp.clip_bound"])
        assert S >= 96 and S % 16 == 0 and 64 <= D <= 512
        assert m["streamdp.clip_norm"] == "linf"
        assert float(m["streamdp.delta_l1"]) == pytest.approx(2 * B * D)
        assert float(m["streamdp.delta_l2"]) == pytest.approx(2 * B * math.sqrt(D))
        a, b = (int(v) for v in m["streamdp.identity_dims"].split(":"))
        assert 0 <= a < b <= D
        assert 0.0 <= float(m["streamdp.mask_feather"]) <= 0.5
        assert "lfw_train_identities" in m["streamdp.training_data"]
        assert len(m["streamdp.sha256"]) == 64
        assert m.get("streamdp.latent_prior", "").startswith("normal")
    for k in ("streamdp.crop_size", "streamdp.latent_dim", "streamdp.version", "streamdp.clip_bound"):
        assert me[k] == md[k]


def test_shipped_weights_match_their_sha256_and_opset():
    onnx = pytest.importorskip("onnx")
    from streamdp.train.export import verify_weights_sha256

    for p in (ENC, DEC):
        verify_weights_sha256(p)
        model = onnx.load(str(p), load_external_data=False)
        opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
        assert opset >= 17


def test_shipped_model_runs_with_dynamic_batch_and_range():
    enc, dec = _sessions()
    meta = read_model_metadata(ENC)
    S, D = int(meta["streamdp.crop_size"]), int(meta["streamdp.latent_dim"])
    from streamdp.align import face_mask

    mask = face_mask(S, float(meta["streamdp.mask_feather"]))
    rng = np.random.default_rng(0)
    for n in (1, 3):
        face = rng.random((n, 3, S, S), dtype=np.float32)
        (z,) = enc.run(["latent"], {"face": face})
        assert z.shape == (n, D) and np.all(np.isfinite(z))
        kp = np.tile(np.array([0.4, 0.44, 0.6, 0.44, 0.5, 0.55, 0.5, 0.66, 0.29, 0.5, 0.71, 0.5], np.float32), (n, 1))
        ctx = (face * (1 - mask)).astype(np.float32)
        mech = build_latent_mechanism("laplace", epsilon=1000.0, metadata=meta, seed=None)
        lat = mech.release(mech.clip(z), mech.sample_noise(n))
        (out,) = dec.run(["face"], {"latent": lat, "context": ctx, "keypoints": kp})
        assert out.shape == (n, 3, S, S) and out.dtype == np.float32
        assert out.min() >= 0.0 and out.max() <= 1.0
    # the latent matters: two different latents give visibly different faces inside the mask
    lat2 = np.stack([np.full(D, 1.5, np.float32), np.full(D, -1.5, np.float32)])
    (o2,) = dec.run(["face"], {"latent": lat2, "context": ctx[:1].repeat(2, 0), "keypoints": kp[:1].repeat(2, 0)})
    inside = mask > 0.9
    assert np.abs(o2[0] - o2[1])[:, inside].mean() > 0.02


def test_export_round_trip_tiny_model(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from streamdp.align import face_mask
    from streamdp.train.export import export_from_checkpoint, verify_weights_sha256
    from streamdp.train.train import build_models

    cfg = {
        "data": {"crop_size": 32, "mask_feather": 0.15},
        "model": {"latent_dim": 8, "width": 8, "clip_bound": 2.0, "identity_dims": 4},
        "export": {"version": "test", "opset": 17, "training_data": "none; lfw_train_identities only"},
    }
    mask = face_mask(32, 0.15)
    enc, dec = build_models(cfg, mask)
    ckpt = tmp_path / "ckpt.pt"
    torch.save({"ema_encoder": enc.state_dict(), "ema_decoder": dec.state_dict(), "step": 0}, ckpt)
    info = export_from_checkpoint(cfg, ckpt, mask, tmp_path / "model")
    assert float(info["max_abs_diff"]) < 1e-3
    m = read_model_metadata(tmp_path / "model" / "encoder.onnx")
    assert m["streamdp.delta_l1"] == repr(2 * 2.0 * 8) and m["streamdp.identity_dims"] == "0:4"
    verify_weights_sha256(tmp_path / "model" / "decoder.onnx")
    # tampering with a weight breaks the hash
    import onnx
    from onnx import numpy_helper

    from streamdp.errors import ModelError

    model = onnx.load(str(tmp_path / "model" / "decoder.onnx"))
    init = model.graph.initializer[0]
    arr = numpy_helper.to_array(init).copy()
    arr.flat[0] += 1.0
    init.CopyFrom(numpy_helper.from_array(arr, init.name))
    onnx.save(model, str(tmp_path / "model" / "decoder.onnx"))
    with pytest.raises(ModelError, match="sha256"):
        verify_weights_sha256(tmp_path / "model" / "decoder.onnx")
