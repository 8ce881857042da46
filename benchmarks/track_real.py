"""Tracking on real footage: is the one person in view one track?

    .venv/bin/python benchmarks/track_real.py [--clips NAME ...] [--paths files live] [--frames N]
                                              [--png /tmp/breaks] [--cli] [--dropout SECONDS]

The shared sample clips (../shared/media) where the number of people in view is known: one person
each (WolfgangLanger_Pexels.mp4 and single_face.mp4 throughout, carphone_pristine.mp4 throughout,
face_noface.mov then nobody, noface_face.mov nobody then one). Each is decoded and run through the
real face stage (``faces.FaceStage``: detector + tracker) on the file pipeline's path (the tile
search spread over the look-back) and on live's (no look-back), as benchmarks/tracking.py does for
the synthetic scenes. The look-back dilation itself adds boxes, never tracks, so it is left out.

Per clip and path it prints: tracks; face-frames (frames where the detector found a face) and how
many of them the longest track holds (the person's share in one track; >= 95% is the goal); and
every track birth after the first with what happened there: the frame, the new box, the
detector's score, and the previous track's state (detected in the same frame = a second box,
coasting = the detector missed it, lost = its coast ran out) with its last box, IoU and centre
distance. ``--png DIR`` writes the frames around each birth with the detections (green, score)
and the covered tracks (id; dashed = coasting) drawn, to look at. ``--cli`` also runs
``streamdp run --mechanism pixelate --report`` on each clip and prints the report's track count.

``--dropout SECONDS``: a stress test of re-association (``track.reassociate_seconds``). Each clip
and path is run once as it is (the baseline: where the person is in view), then the detector's
whole output (its search and the confirmations where tracks are expected) is removed for SECONDS
at a few points while the person is in view (``dropout_windows``: 3 where there is room, else 1,
evenly spaced) and it is run twice more, with re-association on (the default window) and off (0):
tracks per person with and without, and the re-associations made. A dropout longer than the coast
(0.5 s) loses the track; without re-association the person comes back as a new track each time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT.parent / "shared" / "media"

#: clip -> what is in view (checked by looking at the frames)
CLIPS = {
    "WolfgangLanger_Pexels.mp4": "1 person throughout",
    "single_face.mp4": "1 person throughout",
    "carphone_pristine.mp4": "1 person throughout",
    "face_noface.mov": "1 person, then nobody",
    "noface_face.mov": "nobody, then 1 person",
}
#: also run with --clips bikes.mp4: cyclists and passers-by with small faces (how many people is
#: in view changes and is not fixed), for reference only


@dataclass
class FrameRecord:
    index: int
    t: float
    det_boxes: np.ndarray  # (D, 4) the detector's faces
    det_scores: np.ndarray  # (D,)
    ids: np.ndarray  # (N,) covered track ids
    boxes: np.ndarray  # (N, 4) cover boxes
    predicted: np.ndarray  # (N,) coasting (no detection this frame)


def dropout_windows(start: float, end: float, dropout: float) -> list[tuple[float, float]]:
    """[start, end) times where the detector's output is removed, in the span ``start``-``end``
    (s) where the person is in view: 3 evenly spaced windows of ``dropout`` s where there is room
    for them with a second of view around each, else 1 in the middle."""
    span = end - start
    n = 3 if span >= 4 * (dropout + 1.0) else 1
    centres = [start + span * (k + 1) / (n + 1) for k in range(n)]
    return [(c - dropout / 2, c + dropout / 2) for c in centres]


class _Blind:
    """Wraps a detector's ``detect_batch``: no faces at all in the frames inside ``windows``."""

    def __init__(self, detect_batch, windows: list[tuple[float, float]]) -> None:  # type: ignore[no-untyped-def]
        self.detect_batch, self.windows, self.t = detect_batch, windows, 0.0
        self.frames_blind = 0

    def __call__(self, images, indices, hints=None):  # type: ignore[no-untyped-def]
        if any(a <= self.t < b for a, b in self.windows):
            from streamdp.types import Detections

            self.frames_blind += len(images)
            return [Detections.empty() for _ in images]
        return self.detect_batch(images, indices, hints)


