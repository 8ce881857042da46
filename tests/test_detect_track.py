"""Face detector (MediaPipe short-range + tiles + second look) and tracker, on real media."""

from __future__ import annotations

import json

import numpy as np
import pytest

from streamdp.config import DetectConfig, TrackConfig
from streamdp.detect import FaceDetector, box_iou, nms, plan_tiles
from streamdp.track import FaceTracker
from streamdp.types import Detections

from conftest import FACES, MEDIA, needs_faces, needs_media, read_rgb


def video_frames(name: str, indices) -> list[tuple[int, float, np.ndarray]]:
    import av

    wanted = set(indices)
    out = []
    with av.open(str(MEDIA / name)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                out.append((i, float(frame.time), frame.to_ndarray(format="rgb24")))
            if i >= max(wanted):
                break
    return out


def centres(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, :2] + boxes[:, 2:]) / 2


@pytest.fixture(scope="module")
def detector():
    with FaceDetector(DetectConfig()) as det:
        yield det


@pytest.fixture(scope="module")
def detector_full_only():
    with FaceDetector(DetectConfig(tiles=0)) as det:
        yield det


# ------------------------------------------------------------------------------------------------
# box geometry
# ------------------------------------------------------------------------------------------------


def test_box_iou_hand_cases():
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]], dtype=np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [10, 10, 20, 20], [2, 2, 4, 4]], dtype=np.float32)
    iou = box_iou(a, b)
    assert iou.shape == (2, 4)
    np.testing.assert_allclose(iou[0], [1.0, 50 / 150, 0.0, 4 / 100], rtol=1e-6)
    np.testing.assert_array_equal(iou[1], 0.0)  # degenerate box: no NaN
    assert box_iou(np.zeros((0, 4)), b).shape == (0, 4)


def test_nms_hand_cases():
    boxes = np.array(
        [[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10.5], [21, 21, 31, 31]],
        dtype=np.float32,
    )
    scores = np.array([0.5, 0.9, 0.8, 0.3, 0.85], dtype=np.float32)
    keep = nms(boxes, scores, iou=0.5)
    # 1 beats 0 and 3 (overlapping), 4 beats 2; order by score
    assert keep.tolist() == [1, 4]
    assert nms(boxes, scores, iou=0.99).tolist() == [1, 4, 2, 0, 3]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []
    # containment: a small low-scored box inside a big one goes with ``contained``
    big_small = np.array([[0, 0, 100, 100], [10, 10, 30, 30]], dtype=np.float32)
    assert nms(big_small, np.array([0.9, 0.5]), 0.3).tolist() == [0, 1]
    assert nms(big_small, np.array([0.9, 0.5]), 0.3, contained=0.85).tolist() == [0]
    # ... but never the big one for a higher-scored small one (it would uncover the rest)
    assert nms(big_small, np.array([0.5, 0.9]), 0.3, contained=0.85).tolist() == [1, 0]


def test_tile_plan_covers_the_frame_with_overlap():
    cfg = DetectConfig(search="tiles")  # live's tile plan (the canvas search's levels: test_blazeface)
    assert plan_tiles(176, 144, cfg) == []  # small frame: the full frame is enough
    assert plan_tiles(1920, 1080, DetectConfig(tiles=0)) == []
    for w, h in [(640, 360), (960, 540), (1280, 720), (1920, 1080), (1080, 1920)]:
        tiles = plan_tiles(w, h, cfg)
        assert tiles, (w, h)
        for size in {t.size for t in tiles}:
            level = [t for t in tiles if t.size == size]
            covered = np.zeros((h, w), dtype=bool)
            for t in level:
                assert 0 <= t.x0 and t.x1 <= w and 0 <= t.y0 and t.y1 <= h
                covered[t.y0 : t.y1, t.x0 : t.x1] = True
            assert covered.all(), (w, h, size)
            xs = sorted({t.x0 for t in level})
            if len(xs) > 1:
                assert max(np.diff(xs)) <= size * (1 - cfg.tile_overlap) + 1
    sizes = {t.size for t in plan_tiles(1920, 1080, cfg)}
    assert sizes == {384, 768, 1080}  # pyramid: no face size falls between two levels
    assert len(plan_tiles(1920, 1080, DetectConfig(tiles=2))) < len(plan_tiles(1920, 1080, cfg))


