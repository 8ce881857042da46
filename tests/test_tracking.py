"""Tracking measured on synthetic scenes with known identities (streamdp/eval/tracking.py, scored
with motmetrics): a person in continuous view is one track, a texture is no person, faces crossing,
leaving and coming back, half out at the edge, fast and zooming are covered to the last pixel.
And on real footage with one person in view (benchmarks/track_real.py): that person is one track.

Uses LFW evaluation identities and the sample clips from ../shared (skips with the reason when
absent).
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import av
import pytest

from conftest import FACES, MEDIA, needs_media
from synth import pick_face_photos

needs_synthetic = pytest.mark.skipif(not (FACES / "splits.json").is_file(), reason=f"shared face data not found at {FACES}")
needs_motmetrics = pytest.mark.skipif(importlib.util.find_spec("motmetrics") is None, reason="motmetrics not installed (test extra)")


@pytest.fixture(scope="module")
def scores() -> dict[str, dict]:
    from streamdp.eval.tracking import score, standard_scenes, track_scene

    photos = [p for _, p in pick_face_photos(FACES, 3, seed=1)]
    return {sc.name: score(track_scene(sc)) for sc in standard_scenes(photos, seconds=5.0)}


@needs_synthetic
@needs_motmetrics
@pytest.mark.parametrize("scene", ["cross", "exit_reenter", "edge_slide", "fast", "zoom", "harsh_three"])
def test_each_person_is_one_track_and_no_face_frame_is_left_raw(scores: dict[str, dict], scene: str) -> None:
    r = scores[scene]
    assert r["tracks"] == r["people"], r
    assert r["id_switches"] == 0 and r["false_tracks"] == 0, r
    assert r["face_frames_raw_over_10pct"] == 0, r
    # re-entering at the edge: the first sliver (< 30% of the face: an ear, a cheek) may show
    # before the detector or the edge hold has it
    assert r["face_frames_raw_any_pixel"] <= (2 if scene == "exit_reenter" else 0), r
    # IDF1 matches boxes by IoU; the edge hold (a box kept at the edge while the face is away) and
    # the inward reach and the extra margin of cut boxes (track.PARTIAL_MARGIN) are deliberate
    # over-cover that costs IoU, not identity
    assert r["idf1"] > {"exit_reenter": 0.6, "edge_slide": 0.8}.get(scene, 0.85), r


@needs_synthetic
@needs_motmetrics
def test_a_texture_is_no_person(scores: dict[str, dict]) -> None:
    r = scores["harsh_empty"]
    assert r["people"] == 0 and r["false_tracks"] == r["tracks"] <= 1, r


@needs_synthetic
def test_the_ground_truth_is_what_the_frames_show() -> None:
    """The scene renderer's boxes: clipped to the frame, hidden faces list their occluders."""
    from streamdp.eval.tracking import Actor, Scene, render

    photo = pick_face_photos(FACES, 2, seed=1)
    a = Actor(photo[0][1], [(0, 300, 180, 100, 0), (1, 700, 180, 100, 0)])  # walks out at the right
    b = Actor(photo[1][1], [(0, 300, 185, 110, 1), (1, 300, 185, 110, 1)])  # stands in front
    frames = list(render(Scene("t", [a, b], 1.0, (640, 360), 10.0)))
    _, img0, gt0 = frames[0]
    assert [g.id for g in gt0] == [1, 2]
    assert gt0[0].visible_fraction() < 0.05 and gt0[1].visible_fraction() == 1.0
    _, _, gt_last = frames[-1]
    assert all(g.box[2] <= 640 for g in gt_last)
    assert img0.shape == (360, 640, 3)
    assert math.isclose(gt0[1].box[3] - gt0[1].box[1], 110, abs_tol=1.5)


def _cut(src: Path, dst: Path, start: int, stop: int) -> int:
    """Frames ``[start, stop)`` of ``src`` re-encoded (H.264, near lossless) to ``dst``."""
    n = 0
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        ist = inp.streams.video[0]
        ost = out.add_stream("libx264", rate=ist.average_rate)
        ost.width, ost.height, ost.pix_fmt = ist.width, ist.height, "yuv420p"
        ost.options = {"crf": "16", "preset": "veryfast"}
        for k, frame in enumerate(inp.decode(ist)):
            if k >= stop:
                break
            if k >= start:
                f = av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")
                f.pts, f.time_base = k - start, 1 / ist.average_rate
                for packet in ost.encode(f):
                    out.mux(packet)
                n += 1
        for packet in ost.encode(None):
            out.mux(packet)
    return n


@needs_media
@pytest.mark.parametrize("clip, frames", [
    # the bundled sample: one woman in view throughout; frames 236-336 hold the stretch where the
    # detector fired on her hair at the right edge next to her face (before the fix: a new track
    # each time, 3 in the whole clip)
    ("WolfgangLanger_Pexels.mp4", (236, 336)),
    ("carphone_pristine.mp4", None),  # one man in a car throughout, 120 frames at 176x144
])
def test_one_person_in_view_on_real_footage_is_one_track(tmp_path: Path, clip: str, frames: tuple[int, int] | None) -> None:
    """`streamdp run --mechanism pixelate` (the file pipeline, look-back and all): the report has
    one track, and it holds the person's face in >= 95% of the frames (they are in every one)."""
    from streamdp.cli import main

    src = MEDIA / clip
    if frames is not None:
        n = _cut(src, tmp_path / "cut.mp4", *frames)
        src = tmp_path / "cut.mp4"
    else:
        with av.open(str(src)) as c:
            n = sum(1 for _ in c.decode(video=0))
    report = tmp_path / "report.json"
    argv = ["run", str(src), "-o", str(tmp_path / "out.mp4"), "--mechanism", "pixelate", "--report", str(report), "--quiet"]
    assert main(argv) == 0
    entry = json.loads(report.read_text())["files"][0]
    assert entry["frames_in"] == n
    tracks = entry["tracks"]
    assert tracks["total"] == 1, tracks
    (only,) = tracks["per_track"].values()
    assert only["frames_detected"] >= 0.95 * n, tracks
