"""The ONNX privatizer runtime: contract, metadata, batching, provider choice (tiny test model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamdp.errors import ModelError
from streamdp.mechanisms import MechanismContext
from streamdp.mechanisms.dp_image_models import PrivatizerModel, select_providers
from tiny_model import build_tiny_model


def test_loads_and_runs_dynamic_batches(tmp_path: Path) -> None:
    model = PrivatizerModel(build_tiny_model(tmp_path / "m", crop_size=32, latent_dim=8))
    assert (model.crop_size, model.latent_dim) == (32, 8)
    for n in (1, 3, 17):
        faces = np.random.default_rng(n).random((n, 3, 32, 32), dtype=np.float32)
        latent = model.encode(faces)
        assert latent.shape == (n, 8)
        out = model.decode(latent, np.zeros_like(faces), np.zeros((n, 12), np.float32))
        assert out.shape == (n, 3, 32, 32)
        # the tiny decoder recovers each crop's mean colour from the latent alone
        np.testing.assert_allclose(out[:, :, 5, 5], faces.mean(axis=(2, 3)), atol=1e-4)


def test_missing_metadata_is_refused_with_the_keys_named(tmp_path: Path) -> None:
    folder = build_tiny_model(tmp_path / "m", drop_keys=("streamdp.delta_l1", "streamdp.clip_bound"))
    with pytest.raises(ModelError, match=r"lacks required metadata: streamdp\.clip_bound, streamdp\.delta_l1"):
        PrivatizerModel(folder)


def test_wrong_format_refused(tmp_path: Path) -> None:
    import onnx

    folder = build_tiny_model(tmp_path / "m")
    model = onnx.load(str(folder / "encoder.onnx"))
    for prop in model.metadata_props:
        if prop.key == "streamdp.format":
            prop.value = "something-else"
    onnx.save(model, str(folder / "encoder.onnx"))
    with pytest.raises(ModelError, match="format"):
        PrivatizerModel(folder)


def test_missing_folder_and_garbage_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        PrivatizerModel(tmp_path / "nothing")
    folder = build_tiny_model(tmp_path / "m")
    (folder / "decoder.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load model"):
        PrivatizerModel(folder)


def test_provider_choice_prefers_cuda_then_cpu() -> None:
    assert select_providers(["CPUExecutionProvider", "CUDAExecutionProvider"]) == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    assert select_providers(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert select_providers(["AzureExecutionProvider"]) == ["CPUExecutionProvider"]


def _face_job(index: int, t: float, track_id: int = 1, eye_distance: float = 24.0):
    from fractions import Fraction

    from streamdp.types import Detections, Frame, FrameJob

    img = np.full((120, 160, 3), 90, np.uint8)
    img[30:90, 50:110] = (200, 150, 120)  # a "face" patch
    kps = np.array([[[68, 50], [92, 50], [80, 62], [80, 75], [55, 55], [105, 55]]], np.float32)
    kps = (kps - [80, 50]) * (eye_distance / 24.0) + [80, 50]
    box = np.array([[45, 25, 115, 95]], np.float32)
    frame = Frame(index, img, pts=round(t * 1000), time_base=Fraction(1, 1000))
    return FrameJob(frame, Detections(box, [0.9], kps, [track_id]))


@pytest.mark.parametrize("interval, releases", [(10.0, 1), (0.1, 5)])
def test_dp_image_encodes_once_per_release_and_accounts_it(tmp_path: Path, interval: float, releases: int) -> None:
    from streamdp.config import load_config
    from streamdp.mechanisms.dp_image import DpImage

    folder = build_tiny_model(tmp_path / "m")
    config = load_config(None, {
        "mechanism.name": "dp-image",
        "mechanism.dp_image.model": str(folder), "mechanism.dp_image.allow_custom_model": True,
        "mechanism.dp_image.release_interval": interval,
        "mechanism.dp_image.epsilon": 2.0,
    })
    mech = DpImage(config.mechanism, MechanismContext())
    jobs = [_face_job(i, 0.2 * i) for i in range(5)]
    before = [j.frame.image.copy() for j in jobs]
    mech.apply(jobs[:3])
    mech.apply(jobs[3:])
    assert mech.faces_modelled == 5
    assert mech.faces_encoded == releases
    report = mech.privacy_report()
    assert report["worst_case"]["releases"] == releases
    assert report["worst_case"]["epsilon"] == pytest.approx(2.0 * releases)
    for job, orig in zip(jobs, before):
        changed = np.abs(job.frame.image.astype(int) - orig.astype(int)).sum(axis=2) > 0
        assert changed[45:75, 65:95].mean() > 0.9, "the face centre must be replaced"
        assert not changed[:10, :10].any(), "far from the face nothing changes"


def test_dp_image_context_blur_smooths_the_box_outside_the_face(tmp_path: Path) -> None:
    """context_blur > 0: hair/ears/background inside the box are blurred, the rest untouched."""
    from streamdp.config import load_config
    from streamdp.mechanisms.dp_image import DpImage

    folder = build_tiny_model(tmp_path / "m")
    rng = np.random.default_rng(3)
    texture = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    results = {}
    for blur in (0.0, 0.1):
        config = load_config(None, {
            "mechanism.name": "dp-image",
            "mechanism.dp_image.model": str(folder), "mechanism.dp_image.allow_custom_model": True,
            "mechanism.dp_image.context_blur": blur,
            "mechanism.feather": 0.0,
        })
        job = _face_job(0, 0.0, eye_distance=16.0)  # a box with room for context around the face
        job.frame.image[...] = texture
        DpImage(config.mechanism, MechanismContext()).apply([job])
        results[blur] = job.frame.image.astype(np.int16)
        assert DpImage(config.mechanism, MechanismContext()).describe()["context_blur"] == blur
    corner = (slice(26, 32), slice(46, 52))  # inside the box (45,25)-(115,95), outside the face ellipse
    kept, blurred = results[0.0][corner], results[0.1][corner]
    assert np.array_equal(kept, texture[corner].astype(np.int16)), "context 0 keeps the raw surround"
    assert blurred.std() < 0.5 * texture[corner].std(), "context blur smooths the raw surround"
    outside = (slice(0, 20), slice(0, 40))
    assert np.array_equal(results[0.1][outside], texture[outside].astype(np.int16))


def test_dp_image_untracked_faces_are_each_their_own_release(tmp_path: Path) -> None:
    """Still images (track id -1): no face reuses another face's release, even in one batch."""
    from streamdp.config import load_config
    from streamdp.mechanisms.dp_image import DpImage

    folder = build_tiny_model(tmp_path / "m")
    config = load_config(None, {"mechanism.name": "dp-image", "mechanism.dp_image.model": str(folder), "mechanism.dp_image.allow_custom_model": True})
    mech = DpImage(config.mechanism, MechanismContext())
    mech.apply([_face_job(0, 0.0, track_id=-1), _face_job(0, 0.0, track_id=-1)])
    mech.apply([_face_job(0, 0.0, track_id=-1)])
    assert mech.faces_encoded == 3
    report = mech.privacy_report()
    assert report["worst_case"]["releases"] == 1
    assert report["tracks"] == 3 and report["releases"] == 3