# ------------------------------------------------------------------------------------------------
# detector on real media
# ------------------------------------------------------------------------------------------------


@needs_media
def test_single_face_still(detector):
    img = read_rgb(MEDIA / "single_face.jpg")
    dets = detector.detect(img)
    assert len(dets) == 1
    assert dets.scores[0] > 0.8
    box, kp = dets.boxes[0], dets.keypoints[0]
    assert 150 < box[2] - box[0] < 260
    # MediaPipe order: the subject's right eye is on the image's left
    assert kp[0, 0] < kp[1, 0]
    assert kp[3, 1] > kp[2, 1] > kp[0, 1]  # mouth below nose below eyes
    inner = kp[:4]
    assert ((inner >= box[:2]) & (inner <= box[2:])).all()
    t = detector.last_timing
    assert t["total_s"] > 0 and t["calls"] >= 1


@needs_media
def test_multi_face_still_finds_all_five(detector):
    img = read_rgb(MEDIA / "multi_face.jpg")
    dets = detector.detect(img)
    expected = np.array([[260, 127], [364, 309], [477, 270], [583, 386], [739, 373]], dtype=np.float32)
    c = centres(dets.boxes)
    dist = np.linalg.norm(expected[:, None] - c[None], axis=2)
    assert (dist.min(axis=1) < 30).all(), (c, dets.scores)
    assert len(dets) <= 6  # at most one false positive
    assert (np.sort(dets.scores)[-5:] > 0.8).all()


@needs_media
@pytest.mark.parametrize(
    "name,indices",
    [
        ("single_face.mp4", range(0, 72, 6)),
        ("WolfgangLanger_Pexels.mp4", range(0, 472, 40)),
        ("carphone_pristine.mp4", range(0, 120, 20)),
    ],
)
def test_faces_in_video_frames(detector, name, indices):
    frames = video_frames(name, indices)
    assert len(frames) == len(list(indices))
    for i, _, img in frames:
        dets = detector.detect(img, frame_index=i)
        assert len(dets) == 1, (name, i, dets.scores)
        assert dets.scores[0] > 0.6
        b = dets.boxes[0]
        assert 0 <= b[0] < b[2] <= img.shape[1] and 0 <= b[1] < b[3] <= img.shape[0]


@needs_media
@pytest.mark.parametrize("name,indices,bound", [
    # no_face.mp4: cartoon title letters score up to 0.74 on MediaPipe's first look (17/95 frames
    # >= 0.3 on the full frame alone); the second look rejects them: measured 0/95
    ("no_face.mp4", range(0, 95, 2), 0.03),
    # bikes.mp4 has real faces in frames ~30-45 and ~80-135: only its face-free parts here;
    # measured 2/130 frames
    ("bikes.mp4", [*range(0, 20, 2), *range(140, 250, 2)], 0.05),
])
def test_false_positive_rate_on_face_free_video(detector, name, indices, bound):
    frames = video_frames(name, indices)
    with_fp = 0
    for i, _, img in frames:
        dets = detector.detect(img, frame_index=i)
        with_fp += len(dets) > 0
        assert (dets.scores < 0.8).all(), (name, i, dets.scores)  # never a confident false face
    rate = with_fp / len(frames)
    assert rate <= bound, f"{name}: false positives in {with_fp}/{len(frames)} frames"


def _paste(bg: np.ndarray, face: np.ndarray, size: int, x: int, y: int) -> np.ndarray:
    import cv2

    out = bg.copy()
    out[y : y + size, x : x + size] = cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA)
    return out


