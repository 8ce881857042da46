"""Backward temporal dilation for files: cover a face in the frames just *before* its first detection.

A detector usually finds a face a few frames after it became visible (entering the frame,
turning, coming out of motion blur). A live stream cannot go back, but a file pipeline can hold
a short window of frames between the tracker and the privatizer: when a track is born, its first
cover box is added, as a predicted face, to the held frames of the last ``lookback_seconds``.
This mirrors the tracker's forward coasting, so every track is covered on both sides of its
detections: as a coasting box grows by ``coast_margin_per_second`` of its size per second, the
box added to a frame ``dt`` before the first detection is grown by that much times ``dt`` on each
side (a face moving into its first detected place came from somewhere near it). The cost is a
delay of that window, nothing else.

Tracks present in the very first frame are not dilated backwards (there is nothing before). A
track that comes back after frames without it (the tracker re-associated a lost face) is dilated
again, like a new one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

import numpy as np

from .types import Detections, FrameJob


class LookbackDilator:
    """Holds the last frames; ``push`` returns the frames that leave the window, in order.

    ``frames``: hold the last that many frames instead of a window of seconds (live, with the
    search spread over ``frames + 1`` picked frames: a frame waits for the next one's detection,
    whatever time lies between them)."""

    def __init__(self, lookback_seconds: float, fps: float, grow_per_second: float = 0.0,
                 frames: int | None = None) -> None:
        self.window_s = float(lookback_seconds)
        self.frames = None if frames is None else max(0, int(frames))
        self.grow_per_second = float(grow_per_second)
        self.fps = float(fps) if fps > 0 else 25.0
        self._held: deque[tuple[float, FrameJob]] = deque()
        self._prev: set[int] = set()  # the track ids of the last frame pushed
        self.faces_added = 0

    def _time(self, job: FrameJob) -> float:
        t = job.frame.time_s
        return float(t) if t is not None else job.frame.index / self.fps

    def push(self, job: FrameJob) -> Iterator[FrameJob]:
        t = self._time(job)
        if (self.window_s if self.frames is None else self.frames) <= 0:
            yield job
            return
        ids = job.faces.track_ids
        # a track absent from the previous frame starts here: a new one, or one the tracker took
        # back after losing it (track.reassociate_seconds) - either way its face was not covered
        # in the frames just before
        born = np.array([tid >= 0 and tid not in self._prev for tid in ids], dtype=bool)
        self._prev = {int(tid) for tid in ids if tid >= 0}
        if born.any() and self._held:
            new = job.faces[born]
            new.predicted[:] = True
            for t_held, held in self._held:
                if self.frames is not None or t - t_held <= self.window_s:
                    held.faces = Detections.concat([held.faces, self._grown(new, t - t_held)])
                    self.faces_added += len(new)
        self._held.append((t, job))
        if self.frames is not None:
            while len(self._held) > self.frames:
                yield self._held.popleft()[1]
            return
        while self._held and t - self._held[0][0] > self.window_s:
            yield self._held.popleft()[1]

    def _grown(self, faces: Detections, dt: float) -> Detections:
        frac = self.grow_per_second * max(dt, 0.0)
        if frac <= 0:
            return faces
        out = faces[np.arange(len(faces))]  # a copy: each held frame gets its own boxes
        b = out.boxes.astype(np.float64)
        d = (b[:, 2:] - b[:, :2]) * frac
        out.boxes[:] = np.concatenate([b[:, :2] - d, b[:, 2:] + d], axis=1)
        return out

    def flush(self) -> Iterator[FrameJob]:
        while self._held:
            yield self._held.popleft()[1]