@pytest.mark.parametrize("decode_every, decodes", [(1, 6), (2, 3), (3, 2)])
def test_dp_image_decodes_every_n_frames_and_still_covers_each_frame(
    tmp_path: Path, decode_every: int, decodes: int
) -> None:
    """One track over 6 frames (in two batches): the decoder runs every N frames; every frame's face
    is still replaced, with the crop pasted at *that* frame's position."""
    from streamdp.config import load_config
    from streamdp.mechanisms.dp_image import DpImage

    folder = build_tiny_model(tmp_path / "m")
    config = load_config(None, {
        "mechanism.name": "dp-image",
        "mechanism.dp_image.model": str(folder), "mechanism.dp_image.allow_custom_model": True,
        "mechanism.dp_image.decode_every": decode_every,
    })
    mech = DpImage(config.mechanism, MechanismContext())
    jobs = [_face_job(i, 0.04 * i) for i in range(6)]
    for k, job in enumerate(jobs):  # the face moves 2 px right per frame
        shift = 2 * k
        job.frame.image[...] = np.roll(job.frame.image, shift, axis=1)
        job.faces.boxes[:, [0, 2]] += shift
        job.faces.keypoints[..., 0] += shift
    before = [j.frame.image.copy() for j in jobs]
    mech.apply(jobs[:4])
    mech.apply(jobs[4:])
    assert mech.faces_decoded == decodes and mech.faces_encoded == 1
    assert mech.describe()["decode_every"] == decode_every
    for k, (job, orig) in enumerate(zip(jobs, before)):
        changed = np.abs(job.frame.image.astype(int) - orig.astype(int)).sum(axis=2) > 0
        cx = 80 + 2 * k
        assert changed[45:75, cx - 15 : cx + 15].mean() > 0.9, f"frame {k}: the face centre must be replaced"
        assert not changed[:10, :10].any()


