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
while coasting), at a similar size, join that track (fast motion, where the IoU drops to 0); the lost
tracks (re-association, below) compete in both passes. O(tracks x dets) numpy, no scipy.

Provisional tracks (``cfg.edge_satellite_inside``): a new detection cut by the frame's border that
lies mostly inside the cover box of a face detected whole in the same frame is, on real footage,
a face-shaped patch of that person's hair or ear at the edge (the detector's mirrored edge tiles
find them: WolfgangLanger_Pexels.mp4 had one every few seconds, each a track of its own, see
benchmarks/track_real.py). It is covered and followed like any face, but as a *provisional*
track: track id -1 ("not associated with a track") and ``predicted=True`` (covered whole, by
pixelation under dp-image: no release is ever opened on it, as none is on a cut face). It becomes
a track of its own, with an id, at its first detection that is not such a satellite (seen whole,
or away from the other face); until then it is counted nowhere, so it costs no track and no ε.

Re-association (``cfg.reassociate_seconds``): a track whose coast (or occlusion hold) ran out while
in view is not forgotten at once but remembered, uncovered (its coast already covered the
dropout's first ``coast_seconds``; this is about identity only), for that long after it was
dropped, with its last detected box and velocity. A detection takes a remembered track's id
back when

* its centre lies within a gate around the way the face was heading: the segment from its last
  centre to where its velocity would have taken it (at most ``REASSOC_MAX_TRAVEL`` box sizes),
  widened by ``REASSOC_GATE`` box sizes plus ``REASSOC_GATE_PER_S`` per second lost (at most
  ``REASSOC_GATE_MAX``): a face that stopped, or kept walking, or anything in between;
* its size is within ``SIZE_RATIO_MATCH`` (2x) of the lost box;
* it is not an edge satellite (a provisional box stays provisional);
* no live track that has its detection in this frame is nearer to it (in that track's box sizes):
  a second box beside a live face is not a lost face coming back.

Lost tracks compete with the live ones in both matching passes (by IoU with the box where the
face was heading, then by distance in box sizes), best first, one detection each: a face found
again beside a coasting one (two people crossing while the detector is blind) takes its own id
back instead of the coasting track taking it. Tracks that left the frame (edge holds) are not
remembered: their hold at the edge already keeps them for a face coming back there. At most
``MAX_LOST`` tracks are remembered (oldest dropped). There is no appearance check: on the
synthetic scenes and the real clips no re-association joined two people (see docs/privacy.md §5,
which also says what a wrong one would cost: nothing in ε, as dp-image's own relink).
"""

from __future__ import annotations

import numpy as np

from .config import TrackConfig
from .detect import box_ioa, box_iou
from .types import NUM_KEYPOINTS, Detections
# A detection cut by the frame's edge or overlapping another face is not the face's whole extent
# and its box is off centre (the model boxes the visible part): its cover grows by this much more
# of its size per side (synthetic ground truth, files at 720p: the top 3-5 px rows of such faces
# showed beside a box_margin-only cover).
PARTIAL_MARGIN = 0.1

from .track_state import (
    ALPHA,
    BETA,
    HOLD_INSIDE,
    MAX_GROWTH,
    MAX_LOST,
    MAX_SPEED,
    MIN_DT,
    NEAR_GROWTH,
    OCCLUDED_IOA,
    SIZE_RATIO_MATCH,
    TrackState,
    at_edge,
    box_size,
    gate_distance,
    gate_half_width,
    greedy_match,
    held_at_edge,
    kp_rel,
    lost_prediction,
    reach_inward,
    visible,
    xywh_to_xyxy,
    xyxy_to_xywh,
)

class FaceTracker:
    """Turns per-frame detections into the set of faces to cover, with stable track ids."""

    def __init__(self, cfg: TrackConfig | None = None, fps: float = 30.0) -> None:
        self.cfg = cfg if cfg is not None else TrackConfig()
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self._tracks: list[TrackState] = []
        self._next_id = 1
        self._n_updates = 0
        self._t_prev: float | None = None
        self._stats: dict[int, dict] = {}
        #: tracks lost in view, oldest first, remembered for re-association
        self._lost: list[TrackState] = []
        #: re-associations made (a lost track's id given back to a new detection)
        self.reassociations = 0

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

    def predicted_boxes(self, time_s: float | None) -> np.ndarray:
        """(N, 4) where the live tracks' faces are expected at ``time_s`` (un-margined xyxy),
        for the detector to confirm them there."""
        if not self._tracks:
            return np.zeros((0, 4))
        t = time_s if time_s is not None else self._n_updates / self.fps
        return xywh_to_xyxy(np.array([tr.predict(t) for tr in self._tracks]))

    def reset(self) -> None:
        """Forget the live and lost tracks (ids keep counting up: they are never reused)."""
        self._tracks = []
        self._lost = []
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

        w, h = frame_wh
        # faces seen whole in this frame (a satellite's hosts): their cover boxes
        hosts = [self._grow(b, cfg.box_margin) for b in det_boxes if not at_edge(b, w, h)]
        matched_tr, revived = self._match(preds, det_boxes, hosts, t, w, h)

        out_boxes: list[np.ndarray] = []
        out_scores: list[float] = []
        out_kps: list[np.ndarray] = []
        out_ids: list[int] = []
        out_pred: list[bool] = []
        survivors: list[TrackState] = []

        matched_boxes = det_boxes[sorted(matched_tr.values())] if matched_tr else np.zeros((0, 4))
        if n_det > 1:
            # near another face (boxes grown by half their size: heads and hair reach past the
            # face box), a face's box starts to shrink and shift before the boxes touch
            near = np.array([self._grow(b, NEAR_GROWTH) for b in det_boxes])
            ov = box_iou(near, near)
            np.fill_diagonal(ov, 0)
            overlapped = (ov > 0).any(axis=1)
        else:
            overlapped = np.zeros(n_det, bool)
        for i, tr in enumerate(self._tracks):
            j = matched_tr.get(i)
            if j is not None:
                # a box cut by the frame's edge or overlapping another face is not the face's
                # whole extent: its centre and size move for other reasons than motion
                edge = at_edge(det_boxes[j], w, h)
                trust = not edge and not overlapped[j]
                self._correct(tr, det_boxes[j], dets.keypoints[j], float(dets.scores[j]), t, trust)
                if tr.provisional and not self._satellite(det_boxes[j], hosts, w, h):
                    self._promote(tr, t)
                survivors.append(tr)
                cover = reach_inward(det_boxes[j], tr.whole_size, w, h) if edge else det_boxes[j]
                box = self._grow(cover, cfg.box_margin + (PARTIAL_MARGIN if edge or overlapped[j] else 0.0), edge)
                out_boxes.append(box)
                out_scores.append(float(dets.scores[j]))
                out_kps.append(dets.keypoints[j].astype(np.float64))
                out_ids.append(-1 if tr.provisional else tr.id)
                out_pred.append(tr.provisional)
                continue
            elapsed = t - tr.t_last
            limit = cfg.coast_seconds
            pred_xyxy = xywh_to_xyxy(preds[i])
            if tr.held is None and not visible(pred_xyxy, w, h, min_inside=HOLD_INSIDE):
                # leaving the frame: hold the box at the edge it left by (a face that comes back
                # there is covered from its first pixel, and re-found as the same track)
                tr.held = held_at_edge(preds[i], w, h)
                tr.hold_until = elapsed + cfg.edge_hold_seconds  # counted from leaving
                preds[i] = tr.held
                pred_xyxy = xywh_to_xyxy(preds[i])
            elif len(matched_boxes) and (box_ioa(pred_xyxy[None], matched_boxes) >= OCCLUDED_IOA).any():
                # behind a face the detector does see: keep following it at its speed
                tr.hold_until = max(tr.hold_until, t + cfg.occlusion_hold_seconds - tr.t_last)
            limit = max(limit, tr.hold_until)
            if elapsed > limit:
                self._remember(tr, t)
                continue  # dropped
            box = self._cover_xyxy(tr, preds[i], t, partial=tr.held is not None or at_edge(tr.raw_box, w, h))
            if not visible(box, w, h):
                continue  # left the frame
            tr.frames_coasted += 1
            if not tr.provisional:
                self._stats[tr.id]["frames_coasted"] += 1
            survivors.append(tr)
            out_boxes.append(box)
            out_scores.append(tr.score)
            out_kps.append(preds[i, :2] + tr.kp_rel * preds[i, 2:])
            out_ids.append(-1 if tr.provisional else tr.id)
            out_pred.append(True)

        used = set(matched_tr.values())
        for j in range(n_det):
            if j in used:
                continue
            edge = at_edge(det_boxes[j], w, h)
            if j in revived:
                tr = revived[j]
                self._revive(tr, det_boxes[j], dets.keypoints[j], float(dets.scores[j]), t,
                             whole=not edge and not overlapped[j])
                survivors.append(tr)
                cover = reach_inward(det_boxes[j], tr.whole_size, w, h) if edge else det_boxes[j]
                out_boxes.append(self._grow(cover, cfg.box_margin + (PARTIAL_MARGIN if edge or overlapped[j] else 0.0), edge))
                out_scores.append(float(dets.scores[j]))
                out_kps.append(dets.keypoints[j].astype(np.float64))
                out_ids.append(tr.id)
                out_pred.append(False)
                continue
            provisional = self._satellite(det_boxes[j], hosts, w, h)
            tr = self._new_track(det_boxes[j], dets.keypoints[j], float(dets.scores[j]), t,
                                 whole=not edge and not overlapped[j], provisional=provisional)
            survivors.append(tr)
            out_boxes.append(self._grow(det_boxes[j], cfg.box_margin + (PARTIAL_MARGIN if edge or overlapped[j] else 0.0), edge))
            out_scores.append(float(dets.scores[j]))
            out_kps.append(dets.keypoints[j].astype(np.float64))
            out_ids.append(-1 if provisional else tr.id)
            out_pred.append(provisional)

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
    def _remember(self, tr: TrackState, t: float) -> None:
        """Keep a track lost in view for re-association (not one held at the edge: it left)."""
        if self.cfg.reassociate_seconds <= 0 or tr.provisional or tr.held is not None:
            return
        tr.t_lost = t
        self._lost.append(tr)
        del self._lost[:-MAX_LOST]

    def _match(self, preds: np.ndarray, det_boxes: np.ndarray, hosts: list[np.ndarray], t: float, w: int,
               h: int) -> tuple[dict[int, int], dict[int, TrackState]]:
        """Live track index -> detection index, and detection index -> the lost track it brings
        back (removed from the lost tracks). Two greedy passes, the lost tracks (inside their
        gates) competing with the live ones in both (module docstring): IoU with the predicted
        box, then centre distance."""
        self._lost = [tr for tr in self._lost if t - tr.t_lost <= self.cfg.reassociate_seconds]
        n_t, n_l, n_d = len(self._tracks), len(self._lost), len(det_boxes)
        matched_tr: dict[int, int] = {}
        if not n_d or not (n_t or n_l):
            return matched_tr, {}
        dc = xyxy_to_xywh(det_boxes)
        size_d = box_size(dc)[None, :]
        # lost tracks: distance from the way the face was heading (in its box sizes), inside the
        # gate, at a similar size, never an edge satellite (that stays provisional)
        dist_l = np.array([gate_distance(tr, dc, t) for tr in self._lost]).reshape(n_l, n_d)
        lost_xywh = np.array([lost_prediction(tr, t) for tr in self._lost]).reshape(n_l, 4)
        size_l = box_size(lost_xywh)[:, None]
        gate = np.array([gate_half_width(tr, t) for tr in self._lost]).reshape(n_l, 1)
        satellite = np.array([self._satellite(b, hosts, w, h) for b in det_boxes])[None, :]
        ok_l = (dist_l <= gate) & (np.maximum(size_l / size_d, size_d / size_l) <= SIZE_RATIO_MATCH) & ~satellite

        # first pass: IoU with the predicted boxes (the lost ones where their faces were heading)
        iou = box_iou(xywh_to_xyxy(np.concatenate([preds.reshape(-1, 4), lost_xywh])), det_boxes)
        iou[n_t:] = np.where(ok_l, iou[n_t:], 0.0)
        pairs = greedy_match(iou, max(self.cfg.iou_match, 1e-6))
        # second pass: the centre within one box size of a live prediction (more while coasting),
        # at a similar size (fast motion, where the IoU drops to 0), or inside a lost one's gate
        rows = {a for a, _ in pairs}
        cols = {b for _, b in pairs}
        pt = preds.reshape(-1, 4)
        size_t = box_size(pt)[:, None]
        dist_t = np.hypot(dc[None, :, 0] - pt[:, 0, None], dc[None, :, 1] - pt[:, 1, None]) / size_t
        elapsed = np.array([max(t - tr.t_last, 0.0) for tr in self._tracks]).reshape(n_t, 1)
        ok_t = dist_t <= 1.0 + 2.0 * self.cfg.coast_margin_per_second * elapsed
        ok_t &= np.maximum(size_t / size_d, size_d / size_t) <= SIZE_RATIO_MATCH
        dist = np.concatenate([dist_t, dist_l])
        score = np.where(np.concatenate([ok_t, ok_l]), 1.0 / (1.0 + dist), 0.0)
        score[sorted(rows)] = 0.0
        score[:, sorted(cols)] = 0.0
        pairs += greedy_match(score, 1e-9)

        lost_pairs = []
        for a, b in pairs:
            if a < n_t:
                matched_tr[a] = b
            else:
                lost_pairs.append((a - n_t, b))
        # a lost track never takes a detection nearer (in its own sizes) to a live track that has
        # its detection in this frame: a second box beside a live face is not the lost face
        matched = sorted(matched_tr)
        revived: dict[int, TrackState] = {}
        for a, b in lost_pairs:
            if matched and (dist_t[matched, b] <= dist_l[a, b]).any():
                continue
            revived[b] = self._lost[a]
        taken = {id(tr) for tr in revived.values()}
        self._lost = [tr for tr in self._lost if id(tr) not in taken]
        return matched_tr, revived

    def _revive(self, tr: TrackState, box: np.ndarray, kps: np.ndarray, score: float, t: float, whole: bool) -> None:
        """A lost track re-found at ``box``: the filter restarts there, its velocity the mean one
        over the gap (the face kept walking, or stopped: either way what it did meanwhile)."""
        z = xyxy_to_xywh(box)
        dt = max(t - tr.t_last, MIN_DT)
        size = box_size(z)
        v = np.zeros(4)
        v[:2] = np.clip((z[:2] - xyxy_to_xywh(tr.raw_box)[:2]) / dt, -MAX_SPEED * size, MAX_SPEED * size)
        tr.x, tr.v = z.copy(), v
        tr.raw_box = np.asarray(box, dtype=np.float64).copy()
        tr.kp_rel = kp_rel(kps, z)
        tr.score, tr.t_last = score, t
        tr.held, tr.hold_until = None, 0.0
        if whole:
            tr.whole_size = z[2:].copy()
        tr.frames_detected += 1
        st = self._stats[tr.id]
        st["last_seen_s"] = t
        st["frames_detected"] += 1
        st["reassociated"] = st.get("reassociated", 0) + 1
        self.reassociations += 1

    def _new_track(self, box: np.ndarray, kps: np.ndarray, score: float, t: float, whole: bool = True,
                   provisional: bool = False) -> TrackState:
        x = xyxy_to_xywh(box)
        tr = TrackState(
            id=-1,
            x=x,
            v=np.zeros(4),
            kp_rel=kp_rel(kps, x),
            raw_box=np.asarray(box, dtype=np.float64).copy(),
            score=score,
            t_last=t,
            first_seen=t,
        )
        if whole:
            tr.whole_size = x[2:].copy()
        tr.provisional = provisional
        if not provisional:
            self._promote(tr, t)
        return tr

    def _promote(self, tr: TrackState, t: float) -> None:
        """Make ``tr`` a track: its id (the next one) and its stats from ``t``."""
        tr.provisional = False
        tr.id = self._next_id
        self._next_id += 1
        self._stats[tr.id] = {"first_seen_s": t, "last_seen_s": t, "frames_detected": 1, "frames_coasted": 0}

    def _satellite(self, box: np.ndarray, hosts: list[np.ndarray], w: int, h: int) -> bool:
        """Whether a detection is cut by the frame's border and lies mostly inside the cover box
        of a face detected whole in this frame (see the module's docstring)."""
        inside = self.cfg.edge_satellite_inside
        if inside <= 0 or not hosts or not at_edge(box, w, h):
            return False
        return bool((box_ioa(np.asarray(box, np.float64)[None], np.array(hosts)) >= inside).any())

    def _correct(self, tr: TrackState, box: np.ndarray, kps: np.ndarray, score: float, t: float, trust_motion: bool = True) -> None:
        dt = max(t - tr.t_last, MIN_DT)
        z = xyxy_to_xywh(box)
        x_pred = tr.x + tr.v * dt
        r = z - x_pred
        tr.x = x_pred + ALPHA * r
        tr.x[2:] = np.maximum(tr.x[2:], 1.0)
        tr.held = None
        tr.hold_until = 0.0
        # an untrusted box (cut by the edge, overlapping another face) keeps the velocity learnt
        # from whole views of the face
        v = tr.v + (BETA / dt) * r if trust_motion else tr.v.copy()
        if trust_motion:
            tr.whole_size = z[2:].copy()
        size = float(np.sqrt(tr.x[2] * tr.x[3]))
        v[:2] = np.clip(v[:2], -MAX_SPEED * size, MAX_SPEED * size)
        v[2:] = np.clip(v[2:], -MAX_GROWTH * tr.x[2:], MAX_GROWTH * tr.x[2:])
        tr.v = v
        tr.raw_box = np.asarray(box, dtype=np.float64).copy()
        tr.kp_rel = kp_rel(kps, z)
        tr.score = score
        tr.t_last = t
        tr.frames_detected += 1
        if tr.provisional:
            return
        st = self._stats[tr.id]
        st["last_seen_s"] = t
        st["frames_detected"] += 1

    def _cover_xyxy(self, tr: TrackState, pred: np.ndarray, t: float, partial: bool = False) -> np.ndarray:
        """A coasting track's cover: its predicted box grown by the margin and the coasting growth;
        ``partial`` (last seen cut by the edge, or held there): grown as a cut face is."""
        elapsed = max(t - tr.t_last, 0.0)
        grow = self.cfg.box_margin + self.cfg.coast_margin_per_second * elapsed + (PARTIAL_MARGIN if partial else 0.0)
        return self._grow(xywh_to_xyxy(pred), grow, partial)

    @staticmethod
    def _grow(box: np.ndarray, frac: float, by_larger_side: bool = False) -> np.ndarray:
        """Grow by ``frac`` of the box's size on each side. A box cut by the frame's edge is
        narrower than its face: it grows by ``frac`` of its larger side in both directions."""
        b = np.asarray(box, dtype=np.float64)
        d = (b[2:] - b[:2]) * frac
        if by_larger_side:
            d[:] = d.max()
        return np.concatenate([b[:2] - d, b[2:] + d])


