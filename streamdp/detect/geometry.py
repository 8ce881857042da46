"""Box geometry, vectorized: IoU / intersection-over-area matrices, greedy NMS, square crops.

Boxes are ``(N, 4)`` xyxy arrays in pixels. The tracker and the mechanisms use these too.
"""

from __future__ import annotations

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N,4) with every box in ``b`` (M,4), xyxy -> (N, M) float32."""
    a = np.asarray(a, dtype=np.float32).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float32).reshape(-1, 4)
    inter = _intersection(a, b)
    area_a = _areas(a)
    area_b = _areas(b)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return iou.astype(np.float32, copy=False)


def box_ioa(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over the area of ``a``: fraction of each box of ``a`` inside each box of ``b``."""
    a = np.asarray(a, dtype=np.float32).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float32).reshape(-1, 4)
    inter = _intersection(a, b)
    area_a = _areas(a)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        ioa = np.where(area_a > 0, inter / area_a, 0.0)
    return ioa.astype(np.float32, copy=False)


def _areas(b: np.ndarray) -> np.ndarray:
    wh = np.clip(b[:, 2:4] - b[:, 0:2], 0, None)
    return wh[:, 0] * wh[:, 1]


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:4], b[None, :, 2:4])
    wh = np.clip(rb - lt, 0, None)
    return wh[..., 0] * wh[..., 1]


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float, contained: float | None = None) -> np.ndarray:
    """Greedy non-maximum suppression; returns kept indices, highest score first.

    The pairwise IoU matrix is computed once (vectorized); the greedy pass loops over kept boxes
    only. With ``contained`` set, a lower-scored box with at least that fraction of its own area
    inside a kept box is suppressed too.
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    n = len(boxes)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-scores, kind="stable")
    b = boxes[order]
    over = box_iou(b, b) > iou
    if contained is not None:
        # row i = candidate, column j = kept box: suppress i if mostly inside j
        over |= box_ioa(b, b).T >= contained
    alive = np.ones(n, dtype=bool)
    keep = []
    for i in range(n):
        if not alive[i]:
            continue
        keep.append(i)
        alive &= ~over[i]
    return order[np.asarray(keep, dtype=np.int64)]


def rel_size(boxes: np.ndarray, input_side: int) -> np.ndarray:
    """Box size as a fraction of the (letterboxed, square) input the model saw."""
    size = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    return (size / float(max(input_side, 1))).astype(np.float32)


def square_crop(img: np.ndarray, centre: np.ndarray, side: int) -> tuple[np.ndarray, int, int]:
    """A ``side`` square around ``centre``, moved inside the frame (cut by it if larger), and its
    top-left corner in the frame."""
    h, w = img.shape[:2]
    x0 = int(np.clip(round(centre[0] - side / 2), 0, max(w - side, 0)))
    y0 = int(np.clip(round(centre[1] - side / 2), 0, max(h - side, 0)))
    return img[y0 : min(y0 + side, h), x0 : min(x0 + side, w)], x0, y0
