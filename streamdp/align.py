"""Face alignment: a similarity transform from MediaPipe keypoints to a canonical ``S x S`` crop.

Canonical face (normalized crop coordinates, x right, y down, ``S`` = crop side): measured on 396
LFW faces with MediaPipe's own keypoints, in units of the eye distance ``e`` from the eye midpoint,
the keypoints sit at eyes (+-0.5, 0), nose tip (0, 0.57), mouth (0, 1.08), ear tragions
(-+1.05, 0.26), and the detector box spans (-1.18, -0.68)-(1.17, 1.78). A face runs from the
hairline (~1.3 e above the eyes) to the chin (~1.9 e below): 3.2 e tall, ~2.3 e wide. The template
uses ``e = 0.2 S`` and centres that face in the crop, so the face fills the central ~64% (height)
x ~46% (width) and the rest is context (hair, neck, background) a decoder can use.

Transforms are ``(N, 2, 3)`` float32 image->crop matrices (``crop = A @ [x, y, 1]``), fitted in
closed form (Umeyama, batched, deterministic) on the four inner keypoints; the ears are not used
(they are unreliable on turned faces). When keypoints are degenerate (non-finite, collapsed, or
implying a face size far from the box), the transform comes from the box alone (centre + size, no
rotation) and is flagged.

``face_mask`` is the canonical face region (an ellipse from hairline to chin and ear to ear, alpha
exactly 1 on it, feathered outward): what the decoder must not see in its context input and what
``composite.paste_crops`` replaces in the frame.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from .types import NUM_KEYPOINTS

EYE_DISTANCE = 0.2  # canonical eye distance, fraction of the crop side
_EYE_Y = 0.44  # canonical eye line: face (hairline..chin = -1.3e..+1.9e) centred at 0.5


def _canon(x_e: float, y_e: float) -> tuple[float, float]:
    return 0.5 + EYE_DISTANCE * x_e, _EYE_Y + EYE_DISTANCE * y_e


#: Canonical keypoints in normalized crop coordinates, MediaPipe order: right eye (image left),
#: left eye, nose tip, mouth centre, right ear tragion, left ear tragion.
CANONICAL_KEYPOINTS = np.array(
    [
        _canon(-0.5, 0.0),  # right eye
        _canon(0.5, 0.0),  # left eye
        _canon(0.0, 0.57),  # nose tip
        _canon(0.0, 1.08),  # mouth centre
        _canon(-1.05, 0.26),  # right ear tragion
        _canon(1.05, 0.26),  # left ear tragion
    ],
    dtype=np.float32,
)
#: Where the detector's box of a canonical face lands in the crop (normalized xyxy).
CANONICAL_BOX = np.array([*_canon(-1.175, -0.68), *_canon(1.175, 1.78)], dtype=np.float32)
#: Face ellipse (hairline to chin, ear to ear) in normalized crop coordinates: centre, radii.
#: Wide enough that both ear tragions of 96% of LFW faces fall inside (turned faces push one ear
#: out; the feather band covers most of the rest).
FACE_ELLIPSE_CENTER = (0.5, 0.49)
FACE_ELLIPSE_RADII = (0.30, 0.35)

#: Names the template and the face mask: a decoder trained on crops of one version must not run
#: on crops of another (store it in the model's metadata and compare at load time).
ALIGN_VERSION = (
    f"streamdp-align-1 eye_distance={EYE_DISTANCE} eye_y={_EYE_Y} "
    f"ellipse_center={FACE_ELLIPSE_CENTER} ellipse_radii={FACE_ELLIPSE_RADII}"
)

_INNER = np.array([0, 1, 2, 3])  # eyes, nose, mouth: the points the fit uses
# Fallback triggers
_MIN_EYE_TO_BOX = 0.1  # eye distance below this fraction of the box width: degenerate
_SIZE_RATIO_RANGE = (0.5, 2.0)  # face size implied by the keypoint fit vs the box's


def face_mask(S: int, feather: float = 0.15) -> np.ndarray:
    """``S x S`` float32 mask: 1 on the canonical face ellipse, feathered to 0 outward.

    The face ellipse covers forehead to chin and ear to ear; alpha is exactly 1 on all of it. The
    feather band lies *outside* the ellipse and is ``feather`` x the ellipse's width, clamped so
    that the mask is 0 on the crop's border (a pasted crop never shows its edge). The array is
    cached and read-only; copy it to modify.
    """
    return _face_mask(int(S), round(float(feather), 4))


@lru_cache(maxsize=32)
def _face_mask(S: int, feather: float) -> np.ndarray:
    cx, cy = FACE_ELLIPSE_CENTER[0] * S, FACE_ELLIPSE_CENTER[1] * S
    rx, ry = FACE_ELLIPSE_RADII[0] * S, FACE_ELLIPSE_RADII[1] * S
    band = feather * 2 * rx
    # keep ellipse + band inside the crop (1 px of zeros at the border)
    room = min(cx - rx, S - cx - rx, cy - ry, S - cy - ry) - 1.0
    band = float(np.clip(band, 0.0, max(room, 0.0)))
    ys, xs = np.mgrid[0:S, 0:S].astype(np.float32) + 0.5
    dx, dy = xs - cx, ys - cy
    d = np.sqrt((dx / rx) ** 2 + (dy / ry) ** 2)  # 1 on the ellipse
    dist = np.hypot(dx, dy)
    outside = np.where(d > 1.0, dist * (1.0 - 1.0 / np.maximum(d, 1e-6)), 0.0)  # radial px past it
    if band > 0:
        t = np.clip(outside / band, 0.0, 1.0)
        mask = 1.0 - t * t * (3.0 - 2.0 * t)  # smoothstep falloff
    else:
        mask = (d <= 1.0).astype(np.float32)
    mask = mask.astype(np.float32)
    mask.setflags(write=False)
    return mask


def _umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Batched least-squares similarity ``dst ~ s R src + t``; src/dst (N,K,2) -> (N,2,3) float64."""
    mu_s = src.mean(axis=1, keepdims=True)
    mu_d = dst.mean(axis=1, keepdims=True)
    p = src - mu_s
    q = dst - mu_d
    var = (p**2).sum(axis=(1, 2))
    dot = (p * q).sum(axis=(1, 2))  # sum p.q
    cross = (p[..., 0] * q[..., 1] - p[..., 1] * q[..., 0]).sum(axis=1)  # sum p x q
    with np.errstate(divide="ignore", invalid="ignore"):
        a = dot / var
        b = cross / var
    m = np.empty((len(src), 2, 3), dtype=np.float64)
    m[:, 0, 0] = a
    m[:, 0, 1] = -b
    m[:, 1, 0] = b
    m[:, 1, 1] = a
    m[:, :, 2] = mu_d[:, 0, :] - np.einsum("nij,nj->ni", m[:, :, :2], mu_s[:, 0, :])
    return m


