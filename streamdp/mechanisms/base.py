"""The mechanism interface every anonymizer implements."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from ..types import FrameJob


def keypoints_outside(keypoints: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N,) True for faces with a keypoint outside the frame: a face cut by the frame's border
    (or a detection from a mirrored edge view, whose keypoints beyond the edge are guesses)."""
    k = np.asarray(keypoints, dtype=np.float64).reshape(len(keypoints), -1, 2)
    out = (k[..., 0] < 0) | (k[..., 0] >= width) | (k[..., 1] < 0) | (k[..., 1] >= height)
    return out.any(axis=1)


def blank_overlapping_boxes(image: np.ndarray, boxes: np.ndarray, fill: int = 128) -> np.ndarray:
    """The frame a face model may read: when faces' boxes overlap, a copy with every overlapping
    box filled with ``fill``, so that a face's pixels only ever reach its own release (never another
    face's encoder input or decoder context). ``image`` itself is returned when nothing overlaps.

    A face's own box may lose the part another face covers; its release then sees less of it
    (utility, not privacy). Duplicate detections of one face blank each other the same way.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes) < 2:
        return image
    from ..detect import box_iou

    ov = box_iou(boxes, boxes)
    np.fill_diagonal(ov, 0)
    if not (ov > 0).any():
        return image
    out = image.copy()
    h, w = out.shape[:2]
    for b in boxes[(ov > 0).any(axis=1)]:
        x0, y0 = max(int(b[0]), 0), max(int(b[1]), 0)
        x1, y1 = min(int(math.ceil(b[2])), w), min(int(math.ceil(b[3])), h)
        out[y0:y1, x0:x1] = fill
    return out


class Mechanism(ABC):
    """Covers the faces of a batch of frames in place.

    ``apply`` receives several frames at once (from the micro-batcher, possibly from several
    streams) so that model-based mechanisms can run one batched inference for all their faces.
    """

    name: str = "?"

    @abstractmethod
    def apply(self, jobs: list[FrameJob]) -> None:
        """Replace every face listed in each job's ``faces`` inside ``job.frame.image``."""

    def describe(self) -> dict[str, Any]:
        """Name and parameters, for the report."""
        return {"name": self.name}

    def privacy_report(self) -> dict[str, Any] | None:
        """Privacy spent (per track), for mechanisms that carry a formal guarantee."""
        return None

    def close(self) -> None:
        """Release models and worker resources."""
