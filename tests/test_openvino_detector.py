"""BlazeFace on OpenVINO (``detect/openvino_engine.py``): the same network as LiteRT's, in f32 the
same numbers, in bf16 the same faces within a few hundredths of score."""

from __future__ import annotations

import importlib.util
import threading

import numpy as np
import pytest

from streamdp.config import DetectConfig
from streamdp.detect import FaceDetector, box_iou, default_model_path
from streamdp.detect.letterbox import letterbox

from conftest import MEDIA, needs_media, read_rgb
from test_blazeface import crops, video_frames

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino is not installed"),
    pytest.mark.skipif(importlib.util.find_spec("ai_edge_litert") is None, reason="ai-edge-litert is not installed"),
]


def _inputs() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)]
    if MEDIA.is_dir():
        for name in ("single_face.jpg", "multi_face.jpg"):
            imgs += crops(read_rgb(MEDIA / name))
    return [letterbox(i)[0] for i in imgs]


def test_openvino_f32_gives_litert_s_numbers_on_views_and_a_canvas():
    from streamdp.detect.litert import LiteRtBlazeFace
    from streamdp.detect.openvino_engine import OpenVinoBlazeFace

    lite = LiteRtBlazeFace(default_model_path(), min_score=0.2)
    ov = OpenVinoBlazeFace(default_model_path(), min_score=0.2, precision="f32")
    assert ov.providers == ["OpenVINO CPU (f32)"]
    x = np.stack(_inputs())
    canvas = np.random.default_rng(1).uniform(-1, 1, (1, 256, 416, 3)).astype(np.float32)
    for batch in (x, canvas):
        (reg_l, cls_l), (reg_o, cls_o) = lite.infer(batch), ov.infer(batch)
        assert reg_o.shape == reg_l.shape and cls_o.shape == cls_l.shape
        # measured: <= 1.7e-4 on regressors (values up to ~370), <= 3.9e-4 on logits
        assert np.abs(reg_o - reg_l).max() < 2e-3
        assert np.abs(cls_o - cls_l).max() < 2e-3


@needs_media
def test_openvino_bf16_finds_the_same_faces_as_litert():
    """bf16 moves the network's numbers (8 bits of mantissa): on real frames (stills, the shared
    videos at their size and at 720p, canvas and tile search) the same faces, boxes within IoU
    0.93, scores within 0.03 (measured: IoU >= 0.97, scores within 0.009)."""
    import cv2

    from streamdp.detect.openvino_engine import bf16_native

    if not bf16_native():
        pytest.skip("this CPU has no native bf16 (AVX-512 BF16 / AMX): OpenVINO would emulate it")
    frame = video_frames("WolfgangLanger_Pexels.mp4", 100, 300)
    images = [read_rgb(MEDIA / "multi_face.jpg"), read_rgb(MEDIA / "single_face.jpg"),
              *frame, cv2.resize(frame[1], (1280, 720), interpolation=cv2.INTER_LINEAR),
              *video_frames("bikes.mp4", 40, 80)]
    found = 0
    for search in ("tiles", "canvas"):
        with FaceDetector(DetectConfig(search=search, backend="litert")) as a, \
                FaceDetector(DetectConfig(search=search, backend="openvino")) as b:
            assert b.backend == "openvino"
            for img in images:
                da, db = a.detect(img, frame_index=0), b.detect(img, frame_index=0)
                assert len(da) == len(db), (img.shape, search, da.scores, db.scores)
                if not len(da):
                    continue
                iou = box_iou(da.boxes, db.boxes)
                j = iou.argmax(axis=1)
                assert (iou[np.arange(len(da)), j] >= 0.93).all(), (da.boxes, db.boxes)
                assert np.abs(da.scores - db.scores[j]).max() <= 0.03, (da.scores, db.scores)
                found += len(da)
    assert found >= 10


@needs_media
def test_openvino_threads_give_the_faces_of_one_thread_and_end_with_the_detector():
    import cv2

    frame = video_frames("WolfgangLanger_Pexels.mp4", 100, 100)[1]
    images = [cv2.resize(frame, (1280, 720), interpolation=cv2.INTER_LINEAR), read_rgb(MEDIA / "multi_face.jpg")]
    live = DetectConfig(backend="openvino").for_pipeline(0)
    before = set(threading.enumerate())
    results = {}
    for n in (1, 2):
        with FaceDetector(live.model_copy(update={"threads": n})) as det:
            results[n] = [det.detect(img, frame_index=0) for img in images]
    for a, b in zip(results[1], results[2]):
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.scores, b.scores)
    assert not [t for t in set(threading.enumerate()) - before if t.name.startswith("streamdp-detect") and t.is_alive()]


def test_openvino_refuses_a_model_it_cannot_use(tmp_path):
    from streamdp.errors import ModelError
    from streamdp.detect.openvino_engine import OpenVinoBlazeFace

    with pytest.raises(ModelError, match="not found"):
        OpenVinoBlazeFace(tmp_path / "nope.tflite")
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot read"):
        OpenVinoBlazeFace(bad)
    with pytest.raises(ModelError, match="precision"):
        OpenVinoBlazeFace(default_model_path(), precision="f16")


def test_auto_picks_openvino_only_where_the_cpu_has_native_bf16(monkeypatch):
    from streamdp.detect import backends, blazeface, openvino_engine

    monkeypatch.setattr(blazeface, "select_providers", lambda *a, **k: ["CPUExecutionProvider"])
    monkeypatch.setattr(openvino_engine, "bf16_native", lambda: True)
    assert backends.resolve_backend("auto") == "openvino"
    monkeypatch.setattr(openvino_engine, "bf16_native", lambda: False)
    assert backends.resolve_backend("auto") == "litert"  # emulated bf16 would be slower than LiteRT
    monkeypatch.setattr(blazeface, "select_providers", lambda *a, **k: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(openvino_engine, "bf16_native", lambda: True)
    assert backends.resolve_backend("auto") == "onnx"  # a GPU first
    assert backends.resolve_backend("litert") == "litert"  # an explicit choice stands


def test_bf16_native_from_the_cpu_flags_agrees_with_openvino():
    """``bf16_native`` reads the kernel's CPU flags (no OpenVINO import for "auto"); OpenVINO's own
    capability list says the same on this machine."""
    from streamdp.detect.openvino_engine import _core, _cpu_flags, bf16_native

    if _cpu_flags() is None:
        pytest.skip("no CPU flags from the kernel here: bf16_native asks OpenVINO itself")
    assert bf16_native() == ("BF16" in _core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
