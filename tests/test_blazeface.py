"""The ONNX BlazeFace runner (streamdp/detect/blazeface.py) against the .tflite and MediaPipe Tasks."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

from streamdp.detect.blazeface import (
    NUM_ANCHORS,
    BlazeFaceRunner,
    default_onnx_path,
    select_providers,
    ssd_anchors,
    weighted_nms,
)
from streamdp.config import DetectConfig
from streamdp.detect.letterbox import letterbox
from streamdp.detect import FaceDetector, box_iou, default_model_path

from conftest import FACES, MEDIA, needs_faces, needs_media, read_rgb


def video_frames(name: str, step: int, limit: int) -> list[np.ndarray]:
    import av

    out = []
    with av.open(str(MEDIA / name)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % step == 0:
                out.append(frame.to_ndarray(format="rgb24"))
            if i >= limit:
                break
    return out


def crops(img: np.ndarray) -> list[np.ndarray]:
    """The image, three odd-sized views of it (tiles, second looks, letterbox both ways)."""
    h, w = img.shape[:2]
    return [img, img[: h // 2, : w // 2], img[h // 4 :, w // 3 :], img[7 : h - 5, 11 : w - 23]]


@pytest.fixture(scope="module")
def runner():
    return BlazeFaceRunner(min_score=0.2)


@pytest.fixture(scope="module")
def mp_detector():
    with FaceDetector(DetectConfig(backend="mediapipe")) as det:
        yield det


# ------------------------------------------------------------------------------------------------
# pieces
# ------------------------------------------------------------------------------------------------


def test_anchors_are_mediapipes_short_range_layout():
    a = ssd_anchors()
    assert a.shape == (NUM_ANCHORS, 2)
    # 16x16 cells x 2 anchors (stride 8), then 8x8 cells x 6 (strides 16, 16, 16 merged)
    np.testing.assert_allclose(a[0], a[1])
    np.testing.assert_allclose(a[0], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(a[2], [1.5 / 16, 0.5 / 16])  # x runs fastest
    np.testing.assert_allclose(a[32], [0.5 / 16, 1.5 / 16])
    np.testing.assert_allclose(a[512:518], [[0.5 / 8, 0.5 / 8]] * 6)
    np.testing.assert_allclose(a[-1], [7.5 / 8, 7.5 / 8])


def test_weighted_nms_hand_case():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60], [0, 0, 10, 30]], dtype=np.float32)
    scores = np.array([0.9, 0.6, 0.7, 0.5], dtype=np.float32)
    kps = np.repeat(boxes[:, None, :2], 6, axis=1)
    b, s, k = weighted_nms(boxes, scores, kps, 0.3)
    # 0 and 1 merge (IoU 0.82), weighted by score; 3 (IoU 0.33 with 0) joins them too;
    # 2 stands alone; the merged score is the best one's
    assert s.tolist() == pytest.approx([0.9, 0.7])
    w = np.array([0.9, 0.6, 0.5])
    np.testing.assert_allclose(b[0], (boxes[[0, 1, 3]] * w[:, None]).sum(0) / w.sum(), rtol=1e-6)
    np.testing.assert_allclose(b[1], boxes[2])
    np.testing.assert_allclose(k[0, 0], b[0, :2], rtol=1e-6)
    e = weighted_nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 6, 2), np.float32))
    assert [len(x) for x in e] == [0, 0, 0]


def test_letterbox_pads_the_short_side_with_minus_one():
    img = np.full((50, 100, 3), 255, dtype=np.uint8)
    x, (left, top, side) = letterbox(img)
    assert x.shape == (128, 128, 3) and x.dtype == np.float32
    assert (left, top, side) == (0.0, -25.0, 100.0)
    assert (x[:30] == -1).all() and (x[-30:] == -1).all()  # 25/100 of 128 = 32 rows each side
    assert np.allclose(x[34:94, :127], 1.0)
    # like MediaPipe's warpPerspective, output pixel i samples the source at i * side / 128 (no
    # half-pixel centring): the last column falls between the image's last pixel and the border
    assert -1 < x[50, 127, 0] < 1


def test_edge_tiles_are_sampled_from_the_frame_as_if_mirror_padded():
    """A mirrored edge tile (``tiles.MirroredView``) is warped straight from the frame with a
    reflect-101 border: exactly the model input the warp of the mirror-padded frame's crop gave
    (MediaPipe's perspective warp), on every edge tile of several frame sizes; ``materialize``
    is that crop itself (for MediaPipe Tasks)."""
    import cv2

    from streamdp.detect.letterbox import letterbox_matrix, letterbox_u8
    from streamdp.detect.tiles import MirroredView, mirror_padded, plan_edge_tiles

    rng = np.random.default_rng(3)
    for (w, h), edges in (((1280, 720), "sides"), ((853, 480), "all"), ((640, 360), "sides")):
        img = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 1.5)
        tiles = plan_edge_tiles(w, h, DetectConfig(edge_search=edges))
        pad = max(t.size // 2 for t in tiles) + 2
        big = mirror_padded(img, pad)
        assert tiles
        for t in tiles:
            crop = big[t.y0 + pad : t.y1 + pad, t.x0 + pad : t.x1 + pad]
            m = letterbox_matrix(t.size, t.size)[0]
            want = cv2.warpPerspective(crop, m, (128, 128), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            view = MirroredView(img, t.x0, t.y0, t.size)
            np.testing.assert_array_equal(letterbox_u8(view)[0], want)
            np.testing.assert_array_equal(view.materialize(), crop)
            np.testing.assert_array_equal(letterbox_u8(crop)[0], want)  # the affine warp of a plain view too


def test_onnx_model_has_a_dynamic_batch(runner):
    for n in (1, 3):
        reg, cls = runner.infer(np.zeros((n, 128, 128, 3), np.float32))
        assert reg.shape == (n, 896, 16) and cls.shape == (n, 896, 1)
    assert runner.run([]) == []
    assert select_providers(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert select_providers(["CUDAExecutionProvider", "CPUExecutionProvider"])[0] == "CUDAExecutionProvider"


def test_missing_onnx_model_is_a_model_error(tmp_path):
    from streamdp.errors import ModelError

    with pytest.raises(ModelError):
        BlazeFaceRunner(tmp_path / "nope.onnx")
    with pytest.raises(ModelError):
        FaceDetector(DetectConfig(backend="onnx"), model_path=tmp_path / "nope.onnx")


# ------------------------------------------------------------------------------------------------
# the converted model = the .tflite
# ------------------------------------------------------------------------------------------------


@pytest.mark.skipif(
    importlib.util.find_spec("ai_edge_litert") is None,
    reason="ai-edge-litert is not installed (pip install ai-edge-litert to compare with the .tflite)",
)
def test_onnx_outputs_match_the_tflite(runner):
    from ai_edge_litert.interpreter import Interpreter

    imgs = [np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)]
    if MEDIA.is_dir():
        for name in ("single_face.jpg", "multi_face.jpg"):
            imgs += crops(read_rgb(MEDIA / name))
    x = np.stack([letterbox(i)[0] for i in imgs])
    reg_o, cls_o = runner.infer(x)
    it = Interpreter(model_path=str(default_model_path()))
    it.allocate_tensors()
    outs = {o["name"]: o["index"] for o in it.get_output_details()}
    for b in range(len(x)):
        it.set_tensor(it.get_input_details()[0]["index"], x[b : b + 1])
        it.invoke()
        reg_t, cls_t = it.get_tensor(outs["regressors"])[0], it.get_tensor(outs["classificators"])[0]
        # measured: <= 1.4e-4 on regressors (values up to ~370), <= 3.5e-4 on logits (up to ~600)
        assert np.abs(reg_t - reg_o[b]).max() < 2e-3
        assert np.abs(cls_t - cls_o[b]).max() < 2e-3


# ------------------------------------------------------------------------------------------------
# the runner = MediaPipe Tasks (pre- and post-processing reimplemented faithfully)
# ------------------------------------------------------------------------------------------------


def _assert_same_faces(images, runner, mp_detector):
    ours = runner.run(images)
    n_faces = 0
    for img, (b, s, k) in zip(images, ours):
        mb, ms, mk = mp_detector._run(np.ascontiguousarray(img), 0, 0)
        assert len(b) == len(mb), (img.shape, s, ms)
        if not len(mb):
            continue
        iou = box_iou(mb, b)
        j = iou.argmax(axis=1)
        assert len(set(j.tolist())) == len(mb)
        assert (iou[np.arange(len(mb)), j] >= 0.9).all(), (mb, b)
        assert np.abs(ms - s[j]).max() <= 0.02, (ms, s[j])
        side = np.maximum(mb[:, 2] - mb[:, 0], mb[:, 3] - mb[:, 1])
        assert (np.abs(mk - k[j]).max(axis=(1, 2)) <= 0.02 * side).all()
        n_faces += len(mb)
    return n_faces


@needs_media
def test_runner_matches_mediapipe_on_stills_and_video(runner, mp_detector):
    images = crops(read_rgb(MEDIA / "single_face.jpg")) + crops(read_rgb(MEDIA / "multi_face.jpg"))
    images += video_frames("WolfgangLanger_Pexels.mp4", 60, 420)
    images += video_frames("carphone_pristine.mp4", 40, 119)
    images += video_frames("bikes.mp4", 25, 130)
    assert _assert_same_faces(images, runner, mp_detector) >= 20


@needs_faces
def test_runner_matches_mediapipe_on_synthetic_ground_truth(runner, mp_detector):
    from synth import ground_truth_frames

    frames = ground_truth_frames(FACES, n_frames=4, size=(640, 360))
    images = [img for img, _ in frames]
    images += [img[: 200, : 300] for img in images[:2]]
    assert _assert_same_faces(images, runner, mp_detector) >= 8


# ------------------------------------------------------------------------------------------------
# FaceDetector: both backends find the same faces; detect_batch = detect
# ------------------------------------------------------------------------------------------------


@needs_media
@pytest.mark.parametrize("backend", ["onnx", "litert"])
def test_detector_backends_agree_and_batch_equals_single(mp_detector, backend):
    import cv2

    frame = video_frames("WolfgangLanger_Pexels.mp4", 100, 100)[1]
    images = [
        read_rgb(MEDIA / "multi_face.jpg"),
        frame,
        cv2.resize(frame, (1280, 720), interpolation=cv2.INTER_LINEAR),
        video_frames("bikes.mp4", 40, 40)[1],
    ]
    # the tile search sees exactly MediaPipe Tasks' views (the canvas search: the test below)
    with FaceDetector(DetectConfig(search="tiles", backend=backend)) as det:
        assert det.backend == backend
        singles = [det.detect(img, frame_index=0) for img in images]
        assert det.last_timing["batches"] <= 2
        batch = det.detect_batch(images, [0] * len(images))
        assert det.last_timing["batches"] <= 2
        assert det.last_timing["calls"] == sum(1 + len(det.tiles_for(i.shape[1], i.shape[0])) + len(det.edge_tiles_for(i.shape[1], i.shape[0])) for i in images) + det.last_timing["verify_calls"]
    for img, a, b in zip(images, singles, batch):
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
        m = mp_detector.detect(img)
        assert len(m) == len(a), (img.shape, m.scores, a.scores)
        if len(m):
            iou = box_iou(m.boxes, a.boxes)
            assert (iou.max(axis=1) >= 0.9).all()
            assert np.abs(m.scores - a.scores[iou.argmax(axis=1)]).max() <= 0.02
    with pytest.raises(ValueError):
        FaceDetector(DetectConfig()).detect_batch(images[:2], [0])


@needs_media
def test_canvas_search_finds_the_faces_the_tiles_find_and_batches(mp_detector):
    """The canvas search (each pyramid level one downscaled frame, ``detect/canvas.py``) against
    the tile search on real frames: the same faces (boxes IoU >= 0.7 after the second looks),
    nothing more; a batch of frames gives each frame's own result, with one model run per band
    shape."""
    import cv2

    frame = video_frames("WolfgangLanger_Pexels.mp4", 100, 100)[1]
    cut = np.ascontiguousarray(cv2.resize(frame, (1280, 720))[:, 380:])  # the face cut by the left edge
    images = [
        read_rgb(MEDIA / "multi_face.jpg"),
        frame,
        cv2.resize(frame, (1280, 720), interpolation=cv2.INTER_LINEAR),
        cv2.resize(frame, (1920, 1080), interpolation=cv2.INTER_LINEAR),
        video_frames("bikes.mp4", 40, 40)[1],
        cut,
    ]
    with FaceDetector(DetectConfig(search="canvas")) as det, FaceDetector(DetectConfig(search="tiles")) as tiles:
        assert det.search == "canvas"
        singles = [det.detect(img, frame_index=0) for img in images]
        batch = det.detect_batch(images, [0] * len(images))
        shapes = {(b.v1 - b.v0, b.u1 - b.u0) for img in images for b in det.canvas_plan(img.shape[1], img.shape[0]).phases[0]}
        assert det.last_timing["batches"] <= 2 + len(shapes)
        for img, a, b in zip(images, singles, batch):
            np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
            t = tiles.detect(img, frame_index=0)
            assert len(a) == len(t), (img.shape, a.scores, t.scores)
            if len(t):
                assert (box_iou(t.boxes, a.boxes).max(axis=1) >= 0.7).all()


def test_canvas_plan_covers_every_level_once_over_the_spread():
    """Every band of every level is searched exactly once per spread, the bands of a level cover
    its whole canvas with the overlap a face needs, and the cost per frame is even."""
    from streamdp.detect.canvas import BAND_OVERLAP, canvas_sizes, plan_canvases

    # only the levels two neighbours within MAX_LEVEL_RATIO do not cover are searched
    assert canvas_sizes([224, 448, 720]) == [224, 720]
    assert canvas_sizes([224, 448, 1080]) == [224, 1080]
    assert canvas_sizes([224, 448, 896, 2160]) == [224, 896, 2160]
    for (w, h), spread in (((1280, 720), 6), ((1920, 1080), 5), ((640, 360), 6), ((1280, 720), 1), ((720, 1280), 4)):
        plan = plan_canvases(w, h, DetectConfig(tile_size=256), spread)
        assert len(plan.phases) == spread
        bands = [b for ph in plan.phases for b in ph]
        assert len(bands) == len(set(bands))
        for i, lv in enumerate(plan.levels):
            assert lv.width % 16 == 0 and lv.height % 16 == 0 and lv.content_w <= lv.width and lv.content_h <= lv.height
            mine = sorted((b for b in bands if b.level == i), key=lambda b: (b.u0, b.v0))
            along_x = lv.width >= lv.height
            spans = [(b.u0, b.u1) if along_x else (b.v0, b.v1) for b in mine]
            assert spans[0][0] == 0 and spans[-1][1] == (lv.width if along_x else lv.height)
            for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
                assert a1 - b0 >= BAND_OVERLAP
        loads = [sum(b.area for b in ph) for ph in plan.phases]
        if spread > 1 and len(bands) >= spread:
            assert max(loads) <= 2.5 * min(loads), loads


def test_default_onnx_model_is_shipped():
    assert default_onnx_path().is_file()
    assert default_onnx_path().parent == default_model_path().parent


def test_weighted_nms_equals_mediapipes_loop_on_crowded_candidates():
    """The vectorized weighted NMS (cluster heads from greedy NMS, members by the first head
    overlapping them) gives MediaPipe's loop's clusters: same heads and scores, the same
    score-weighted boxes and keypoints, ties included."""
    from streamdp.detect.blazeface import _weighted_nms_loop, weighted_nms

    rng = np.random.default_rng(7)
    for trial in range(60):
        n = int(rng.integers(5, 400))
        centre = rng.uniform(0, 400, (n, 2))
        side = rng.uniform(5, 80, (n, 1)) * rng.uniform(0.8, 1.2, (n, 2))
        boxes = np.concatenate([centre - side / 2, centre + side / 2], 1).astype(np.float32)
        scores = rng.uniform(0.2, 1, n).astype(np.float32)
        if trial % 3 == 0:
            scores = np.round(scores, 1)  # many ties
        kps = rng.uniform(0, 400, (n, 6, 2)).astype(np.float32)
        fast, ref = weighted_nms(boxes, scores, kps), _weighted_nms_loop(boxes, scores, kps)
        assert len(fast[0]) == len(ref[0])
        np.testing.assert_array_equal(fast[1], ref[1])
        np.testing.assert_allclose(fast[0], ref[0], atol=1e-2)
        np.testing.assert_allclose(fast[2], ref[2], atol=1e-2)



@needs_media
@pytest.mark.skipif(importlib.util.find_spec("ai_edge_litert") is None, reason="ai-edge-litert is not installed")
def test_litert_threads_run_a_frames_views_at_once_with_the_same_faces():
    """``detect.threads: 2`` with LiteRT: the views of a frame are cut between two workers with
    interpreters of their own; the faces are exactly those of one thread (live's tile search of a
    real 720p frame, and a batch of frames of several sizes), and closing the detector ends the
    worker thread."""
    import threading

    import cv2

    frame = video_frames("WolfgangLanger_Pexels.mp4", 100, 100)[1]
    images = [cv2.resize(frame, (1280, 720), interpolation=cv2.INTER_LINEAR), read_rgb(MEDIA / "multi_face.jpg"),
              video_frames("bikes.mp4", 40, 40)[1]]
    live = DetectConfig(backend="litert").for_pipeline(0)
    assert live.search == "tiles" and live.threads == min(2, os.cpu_count() or 1)
    assert DetectConfig(backend="litert").for_pipeline(6).threads == 1  # files: both cores are x264's and the stages'
    assert DetectConfig(backend="onnx").for_pipeline(0).threads == 1  # ONNX Runtime's threads cost CPU
    before = set(threading.enumerate())
    results = {}
    for n in (1, 2):
        with FaceDetector(live.model_copy(update={"threads": n})) as det:
            results[n] = ([det.detect(img, frame_index=0) for img in images], det.detect_batch(images, [0] * 3))
            assert det.last_timing["calls"] > 2 * len(images)  # a batch of many views, each worker a part
            if n == 2:
                assert any(t.name.startswith("streamdp-detect") for t in threading.enumerate())
    assert not [t.name for t in threading.enumerate() if t not in before and t.is_alive()]
    for one, two in zip(results[1][0] + results[1][1], results[2][0] + results[2][1]):
        assert len(one) == len(two)
        np.testing.assert_array_equal(one.boxes, two.boxes)
        np.testing.assert_array_equal(one.scores, two.scores)
    assert sum(len(d) for d in results[1][0]) >= 3  # faces were found at all


def test_detect_threads_is_auto_or_a_small_count():
    from pydantic import ValidationError

    assert DetectConfig(threads="auto").effective_threads(6) == 1
    assert DetectConfig(threads=3).effective_threads(0) == 3
    for bad in (0, 65, "many"):
        with pytest.raises(ValidationError):
            DetectConfig(threads=bad)


def test_both_onnxruntime_wheels_without_cuda_say_why_once(monkeypatch, caplog):
    """``pip install '.[gpu]'`` leaves onnxruntime and onnxruntime-gpu both installed (one module,
    whichever came last): without CUDA the provider choice says so, once, with the fix."""
    import logging
    from importlib import metadata

    import streamdp.detect.blazeface as bf

    versions = {"onnxruntime": "1.22.0", "onnxruntime-gpu": "1.22.0"}

    def fake_version(name: str) -> str:
        if name in versions:
            return versions[name]
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", fake_version)
    bf.onnxruntime_clash.cache_clear()
    bf._warn_once.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="streamdp"):
            assert bf.select_providers(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
            bf.select_providers(["CPUExecutionProvider"])
        warned = [r.getMessage() for r in caplog.records if "onnxruntime-gpu are both installed" in r.getMessage()]
        assert len(warned) == 1 and "pip uninstall -y onnxruntime onnxruntime-gpu" in warned[0]
        assert bf.select_providers(["CUDAExecutionProvider", "CPUExecutionProvider"])[0] == "CUDAExecutionProvider"
        del versions["onnxruntime-gpu"]
        bf.onnxruntime_clash.cache_clear()
        assert bf.onnxruntime_clash() is None
    finally:
        bf.onnxruntime_clash.cache_clear()
        bf._warn_once.cache_clear()
