"""Re-association (streamdp/track.py, ``track.reassociate_seconds``): a face the detector loses for
longer than the coast, in the open, keeps its track id when it is found again near where it was
heading; a different person elsewhere, or at the same place after the window, is a new track.

The tracker is driven with hand-made detections (exact, no detector in the way), and once with the
real detector on a rendered scene whose detections are removed for a second.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from conftest import FACES
from streamdp.config import TrackConfig
from streamdp.track import FaceTracker
from streamdp.types import NUM_KEYPOINTS, Detections

FPS = 24.0
FRAME = (640, 360)


def _dets(*faces: tuple[float, float, float]) -> Detections:
    """Detections of square faces given as (cx, cy, size)."""
    boxes = np.array([[cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2] for cx, cy, s in faces]).reshape(-1, 4)
    kps = np.repeat(((boxes[:, :2] + boxes[:, 2:]) / 2)[:, None, :], NUM_KEYPOINTS, axis=1)
    return Detections(boxes, np.full(len(boxes), 0.9), kps)


def _run(tracker: FaceTracker, seconds: float, faces_at) -> list[set[int]]:  # type: ignore[no-untyped-def]
    """Feed ``faces_at(t)`` -> [(cx, cy, size)] for ``seconds``; the ids covered per frame."""
    out = []
    for k in range(int(round(seconds * FPS))):
        t = k / FPS
        covered = tracker.update(_dets(*faces_at(t)), t, FRAME)
        out.append({int(i) for i in covered.track_ids})
    return out


def _walker(t: float) -> tuple[float, float, float]:
    return (100.0 + 80.0 * t, 180.0, 80.0)  # one face size a second, left to right


@pytest.mark.parametrize("reassociate, tracks", [(2.0, 1), (0.0, 2)])
def test_a_face_lost_for_a_second_in_the_open_while_walking_keeps_its_id(reassociate: float, tracks: int) -> None:
    tracker = FaceTracker(TrackConfig(reassociate_seconds=reassociate), FPS)
    frames = _run(tracker, 5.0, lambda t: [] if 2.0 <= t < 3.0 else [_walker(t)])
    assert tracker.total_tracks == tracks
    assert frames[-1] == {tracks}
    # not covered while lost: only the coast covers the dropout's first 0.5 s
    lost = frames[int(2.0 * FPS) : int(3.0 * FPS)]
    assert any(ids == set() for ids in lost)
    assert tracker.reassociations == (1 if reassociate else 0)
    if reassociate:
        assert tracker.track_stats()[1]["reassociated"] == 1


def test_a_face_that_stopped_while_lost_keeps_its_id() -> None:
    tracker = FaceTracker(TrackConfig(), FPS)

    def faces(t: float) -> list[tuple[float, float, float]]:
        if 1.0 <= t < 2.2:
            return []
        return [_walker(min(t, 1.0))]  # walks, is lost, is found standing where it was lost

    _run(tracker, 4.0, faces)
    assert tracker.total_tracks == 1


def test_another_person_far_away_is_a_new_track() -> None:
    tracker = FaceTracker(TrackConfig(), FPS)

    def faces(t: float) -> list[tuple[float, float, float]]:
        out = [(500.0, 180.0, 80.0)]  # B (track 1) stands on the right throughout
        if t < 1.0:
            out.append((120.0, 120.0, 80.0))  # A (track 2), lost at 1.0 s
        if t >= 1.8:
            out.append((300.0, 320.0, 80.0))  # C, well outside A's gate (2.7 sizes away)
        return out

    frames = _run(tracker, 3.0, faces)
    assert tracker.total_tracks == 3 and tracker.reassociations == 0
    assert frames[-1] == {1, 3}


def test_a_second_box_beside_a_live_face_does_not_take_a_lost_id() -> None:
    """Within A's gate, but nearer to live B than to where A was: B's, never A's."""
    tracker = FaceTracker(TrackConfig(), FPS)

    def faces(t: float) -> list[tuple[float, float, float]]:
        out = [(340.0, 180.0, 80.0)]  # B
        if t < 1.0:
            out.append((200.0, 180.0, 80.0))  # A, lost at 1.0 s
        if 1.8 <= t < 1.9:
            out.append((300.0, 200.0, 80.0))  # 0.56 sizes from B, 1.25 from A
        return out

    _run(tracker, 2.5, faces)
    assert tracker.reassociations == 0


