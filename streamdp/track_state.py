"""One track's state and the geometry the tracker decides with (``track.py`` drives them).

``TrackState``: a face's filtered box and velocity (alpha-beta), its holds and its prediction;
box conversions and greedy assignment; the frame-edge rules (visible, at the edge, reach inwards,
held at the edge) and the re-association gate of a lost track (where it was heading, how wide
the gate is by now). Distances in units of a box's size unless said otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .types import NUM_KEYPOINTS

ALPHA = 0.7  # position/size gain of the alpha-beta filter
BETA = 0.3  # velocity gain
MAX_SPEED = 4.0  # clamp |centre velocity| to this many box sizes per second
MAX_GROWTH = 1.0  # clamp |size velocity| to this fraction of the size per second
MIN_DT = 1e-3
SIZE_RATIO_MATCH = 2.0  # second-pass matching: sizes within this factor
SIZE_HORIZON_S = 0.25  # coasting: extrapolate the size's change this long at most
HOLD_INSIDE = 0.4  # a track leaving the frame is held with this fraction of its box inside
OCCLUDED_IOA = 0.3
NEAR_GROWTH = 0.5  # faces this close (fraction of their size per side) do not teach motion  # a lost track this much inside a detected face's box is behind it
# Re-association of lost tracks (module docstring); distances in units of the lost box's size
REASSOC_MAX_TRAVEL = 3.0  # how far the lost face's velocity may carry the gate's far end
REASSOC_GATE = 1.0  # the gate's half-width at once ...
REASSOC_GATE_PER_S = 0.5  # ... growing this much per second since the last detection ...
REASSOC_GATE_MAX = 2.0  # ... up to this
MAX_LOST = 32  # remembered lost tracks at most (bounded memory on endless streams)


@dataclass
class TrackState:
    id: int
    x: np.ndarray  # (4,) cx, cy, w, h (filtered)
    v: np.ndarray  # (4,) per second
    kp_rel: np.ndarray  # (6, 2) keypoints relative to the centre, in units of (w, h)
    raw_box: np.ndarray  # (4,) xyxy of the last detection
    score: float
    t_last: float  # time of the last detection
    first_seen: float
    frames_detected: int = 1
    frames_coasted: int = 0
    #: (w, h) of the last whole view of the face (not cut by the edge, not overlapped)
    whole_size: np.ndarray | None = None
    #: set when the track left the frame: its box held at the edge it left by (cx, cy, w, h)
    held: np.ndarray | None = None
    #: coasting limit in force (s since the last detection): coast, occlusion or edge hold
    hold_until: float = 0.0
    #: a satellite of another face at the frame's edge, not (yet) a track: id -1 in the output
    provisional: bool = False
    #: when the track was dropped (lost; remembered for re-association)
    t_lost: float = 0.0

    def predict(self, t: float) -> np.ndarray:
        """cx, cy, w, h at time ``t``: the last detection moved with the filtered velocity."""
        if self.held is not None:
            return self.held.copy()
        dt = max(t - self.t_last, 0.0)
        z = xyxy_to_xywh(self.raw_box)
        x = z + self.v * dt
        # size changes are extrapolated for a short while only (a face does not keep shrinking
        # behind an occluder or past the edge); the coasting margin covers the rest
        x[2:] = z[2:] + self.v[2:] * min(dt, SIZE_HORIZON_S)
        x[2:] = np.maximum(x[2:], 0.5 * z[2:])
        return x


def xywh_to_xyxy(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    half = x[..., 2:] / 2
    return np.concatenate([x[..., :2] - half, x[..., :2] + half], axis=-1)


def xyxy_to_xywh(b: np.ndarray) -> np.ndarray:
    b = np.asarray(b, dtype=np.float64)
    return np.concatenate([(b[..., :2] + b[..., 2:]) / 2, b[..., 2:] - b[..., :2]], axis=-1)


def greedy_match(score: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Greedy assignment on a (T, D) score matrix: best pair first, each row/column once."""
    pairs: list[tuple[int, int]] = []
    if score.size == 0:
        return pairs
    s = np.where(score >= threshold, score, -np.inf).astype(np.float64)
    for _ in range(min(s.shape)):
        flat = int(np.argmax(s))
        i, j = divmod(flat, s.shape[1])
        if not np.isfinite(s[i, j]):
            break
        pairs.append((i, j))
        s[i, :] = -np.inf
        s[:, j] = -np.inf
    return pairs


