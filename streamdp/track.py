"""Face tracking: a small IoU tracker with alpha-beta (constant-velocity) smoothing.

Every update returns the faces to COVER in the frame — the pipeline fails closed:

* every detection is covered from its first frame (no min-hits): unmatched detections start a new
  track immediately; ids start at 1 and are never reused;
* a track that loses its detection keeps being covered (``predicted=True``) for
  ``cfg.coast_seconds`` of stream time (temporal dilation; time-based so variable frame rate
  works), its box extrapolated with the estimated velocity and grown on each side by
  ``coast_margin_per_second * elapsed`` of its size;
* output boxes are cover boxes: grown by ``cfg.box_margin`` of the box size on each side (plus the
  coasting growth), then clipped to the frame. For a detected face the box is grown from the
  detection itself (never a lagging smoothed box: what the detector saw is what gets covered).
  Keypoints are not grown: detected faces carry the detector's keypoints, predicted faces the last
  ones moved and scaled with the predicted box.

The alpha-beta filter only estimates velocity (centre and size); predictions start from the last
detection, so a coasting box is where the face was last seen, moved at its smoothed speed.

Matching: IoU between the tracks' predicted (un-margined) boxes and the detections, greedy on the
vectorized IoU matrix (highest IoU first, >= ``cfg.iou_match``); then a second greedy pass lets a
leftover detection whose centre lies within one box size of a leftover track's prediction (more
while coasting), at a similar size, join that track (fast motion, where the IoU drops to 0).
O(tracks x dets) numpy, no scipy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import TrackConfig
from .detect import box_iou
from .types import NUM_KEYPOINTS, Detections

_ALPHA = 0.7  # position/size gain of the alpha-beta filter
_BETA = 0.3  # velocity gain
_MAX_SPEED = 4.0  # clamp |centre velocity| to this many box sizes per second
_MAX_GROWTH = 1.0  # clamp |size velocity| to this fraction of the size per second
_MIN_DT = 1e-3
_SIZE_RATIO_MATCH = 2.0  # second-pass matching: sizes within this factor


@dataclass
class _Track:
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

    def predict(self, t: float) -> np.ndarray:
        """cx, cy, w, h at time ``t``: the last detection moved with the filtered velocity."""
        dt = max(t - self.t_last, 0.0)
        z = _xyxy_to_xywh(self.raw_box)
        x = z + self.v * dt
        x[2:] = np.maximum(x[2:], 0.5 * z[2:])
        return x


def _xywh_to_xyxy(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    half = x[..., 2:] / 2
    return np.concatenate([x[..., :2] - half, x[..., :2] + half], axis=-1)


def _xyxy_to_xywh(b: np.ndarray) -> np.ndarray:
    b = np.asarray(b, dtype=np.float64)
    return np.concatenate([(b[..., :2] + b[..., 2:]) / 2, b[..., 2:] - b[..., :2]], axis=-1)


def _greedy_match(score: np.ndarray, threshold: float) -> list[tuple[int, int]]:
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


class FaceTracker:
    """Turns per-frame detections into the set of faces to cover, with stable track ids."""

    def __init__(self, cfg: TrackConfig | None = None, fps: float = 30.0) -> None:
        self.cfg = cfg if cfg is not None else TrackConfig()
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self._tracks: list[_Track] = []
        self._next_id = 1
        self._n_updates = 0
        self._t_prev: float | None = None
        self._stats: dict[int, dict] = {}

    # -- public -------------------------------------------------------------------------------
    @property
    def active_track_count(self) -> int:
        return len(self._tracks)

    @property
    def total_tracks(self) -> int:
        return self._next_id - 1

    def track_stats(self) -> dict[int, dict]:
        """Per track id: first/last seen time (s), frames detected, frames coasted, active."""
        active = {t.id for t in self._tracks}
        return {tid: {**s, "active": tid in active} for tid, s in self._stats.items()}

    def reset(self) -> None:
        """Forget the live tracks (ids keep counting up: they are never reused)."""
        self._tracks = []
        self._t_prev = None

    def update(self, dets: Detections, time_s: float | None, frame_wh: tuple[int, int]) -> Detections:
        """Match ``dets`` to the tracks and return every face to cover in this frame."""
        t = time_s if time_s is not None else self._n_updates / self.fps
        self._n_updates += 1
        if self._t_prev is not None and t < self._t_prev:
            t = self._t_prev  # time never goes backwards for the tracker
        self._t_prev = t
        cfg = self.cfg
        n_det = len(dets)
        det_boxes = dets.boxes.astype(np.float64)

        # predicted (un-margined) boxes of the live tracks at time t
        preds = np.array([tr.predict(t) for tr in self._tracks]).reshape(-1, 4)
        pred_boxes = _xywh_to_xyxy(preds)

        matched_tr: dict[int, int] = {}  # track index -> det index
        if len(self._tracks) and n_det:
            iou = box_iou(pred_boxes, det_boxes)
            for i, j in _greedy_match(iou, max(cfg.iou_match, 1e-6)):
                matched_tr[i] = j
            # second pass: the centre within one box size of the prediction (more while
            # coasting), at a similar size
            free_t = np.array([i for i in range(len(self._tracks)) if i not in matched_tr], dtype=np.int64)
            used = set(matched_tr.values())
            free_d = np.array([j for j in range(n_det) if j not in used], dtype=np.int64)
            if len(free_t) and len(free_d):
                dc = _xyxy_to_xywh(det_boxes[free_d])
                pt = preds[free_t]
                size_t = np.sqrt(np.prod(np.maximum(pt[:, 2:], 1e-6), axis=1))[:, None]
                size_d = np.sqrt(np.prod(np.maximum(dc[:, 2:], 1e-6), axis=1))[None, :]
                ratio = np.maximum(size_t / size_d, size_d / size_t)
                dist = np.hypot(dc[None, :, 0] - pt[:, 0, None], dc[None, :, 1] - pt[:, 1, None]) / size_t
                elapsed = np.array([max(t - self._tracks[i].t_last, 0.0) for i in free_t])[:, None]
                reach = 1.0 + 2.0 * cfg.coast_margin_per_second * elapsed
                score = np.where((dist <= reach) & (ratio <= _SIZE_RATIO_MATCH), 1.0 / (1.0 + dist), 0.0)
                for a, b in _greedy_match(score, 1e-9):
                    matched_tr[int(free_t[a])] = int(free_d[b])

        out_boxes: list[np.ndarray] = []
        out_scores: list[float] = []
        out_kps: list[np.ndarray] = []
        out_ids: list[int] = []
        out_pred: list[bool] = []
        survivors: list[_Track] = []
        w, h = frame_wh

        for i, tr in enumerate(self._tracks):
            j = matched_tr.get(i)
            if j is not None:
                self._correct(tr, det_boxes[j], dets.keypoints[j], float(dets.scores[j]), t)
                survivors.append(tr)
                box = self._grow(det_boxes[j], cfg.box_margin)
                out_boxes.append(box)
                out_scores.append(float(dets.scores[j]))
                out_kps.append(dets.keypoints[j].astype(np.float64))
                out_ids.append(tr.id)
                out_pred.append(False)
                continue
            elapsed = t - tr.t_last
            if elapsed > cfg.coast_seconds:
                continue  # dropped
            box = self._cover_xyxy(tr, preds[i], t)
            if not _visible(box, w, h):
                continue  # left the frame
            tr.frames_coasted += 1
            self._stats[tr.id]["frames_coasted"] += 1
            survivors.append(tr)
            out_boxes.append(box)
            out_scores.append(tr.score)
            out_kps.append(preds[i, :2] + tr.kp_rel * preds[i, 2:])
            out_ids.append(tr.id)
            out_pred.append(True)

        used = set(matched_tr.values())
        for j in range(n_det):
            if j in used:
                continue
            tr = self._new_track(det_boxes[j], dets.keypoints[j], float(dets.scores[j]), t)
            survivors.append(tr)
            out_boxes.append(self._grow(det_boxes[j], cfg.box_margin))
            out_scores.append(float(dets.scores[j]))
            out_kps.append(dets.keypoints[j].astype(np.float64))
            out_ids.append(tr.id)
            out_pred.append(False)

        self._tracks = survivors
        if not out_boxes:
            return Detections.empty()
        boxes = np.array(out_boxes, dtype=np.float64)
        np.clip(boxes[:, 0::2], 0, w, out=boxes[:, 0::2])
        np.clip(boxes[:, 1::2], 0, h, out=boxes[:, 1::2])
        order = np.argsort(np.array(out_ids), kind="stable")
        return Detections(
            boxes[order],
            np.array(out_scores)[order],
            np.array(out_kps).reshape(-1, NUM_KEYPOINTS, 2)[order],
            np.array(out_ids, dtype=np.int64)[order],
            np.array(out_pred, dtype=bool)[order],
        )

    # -- internals ----------------------------------------------------------------------------
    def _new_track(self, box: np.ndarray, kps: np.ndarray, score: float, t: float) -> _Track:
        x = _xyxy_to_xywh(box)
        tr = _Track(
            id=self._next_id,
            x=x,
            v=np.zeros(4),
            kp_rel=_kp_rel(kps, x),
            raw_box=np.asarray(box, dtype=np.float64).copy(),
            score=score,
            t_last=t,
            first_seen=t,
        )
        self._next_id += 1
        self._stats[tr.id] = {"first_seen_s": t, "last_seen_s": t, "frames_detected": 1, "frames_coasted": 0}
        return tr

    def _correct(self, tr: _Track, box: np.ndarray, kps: np.ndarray, score: float, t: float) -> None:
        dt = max(t - tr.t_last, _MIN_DT)
        z = _xyxy_to_xywh(box)
        x_pred = tr.x + tr.v * dt
        r = z - x_pred
        tr.x = x_pred + _ALPHA * r
        tr.x[2:] = np.maximum(tr.x[2:], 1.0)
        v = tr.v + (_BETA / dt) * r
        size = float(np.sqrt(tr.x[2] * tr.x[3]))
        v[:2] = np.clip(v[:2], -_MAX_SPEED * size, _MAX_SPEED * size)
        v[2:] = np.clip(v[2:], -_MAX_GROWTH * tr.x[2:], _MAX_GROWTH * tr.x[2:])
        tr.v = v
        tr.raw_box = np.asarray(box, dtype=np.float64).copy()
        tr.kp_rel = _kp_rel(kps, z)
        tr.score = score
        tr.t_last = t
        tr.frames_detected += 1
        st = self._stats[tr.id]
        st["last_seen_s"] = t
        st["frames_detected"] += 1

    def _cover_xyxy(self, tr: _Track, pred: np.ndarray, t: float) -> np.ndarray:
        elapsed = max(t - tr.t_last, 0.0)
        grow = self.cfg.box_margin + self.cfg.coast_margin_per_second * elapsed
        return self._grow(_xywh_to_xyxy(pred), grow)

    @staticmethod
    def _grow(box: np.ndarray, frac: float) -> np.ndarray:
        b = np.asarray(box, dtype=np.float64)
        d = (b[2:] - b[:2]) * frac
        return np.concatenate([b[:2] - d, b[2:] + d])


def _kp_rel(kps: np.ndarray, xywh: np.ndarray) -> np.ndarray:
    k = np.asarray(kps, dtype=np.float64).reshape(NUM_KEYPOINTS, 2)
    return (k - xywh[:2]) / np.maximum(xywh[2:], 1e-6)


def _visible(box: np.ndarray, w: int, h: int) -> bool:
    return bool(box[2] > 0 and box[3] > 0 and box[0] < w and box[1] < h)