@needs_media
@needs_faces
def test_tiling_finds_a_small_face_in_1080p(detector, detector_full_only):
    import cv2

    (_, _, bg), = video_frames("bikes.mp4", [230])  # face-free wall and bicycle
    bg = cv2.resize(bg, (1920, 1080), interpolation=cv2.INTER_CUBIC)
    ids = json.loads((FACES / "splits.json").read_text())["lfw_eval_identities"][:3]
    # an LFW 160x160 crop at 80 px: the face box is ~55 px, 2.9% of the frame width
    size, x, y = 80, 1400, 700
    for person in ids:
        photo = read_rgb(sorted((FACES / "lfw" / person).glob("*.jpg"))[0])
        img = _paste(bg, photo, size, x, y)
        assert len(detector_full_only.detect(img)) == 0  # far below the full frame's floor
        dets = detector.detect(img)
        c = centres(dets.boxes)
        hit = np.linalg.norm(c - [x + size / 2, y + size / 2], axis=1) < size / 4
        assert hit.sum() == 1, (person, dets.boxes, dets.scores)
        b = dets.boxes[hit][0]
        assert 35 < b[2] - b[0] < 80
        assert len(dets) <= 2, dets.boxes  # at most one false positive in the 37 tiles + second looks


@needs_media
@needs_faces
def test_medium_face_cut_by_tile_borders_found_once(detector):
    import cv2

    (_, _, bg), = video_frames("bikes.mp4", [230])
    bg = cv2.resize(bg, (1920, 1080), interpolation=cv2.INTER_CUBIC)
    person = json.loads((FACES / "splits.json").read_text())["lfw_eval_identities"][5]
    photo = read_rgb(sorted((FACES / "lfw" / person).glob("*.jpg"))[0])
    # ~170 px faces astride the 384-grid borders (the full frame's floor is ~200 px)
    size = 250
    for x in (170, 455, 745):
        img = _paste(bg, photo, size, x, 300)
        dets = detector.detect(img)
        c = centres(dets.boxes)
        hit = np.linalg.norm(c - [x + size / 2, 300 + size / 2], axis=1) < size / 4
        assert hit.sum() == 1, (x, dets.boxes, dets.scores)


@needs_media
def test_tile_every_spreads_the_tile_pass_over_frames(detector):
    """tile_every N (the tile search): frame i searches tiles i mod N; over N frames every tile exactly once."""
    img = read_rgb(MEDIA / "multi_face.jpg")
    with FaceDetector(DetectConfig(tile_every=3, search="tiles")) as det:
        h, w = img.shape[:2]
        n_all = len(det.tiles_for(w, h)) + len(det.edge_tiles_for(w, h))
        counts = []
        for i in range(3, 6):
            det.detect(img, frame_index=i)
            counts.append(det.last_timing["tile_calls"])
        assert sum(counts) == n_all and max(counts) - min(counts) <= 2


@needs_media
def test_tracked_faces_are_confirmed_every_frame(detector):
    """With hints (the tracker's expected boxes), a face is found in its confirmation view even
    on a frame whose tile turn does not include it."""
    img = read_rgb(MEDIA / "multi_face.jpg")
    with FaceDetector(DetectConfig(tile_every=12)) as det:
        full = det.detect_batch([img], [0])[0]  # frame 0: its tiles' turn
        assert len(full)
        skipped0 = det.totals["confirm_skipped"]
        later = det.detect_batch([img], [5], [full.boxes])[0]
        # each tracked face is confirmed in its own view unless the first look found it for sure
        assert det.last_timing["confirm_calls"] + det.totals["confirm_skipped"] - skipped0 == min(len(full), 16)
        assert det.last_timing["confirm_calls"] >= 1
        found = (box_iou(full.boxes, later.boxes) > 0.5).any(axis=1) if len(later) else np.zeros(len(full), bool)
        assert found.mean() >= 0.9, (full.boxes, later.boxes)


