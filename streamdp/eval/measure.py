"""What a worker measures on one image, cached by content: the pipeline's and dlib-HOG's detections,
an adversary's own face location and its descriptor (cache namespaces below)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .cache import array_key
from .worker import WORKER, cache_get, cache_put

DETECT_NS = "pipeline-detect-v1"
HOG_NS = "dlib-hog-v1"
MAX_DETS = 4


def load_rgb(path: Path) -> np.ndarray:
    from ..source import read_image

    return read_image(path).image


def pad_image(image: np.ndarray, pad: int) -> np.ndarray:
    import cv2

    if pad <= 0:
        return np.ascontiguousarray(image)
    return cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)


def pad_px(image: np.ndarray, frac: float) -> int:
    return int(round(frac * max(image.shape[:2])))


def detect_pipeline(canvas: np.ndarray, pad: int, use_cache: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pipeline detector on a padded canvas -> boxes, keypoints (photo coordinates), scores."""
    key = array_key(canvas, "detect") if use_cache else None
    hit = cache_get(DETECT_NS, key) if key else None
    if hit is None:
        det = WORKER["stage"].detector.detect(canvas, 0)
        n = min(len(det), MAX_DETS)
        row = np.full(1 + MAX_DETS * 17, np.nan, np.float32)
        row[0] = n
        for i in range(n):
            row[1 + 17 * i : 1 + 17 * (i + 1)] = np.concatenate([det.boxes[i], det.keypoints[i].ravel(), det.scores[i : i + 1]])
        if key:
            cache_put(DETECT_NS, key, row)
        hit = row
    n = int(hit[0])
    d = hit[1 : 1 + 17 * n].reshape(n, 17)
    return d[:, :4] - pad, d[:, 4:16].reshape(n, 6, 2) - pad, d[:, 16]


def detect_hog(image: np.ndarray, use_cache: bool) -> tuple[np.ndarray, np.ndarray]:
    hog = WORKER["hog"]
    if hog is None:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    key = array_key(image, "hog1") if use_cache else None
    hit = cache_get(HOG_NS, key) if key else None
    if hit is None:
        rects, scores, _ = hog.run(np.ascontiguousarray(image), 1, 0.0)
        boxes = np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in rects], np.float32).reshape(-1, 4)
        sc = np.asarray(scores, np.float32)
        order = np.argsort(-sc)[:MAX_DETS]
        hit = np.concatenate([[len(order)], np.concatenate([boxes[order], sc[order, None]], 1).ravel()]).astype(np.float32)
        if key:
            cache_put(HOG_NS, key, hit)
    n = int(hit[0])
    d = hit[1 : 1 + 5 * n].reshape(n, 5)
    return d[:, :4], d[:, 4]


def default_box(shape: tuple[int, ...]) -> np.ndarray:
    h, w = shape[:2]
    return np.array([0.2 * w, 0.15 * h, 0.8 * w, 0.9 * h], np.float32)


def embed(adv: Any, image: np.ndarray, geometry: np.ndarray, use_cache: bool) -> np.ndarray:
    key = array_key(image, geometry) if use_cache else None
    hit = cache_get(adv.namespace, key) if key else None
    if hit is None:
        hit = adv.embed(image, geometry)
        if key:
            cache_put(adv.namespace, key, hit)
    return hit


def locate(adv: Any, image: np.ndarray, use_cache: bool, hog: Any = None) -> np.ndarray | None:
    """The adversary's own detection, cached (an empty vector = not found)."""
    ns = adv.namespace + "-locate-central"
    key = array_key(image) if use_cache else None
    hit = cache_get(ns, key) if key else None
    if hit is None:
        if hog is not None and adv.name == "dlib":
            g = adv.locate(image, hog=hog)
        else:
            g = adv.locate(image)
        hit = np.zeros(0, np.float32) if g is None else np.asarray(g, np.float32)
        if key:
            cache_put(ns, key, hit)
    return hit if hit.size else None