# --- privacy audit #15: overlapping faces and context blur (the autoencoder design) ------------------
_KP = np.array([[-12, 0], [12, 0], [0, 12], [0, 25], [-25, 5], [25, 5]], np.float32)
_BOX = np.array([-35, -25, 35, 45], np.float32)


def _two_face_job(texture: np.ndarray):
    """Face B (big, centre 130,100) and face A (small, centre 150,85) inside B's box and crop."""
    from fractions import Fraction

    from streamdp.types import Detections, Frame, FrameJob

    def face(cx, cy, ed):
        s = ed / 24.0
        return _KP * s + [cx, cy], _BOX * s + [cx, cy, cx, cy]

    (kb, bb), (ka, ba) = face(130, 100, 40.0), face(150, 85, 16.0)
    frame = Frame(0, texture.copy(), pts=0, time_base=Fraction(1, 1000))
    dets = Detections(np.stack([bb, ba]), [0.9, 0.9], np.stack([kb, ka]), [1, 2])
    return FrameJob(frame, dets), ba


def _spy(mech):
    seen = {"encode": [], "decode": []}
    enc, dec = mech.model.encode, mech.model.decode

    def encode(x):
        seen["encode"].append(x.copy())
        return enc(x)

    def decode(latent, context, kp):
        seen["decode"].append(context.copy())
        return dec(latent, context, kp)

    mech.model.encode, mech.model.decode = encode, decode
    return seen


@pytest.mark.parametrize("blur", [0.0, 0.1])
def test_overlapping_faces_reach_only_their_own_release(tmp_path: Path, blur: float) -> None:
    """Finding 1: face A inside face B's crop. B's encoder input and decoder context are the same
    whatever A's pixels are; each face's centre is replaced; both ledgers are charged."""
    from streamdp.config import load_config
    from streamdp.mechanisms.dp_image import DpImage

    folder = build_tiny_model(tmp_path / "m")
    config = load_config(None, {
        "mechanism.name": "dp-image", "mechanism.dp_image.model": str(folder), "mechanism.dp_image.allow_custom_model": True,
        "mechanism.dp_image.context_blur": blur, "mechanism.dp_image.seed": 5,
    })
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (200, 260, 3), dtype=np.uint8)
    runs = []
    for variant in range(2):
        tex = base.copy()
        job, ba = _two_face_job(tex)
        x0, y0, x1, y1 = ba.astype(int)
        job.frame.image[y0:y1, x0:x1] = np.random.default_rng(10 + variant).integers(0, 256, (y1 - y0, x1 - x0, 3))
        raw = job.frame.image.copy()
        with pytest.warns(UserWarning):
            mech = DpImage(config.mechanism, MechanismContext())
        seen = _spy(mech)
        mech.apply([job])
        runs.append((seen, raw, job.frame.image.copy(), mech.privacy_report(), (x0, y0, x1, y1)))
    (s0, *_), (s1, *_) = runs
    np.testing.assert_array_equal(s0["encode"][0][0], s1["encode"][0][0]), "B's encoder input saw A"
    np.testing.assert_array_equal(s0["decode"][0][0], s1["decode"][0][0]), "B's decoder context saw A"
    for seen, raw, out, report, (x0, y0, x1, y1) in runs:
        assert report["releases"] == 2 and report["tracks"] == 2
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        centre = (slice(cy - 4, cy + 4), slice(cx - 4, cx + 4))  # A's centre, also in B's mask
        assert (np.abs(out[centre].astype(int) - raw[centre].astype(int)).sum(axis=2) > 0).all()