def run_clip(path: Path, files: bool, max_frames: int | None = None, config=None,
             dropout: list[tuple[float, float]] | None = None, stats: dict | None = None) -> list[FrameRecord]:
    """Every frame's detections and tracker output. ``dropout``: [start, end) times (s) with the
    detector's output removed; ``stats`` gets the tracker's re-associations and the blind frames."""
    from streamdp.builder import build_face_stage
    from streamdp.config import Config
    from streamdp.source import VideoSource

    config = config if config is not None else Config()
    source = VideoSource(path)
    fps = float(source.info.fps) or 25.0
    lookback = config.track.lookback_seconds * fps if files else 0.0
    stage = build_face_stage(config, fps, lookback_frames=lookback)
    blind = _Blind(stage.detector.detect_batch, dropout or [])
    stage.detector.detect_batch = blind  # type: ignore[method-assign]
    records: list[FrameRecord] = []
    try:
        for frame in source.frames():
            if max_frames is not None and frame.index >= max_frames:
                break
            blind.t = frame.time_s if frame.time_s is not None else frame.index / fps
            job = stage.process(frame)
            det = stage.last_detected
            f = job.faces
            rec = FrameRecord(frame.index, frame.time_s if frame.time_s is not None else frame.index / fps,
                              det.boxes.astype(np.float64), det.scores.astype(np.float64),
                              f.track_ids.copy(), f.boxes.astype(np.float64), f.predicted.copy())
            records.append(rec)
    finally:
        stage.close()
    if stats is not None:
        stats["reassociations"] = stage.tracker.reassociations
        stats["frames_blind"] = blind.frames_blind
    return records


def people(name: str) -> int:
    """People in view in the clip (all the listed clips have one at a time)."""
    return 1 if name in CLIPS else 0