@needs_media
def test_a_tracked_face_the_first_look_found_for_sure_gets_no_confirmation_view():
    """A big face the full view sees at a comfortable size and score needs no view of its own
    each frame (the same face, the same box); the small faces of a group photo, which the full
    view sees too small, still get theirs."""
    import cv2

    frame = video_frames("WolfgangLanger_Pexels.mp4", [100])[0][2]
    big = np.ascontiguousarray(cv2.resize(frame, (1280, 720), interpolation=cv2.INTER_LINEAR))
    with FaceDetector(DetectConfig(tile_every=5)) as det:
        first = det.detect_batch([big], [0], [np.zeros((0, 4))])[0]
        assert len(first) == 1
        again = det.detect_batch([big], [1], [first.boxes])[0]
        assert det.last_timing["confirm_calls"] == 0 and det.totals["confirm_skipped"] == 1
        assert len(again) == 1 and box_iou(first.boxes, again.boxes)[0, 0] > 0.9
        group = read_rgb(MEDIA / "multi_face.jpg")
        faces = det.detect_batch([group], [0], [np.zeros((0, 4))])[0]
        det.detect_batch([group], [1], [faces.boxes])
        assert det.last_timing["confirm_calls"] >= 1


def test_another_tracks_confirmation_view_showing_a_face_cut_does_not_replace_its_whole_box():
    """The bundled sample at 720p (as benchmarks/clips.py builds it), frames 280-330, the file
    pipeline's face stage: from frame 299 a patch of hair at the right edge is a provisional
    satellite track, whose confirmation view's crop cuts the person's face at its left side. The
    face's own sure first-look box must win over that truncated one in every frame (it had
    become its right two thirds, left side at x = 812, in every other frame: dp-image then
    pasted a narrowed face)."""
    from fractions import Fraction

    import av
    import cv2

    from streamdp.builder import build_face_stage
    from streamdp.config import load_config
    from streamdp.types import Frame

    from conftest import REPO

    stage = build_face_stage(load_config(), 23.976, lookback_frames=5.99)
    lefts = []
    try:
        with av.open(str(REPO / "samples" / "WolfgangLanger_Pexels.mp4")) as c:
            for i, f in enumerate(c.decode(video=0)):
                if i < 280:
                    continue
                if i > 330:
                    break
                img = np.ascontiguousarray(cv2.resize(f.to_ndarray(format="rgb24"), (1280, 720), interpolation=cv2.INTER_CUBIC))
                stage.process(Frame(i, img, pts=i * 1001, time_base=Fraction(1, 24000)))
                d = stage.last_detected
                assert len(d), i
                lefts.append(float(d.boxes[np.argmax(d.scores), 0]))
    finally:
        stage.close()
    assert max(lefts) < 760, lefts


def test_detector_rejects_bad_input_and_closes():
    det = FaceDetector(DetectConfig())
    with pytest.raises(ValueError):
        det.detect(np.zeros((10, 10), dtype=np.uint8))
    assert len(det.detect(np.zeros((64, 64, 3), dtype=np.uint8))) == 0
    det.close()
    det.close()  # idempotent
    with pytest.raises(RuntimeError):
        det.detect(np.zeros((64, 64, 3), dtype=np.uint8))


def test_missing_model_is_a_model_error(tmp_path):
    from streamdp.errors import ModelError

    with pytest.raises(ModelError):
        FaceDetector(DetectConfig(), model_path=tmp_path / "nope.tflite")


# ------------------------------------------------------------------------------------------------
# tracker
# ------------------------------------------------------------------------------------------------


def face(x: float, y: float, size: float = 60.0, score: float = 0.9) -> Detections:
    """One synthetic detection with plausible keypoints, box top-left at (x, y)."""
    box = np.array([[x, y, x + size, y + size]], dtype=np.float32)
    rel = np.array([[0.3, 0.4], [0.7, 0.4], [0.5, 0.6], [0.5, 0.8], [0.05, 0.5], [0.95, 0.5]])
    kp = (np.array([x, y]) + rel * size)[None].astype(np.float32)
    return Detections(box, np.array([score]), kp)


WH = (640, 360)


def test_tracker_ids_stable_for_a_moving_face():
    tr = FaceTracker(TrackConfig(), fps=30)
    for i in range(30):
        d = face(50 + 5 * i, 100 + 2 * i)
        out = tr.update(d, i / 30, WH)
        assert out.track_ids.tolist() == [1]
        assert not out.predicted[0]
        # cover box = detection grown by box_margin (0.2) on each side
        np.testing.assert_allclose(out.boxes[0], d.boxes[0] + np.array([-12, -12, 12, 12]), atol=1e-4)
        np.testing.assert_allclose(out.keypoints, d.keypoints)  # keypoints not grown
    assert tr.total_tracks == 1 and tr.active_track_count == 1


