"""Tracking you can measure: synthetic scenes with known identities, scored with ``motmetrics``.

A scene is a few *actors*, each a face photograph moving along keyframes (time, centre, height,
depth) over a background; they cross and occlude each other (the deeper one is drawn first), leave
the frame and come back, move fast, grow and shrink. ``render`` yields each frame with its ground
truth: per visible actor its id and inner face box (brows to chin, clipped to the frame).

``track_scene`` runs the real detector and tracker (``faces.FaceStage``, as live does: no
look-back) and ``score`` compares with ``motmetrics`` (py-motmetrics, the MOTChallenge
reference implementation): ID switches, fragmentations, IDF1, MOTA, and two counts of our own that
matter for privacy: **face-frames left raw** (a visible ground-truth face with any of its inner
box outside every cover box) and **false tracks** (tracks that never overlap a real face).

Why motmetrics and not our own matching: the CLEAR-MOT and ID measures have subtle definitions
(the Hungarian assignment with continuity, IDF1's global bipartite matching); a well-kept library
gets them right and makes the figures comparable with the literature.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

# The shared LFW photos (160x160, face centred): what is pasted, and the inner face (brows to chin)
LFW_PATCH = (16, 8, 144, 152)  # x0, y0, x1, y1
LFW_FACE = (40, 42, 120, 132)


@dataclass
class Actor:
    """One face: ``keys`` = [(t_s, cx, cy, height, depth)], linear in between; centre and height
    in frame pixels (a centre outside the frame puts the face partly or wholly out of view)."""

    photo: Path
    keys: list[tuple[float, float, float, float, float]]
    _patch: np.ndarray | None = field(default=None, repr=False)

    def state(self, t: float) -> tuple[float, float, float, float]:
        ks = self.keys
        if t <= ks[0][0]:
            return ks[0][1:]
        for a, b in zip(ks, ks[1:]):
            if a[0] <= t <= b[0]:
                u = (t - a[0]) / max(b[0] - a[0], 1e-9)
                return tuple(a[i] + u * (b[i] - a[i]) for i in range(1, 5))  # type: ignore[return-value]
        return ks[-1][1:]

    def patch(self) -> np.ndarray:
        if self._patch is None:
            rgb = cv2.cvtColor(cv2.imread(str(self.photo), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            if rgb.shape[:2] != (160, 160):
                rgb = cv2.resize(rgb, (160, 160), interpolation=cv2.INTER_AREA)
            x0, y0, x1, y1 = LFW_PATCH
            self._patch = rgb[y0:y1, x0:x1]
        return self._patch


@dataclass
class Scene:
    name: str
    actors: list[Actor]
    seconds: float
    size: tuple[int, int] = (640, 360)
    fps: float = 24.0
    texture: str = "smooth"  # "smooth" (soft street-like) or "harsh" (high-contrast random texture)


def background(width: int, height: int, kind: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "harsh":
        # high-contrast random blocks and edges at several scales: the worst case for false faces
        out = np.zeros((height, width, 3), np.float32)
        for cell in (4, 9, 23, 57):
            small = rng.integers(0, 256, (height // cell + 1, width // cell + 1, 3)).astype(np.float32)
            out += cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST)[:height, :width]
        return np.clip(out / 4 * 1.6 - 76, 0, 255).astype(np.uint8)
    small = rng.integers(40, 215, (height // 24 + 2, width // 24 + 2, 3)).astype(np.float32)
    base = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    fine = cv2.GaussianBlur(rng.normal(0, 6, (height, width, 3)).astype(np.float32), (0, 0), 0.8)
    return np.clip(base + fine, 0, 255).astype(np.uint8)


def render(scene: Scene, seed: int = 0) -> Iterator[tuple[float, np.ndarray, list[GroundTruthFace]]]:
    """(time, rgb, ground truth faces) per frame; actor ids from 1. A face hidden behind a nearer
    one keeps its box; the nearer faces' patches are listed as its occluders."""
    w, h = scene.size
    bg = background(w, h, scene.texture, seed)
    n = int(round(scene.seconds * scene.fps))
    px0, py0, px1, py1 = LFW_PATCH
    fx0, fy0, fx1, fy1 = LFW_FACE
    for k in range(n):
        t = k / scene.fps
        img = bg.copy()
        drawn: list[tuple[int, np.ndarray, np.ndarray]] = []  # (id, inner box, patch rect), far first
        states = [(a.state(t), i) for i, a in enumerate(scene.actors)]
        for (cx, cy, fh, _depth), i in sorted(states, key=lambda s: s[0][3]):
            patch = scene.actors[i].patch()
            s = fh / (fy1 - fy0)  # height is the inner face's height
            pw, ph = int(round(patch.shape[1] * s)), int(round(patch.shape[0] * s))
            if pw < 4 or ph < 4:
                continue
            # the inner face's centre sits at (cx, cy)
            ox = cx - ((fx0 + fx1) / 2 - px0) * s
            oy = cy - ((fy0 + fy1) / 2 - py0) * s
            x0, y0 = int(round(ox)), int(round(oy))
            sx0, sy0 = max(0, -x0), max(0, -y0)
            dx0, dy0 = max(0, x0), max(0, y0)
            dx1, dy1 = min(w, x0 + pw), min(h, y0 + ph)
            if dx1 <= dx0 or dy1 <= dy0:
                continue
            res = cv2.resize(patch, (pw, ph), interpolation=cv2.INTER_AREA)
            img[dy0:dy1, dx0:dx1] = res[sy0 : sy0 + dy1 - dy0, sx0 : sx0 + dx1 - dx0]
            face = np.array([ox + (fx0 - px0) * s, oy + (fy0 - py0) * s, ox + (fx1 - px0) * s, oy + (fy1 - py0) * s])
            drawn.append((i + 1, np.clip(face, 0, [w, h, w, h]), np.array([dx0, dy0, dx1, dy1], np.float64)))
        gts = []
        for j, (aid, box, _rect) in enumerate(drawn):
            if box[2] - box[0] >= 2 and box[3] - box[1] >= 2:
                gts.append(GroundTruthFace(aid, box, [r for (_, _, r) in drawn[j + 1 :]]))
        yield t, img, sorted(gts, key=lambda g: g.id)


