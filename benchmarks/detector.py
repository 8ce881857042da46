"""Face detector backends: ms per frame and parity (ONNX Runtime batched vs MediaPipe Tasks).

    .venv/bin/python benchmarks/detector.py [--frames 8] [--repeat 3]

1. Speed: real frames (../shared/media WolfgangLanger_Pexels.mp4 and bikes.mp4) at 640x360,
   1280x720 and 1920x1080 (upscaled), every frame with the tile pass (``frame_index`` 0: the
   worst case; ``tile_every: 2`` halves the tile cost on files). Per backend: mean ms per frame,
   model images per frame (1 + tiles + second looks) and model invocations per frame. The onnx
   backend also with 1 intra-op thread. Best of ``--repeat`` passes (the machine is shared).
2. Texture: a frame of uniform random noise and one of foliage-like texture (multi-scale
   smoothed green noise) at 1280x720: candidates, second looks, faces kept, ms.
3. Parity: synthetic ground truth (tests/synth.py: LFW evaluation faces moving over a textured
   background, at 640x360 and, smaller, at 1280x720) -> faces found / missed / false per backend;
   and the shared media's frames at their own size -> faces per backend and how many frames
   disagree (count, or a box IoU < 0.9, or a score off by > 0.02).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
SHARED = ROOT.parent / "shared"
MEDIA = SHARED / "media"
FACES = SHARED / "data" / "faces"

from streamdp.detect.blazeface import BlazeFaceRunner  # noqa: E402
from streamdp.config import DetectConfig  # noqa: E402
from streamdp.detect import FaceDetector, box_iou  # noqa: E402

SIZES = [(640, 360), (1280, 720), (1920, 1080)]


def video_frames(name: str, step: int, limit: int | None = None) -> list[np.ndarray]:
    import av

    out = []
    with av.open(str(MEDIA / name)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % step == 0:
                out.append(frame.to_ndarray(format="rgb24"))
            if limit is not None and len(out) >= limit:
                break
    return out


def detectors(threads_variant: bool = True) -> dict[str, FaceDetector]:
    dets = {
        "mediapipe": FaceDetector(DetectConfig(backend="mediapipe")),
        "onnx": FaceDetector(DetectConfig(backend="onnx")),
    }
    if threads_variant:
        one = FaceDetector(DetectConfig(backend="onnx"))
        one.runner.model = BlazeFaceRunner(one.model_path, min_score=one.runner.min_score, intra_op_threads=1)
        dets["onnx-1thread"] = one
    return dets


def timed(det: FaceDetector, frames: list[np.ndarray], repeat: int) -> dict[str, float]:
    det.detect(frames[0])  # warm-up
    best = float("inf")
    calls = batches = verify = 0.0
    for _ in range(repeat):
        t = 0.0
        calls = batches = verify = 0.0
        for img in frames:
            det.detect(img, frame_index=0)
            lt = det.last_timing
            t += lt["total_s"]
            calls += lt["calls"]
            batches += lt["batches"]
            verify += lt["verify_calls"]
        best = min(best, t)
    n = len(frames)
    return {"ms": 1e3 * best / n, "calls": calls / n, "batches": batches / n, "verify": verify / n}


def foliage(width: int, height: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    acc = np.zeros((height, width), np.float32)
    for sigma, w in ((1.0, 0.5), (3.0, 1.0), (8.0, 1.0), (20.0, 0.7)):
        n = rng.standard_normal((height, width)).astype(np.float32)
        n = cv2.GaussianBlur(n, (0, 0), sigma)
        acc += w * n / (n.std() + 1e-6)
    acc = (acc - acc.min()) / (acc.max() - acc.min())
    leaf = (acc > 0.45).astype(np.float32) * acc
    rgb = np.stack([40 + 90 * leaf, 60 + 170 * leaf, 25 + 60 * leaf], axis=-1)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def ground_truth_scores(det: FaceDetector, frames) -> tuple[int, int, int]:
    """(found, missed, false) over ``[(img, gt boxes)]``: a detection is a hit when its centre
    lies inside a ground-truth box grown by half its size."""
    found = missed = false = 0
    for img, gt in frames:
        d = det.detect(img)
        c = (d.boxes[:, :2] + d.boxes[:, 2:]) / 2
        used = np.zeros(len(d), bool)
        for x0, y0, x1, y1 in gt:
            mx, my = (x1 - x0) / 2, (y1 - y0) / 2
            inside = (c[:, 0] >= x0 - mx) & (c[:, 0] <= x1 + mx) & (c[:, 1] >= y0 - my) & (c[:, 1] <= y1 + my)
            if inside.any():
                found += 1
                used |= inside
            else:
                missed += 1
        false += int((~used).sum())
    return found, missed, false


def agree(a, b) -> bool:
    if len(a) != len(b):
        return False
    if not len(a):
        return True
    iou = box_iou(a.boxes, b.boxes)
    j = iou.argmax(axis=1)
    return bool((iou.max(axis=1) >= 0.9).all() and (np.abs(a.scores - b.scores[j]) <= 0.02).all())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=8, help="real frames per resolution")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    if not MEDIA.is_dir():
        print(f"needs the shared media at {MEDIA}", file=sys.stderr)
        return 2
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    print(f"{time.strftime('%Y-%m-%d %H:%M')}  {platform.machine()}  {os.cpu_count()} CPUs  load {load:.2f}")
    dets = detectors()
    k = max(1, args.frames // 2)
    base = video_frames("WolfgangLanger_Pexels.mp4", 50, k) + video_frames("bikes.mp4", 25, args.frames - k)

    print("\n## Speed (every frame with the tile pass; best of", args.repeat, "passes)\n")
    print("| frame | backend | ms/frame | model images/frame | invocations/frame | second looks/frame |")
    print("|---|---|---|---|---|---|")
    for w, h in SIZES:
        frames = [cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR) for f in base]
        for name, det in dets.items():
            r = timed(det, frames, args.repeat)
            print(f"| {w}x{h} | {name} | {r['ms']:.1f} | {r['calls']:.1f} | {r['batches']:.1f} | {r['verify']:.1f} |")

    print("\n## Texture frames (1280x720)\n")
    print("| frame | backend | candidates | second looks | faces kept | ms |")
    print("|---|---|---|---|---|---|")
    textures = {
        "uniform noise": np.random.default_rng(0).integers(0, 256, (720, 1280, 3), dtype=np.uint8),
        "foliage-like": foliage(1280, 720),
    }
    for tname, img in textures.items():
        for name in ("mediapipe", "onnx"):
            det = dets[name]
            det.detect(img)
            d = det.detect(img)
            lt = det.last_timing
            print(f"| {tname} | {name} | {lt['candidates']:.0f} | {lt['verify_calls']:.0f} | {len(d)} | {1e3 * lt['total_s']:.1f} |")

    print("\n## Parity\n")
    if (FACES / "splits.json").is_file():
        from synth import ground_truth_frames

        sets = {
            "synthetic 640x360, 3 faces 106-130 px": ground_truth_frames(FACES, n_frames=12, size=(640, 360)),
            "synthetic 1280x720, 4 faces 48-80 px": ground_truth_frames(
                FACES, n_frames=12, size=(1280, 720), seed=1, n_faces=4, face_heights=(80, 64, 56, 48)
            ),
        }
        print("| set | backend | found | missed | false |")
        print("|---|---|---|---|---|")
        for sname, frames in sets.items():
            for name in ("mediapipe", "onnx"):
                f, m, fp = ground_truth_scores(dets[name], frames)
                print(f"| {sname} | {name} | {f} | {m} | {fp} |")
    else:
        print(f"(synthetic ground truth skipped: no face photographs at {FACES})")

    print("\n| video (own size, every Nth frame) | frames | faces mediapipe | faces onnx | frames that disagree |")
    print("|---|---|---|---|---|")
    videos = [
        ("WolfgangLanger_Pexels.mp4", 20),
        ("single_face.mp4", 6),
        ("carphone_pristine.mp4", 10),
        ("bikes.mp4", 5),
        ("no_face.mp4", 2),
        ("face_noface.mov", 8),
        ("noface_face.mov", 8),
    ]
    tot = [0, 0, 0, 0]
    for vname, step in videos:
        frames = video_frames(vname, step)
        na = nb = bad = 0
        for i, img in enumerate(frames):
            a = dets["mediapipe"].detect(img, frame_index=i)
            b = dets["onnx"].detect(img, frame_index=i)
            na += len(a)
            nb += len(b)
            bad += not agree(a, b)
        for j, v in enumerate((len(frames), na, nb, bad)):
            tot[j] += v
        print(f"| {vname} (1/{step}) | {len(frames)} | {na} | {nb} | {bad} |")
    print(f"| all | {tot[0]} | {tot[1]} | {tot[2]} | {tot[3]} |")
    for det in dets.values():
        det.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