def test_tracker_coasts_through_a_short_gap_and_keeps_the_id():
    cfg = TrackConfig()
    tr = FaceTracker(cfg, fps=30)
    speed = 6.0  # px per frame, to the right
    for i in range(10):
        tr.update(face(50 + speed * i, 100), i / 30, WH)
    sizes = []
    for i in range(10, 15):  # 5 missing frames = 0.167 s < coast_seconds
        out = tr.update(Detections.empty(), i / 30, WH)
        assert out.track_ids.tolist() == [1] and out.predicted.tolist() == [True]
        true_box = face(50 + speed * i, 100).boxes[0]
        b = out.boxes[0]
        assert (b[:2] <= true_box[:2]).all() and (b[2:] >= true_box[2:]).all()  # still covered
        sizes.append(b[2] - b[0])
        # predicted keypoints move with the face
        assert abs(out.keypoints[0, 0, 0] - (50 + speed * i + 0.3 * 60)) < 6
    assert all(np.diff(sizes) > 0)  # coasting growth
    out = tr.update(face(50 + speed * 15, 100), 15 / 30, WH)
    assert out.track_ids.tolist() == [1] and out.predicted.tolist() == [False]
    st = tr.track_stats()[1]
    assert st["frames_detected"] == 11 and st["frames_coasted"] == 5 and st["active"]
    assert st["first_seen_s"] == 0.0 and st["last_seen_s"] == pytest.approx(0.5)


def test_tracker_drops_after_coast_seconds_and_never_reuses_ids():
    # re-association off: a face re-found where it was lost would take its id back (test_reassociate.py)
    tr = FaceTracker(TrackConfig(coast_seconds=0.5, reassociate_seconds=0.0), fps=30)
    for i in range(5):
        tr.update(face(100, 100), i / 30, WH)
    last = 4 / 30
    assert len(tr.update(Detections.empty(), last + 0.49, WH)) == 1
    assert len(tr.update(Detections.empty(), last + 0.51, WH)) == 0
    assert tr.active_track_count == 0
    out = tr.update(face(100, 100), last + 0.6, WH)
    assert out.track_ids.tolist() == [2]
    assert tr.total_tracks == 2
    assert not tr.track_stats()[1]["active"]


def test_tracker_new_face_is_covered_from_its_first_frame():
    tr = FaceTracker(TrackConfig(), fps=30)
    for i in range(3):
        tr.update(face(50, 50), i / 30, WH)
    out = tr.update(Detections.concat([face(50, 50), face(400, 200, size=40)]), 3 / 30, WH)
    assert out.track_ids.tolist() == [1, 2]
    assert out.predicted.tolist() == [False, False]
    assert (out.boxes[1, :2] <= [400, 200]).all() and (out.boxes[1, 2:] >= [440, 240]).all()


def test_tracker_uses_timestamps_for_variable_frame_rate():
    cfg = TrackConfig(coast_seconds=0.5)
    # one missing frame, but 0.6 s of stream time went by: dropped
    tr = FaceTracker(cfg, fps=30)
    tr.update(face(100, 100), 0.0, WH)
    tr.update(face(100, 100), 0.033, WH)
    assert len(tr.update(Detections.empty(), 0.633, WH)) == 0
    # ten missing frames in 0.3 s of stream time (a 33 fps burst): still covered
    tr = FaceTracker(cfg, fps=5)
    tr.update(face(100, 100), 0.0, WH)
    for k in range(1, 11):
        out = tr.update(Detections.empty(), 0.03 * k, WH)
        assert out.predicted.tolist() == [True]
    # without timestamps, time is frame count / fps: at 5 fps, 3 missing frames = 0.6 s
    tr = FaceTracker(cfg, fps=5)
    tr.update(face(100, 100), None, WH)
    assert len(tr.update(Detections.empty(), None, WH)) == 1  # t = 0.2
    assert len(tr.update(Detections.empty(), None, WH)) == 1  # t = 0.4
    assert len(tr.update(Detections.empty(), None, WH)) == 0  # t = 0.6