def test_context_blur_spreads_nothing_of_the_face_into_the_ring(tmp_path: Path) -> None:
    """Finding 2: with context_blur, pixels outside the face mask's support are the same whatever
    the pixels inside it are (the blur never carries the face into the ring)."""
    from streamdp.align import estimate_transforms
    from streamdp.composite import paste_crops
    from streamdp.config import load_config
    from streamdp.mechanisms.dp_image import DpImage

    folder = build_tiny_model(tmp_path / "m")
    config = load_config(None, {
        "mechanism.name": "dp-image", "mechanism.dp_image.model": str(folder), "mechanism.dp_image.allow_custom_model": True,
        "mechanism.dp_image.context_blur": 0.15, "mechanism.dp_image.seed": 5, "mechanism.feather": 0.0,
    })
    texture = np.random.default_rng(3).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    outs = []
    for variant in range(2):
        job = _face_job(0, 0.0, eye_distance=16.0)
        job.frame.image[...] = texture
        with pytest.warns(UserWarning):
            mech = DpImage(config.mechanism, MechanismContext())
        m = estimate_transforms(job.faces.keypoints, mech.crop_size, job.faces.boxes, box_margin=mech.box_margin)
        support = np.zeros((120, 160, 3), np.uint8)
        paste_crops(support, np.full((1, mech.crop_size, mech.crop_size, 3), 255, np.uint8), m, (mech.mask > 0).astype(np.float32))
        inside = support[..., 0] > 0
        job.frame.image[inside] = np.random.default_rng(20 + variant).integers(0, 256, (int(inside.sum()), 3))
        mech.apply([job])
        outs.append((job.frame.image.astype(int), inside))
    (a, inside), (b, _) = outs
    box = np.zeros_like(inside)
    box[25:95, 45:115] = True
    ring = box & ~inside
    assert ring.sum() > 500
    # identical up to the tiny decoder's own dependence on the latent near the mask's edge: compare
    # where the (undilated) support is far (>= 3 px) from the ring pixel
    import cv2

    far = cv2.erode((~inside).astype(np.uint8), np.ones((3, 3), np.uint8), iterations=3).astype(bool)
    assert np.array_equal(a[ring & far], b[ring & far]), "the ring depends on the face's pixels"


def test_per_track_rows_show_frames_pixelated_as_too_small(tmp_path: Path) -> None:
    """Finding 5: a track whose face was too small in some frames says so in its own row."""
    from streamdp.config import load_config
    from streamdp.mechanisms.dp_image import DpImage

    folder = build_tiny_model(tmp_path / "m")
    config = load_config(None, {"mechanism.name": "dp-image", "mechanism.dp_image.model": str(folder), "mechanism.dp_image.allow_custom_model": True})
    mech = DpImage(config.mechanism, MechanismContext())
    mech.apply([_face_job(0, 0.0, eye_distance=8.0), _face_job(1, 0.1, eye_distance=8.0)])  # too small
    mech.apply([_face_job(2, 0.2)])
    mech.apply([_face_job(3, 0.3, track_id=7, eye_distance=8.0)])  # only ever small: no release
    rows = {r["track"]: r for r in mech.privacy_report()["per_track"]}
    assert rows["0:1"]["releases"] == 1 and rows["0:1"]["frames_pixelated_too_small"] == 2
    assert rows["0:7"]["releases"] == 0 and rows["0:7"]["frames_pixelated_too_small"] == 1
    assert rows["0:7"]["epsilon"] == 0.0