@dataclass
class GroundTruthFace:
    id: int
    box: np.ndarray  # inner face box xyxy, clipped to the frame
    occluders: list[np.ndarray]  # nearer faces' patch rectangles drawn over it

    def visible_fraction(self) -> float:
        return 1.0 - _covered_fraction(self.box, self.occluders)


def standard_scenes(photos: Sequence[Path], size: tuple[int, int] = (640, 360), seconds: float = 6.0) -> list[Scene]:
    """The scenes of the tracking benchmark (``photos``: at least 3 distinct identities)."""
    if len(photos) < 3:
        raise ValueError("standard_scenes needs 3 photos of distinct people")
    w, h = size
    a, b, c = photos[:3]
    T = seconds
    H = 0.3 * h  # a face a third of the frame's height
    return [
        # two people cross; B walks in front of A and hides it for a moment
        Scene("cross", [Actor(a, [(0, 0.2 * w, 0.5 * h, H, 0), (T, 0.8 * w, 0.5 * h, H, 0)]),
                        Actor(b, [(0, 0.8 * w, 0.52 * h, 1.1 * H, 1), (T, 0.2 * w, 0.52 * h, 1.1 * H, 1)])], T, size),
        # out at the right edge, away for 1.5 s, back in from the right
        Scene("exit_reenter", [Actor(a, [(0, 0.5 * w, 0.5 * h, H, 0), (0.3 * T, w + 0.5 * H, 0.5 * h, H, 0),
                                         (0.55 * T, w + 0.5 * H, 0.5 * h, H, 0), (T, 0.5 * w, 0.5 * h, H, 0)])], T, size),
        # half out at the left edge and back, twice
        Scene("edge_slide", [Actor(a, [(0, 0.3 * w, 0.5 * h, H, 0), (0.25 * T, 0.05 * H, 0.5 * h, H, 0),
                                       (0.5 * T, 0.3 * w, 0.5 * h, H, 0), (0.75 * T, -0.1 * H, 0.45 * h, H, 0),
                                       (T, 0.3 * w, 0.5 * h, H, 0)])], T, size),
        # fast: back and forth across the frame three times (about half a face width per frame)
        Scene("fast", [Actor(a, [(i * T / 6, (0.15 if i % 2 == 0 else 0.85) * w, 0.5 * h, H, 0) for i in range(7)])], T, size),
        # walking towards the camera and back: 0.15 to 0.7 of the frame's height
        Scene("zoom", [Actor(a, [(0, 0.5 * w, 0.5 * h, 0.15 * h, 0), (T / 2, 0.5 * w, 0.5 * h, 0.7 * h, 0),
                                 (T, 0.5 * w, 0.5 * h, 0.15 * h, 0)])], T, size),
        # three people over a high-contrast random texture: faces must be one track each, the
        # texture no track at all
        Scene("harsh_three", [Actor(a, [(0, 0.2 * w, 0.45 * h, H, 0), (T, 0.25 * w, 0.55 * h, H, 0)]),
                              Actor(b, [(0, 0.5 * w, 0.55 * h, 0.9 * H, 0), (T, 0.5 * w, 0.45 * h, 0.9 * H, 0)]),
                              Actor(c, [(0, 0.8 * w, 0.5 * h, 0.8 * H, 0), (T, 0.75 * w, 0.5 * h, 0.8 * H, 0)])],
              T, size, texture="harsh"),
        # nobody at all, over the harsh texture: every track is a false one
        Scene("harsh_empty", [], T, size, texture="harsh"),
    ]


