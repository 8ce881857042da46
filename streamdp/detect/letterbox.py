"""Images onto BlazeFace's 128x128 input as MediaPipe Tasks does it (see ``blazeface``): the
whole image padded to a centred square, sampled bilinearly by one warp, scaled to [-1, 1]."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .tiles import MirroredView

INPUT_SIZE = 128  # the short-range model's input side


def letterbox_matrix(width: int, height: int) -> tuple[np.ndarray, float, float, float]:
    """MediaPipe's image -> 128x128 mapping for the whole image padded to a centred square.

    Returns the 3x3 matrix (as ``cv2.getPerspectiveTransform`` builds it in MediaPipe) and the
    square's left, top and side in image pixels (relative model coordinates -> pixels:
    ``left + r * side``).
    """
    side = float(max(width, height))
    left = 0.5 * width - 0.5 * side
    top = 0.5 * height - 0.5 * side
    s = INPUT_SIZE / side
    m = np.array([[s, 0.0, -left * s], [0.0, s, -top * s], [0.0, 0.0, 1.0]], dtype=np.float64)
    return m, left, top, side


def letterbox(image: np.ndarray, out: np.ndarray | None = None) -> tuple[np.ndarray, tuple[float, float, float]]:
    """One image -> the model's float32 (128, 128, 3) input in [-1, 1], and (left, top, side)."""
    warped, lts = letterbox_u8(image)
    if out is None:
        out = np.empty((INPUT_SIZE, INPUT_SIZE, 3), dtype=np.float32)
    to_model_range(warped, out)
    return out, lts


def to_model_range(staged: np.ndarray, out: np.ndarray) -> None:
    """uint8 model inputs (one or a batch) -> float32 in [-1, 1], into ``out``."""
    np.multiply(staged, np.float32(2.0 / 255.0), out=out, casting="unsafe")
    out -= np.float32(1.0)


def letterbox_u8(image: np.ndarray, out: np.ndarray | None = None) -> tuple[np.ndarray, tuple[float, float, float]]:
    """``letterbox`` before the scaling to [-1, 1]: the (128, 128, 3) uint8 warp (into ``out``
    when given), and (left, top, side)."""
    import cv2

    h, w = image.shape[:2]
    m, left, top, side = letterbox_matrix(w, h)
    # MediaPipe builds a perspective matrix; this one is affine, and warpAffine gives the same
    # pixels (checked on random views of every shape) in ~20% less time
    src, border = image, cv2.BORDER_CONSTANT  # the letterbox bars black
    if isinstance(image, MirroredView):  # a square window past the frame's edges: no bars, mirrored
        m = m @ np.array([[1.0, 0.0, -image.x0], [0.0, 1.0, -image.y0], [0.0, 0.0, 1.0]])
        src, border = image.frame, cv2.BORDER_REFLECT_101
    warped = cv2.warpAffine(src, m[:2], (INPUT_SIZE, INPUT_SIZE), dst=out, flags=cv2.INTER_LINEAR,
                            borderMode=border, borderValue=(0, 0, 0))
    return warped, (left, top, side)


def prepare_views(images: Sequence[np.ndarray], staged: np.ndarray, batch: np.ndarray) -> None:
    """Each image letterboxed into ``staged[i]`` (uint8) and scaled to [-1, 1] into ``batch[i]``."""
    for i, img in enumerate(images):
        letterbox_u8(img, out=staged[i])
    to_model_range(staged, batch)