@pytest.mark.parametrize("kind", ["predicted", "cut"])
def test_dp_image_covers_a_lagging_or_cut_face_box_whole(tmp_path: Path, kind: str) -> None:
    """One covering rule (#12): a coasting box whose keypoints lag the face, or a face cut by the
    frame's border, has every pixel of its cover box replaced, not only the face mask."""
    from streamdp.config import load_config
    from streamdp.mechanisms.dp_image import DpImage
    from streamdp.types import Detections, FrameJob

    folder = build_tiny_model(tmp_path / "m")
    config = load_config(None, {"mechanism.name": "dp-image", "mechanism.dp_image.model": str(folder), "mechanism.dp_image.allow_custom_model": True})
    job = _face_job(0, 0.0)
    job.frame.image[...] = np.random.default_rng(4).integers(0, 256, job.frame.image.shape, dtype=np.uint8)
    f = job.faces
    kps = f.keypoints.copy()
    if kind == "predicted":
        kps[..., 0] -= 18  # the prediction lags: keypoints left of the face
        faces = Detections(f.boxes, f.scores, kps, f.track_ids, np.array([True]))
    else:
        kps[0, 5, 0] = 170  # an ear beyond the right border (160 px wide frame)
        faces = Detections(f.boxes, f.scores, kps, f.track_ids)
    job = FrameJob(job.frame, faces)
    raw = job.frame.image.copy()
    mech = DpImage(config.mechanism, MechanismContext())
    mech.apply([job])
    x0, y0, x1, y1 = f.boxes[0].astype(int)
    changed = (job.frame.image[y0:y1, x0:x1] != raw[y0:y1, x0:x1]).any(axis=2)
    assert changed.mean() > 0.97, f"{(~changed).sum()} raw pixels left in the cover box"
    assert mech.describe()["faces_pixelated_under"] == 1


def test_a_model_outside_streamdp_needs_the_explicit_flag(tmp_path: Path) -> None:
    from streamdp.config import load_config
    from streamdp.mechanisms.dp_image import DpImage

    folder = build_tiny_model(tmp_path / "m")
    with pytest.raises(ModelError, match="allow_custom_model"):
        DpImage(load_config(None, {"mechanism.name": "dp-image", "mechanism.dp_image.model": str(folder)}).mechanism, MechanismContext())


@pytest.mark.parametrize("backend, filename", [("onnx", "face_detection_short_range.onnx"),
                                               ("litert", "face_detection_short_range.tflite"),
                                               ("openvino", "face_detection_short_range.tflite")])
def test_a_shipped_model_file_that_does_not_match_its_checksum_is_refused(tmp_path: Path, monkeypatch, backend, filename) -> None:
    from streamdp import model_files
    from streamdp.config import DetectConfig
    from streamdp.detect import FaceDetector

    if backend == "litert":
        pytest.importorskip("ai_edge_litert", reason="LiteRT not installed here")
    if backend == "openvino":
        pytest.importorskip("openvino", reason="OpenVINO not installed here")
    FaceDetector(DetectConfig(backend=backend)).close()  # the real list: loads
    bad = tmp_path / "SHA256SUMS"
    bad.write_text(model_files.MANIFEST.read_text().replace(model_files.sha256_of(model_files.MODELS / filename), "0" * 64))
    monkeypatch.setattr(model_files, "MANIFEST", bad)
    with pytest.raises(ModelError, match="does not match its shipped checksum"):
        FaceDetector(DetectConfig(backend=backend))


def test_the_checksum_list_covers_every_shipped_model_file() -> None:
    from streamdp import model_files

    listed = model_files._manifest()
    for p in model_files.MODELS.rglob("*"):
        if p.is_file() and p.suffix in (".onnx", ".tflite", ".npz"):
            rel = p.relative_to(model_files.MODELS).as_posix()
            assert listed.get(rel) == model_files.sha256_of(p), rel