@dataclass
class TrackedFrame:
    gt: list[GroundTruthFace]
    ids: np.ndarray  # (N,) track ids
    boxes: np.ndarray  # (N, 4) cover boxes


def track_scene(scene: Scene, config: Any = None, seed: int = 0, files: bool = False) -> list[TrackedFrame]:
    """Run the detector and tracker over the scene's frames: live's path (no look-back, the tile
    search every frame, or spread with each frame held as the live pipeline holds it) or, with
    ``files``, the file pipeline's (tile search spread over the look-back, the look-back dilation)."""
    from fractions import Fraction

    from ..config import Config
    from ..lookback import LookbackDilator
    from ..builder import build_face_stage, build_live_face_stage, build_live_hold
    from ..types import Frame

    config = config if config is not None else Config()
    lookback_s = config.track.lookback_seconds if files else 0.0
    if files:
        stage = build_face_stage(config, scene.fps, lookback_frames=lookback_s * scene.fps)
        dilator = LookbackDilator(lookback_s, scene.fps, config.track.coast_margin_per_second)
    else:  # live holds each frame for the rest of a spread search, as the live pipeline does
        stage = build_live_face_stage(config, scene.fps)
        dilator = build_live_hold(config, stage, scene.fps) or LookbackDilator(0.0, scene.fps)
    gts_by_index: dict[int, list[GroundTruthFace]] = {}
    out: list[TrackedFrame] = []

    def take(job: Any) -> None:
        out.append(TrackedFrame(gts_by_index.pop(job.frame.index), np.asarray(job.faces.track_ids).copy(),
                                np.asarray(job.faces.boxes, np.float64).copy()))

    try:
        for k, (t, img, gts) in enumerate(render(scene, seed)):
            gts_by_index[k] = gts
            frame = Frame(k, img, pts=int(round(t * 1000)), time_base=Fraction(1, 1000))
            for job in dilator.push(stage.process(frame)):
                take(job)
        for job in dilator.flush():
            take(job)
    finally:
        stage.close()
    return out


def size_ladder(photos: Sequence[Path], heights: Sequence[int], size: tuple[int, int] = (1280, 720), seconds: float = 4.0) -> list[Scene]:
    """One scene per face height (inner face, brows to chin, in pixels): three faces of that size
    drifting slowly across a smooth background. For "the smallest face reliably covered"."""
    w, h = size
    scenes = []
    for fh in heights:
        actors = [Actor(photos[i % len(photos)], [(0, (0.2 + 0.3 * i) * w, (0.3 + 0.2 * i) * h, fh, 0),
                                                   (seconds, (0.25 + 0.3 * i) * w, (0.35 + 0.2 * i) * h, fh, 0)])
                  for i in range(3)]
        scenes.append(Scene(f"faces_{fh}px", actors, seconds, size))
    return scenes