def box_size(xywh: np.ndarray) -> np.ndarray:
    """sqrt(w * h) of (..., 4) cx, cy, w, h boxes."""
    x = np.asarray(xywh, dtype=np.float64)
    return np.sqrt(np.maximum(x[..., 2], 1e-6) * np.maximum(x[..., 3], 1e-6))


def gate_half_width(tr: TrackState, t: float) -> float:
    """The re-association gate's half-width for lost track ``tr`` at ``t``, in its box sizes."""
    return min(REASSOC_GATE + REASSOC_GATE_PER_S * max(t - tr.t_last, 0.0), REASSOC_GATE_MAX)


def travel_of(tr: TrackState, t: float) -> np.ndarray:
    """How far a lost face's velocity would have carried its centre by ``t`` (bounded)."""
    size = float(box_size(xyxy_to_xywh(tr.raw_box)))
    travel = tr.v[:2] * max(t - tr.t_last, 0.0)
    n = float(np.hypot(*travel))
    if n > REASSOC_MAX_TRAVEL * size:
        travel = travel * (REASSOC_MAX_TRAVEL * size / n)
    return travel


def lost_prediction(tr: TrackState, t: float) -> np.ndarray:
    """cx, cy, w, h where a lost face would be at ``t`` had it kept its velocity (bounded), at its
    last size."""
    z = xyxy_to_xywh(tr.raw_box)
    z[:2] += travel_of(tr, t)
    return z


def gate_distance(tr: TrackState, centres: np.ndarray, t: float) -> np.ndarray:
    """(F,) for detections' (F, 4) cx, cy, w, h: their centres' distance from the segment the lost
    face was heading along (last centre -> moved at its velocity, bounded), in its box sizes."""
    z = xyxy_to_xywh(tr.raw_box)
    size = float(box_size(z))
    p0 = z[:2]
    travel = travel_of(tr, t)
    c = np.asarray(centres, dtype=np.float64)[:, :2]
    seg2 = float(travel @ travel)
    u = np.clip(((c - p0) @ travel) / seg2, 0.0, 1.0) if seg2 > 0 else np.zeros(len(c))
    return np.hypot(*(c - (p0 + u[:, None] * travel)).T) / size


def kp_rel(kps: np.ndarray, xywh: np.ndarray) -> np.ndarray:
    k = np.asarray(kps, dtype=np.float64).reshape(NUM_KEYPOINTS, 2)
    return (k - xywh[:2]) / np.maximum(xywh[2:], 1e-6)


def visible(box: np.ndarray, w: int, h: int, min_inside: float = 0.0) -> bool:
    """Whether the box overlaps the frame (by more than ``min_inside`` of its width and height)."""
    bw, bh = max(box[2] - box[0], 1e-6), max(box[3] - box[1], 1e-6)
    iw = min(box[2], w) - max(box[0], 0)
    ih = min(box[3], h) - max(box[1], 0)
    return bool(iw > min_inside * bw and ih > min_inside * bh and iw > 0 and ih > 0)


def at_edge(box: np.ndarray, w: int, h: int) -> bool:
    return bool(box[0] <= 1 or box[1] <= 1 or box[2] >= w - 1 or box[3] >= h - 1)


def reach_inward(box: np.ndarray, whole: np.ndarray | None, w: int, h: int) -> np.ndarray:
    """A box cut by the frame's border, extended inwards to the face's whole width (height) as last
    seen: however much of the face is outside, what is inside lies within that reach."""
    b = np.asarray(box, dtype=np.float64).copy()
    if whole is None:
        return b
    if b[0] <= 1:
        b[2] = max(b[2], min(float(whole[0]), w))
    if b[2] >= w - 1:
        b[0] = min(b[0], max(w - float(whole[0]), 0.0))
    if b[1] <= 1:
        b[3] = max(b[3], min(float(whole[1]), h))
    if b[3] >= h - 1:
        b[1] = min(b[1], max(h - float(whole[1]), 0.0))
    return b


def held_at_edge(xywh: np.ndarray, w: int, h: int) -> np.ndarray:
    """The box moved back inside the frame until ``HOLD_INSIDE`` of it shows, at the edge(s) it
    crossed."""
    cx, cy, bw, bh = (float(v) for v in xywh)
    lo_x, hi_x = -(0.5 - HOLD_INSIDE) * bw, w + (0.5 - HOLD_INSIDE) * bw
    lo_y, hi_y = -(0.5 - HOLD_INSIDE) * bh, h + (0.5 - HOLD_INSIDE) * bh
    return np.array([min(max(cx, lo_x), hi_x), min(max(cy, lo_y), hi_y), bw, bh])
