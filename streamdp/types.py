"""Typed values that flow between the pipeline's stages.

Source -> ``Frame`` -> Detect -> ``Detections`` -> Track -> ``Detections`` (with track ids)
-> Privatize/Composite (``FrameJob``) -> Sink.

Images are always ``HxWx3 uint8`` **RGB** arrays (MediaPipe and the ONNX models want RGB; the
conversion from BGR happens only at the edges, where OpenCV reads or writes still images).
Boxes are ``xyxy`` in pixels, float32. Keypoints are MediaPipe's six face keypoints in pixels, in
MediaPipe's order: right eye, left eye, nose tip, mouth centre, right ear tragion, left ear tragion
(the subject's right, i.e. the one on the image's left for a frontal face).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

NUM_KEYPOINTS = 6
KP_RIGHT_EYE, KP_LEFT_EYE, KP_NOSE, KP_MOUTH, KP_RIGHT_EAR, KP_LEFT_EAR = range(NUM_KEYPOINTS)


@dataclass
class Frame:
    """One decoded video frame (or one still image)."""

    index: int  # 0-based position in decode order
    image: np.ndarray  # HxWx3 uint8 RGB, C-contiguous
    pts: int | None = None  # presentation timestamp in ``time_base`` units (None for images)
    time_base: Fraction | None = None
    # Opaque per-frame data the sink needs back (e.g. PyAV side data); stages pass it through untouched.

    @property
    def time_s(self) -> float | None:
        if self.pts is None or self.time_base is None:
            return None
        return float(self.pts * self.time_base)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass
class Detections:
    """A set of faces in one frame, struct-of-arrays (as supervision's ``Detections``).

    ``track_ids`` is -1 for faces not (yet) associated with a track. ``predicted`` marks boxes that
    the tracker carries forward without a detection this frame (the detector lost the face): they
    are still covered — the pipeline fails closed — but their keypoints are extrapolated.
    """

    boxes: np.ndarray  # (N, 4) float32 xyxy pixels
    scores: np.ndarray  # (N,) float32 in [0, 1]
    keypoints: np.ndarray  # (N, 6, 2) float32 pixels
    track_ids: np.ndarray = None  # type: ignore[assignment]  # (N,) int64
    predicted: np.ndarray = None  # type: ignore[assignment]  # (N,) bool

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        n = len(self.boxes)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(n)
        self.keypoints = np.asarray(self.keypoints, dtype=np.float32).reshape(n, NUM_KEYPOINTS, 2)
        if self.track_ids is None:
            self.track_ids = np.full(n, -1, dtype=np.int64)
        self.track_ids = np.asarray(self.track_ids, dtype=np.int64).reshape(n)
        if self.predicted is None:
            self.predicted = np.zeros(n, dtype=bool)
        self.predicted = np.asarray(self.predicted, dtype=bool).reshape(n)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros((0, NUM_KEYPOINTS, 2)))

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, index: Any) -> Detections:
        """Select faces by a boolean mask or an index array."""
        return Detections(
            self.boxes[index],
            self.scores[index],
            self.keypoints[index],
            self.track_ids[index],
            self.predicted[index],
        )

    def copy(self) -> Detections:
        """A deep copy (the arrays too): what a stage that may modify its input keeps aside."""
        return Detections(self.boxes.copy(), self.scores.copy(), self.keypoints.copy(), self.track_ids.copy(), self.predicted.copy())

    @classmethod
    def concat(cls, parts: list[Detections]) -> Detections:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.boxes for p in parts]),
            np.concatenate([p.scores for p in parts]),
            np.concatenate([p.keypoints for p in parts]),
            np.concatenate([p.track_ids for p in parts]),
            np.concatenate([p.predicted for p in parts]),
        )

    @property
    def areas(self) -> np.ndarray:
        wh = np.clip(self.boxes[:, 2:] - self.boxes[:, :2], 0, None)
        return wh[:, 0] * wh[:, 1]


@dataclass
class FrameJob:
    """A frame travelling from the tracker to the sink, with the faces to cover.

    ``stream_id`` lets one privatizer batch crops from several streams (live relay).
    """

    frame: Frame
    faces: Detections
    stream_id: int = 0