def _pixels(box: np.ndarray) -> tuple[int, int, int, int]:
    """The whole pixels a box touches (x0, y0, x1, y1)."""
    return int(math.floor(box[0])), int(math.floor(box[1])), int(math.ceil(box[2])), int(math.ceil(box[3]))


def _covered_fraction(box: np.ndarray, rects: Sequence[np.ndarray]) -> float:
    """Fraction of ``box``'s pixels inside the union of ``rects`` (0 for an empty box)."""
    x0, y0, x1, y1 = _pixels(box)
    if x1 <= x0 or y1 <= y0:
        return 0.0
    m = np.zeros((y1 - y0, x1 - x0), bool)
    for c in rects:
        cx0, cy0, cx1, cy1 = _pixels(c)
        cx0, cy0 = max(cx0 - x0, 0), max(cy0 - y0, 0)
        cx1, cy1 = min(cx1 - x0, x1 - x0), min(cy1 - y0, y1 - y0)
        if cx1 > cx0 and cy1 > cy0:
            m[cy0:cy1, cx0:cx1] = True
    return float(m.mean())


def _raw_fraction(g: GroundTruthFace, covers: np.ndarray) -> float:
    """Fraction of the face's inner box that shows the face (not hidden by a nearer one) and lies
    outside every cover box (0 for an empty box)."""
    x0, y0, x1, y1 = _pixels(g.box)
    if x1 <= x0 or y1 <= y0:
        return 0.0
    return 1.0 - _covered_fraction(g.box, [*g.occluders, *covers])


def score(frames: list[TrackedFrame], box_margin: float = 0.2, match_iou: float = 0.3) -> dict[str, Any]:
    """motmetrics' ID and CLEAR-MOT figures plus raw face-frames and false tracks.

    The tracker's boxes are cover boxes (grown by ``box_margin`` per side); they are shrunk back
    before the IoU with the inner face box that motmetrics matches on (distance ``1 - IoU``, a
    pair only when IoU >= ``match_iou``)."""
    import motmetrics as mm

    from ..detect import box_iou

    acc = mm.MOTAccumulator(auto_id=True)
    raw_any = raw_10 = gt_frames = 0
    real_tracks: set[int] = set()
    all_tracks: set[int] = set()
    for f in frames:
        gt_ids = [g.id for g in f.gt]
        gt_boxes = np.array([g.box for g in f.gt]).reshape(-1, 4)
        inner = f.boxes.copy()
        if len(inner):
            wh = inner[:, 2:] - inner[:, :2]
            shrink = wh * box_margin / (1 + 2 * box_margin)
            inner[:, :2] += shrink
            inner[:, 2:] -= shrink
        iou = box_iou(gt_boxes, inner)
        dist = np.where(iou >= match_iou, 1.0 - iou, np.nan)
        acc.update(gt_ids, [int(i) for i in f.ids], dist)
        all_tracks.update(int(i) for i in f.ids)
        for j, tid in enumerate(f.ids):
            if len(gt_boxes) and (iou[:, j] > 0).any():
                real_tracks.add(int(tid))
        for g in f.gt:
            gt_frames += 1
            u = _raw_fraction(g, f.boxes)
            raw_any += u > 0
            raw_10 += u > 0.10
    mh = mm.metrics.create()
    names = ["num_unique_objects", "num_switches", "num_fragmentations", "idf1", "mota", "motp", "mostly_tracked"]
    summary = mh.compute(acc, metrics=names, name="scene")
    row = {k: float(summary[k].iloc[0]) for k in names}
    row = {k: (v if math.isfinite(v) else float("nan")) for k, v in row.items()}
    return {
        "people": int(row["num_unique_objects"]),
        "tracks": len(all_tracks),
        "false_tracks": len(all_tracks - real_tracks),
        "id_switches": int(row["num_switches"]),
        "fragmentations": int(row["num_fragmentations"]),
        "idf1": row["idf1"],
        "mota": row["mota"],
        "face_frames": gt_frames,
        "face_frames_raw_any_pixel": int(raw_any),
        "face_frames_raw_over_10pct": int(raw_10),
    }