def test_tracker_clips_to_the_frame_and_handles_fast_motion():
    tr = FaceTracker(TrackConfig(), fps=30)
    out = tr.update(face(600, 330, size=60), 0.0, WH)
    assert (out.boxes[0, 2:] <= WH).all() and (out.boxes[0, :2] >= 0).all()
    tr = FaceTracker(TrackConfig(), fps=30)
    tr.update(face(100, 100), 0.0, WH)
    out = tr.update(face(150, 100), 1 / 30, WH)  # jumped most of a box width: IoU ~ 0.1
    assert out.track_ids.tolist() == [1]


@needs_media
def test_detector_and_tracker_on_video(detector):
    frames = video_frames("WolfgangLanger_Pexels.mp4", range(0, 40))
    tr = FaceTracker(TrackConfig(), fps=24000 / 1001)
    for i, t, img in frames:
        dets = detector.detect(img, frame_index=i)
        out = tr.update(dets, t, (img.shape[1], img.shape[0]))
        assert out.track_ids.tolist() == [1]
    assert tr.total_tracks == 1
    assert tr.track_stats()[1]["frames_detected"] == len(frames)


@needs_media
def test_skip_unchanged_searches_only_tiles_that_changed(detector):
    """detect.skip_unchanged: an identical frame searches no tile again; a face pasted into the
    frame makes the tiles around it search again, and it is found."""
    img = read_rgb(MEDIA / "multi_face.jpg")
    h, w = img.shape[:2]
    blank = np.full_like(img, 90)
    blank[::7, ::5] = 200  # some texture, no face
    none = np.zeros((0, 4))  # a tracker with no face tracked (the gate needs a tracker)
    with FaceDetector(DetectConfig(skip_unchanged=True, tile_every=1)) as det:
        det.detect_batch([blank], [0], [none])
        det.detect_batch([blank], [1], [none])
        assert det.last_timing["tile_calls"] == 0
        full = FaceDetector(DetectConfig()).detect(img, 0)
        assert len(full)
        x0, y0, x1, y1 = full.boxes[0].astype(int)
        pad = (x1 - x0) // 2
        xa, ya = max(x0 - pad, 0), max(y0 - pad, 0)
        xb, yb = min(x1 + pad, w), min(y1 + pad, h)
        moved = blank.copy()
        moved[ya:yb, xa:xb] = img[ya:yb, xa:xb]
        found = det.detect_batch([moved], [2], [none])[0]
        assert det.last_timing["tile_calls"] > 0
        assert len(found) and (box_iou(full.boxes[:1], found.boxes) > 0.5).any()


