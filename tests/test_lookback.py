"""Backward dilation: a face is covered in the frames just before its first detection (files)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from streamdp.lookback import LookbackDilator
from streamdp.types import Detections, Frame, FrameJob


def _job(i: int, track_id: int | None) -> FrameJob:
    frame = Frame(i, np.zeros((8, 8, 3), np.uint8), pts=i * 1000, time_base=Fraction(1, 24000))
    if track_id is None:
        return FrameJob(frame, Detections.empty())
    box = np.array([[1, 1, 5, 5]], np.float32)
    return FrameJob(frame, Detections(box, [0.9], np.zeros((1, 6, 2)), [track_id]))


def test_new_track_is_copied_into_the_held_window_only() -> None:
    dil = LookbackDilator(0.25, fps=24.0)  # 0.25 s = 6 frames at 24 fps
    out: list[FrameJob] = []
    for i in range(30):
        out.extend(dil.push(_job(i, 7 if i >= 20 else None)))
    out.extend(dil.flush())
    assert [j.frame.index for j in out] == list(range(30)), "frames must leave in order, none lost"
    covered = [j.frame.index for j in out if len(j.faces)]
    assert covered == list(range(14, 30)), covered  # 20 - 6 .. 29
    lookback = [j for j in out if 14 <= j.frame.index < 20]
    assert all(j.faces.predicted.all() and (j.faces.track_ids == 7).all() for j in lookback)
    assert dil.faces_added == 6


def test_zero_window_passes_frames_straight_through() -> None:
    dil = LookbackDilator(0.0, fps=24.0)
    assert [j.frame.index for j in dil.push(_job(0, 1))] == [0]
    assert list(dil.flush()) == []


def test_a_track_that_comes_back_is_dilated_again_and_a_continuing_one_is_not() -> None:
    """The tracker can take a lost face's id back (track.reassociate_seconds): its face was not
    covered in the gap, so the frames just before it is found again are covered as for a new
    track; a track present frame after frame adds nothing."""
    dil = LookbackDilator(0.25, fps=24.0)
    out: list[FrameJob] = []
    for i in range(40):
        tid = 3 if (i < 5 or i >= 25) else None  # the same track id returns after a gap
        out.extend(dil.push(_job(i, tid)))
    out.extend(dil.flush())
    covered = [j.frame.index for j in out if len(j.faces)]
    back = dil.faces_added  # 0.25 s before frame 25: 5 or 6 frames (the boundary is a float compare)
    assert back in (5, 6)
    assert covered == list(range(5)) + list(range(25 - back, 40))



def test_the_box_before_the_first_detection_grows_with_the_time_back() -> None:
    """As a coasting box grows forwards, the look-back box grows backwards: by
    ``grow_per_second * dt`` of its size on each side in a frame ``dt`` before the detection
    (a face moving into its first detected place came from near it); the detection itself keeps
    its box."""
    dil = LookbackDilator(0.25, fps=24.0, grow_per_second=0.5)
    out: list[FrameJob] = []
    for i in range(30):
        out.extend(dil.push(_job(i, 7 if i >= 20 else None)))
    out.extend(dil.flush())
    by_index = {j.frame.index: j.faces.boxes for j in out if len(j.faces)}
    np.testing.assert_allclose(by_index[20], [[1, 1, 5, 5]])
    for i in range(14, 20):
        grow = 4 * 0.5 * (20 - i) / 24  # box side 4 px
        np.testing.assert_allclose(by_index[i], [[1 - grow, 1 - grow, 5 + grow, 5 + grow]], rtol=1e-5)
