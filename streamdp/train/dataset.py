"""Training data: aligned face crops made by the pipeline's own detector and aligner.

Sources (``/work/shared/data/faces`` by default, see configs/train.yaml):

- UTKFace ``utkface/*.jpg`` (128x128 aligned chips), all of them;
- LFW ``lfw/<Person>/*.jpg`` (160x160), only the people in ``splits.json``'s
  ``lfw_train_identities``. ``lfw_eval_identities`` never train; a few of them are prepared
  separately for the sample grids in docs/img.

Each photo is reflect-padded (so the whole canonical crop has content: these chips are tightly
cropped), run through ``streamdp.detect.FaceDetector`` and ``streamdp.align`` exactly as the
runtime does, and the crop plus its keypoints (crop coordinates / S) are cached as one ``.npz``
under the cache folder (git-ignored ``data-cache/``). The photos themselves are never copied.
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def list_sources(root: Path, split: str) -> list[tuple[str, str]]:
    """(path, source) pairs for ``split`` = "train" or "eval" (eval: LFW eval identities only)."""
    root = Path(root)
    splits = json.loads((root / "splits.json").read_text())
    train_ids = set(splits["lfw_train_identities"])
    eval_ids = set(splits["lfw_eval_identities"])
    if train_ids & eval_ids:
        raise ValueError("splits.json: train and eval identities overlap")
    out: list[tuple[str, str]] = []
    if split == "train":
        out += [(str(p), "utkface") for p in sorted((root / "utkface").glob("*.jpg"))]
        for person in sorted(train_ids):
            out += [(str(p), "lfw") for p in sorted((root / "lfw" / person).glob("*.jpg"))]
    elif split == "eval":
        for person in sorted(eval_ids):
            out += [(str(p), "lfw-eval") for p in sorted((root / "lfw" / person).glob("*.jpg"))]
    else:
        raise ValueError(f"unknown split {split!r}")
    return out


_DETECTOR = None


def _detector():
    global _DETECTOR
    if _DETECTOR is None:
        from ..config import DetectConfig
        from ..detect import FaceDetector

        _DETECTOR = FaceDetector(DetectConfig(tiles=0, min_confidence=0.5))
    return _DETECTOR


def crop_one(path: str, crop_size: int, pad_fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray] | None:
    """Detect + align one photo; None when no face is found near its centre."""
    import cv2

    from ..align import estimate_transforms, transform_points, warp_crops

    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        return None
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    h, w = rgb.shape[:2]
    p = int(round(pad_fraction * max(h, w)))
    padded = cv2.copyMakeBorder(rgb, p, p, p, p, cv2.BORDER_REFLECT_101)
    dets = _detector().detect(np.ascontiguousarray(padded))
    if not len(dets):
        return None
    # The photo's own face: the best detection whose centre lies in the original photo's middle.
    centres = (dets.boxes[:, :2] + dets.boxes[:, 2:]) / 2 - p
    inside = (np.abs(centres[:, 0] - w / 2) < w * 0.25) & (np.abs(centres[:, 1] - h / 2) < h * 0.25)
    if not inside.any():
        return None
    idx = int(np.argmax(np.where(inside, dets.scores, -1.0)))
    kp = dets.keypoints[idx : idx + 1]
    m = estimate_transforms(kp, crop_size)
    crop = warp_crops(padded, m, crop_size)[0]
    kpc = transform_points(kp, m)[0] / crop_size
    return crop, kpc.reshape(12).astype(np.float32)


def _work(args: tuple[list[str], int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    paths, S = args
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    crops, kps, ok = [], [], []
    for i, path in enumerate(paths):
        r = crop_one(path, S)
        if r is not None:
            crops.append(r[0])
            kps.append(r[1])
            ok.append(i)
    c = np.stack(crops) if crops else np.zeros((0, S, S, 3), np.uint8)
    k = np.stack(kps) if kps else np.zeros((0, 12), np.float32)
    return c, k, np.asarray(ok, np.int64)


def prepare(root: Path, split: str, crop_size: int, out: Path, workers: int = 2, limit: int | None = None) -> Path:
    """Build (or reuse) the cached crops for ``split``; returns the ``.npz`` path."""
    out = Path(out)
    if out.is_file():
        log.info("using cached crops %s", out)
        return out
    items = list_sources(root, split)
    if limit is not None:
        rng = np.random.default_rng(0)
        items = [items[i] for i in sorted(rng.choice(len(items), size=min(limit, len(items)), replace=False))]
    paths = [p for p, _ in items]
    chunk = 500
    jobs = [(paths[i : i + chunk], crop_size) for i in range(0, len(paths), chunk)]
    crops, kps, keep = [], [], []
    with ProcessPoolExecutor(max_workers=workers) as ex:
        for j, (c, k, ok) in enumerate(ex.map(_work, jobs)):
            crops.append(c)
            kps.append(k)
            keep.append(ok + j * chunk)
            log.info("prepared %d/%d photos", min((j + 1) * chunk, len(paths)), len(paths))
    keep_idx = np.concatenate(keep)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        crops=np.concatenate(crops),
        keypoints=np.concatenate(kps),
        source=np.asarray([items[i][1] for i in keep_idx]),
        path=np.asarray([os.path.relpath(items[i][0], root) for i in keep_idx]),
        crop_size=np.int64(crop_size),
    )
    os.replace(tmp, out)
    log.info("cached %d of %d crops in %s", len(keep_idx), len(paths), out)
    return out


def load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}