def _textured(h: int = 720, w: int = 1280, seed: int = 3) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (h // 16, w // 16, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def test_change_gate_masks_tracked_boxes_only():
    """A region whose pixels changed only inside a tracked face's box is skipped; the same
    change with no track there, or a change outside the box, makes it searched again."""
    from streamdp.detect.schedule import ChangeGate

    img = _textured()
    gate = ChangeGate(refresh=8)
    region = (("t", 0, 0, 384), 0, 0, 384, 384)
    gate.begin(img, None)
    assert gate.keep(*region)  # first sight: searched
    gate.begin(img, None)
    assert not gate.keep(*region)  # same pixels: skipped
    moved = img.copy()
    moved[100:180, 100:180] = 255 - moved[100:180, 100:180]
    gate.begin(moved, np.array([[96.0, 96.0, 184.0, 184.0]]))
    assert not gate.keep(*region)  # the change is all inside the tracked box
    gate.begin(moved, None)
    assert gate.keep(*region)  # no track there: a change like any other
    outside = img.copy()
    outside[300:324, 300:324] = 255 - outside[300:324, 300:324]  # a 24 px change
    gate.begin(outside, np.array([[96.0, 96.0, 184.0, 184.0]]))
    assert gate.keep(*region)


def test_change_gate_refreshes_after_its_turns():
    from streamdp.detect.schedule import ChangeGate

    img = _textured()
    gate = ChangeGate(refresh=2)
    seen = []
    for _ in range(7):
        gate.begin(img, None)
        seen.append(gate.keep(("b", 224, 0, 0, 256, 416), 0, 0, 448, 720))
    assert seen == [True, False, False, True, False, False, True]


@needs_media
def test_canvas_search_skips_unchanged_bands_and_finds_a_new_face():
    """The files path (canvas bands spread over the look-back): a static textured background
    searches no band again once seen; a face pasted in makes its bands search again, and it is
    found there."""
    img = read_rgb(MEDIA / "multi_face.jpg")
    full = FaceDetector(DetectConfig()).detect(img, 0)
    assert len(full)
    x0, y0, x1, y1 = full.boxes[0].astype(int)
    face = img[max(y0 - 20, 0) : y1 + 20, max(x0 - 20, 0) : x1 + 20]
    bg = _textured()
    cfg = DetectConfig().for_pipeline(6.0)
    assert cfg.search == "canvas" and cfg.skip_unchanged
    with FaceDetector(cfg, tile_every=cfg.tile_every) as det:
        n = cfg.tile_every
        none = np.zeros((0, 4))  # a tracker with no face tracked
        for i in range(n):  # every band seen once
            det.detect_batch([bg], [i], [none])
        skipped0 = det.totals["tiles_skipped_unchanged"]
        for i in range(n, 2 * n):
            det.detect_batch([bg], [i], [none])
            assert det.last_timing["tile_calls"] == 0
        assert det.totals["tiles_skipped_unchanged"] > skipped0
        withface = bg.copy()
        fh, fw = face.shape[:2]
        withface[400 : 400 + fh, 900 : 900 + fw] = face
        found = []
        for i in range(2 * n, 3 * n):
            out = det.detect_batch([withface], [i], [none])[0]
            found += [b for b in out.boxes if 880 <= (b[0] + b[2]) / 2 <= 920 + fw and 380 <= (b[1] + b[3]) / 2 <= 420 + fh]
        assert found, "the pasted face was not found by the gated search"


def test_rejection_memory_lasts_while_the_pixels_stay_the_same():
    from streamdp.detect.schedule import ChangeGate
    from streamdp.detect.verify import REJECT_MEMORY_FRAMES, RejectMemory

    img = _textured()
    gate = ChangeGate()
    mem = RejectMemory()
    box = np.array([200.0, 200.0, 260.0, 260.0])
    gate.begin(img, None)
    mem.remember(0, [(box, 0.4)], gate)
    later = REJECT_MEMORY_FRAMES + 5
    gate.begin(img, None)
    assert len(mem.recall(later, gate)[0]) == 1  # same pixels: still rejected
    changed = img.copy()
    changed[210:250, 210:250] = 255 - changed[210:250, 210:250]
    gate.begin(changed, None)
    assert len(mem.recall(later + 1, gate)[0]) == 0  # changed: forgotten, looked at again
    mem2 = RejectMemory()
    gate.begin(img, None)
    mem2.remember(0, [(box, 0.4)], None)
    assert len(mem2.recall(later, gate)[0]) == 0  # without the gate's patch: the ordinary memory


@needs_media
def test_the_gate_never_drops_a_face_it_found_that_is_not_tracked():
    """The same frame twice: without a tracker (no hints) every call searches in full; with a
    tracker that does not (yet) hold the face, a region that found it is searched again; once
    the face is tracked its region may be skipped and the confirmation view finds it."""
    img = read_rgb(MEDIA / "multi_face.jpg")
    small = np.ascontiguousarray(img[::2, ::2])  # small faces: found by tiles, not the full view
    with FaceDetector(DetectConfig(skip_unchanged=True, tile_every=1)) as det:
        first = det.detect(small, 0)
        assert len(first)
        assert len(det.detect(small, 1)) == len(first)  # no hints: no gate
        none = np.zeros((0, 4))
        a = det.detect_batch([small], [2], [none])[0]
        b = det.detect_batch([small], [3], [none])[0]  # found, not tracked: searched again
        assert len(a) == len(b) == len(first)
        tracked = det.detect_batch([small], [4], [a.boxes])[0]
        assert len(tracked) == len(first)