def _box_transforms(boxes: np.ndarray, S: int) -> np.ndarray:
    """Map each box (xyxy) onto ``CANONICAL_BOX``: uniform scale, no rotation."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    cb = CANONICAL_BOX.astype(np.float64) * S
    c_src = (boxes[:, :2] + boxes[:, 2:]) / 2
    wh = np.clip(boxes[:, 2:] - boxes[:, :2], 1e-3, None)
    size_src = np.sqrt(wh[:, 0] * wh[:, 1])
    c_dst = (cb[:2] + cb[2:]) / 2
    size_dst = np.sqrt((cb[2] - cb[0]) * (cb[3] - cb[1]))
    s = size_dst / size_src
    m = np.zeros((len(boxes), 2, 3), dtype=np.float64)
    m[:, 0, 0] = s
    m[:, 1, 1] = s
    m[:, :, 2] = c_dst[None, :] - s[:, None] * c_src
    return m


def estimate_transforms(
    keypoints: np.ndarray,
    S: int,
    boxes: np.ndarray | None = None,
    *,
    box_margin: float = 0.0,
    return_fallback: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Image->crop similarity matrices ``(N, 2, 3)`` float32 for crops of side ``S``.

    ``keypoints``: (N, 6, 2) pixels (MediaPipe order). ``boxes``: optional (N, 4) xyxy face boxes,
    used to detect degenerate keypoints and as the fallback; if they are the tracker's cover boxes,
    pass the ``box_margin`` they were grown by so the fallback maps the face, not the margin.
    With ``return_fallback=True`` also returns a (N,) bool array marking box-only transforms.
    """
    kp = np.asarray(keypoints, dtype=np.float64).reshape(-1, NUM_KEYPOINTS, 2)
    n = len(kp)
    if n == 0:
        empty = np.zeros((0, 2, 3), dtype=np.float32)
        return (empty, np.zeros(0, dtype=bool)) if return_fallback else empty
    src = kp[:, _INNER]
    dst = np.broadcast_to(CANONICAL_KEYPOINTS[_INNER].astype(np.float64) * S, src.shape)
    finite = np.isfinite(src).all(axis=(1, 2))
    src_safe = np.where(finite[:, None, None], src, 0.0)
    m = _umeyama(src_safe, dst)
    scale = np.hypot(m[:, 0, 0], m[:, 1, 0])  # crop px per image px
    eye_dist = np.linalg.norm(src_safe[:, 1] - src_safe[:, 0], axis=1)
    spread = np.sqrt(((src_safe - src_safe.mean(axis=1, keepdims=True)) ** 2).sum(axis=(1, 2)))
    bad = ~finite | ~np.isfinite(m).all(axis=(1, 2)) | (spread < 2.0) | (scale <= 0)

    if boxes is not None:
        b = np.asarray(boxes, dtype=np.float64).reshape(n, 4).copy()
        if box_margin:
            c = (b[:, :2] + b[:, 2:]) / 2
            half = (b[:, 2:] - b[:, :2]) / 2 / (1.0 + 2.0 * box_margin)
            b = np.concatenate([c - half, c + half], axis=1)
        bw = np.sqrt(np.clip(b[:, 2] - b[:, 0], 1e-3, None) * np.clip(b[:, 3] - b[:, 1], 1e-3, None))
        cb = CANONICAL_BOX.astype(np.float64) * S
        canon_size = np.sqrt((cb[2] - cb[0]) * (cb[3] - cb[1]))
        with np.errstate(divide="ignore", invalid="ignore"):
            implied = canon_size / scale  # face box size (image px) the keypoint fit implies
            ratio = implied / bw
        lo, hi = _SIZE_RATIO_RANGE
        bad |= (eye_dist < _MIN_EYE_TO_BOX * bw) | ~(ratio >= lo) | ~(ratio <= hi)
        if bad.any():
            m[bad] = _box_transforms(b[bad], S)
    elif bad.any():
        # no box: the keypoints' own extent stands in for it (finite ones only)
        kb = np.where(finite[:, None, None], kp, 0.0)
        lo_pt, hi_pt = kb.min(axis=1), kb.max(axis=1)
        size = np.maximum((hi_pt - lo_pt).max(axis=1), 1.0)
        c = (lo_pt + hi_pt) / 2
        kp_boxes = np.concatenate([c - size[:, None] / 2, c + size[:, None] / 2], axis=1)
        m[bad] = _box_transforms(kp_boxes[bad], S)
    out = m.astype(np.float32)
    return (out, bad) if return_fallback else out