def test_two_faces_crossing_while_lost_keep_their_own_ids() -> None:
    """B is lost (its coast ran out), A still coasting, when B is found again where it was heading
    and overlapping A's prediction: B takes its own id back, A keeps coasting and is found too."""
    tracker = FaceTracker(TrackConfig(), FPS)
    a = lambda t: (200.0 + 60.0 * t, 180.0, 80.0)  # noqa: E731  track 1, walking right
    b = lambda t: (400.0 - 60.0 * t, 235.0, 80.0)  # noqa: E731  track 2, walking left, crossing below A

    def faces(t: float) -> list[tuple[float, float, float]]:
        out = []
        if t < 1.9 or t >= 2.1:
            out.append(a(t))
        if t < 1.0 or t >= 2.0:
            out.append(b(t))
        return out

    _run(tracker, 2.5, faces)
    covered = tracker.update(_dets(a(2.5), b(2.5)), 2.5, FRAME)
    centre_x = (covered.boxes[:, 0] + covered.boxes[:, 2]) / 2
    assert dict(zip(covered.track_ids.tolist(), np.round(centre_x).tolist())) == {1: 350.0, 2: 250.0}
    assert tracker.total_tracks == 2 and tracker.reassociations == 1


@pytest.mark.parametrize("after, size, same_track", [
    (1.5, 80.0, True),  # within the window at the same place: the same track (position only)
    (3.0, 80.0, False),  # after the window (0.5 s coast + 2 s): a new track
    (1.5, 200.0, False),  # within the window but 2.5x the size: another face (nearer the camera)
])
def test_at_the_same_place_after_the_window_or_at_another_size_is_a_new_track(after: float, size: float, same_track: bool) -> None:
    tracker = FaceTracker(TrackConfig(), FPS)

    def faces(t: float) -> list[tuple[float, float, float]]:
        if t < 1.0:
            return [(320.0, 180.0, 80.0)]
        return [(320.0, 180.0, size)] if t >= 1.0 + after else []

    frames = _run(tracker, 1.0 + after + 0.5, faces)
    assert tracker.total_tracks == (1 if same_track else 2)
    assert frames[-1] == {1 if same_track else 2}


def test_memory_of_lost_tracks_is_bounded_oldest_forgotten_first() -> None:
    from streamdp import track_state as track

    tracker = FaceTracker(TrackConfig(reassociate_seconds=30.0), FPS)
    n = track.MAX_LOST + 8
    # n faces, one at a time, each seen for a frame and lost (0.6 s later: past its coast), on a
    # grid (each far from the others), all within the window
    step = 0.6
    for k in range(n):
        tracker.update(_dets((40.0 + 70.0 * (k % 9), 40.0 + 70.0 * (k // 9), 30.0)), k * step, FRAME)
    tracker.update(Detections.empty(), n * step, FRAME)
    assert len(tracker._lost) == track.MAX_LOST
    # the oldest (id 1) is forgotten: found again where it was, it is a new track; the newest is not
    first = (40.0, 40.0, 30.0)
    last = (40.0 + 70.0 * ((n - 1) % 9), 40.0 + 70.0 * ((n - 1) // 9), 30.0)
    out = tracker.update(_dets(first, last), n * step + 0.1, FRAME)
    assert sorted(int(i) for i in out.track_ids) == [n, n + 1]


needs_synthetic = pytest.mark.skipif(not (FACES / "splits.json").is_file(), reason=f"shared face data not found at {FACES}")
needs_motmetrics = pytest.mark.skipif(importlib.util.find_spec("motmetrics") is None, reason="motmetrics not installed (test extra)")


@needs_synthetic
@needs_motmetrics
def test_the_real_detector_with_a_second_of_dropout_is_one_track() -> None:
    """A rendered face walking across the frame, the detector's output removed for 1.0 s in the
    middle (live's path): one track before and after, none false, no ID switch."""
    from fractions import Fraction

    from synth import pick_face_photos

    from streamdp.builder import build_face_stage
    from streamdp.config import Config
    from streamdp.eval.tracking import Actor, Scene, TrackedFrame, render, score
    from streamdp.types import Frame

    (_, photo), = pick_face_photos(FACES, 1, seed=1)
    w, h = FRAME
    scene = Scene("dropout", [Actor(photo, [(0, 0.2 * w, 0.5 * h, 0.3 * h, 0), (4.0, 0.8 * w, 0.5 * h, 0.3 * h, 0)])], 4.0, FRAME, FPS)
    stage = build_face_stage(Config(), FPS)
    detect = stage.detector.detect_batch
    now = {"t": 0.0}
    stage.detector.detect_batch = lambda *a, **k: [Detections.empty()] if 1.5 <= now["t"] < 2.5 else detect(*a, **k)  # type: ignore[method-assign]
    frames = []
    try:
        for k, (t, img, gts) in enumerate(render(scene)):
            now["t"] = t
            job = stage.process(Frame(k, img, pts=int(round(t * 1000)), time_base=Fraction(1, 1000)))
            frames.append(TrackedFrame(gts, job.faces.track_ids.copy(), job.faces.boxes.astype(np.float64)))
    finally:
        stage.close()
    r = score(frames)
    assert stage.tracker.reassociations == 1, r
    assert r["people"] == 1 and r["tracks"] == 1 and r["false_tracks"] == 0 and r["id_switches"] == 0, r
