"""First-look candidates of one frame: gathered from its views, merged, and finally cleaned up.

Every view's detections go back to frame pixels with what the decision needs to know about them
(``Candidates``); ``merge`` drops the boxes a tile border cut when an uncut one explains them and
runs NMS over all views; ``finalize`` clips the decided faces to the frame, drops mirror ghosts
and merges the duplicates the second looks made.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..types import Detections
from .geometry import box_ioa, box_iou, nms, rel_size
from .tiles import Tile, cut_flags

# A cut tile detection is "explained" by another detection covering at least this much of its area.
EXPLAINED_IOA = 0.5
# A lower-scored box with at least this fraction of its area inside a kept box is suppressed.
CONTAINED_IOA = 0.85
# A detection from a mirrored view must show at least this fraction of its box inside the frame:
# the mirror image of a face near the edge (a ghost) lies wholly outside it, a cut face straddles it.
EDGE_MIN_INSIDE = 0.3
CONFIRM = object()  # owner tag of a confirmation view (a tracked face's expected place)
# what first_look_sure keeps without a second look (verify's ACCEPT_SCORE, COMFORT_SIZE)
SURE_SCORE = 0.8
SURE_REL = 0.25


@dataclass
class Candidates:
    """Per candidate: box, score, keypoints (frame pixels), whether a tile border cut it, its size
    relative to the view the model saw, whether it comes from the full frame, and whether from a
    confirmation view."""

    boxes: np.ndarray  # (N, 4) float32
    scores: np.ndarray  # (N,) float32
    kps: np.ndarray  # (N, 6, 2) float32
    cut: np.ndarray  # (N,) bool
    rel: np.ndarray  # (N,) float32
    full: np.ndarray  # (N,) bool
    confirm: np.ndarray  # (N,) bool

    def __len__(self) -> int:
        return len(self.boxes)

    def select(self, idx: np.ndarray) -> Candidates:
        """The candidates at ``idx`` (a boolean mask or indices), every field together."""
        return Candidates(self.boxes[idx], self.scores[idx], self.kps[idx], self.cut[idx], self.rel[idx],
                          self.full[idx], self.confirm[idx])

    @staticmethod
    def concat(parts: Sequence[Candidates]) -> Candidates:
        return Candidates(*(np.concatenate([getattr(p, f) for p in parts])
                            for f in ("boxes", "scores", "kps", "cut", "rel", "full", "confirm")))


def from_view(owner: Tile | object | None, b: np.ndarray, s: np.ndarray, k: np.ndarray, width: int, height: int) -> Candidates | None:
    """One view's detections as candidates; ``owner``: ``None`` for the full frame, ``CONFIRM`` for a
    confirmation view, else the tile. ``None`` back for a tile or confirmation view that found nothing."""
    n = len(b)
    if owner is None:
        return Candidates(b, s, k, np.zeros(n, bool), rel_size(b, max(width, height)), np.ones(n, bool), np.zeros(n, bool))
    if not n:
        return None
    if owner is CONFIRM:
        # a confirmation view is a look at the model's favourite scale (the face fills half of it)
        return Candidates(b, s, k, np.zeros(n, bool), np.full(n, 0.5, np.float32), np.zeros(n, bool), np.ones(n, bool))
    assert isinstance(owner, Tile)
    cut = cut_flags(b, owner, width, height)
    return Candidates(b, s, k, cut, rel_size(b, owner.size), np.zeros(n, bool), np.zeros(n, bool))


def first_look_sure(c: Candidates) -> np.ndarray:
    """The candidates kept without a second look: confident (>= ``SURE_SCORE``) at a
    comfortable size (box >= ``SURE_REL`` of the model's input), not cut by a tile border."""
    return (c.scores >= SURE_SCORE) & (c.rel >= SURE_REL) & ~c.cut


def merge(c: Candidates, nms_iou: float, confirmed: float | None = None) -> Candidates:
    """Drop explained cut boxes, then NMS (score order) over all views. ``confirmed``: a
    confirmation-view candidate scoring at least this goes first (it is already a look at the
    model's favourite scale: keeping it spares the face a second look every frame)."""
    if len(c) == 0:
        return c
    cut = c.cut
    if cut.any() and (~cut).any():
        explained = (box_ioa(c.boxes[cut], c.boxes[~cut]) >= EXPLAINED_IOA).any(axis=1)
        keep = np.ones(len(c), dtype=bool)
        keep[np.flatnonzero(cut)[explained]] = False
        c = c.select(keep)
    if len(c) > 1:
        # a confirmation view's candidate and one the second looks keep as it is go before an
        # unsure one of the same face (a tracked face seen whole at a comfortable size in one
        # view and small in another would otherwise be looked at again every frame; and another
        # face's confirmation view that shows this one cut by its crop must not win over it)
        rank = c.scores if confirmed is None else \
            c.scores + 2.0 * ((c.confirm & (c.scores >= confirmed)) | first_look_sure(c))
        c = c.select(nms(c.boxes, rank, nms_iou, contained=CONTAINED_IOA))
    return c


def finalize(boxes: np.ndarray, scores: np.ndarray, kps: np.ndarray, w: int, h: int, nms_iou: float) -> Detections:
    """Clip to the frame, drop mirror ghosts, merge duplicates (NMS on the clipped boxes).

    At the frame's border one face can give two boxes (the cut face itself and, from a
    mirrored edge view, the cut face completed by its mirror image, centred on the edge); NMS
    keeps one of them, which may be the narrower: a kept box touching the border is widened to
    the union of the boxes it suppressed, so the cover reaches as far as any of them did.
    """
    if len(boxes) == 0:
        return Detections.empty()
    area = np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1e-6)
    boxes = boxes.copy()
    np.clip(boxes[:, 0::2], 0, w, out=boxes[:, 0::2])
    np.clip(boxes[:, 1::2], 0, h, out=boxes[:, 1::2])
    inside = (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0) / area
    ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]) & (inside >= EDGE_MIN_INSIDE)
    boxes, scores, kps = boxes[ok], scores[ok], kps[ok]
    if len(boxes) > 1:  # verified boxes moved: merge duplicates again
        k = nms(boxes, scores, nms_iou, contained=CONTAINED_IOA)
        at_border = (boxes[k, 0] <= 1) | (boxes[k, 1] <= 1) | (boxes[k, 2] >= w - 1) | (boxes[k, 3] >= h - 1)
        if at_border.any():
            same = (box_iou(boxes[k], boxes) > nms_iou) | (box_ioa(boxes, boxes[k]).T >= CONTAINED_IOA)
            merged = boxes[k].copy()
            for r in np.flatnonzero(at_border):
                group = boxes[same[r]]
                merged[r, :2] = np.minimum(merged[r, :2], group[:, :2].min(axis=0))
                merged[r, 2:] = np.maximum(merged[r, 2:], group[:, 2:].max(axis=0))
            boxes, scores, kps = merged, scores[k], kps[k]
        else:
            boxes, scores, kps = boxes[k], scores[k], kps[k]
    return Detections(boxes, scores, kps)