def invert_transforms(matrices: np.ndarray) -> np.ndarray:
    """Inverse of each (2,3) affine matrix: crop->image."""
    m = np.asarray(matrices, dtype=np.float64).reshape(-1, 2, 3)
    a = m[:, :, :2]
    inv = np.linalg.inv(a)
    t = -np.einsum("nij,nj->ni", inv, m[:, :, 2])
    return np.concatenate([inv, t[:, :, None]], axis=2).astype(np.float32)


def transform_points(points: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """Apply (N,2,3) matrices to (N,K,2) points (or (K,2) with a single (2,3) matrix)."""
    pts = np.asarray(points, dtype=np.float32)
    mats = np.asarray(matrices, dtype=np.float32)
    if mats.ndim == 2:
        return pts @ mats[:, :2].T + mats[:, 2]
    return np.einsum("nij,nkj->nki", mats[:, :, :2], pts) + mats[:, None, :, 2]


def warp_crops(
    image: np.ndarray, matrices: np.ndarray, S: int, out: np.ndarray | None = None
) -> np.ndarray:
    """Aligned crops ``(N, S, S, 3) uint8`` (bilinear, replicated border) from an RGB image."""
    mats = np.asarray(matrices, dtype=np.float32).reshape(-1, 2, 3)
    n = len(mats)
    if out is None or out.shape != (n, S, S, 3):
        out = np.empty((n, S, S, 3), dtype=np.uint8)
    for i in range(n):
        cv2.warpAffine(
            image, mats[i], (S, S), dst=out[i], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
    return out
