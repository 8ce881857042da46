"""``CoveredFrame``: the only kind of frame a live output accepts.

A decoded input frame is a raw ``numpy`` array; nothing in ``streamdp.live`` hands such an array
to an output. Outputs take ``CoveredFrame`` values, and those are made only here, by functions
that say how the faces were dealt with:

* ``privatized``: the configured mechanism ran on every tracked face (or the privatizer's own
  fail-closed solid fill did);
* ``fallback``: the privatizer missed the deadline, so the cheap cover (solid/pixelate) was
  applied to a copy of the frame;
* ``no_faces``: the detector and tracker found no face to cover;
* ``resized``: an already covered frame scaled to the output size.

The pixels are made read-only, so a covered frame cannot be altered after the fact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from ..mechanisms import Mechanism
from ..types import Detections, Frame, FrameJob

How = Literal["privatized", "fallback", "no_faces"]
_KEY = object()


@dataclass(frozen=True, eq=False)
class CoveredFrame:
    image: np.ndarray  # HxWx3 uint8 RGB, read-only
    t_capture: float  # time.monotonic() when the input frame was read
    seq: int  # the input frame's sequence number
    how: How
    faces: int = 0  # faces covered in this frame
    _key: object = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self._key is not _KEY:
            raise TypeError("a CoveredFrame is made only by streamdp.live.covered (privatized/fallback/no_faces)")
        self.image.flags.writeable = False

    @property
    def size(self) -> tuple[int, int]:
        return int(self.image.shape[1]), int(self.image.shape[0])


def privatized(job: FrameJob, t_capture: float) -> CoveredFrame:
    """A frame the privatizer has finished (``Privatizer.apply`` returned for it)."""
    return CoveredFrame(job.frame.image, t_capture, job.frame.index, "privatized", len(job.faces), _KEY)


def fallback(raw: np.ndarray, faces: Detections, cover: Mechanism, seq: int, t_capture: float) -> CoveredFrame:
    """Cover ``faces`` in ``raw`` (a private copy of the frame) with the cheap mechanism."""
    cover.apply([FrameJob(Frame(seq, raw), faces)])
    return CoveredFrame(raw, t_capture, seq, "fallback", len(faces), _KEY)


def no_faces(image: np.ndarray, faces: Detections, seq: int, t_capture: float) -> CoveredFrame:
    """A frame in which the tracker reports no face at all."""
    if len(faces):
        raise ValueError("no_faces() called for a frame with faces to cover")
    return CoveredFrame(image, t_capture, seq, "no_faces", 0, _KEY)


def resized(frame: CoveredFrame, size: tuple[int, int]) -> CoveredFrame:
    """``frame`` scaled to ``size`` (width, height): an output keeps one size across reconnects."""
    if frame.size == size:
        return frame
    image = cv2.resize(frame.image, size, interpolation=cv2.INTER_AREA)
    return CoveredFrame(image, frame.t_capture, frame.seq, frame.how, frame.faces, _KEY)