def dropout_stress(media: Path, clips: list[str], paths: list[str], seconds: float, max_frames: int | None) -> list[dict]:
    """Tracks per person with re-association on and off, the detector blind for ``seconds`` at a
    few points of each clip."""
    from streamdp.config import Config

    rows = []
    for name in clips:
        path = media / name
        for mode in paths:
            base = run_clip(path, files=mode == "files", max_frames=max_frames)
            seen = [r.t for r in base if len(r.det_boxes)]
            if not seen:
                print(f"{name} [{mode}]: no face found, nothing to drop", flush=True)
                continue
            windows = dropout_windows(seen[0], seen[-1], seconds)
            row: dict = {"clip": name, "path": mode, "windows": [(round(a, 2), round(b, 2)) for a, b in windows],
                         "baseline_tracks": analyse(base)["tracks"]}
            for label, window_s in (("on", None), ("off", 0.0)):
                config = Config()
                if window_s is not None:
                    config = config.model_copy(update={"track": config.track.model_copy(update={"reassociate_seconds": window_s})})
                stats: dict = {}
                a = analyse(run_clip(path, files=mode == "files", max_frames=max_frames, config=config,
                                     dropout=windows, stats=stats))
                row[label] = {"tracks": a["tracks"], "reassociations": stats["reassociations"],
                              "frames_blind": stats["frames_blind"], "longest_frames": a["longest_frames"],
                              "face_frames": a["face_frames"]}
            rows.append(row)
            n = max(people(name), 1)
            print(f"{name} [{mode}] dropout {seconds:g} s at {row['windows']}: tracks per person "
                  f"{row['on']['tracks'] / n:g} with re-association ({row['on']['reassociations']} made), "
                  f"{row['off']['tracks'] / n:g} without, {row['baseline_tracks'] / n:g} with no dropout; "
                  f"{row['on']['frames_blind']} blind frames", flush=True)
    print("| clip | path | dropouts | tracks per person: no dropout | re-association on | off | re-associations |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        n = max(people(r["clip"]), 1)
        print(f"| {r['clip']} | {r['path']} | {len(r['windows'])} x {seconds:g} s | {r['baseline_tracks'] / n:g} | "
              f"{r['on']['tracks'] / n:g} | {r['off']['tracks'] / n:g} | {r['on']['reassociations']} |")
    return rows


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _centre_dist(a: np.ndarray, b: np.ndarray) -> float:
    """Centre distance in units of a's size (sqrt of its area)."""
    ca, cb = (a[:2] + a[2:]) / 2, (b[:2] + b[2:]) / 2
    size = float(np.sqrt(max((a[2] - a[0]) * (a[3] - a[1]), 1e-6)))
    return float(np.hypot(*(ca - cb))) / size


def _fmt(b: np.ndarray) -> str:
    return "[" + ",".join(f"{v:.0f}" for v in b) + "]"


@dataclass
class Birth:
    frame: int
    t: float
    track: int
    box: np.ndarray
    score: float
    prev: int | None  # the nearest earlier track
    prev_state: str  # "detected" (same frame) / "coasting" / "lost since frame K" / "none"
    prev_box: np.ndarray | None  # its last cover box
    dets_in_frame: int


def analyse(records: list[FrameRecord]) -> dict:
    """Tracks, the longest track's share of the face-frames and every birth after the first."""
    detected: dict[int, int] = {}  # track -> frames detected
    last_seen: dict[int, tuple[int, np.ndarray, bool]] = {}  # track -> (frame, cover box, predicted)
    births: list[Birth] = []
    face_frames = sum(len(r.det_boxes) > 0 for r in records)
    provisional = 0
    for r in records:
        before = dict(last_seen)  # the tracks as they stood before this frame
        provisional += int((r.ids < 0).sum())
        for i, tid in enumerate(r.ids):
            tid = int(tid)
            if tid < 0:
                continue  # a provisional box (track.py): covered, no track
            if tid not in before and before:
                births.append(_birth(r, i, before))
            if tid not in last_seen:
                last_seen[tid] = (r.index, r.boxes[i], bool(r.predicted[i]))
        for i, tid in enumerate(r.ids):
            if tid < 0:
                continue
            last_seen[int(tid)] = (r.index, r.boxes[i], bool(r.predicted[i]))
            if not r.predicted[i]:
                detected[int(tid)] = detected.get(int(tid), 0) + 1
    longest = max(detected, key=detected.get) if detected else None
    return {
        "frames": len(records),
        "tracks": len(last_seen),
        "face_frames": face_frames,
        "longest": longest,
        "longest_frames": detected.get(longest, 0) if longest is not None else 0,
        "share": (detected.get(longest, 0) / face_frames) if face_frames else float("nan"),
        "detected_per_track": detected,
        "births": births,
        "provisional_boxes": provisional,
    }


def _birth(r: FrameRecord, i: int, before: dict[int, tuple[int, np.ndarray, bool]]) -> Birth:
    """Track ``r.ids[i]``'s birth in ``r`` next to the nearest track that existed before it."""
    box = r.boxes[i]
    p, (pf, pbox, ppred) = min(before.items(), key=lambda c: _centre_dist(box, c[1][1]))
    ids = [int(x) for x in r.ids]
    if p in ids:
        j = ids.index(p)
        state, pbox = ("coasting" if r.predicted[j] else "detected in the same frame"), r.boxes[j]
    else:
        state = f"lost after frame {pf}" + (" (coasting then)" if ppred else "")
    return Birth(r.index, r.t, ids[i], box, _match_score(r, box), p, state, pbox, len(r.det_boxes))


def _match_score(r: FrameRecord, cover: np.ndarray) -> float:
    """The detector's score of the detection inside a cover box (the cover is grown from it)."""
    if not len(r.det_boxes):
        return float("nan")
    ious = [_iou(cover, d) for d in r.det_boxes]
    return float(r.det_scores[int(np.argmax(ious))])


def write_pngs(path: Path, records: list[FrameRecord], births: list[Birth], out_dir: Path, label: str, around: int = 3) -> list[Path]:
    """The frames around each birth with detections and tracks drawn (2x for small clips)."""
    import cv2

    from streamdp.source import VideoSource

    wanted: dict[int, list[int]] = {}
    for b in births:
        for k in range(b.frame - around, b.frame + around + 1):
            wanted.setdefault(k, []).append(b.track)
    if not wanted:
        return []
    by_index = {r.index: r for r in records}
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for frame in VideoSource(path).frames():
        if frame.index > max(wanted):
            break
        if frame.index not in wanted or frame.index not in by_index:
            continue
        r = by_index[frame.index]
        img = cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR)
        scale = 2 if img.shape[1] < 400 else 1
        img = cv2.resize(img, None, fx=scale, fy=scale)
        for b, s in zip(r.det_boxes, r.det_scores):
            p = (b * scale).astype(int)
            cv2.rectangle(img, (p[0], p[1]), (p[2], p[3]), (0, 255, 0), 1)
            cv2.putText(img, f"{s:.2f}", (p[0], p[3] + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 255, 0), 1)
        for tid, b, pred in zip(r.ids, r.boxes, r.predicted):
            p = (b * scale).astype(int)
            colour = (0, 0, 255) if pred else (255, 128, 0)
            cv2.rectangle(img, (p[0], p[1]), (p[2], p[3]), colour, 2 if not pred else 1)
            cv2.putText(img, f"#{tid}{' coast' if pred else ''}", (p[0], max(p[1] - 4, 10)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1)
        cv2.putText(img, f"frame {frame.index}", (5, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
        dst = out_dir / f"{label}_{frame.index:04d}.png"
        cv2.imwrite(str(dst), img)
        written.append(dst)
    return written


def cli_tracks(path: Path) -> int:
    """The track count in the report of ``streamdp run --mechanism pixelate`` on the clip."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"out{path.suffix}"
        rep = Path(tmp) / "report.json"
        subprocess.run([str(ROOT / ".venv" / "bin" / "streamdp"), "run", str(path), "-o", str(out), "--mechanism",
                        "pixelate", "--report", str(rep), "--quiet"], check=True, timeout=900)
        return int(json.loads(rep.read_text())["summary"]["tracks"])


def report(name: str, mode: str, a: dict, seconds: float) -> None:
    print(f"{name} [{mode}] ({CLIPS.get(name, '?')}): {a['frames']} frames, {a['tracks']} tracks, "
          f"longest #{a['longest']} holds {a['longest_frames']}/{a['face_frames']} face-frames "
          f"({100 * a['share']:.1f}%); detected frames per track {a['detected_per_track']}; "
          f"{a['provisional_boxes']} provisional (edge satellite) boxes ({seconds:.0f} s)")
    for b in a["births"]:
        prev = (f"#{b.prev} {b.prev_state}, last box {_fmt(b.prev_box)}, IoU {_iou(b.box, b.prev_box):.2f}, "
                f"centre {_centre_dist(b.prev_box, b.box):.2f} sizes away") if b.prev is not None else "no earlier track"
        print(f"  birth #{b.track} at frame {b.frame} ({b.t:.2f} s): box {_fmt(b.box)} score {b.score:.2f}, "
              f"{b.dets_in_frame} detection(s) in the frame; {prev}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--media", type=Path, default=MEDIA)
    p.add_argument("--clips", nargs="+", default=list(CLIPS))
    p.add_argument("--paths", nargs="+", choices=["files", "live"], default=["files", "live"])
    p.add_argument("--frames", type=int, default=None, help="only the first N frames of each clip")
    p.add_argument("--png", type=Path, default=None, help="write the frames around each birth here")
    p.add_argument("--cli", action="store_true", help="also count tracks with `streamdp run --mechanism pixelate`")
    p.add_argument("--json", type=Path, default=None, help="write the per-clip figures here")
    p.add_argument("--dropout", type=float, default=None, metavar="SECONDS",
                   help="instead: remove the detector's output for SECONDS at a few points of each clip and "
                        "count tracks per person with and without re-association")
    args = p.parse_args()
    if not args.media.is_dir():
        print(f"shared media not found at {args.media}", file=sys.stderr)
        return 2
    if args.dropout is not None:
        rows = dropout_stress(args.media, args.clips, args.paths, args.dropout, args.frames)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
        return 0
    rows = []
    for name in args.clips:
        path = args.media / name
        for mode in args.paths:
            t0 = time.perf_counter()
            records = run_clip(path, files=mode == "files", max_frames=args.frames)
            a = analyse(records)
            report(name, mode, a, time.perf_counter() - t0)
            if args.png:
                write_pngs(path, records, a["births"], args.png, f"{Path(name).stem}_{mode}")
            rows.append({"clip": name, "path": mode, **{k: a[k] for k in ("frames", "tracks", "face_frames", "longest_frames", "share", "provisional_boxes")}})
        if args.cli:
            print(f"{name}: streamdp run --mechanism pixelate reports {cli_tracks(path)} tracks")
    print("| clip | path | frames | tracks | longest track / face-frames | provisional boxes |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['clip']} | {r['path']} | {r['frames']} | {r['tracks']} | {r['longest_frames']}/{r['face_frames']} "
              f"({100 * r['share']:.1f}%) | {r['provisional_boxes']} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
