"""Putting privatized faces back into the frame, in place.

``paste_crops``: aligned crops (from a face decoder) are warped back with the inverse of their
alignment transform and alpha-blended through the warped feathered face mask. Only the region of
the frame the mask can touch is processed (an ROI), never the full frame.

``cover_boxes``: the helper pixel mechanisms (pixelate, blur, solid) use. Choice, documented: the
whole box is covered with alpha exactly 1 — the tracker's boxes already carry the face margin, so
the un-margined face is strictly inside and is always fully replaced; ``feather`` > 0 only adds a
soft band of ``feather * box size`` pixels *outside* the box, where the mechanism's output fades
into the original. ``fn`` is called on the box plus that band, so the band blends towards the same
processed content as the box (no seam). Nothing inside the box is ever partially visible.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import cv2
import numpy as np


def _mask_support(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding rectangle (x0, y0, x1, y1) of the mask's non-zero pixels."""
    x, y, w, h = cv2.boundingRect((mask > 0).astype(np.uint8))
    return (0, 0, 0, 0) if w == 0 or h == 0 else (x, y, x + w, y + h)


def paste_crops(image: np.ndarray, crops: np.ndarray, matrices: np.ndarray, mask: np.ndarray) -> None:
    """Blend each crop back into ``image`` (HxWx3 uint8, modified in place).

    ``crops``: (N, S, S, 3) uint8; ``matrices``: (N, 2, 3) image->crop transforms (the ones the
    crops were taken with); ``mask``: (S, S) float alpha in [0, 1] in crop coordinates. Where the
    mask is 1 the frame gets the crop's pixels exactly (up to bilinear resampling).
    """
    crops = np.asarray(crops)
    mats = np.asarray(matrices, dtype=np.float64).reshape(-1, 2, 3)
    if len(crops) != len(mats):
        raise ValueError(f"{len(crops)} crops but {len(mats)} matrices")
    if len(mats) == 0:
        return
    S = crops.shape[1]
    mask = np.asarray(mask, dtype=np.float32)
    if mask.shape != (S, S):
        raise ValueError(f"mask shape {mask.shape} does not match crops of {S}x{S}")
    # alpha in 1/255 steps: the blend runs on uint8 (3x cheaper than in float32 for a big face),
    # and 1 stays exactly 1 (the crop's pixels) and 0 exactly 0 (the frame's)
    mask8 = np.rint(np.clip(mask, 0.0, 1.0) * 255.0).astype(np.uint8)
    h, w = image.shape[:2]
    sx0, sy0, sx1, sy1 = _mask_support(mask8)
    if sx1 <= sx0:
        return
    corners = np.array([[sx0, sy0], [sx1, sy0], [sx0, sy1], [sx1, sy1]], dtype=np.float64)
    for i in range(len(mats)):
        m = mats[i]
        a = m[:, :2]
        det = np.linalg.det(a)
        if not np.isfinite(det) or abs(det) < 1e-12:
            continue
        inv_a = np.linalg.inv(a)
        # mask support corners -> image, bounding ROI (1 px slack for bilinear), clipped
        pts = (corners - m[:, 2]) @ inv_a.T
        x0 = max(int(np.floor(pts[:, 0].min())) - 1, 0)
        y0 = max(int(np.floor(pts[:, 1].min())) - 1, 0)
        x1 = min(int(np.ceil(pts[:, 0].max())) + 1, w)
        y1 = min(int(np.ceil(pts[:, 1].max())) + 1, h)
        if x1 <= x0 or y1 <= y0:
            continue
        # ROI pixel (u, v) is image pixel (u + x0, v + y0): shift the image->crop matrix
        mr = m.copy()
        mr[:, 2] += a @ np.array([x0, y0], dtype=np.float64)
        size = (x1 - x0, y1 - y0)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        crop = np.ascontiguousarray(crops[i])  # e.g. a transposed (N, 3, S, S) model output
        face = cv2.warpAffine(crop, mr, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
        alpha = cv2.warpAffine(mask8, mr, size, flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        _blend_u8(image[y0:y1, x0:x1], face, alpha)


def _blend_u8(roi: np.ndarray, src: np.ndarray, alpha: np.ndarray) -> None:
    """``_blend`` with a uint8 alpha (255 = src): roi = round(src * a / 255) + round(roi * (255 - a) / 255),
    in place, within 1 grey level of the exact mix; a == 255 gives src exactly, 0 roi."""
    a3 = cv2.merge([alpha, alpha, alpha])
    fg = cv2.multiply(src, a3, scale=1.0 / 255.0)
    bg = cv2.multiply(roi, cv2.bitwise_not(a3), scale=1.0 / 255.0)
    roi[...] = cv2.add(fg, bg)


def _blend(roi: np.ndarray, src: np.ndarray, alpha: np.ndarray) -> None:
    """roi = src * alpha + roi * (1 - alpha), in place; alpha == 1 gives src exactly, 0 roi."""
    a = np.ascontiguousarray(alpha, dtype=np.float32)
    roi[...] = cv2.blendLinear(np.ascontiguousarray(src), np.ascontiguousarray(roi), a, 1.0 - a)


# A few entries only: a moving face makes a new key every frame, and an entry is up to a few MB
# (256 entries held 550 MB at 720p); a still face or a still image still hits.
@lru_cache(maxsize=8)
def _band_alpha(
    h: int, w: int, bx0: int, by0: int, bx1: int, by1: int, band: float, shape: str
) -> np.ndarray:
    """Alpha over an h x w ROI: 1 on the cover region, smoothstep to 0 over ``band`` px outside."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    if shape == "ellipse":
        cx, cy = (bx0 + bx1) / 2, (by0 + by1) / 2
        # ellipse circumscribing the box (same aspect): every box pixel is inside it
        rx, ry = (bx1 - bx0) / 2 * np.sqrt(2), (by1 - by0) / 2 * np.sqrt(2)
        dx, dy = xs - cx, ys - cy
        d = np.sqrt((dx / max(rx, 1e-3)) ** 2 + (dy / max(ry, 1e-3)) ** 2)
        outside = np.where(d > 1, np.hypot(dx, dy) * (1 - 1 / np.maximum(d, 1e-6)), 0.0)
    else:
        ox = np.maximum(np.maximum(bx0 - xs, xs - bx1), 0)
        oy = np.maximum(np.maximum(by0 - ys, ys - by1), 0)
        outside = np.hypot(ox, oy)  # rounded corners in the band
    t = np.clip(outside / max(band, 1e-6), 0, 1)
    a = (1 - t * t * (3 - 2 * t)).astype(np.float32)
    a.setflags(write=False)
    return a


def _cover_rect_feathered(image: np.ndarray, box: tuple[int, int, int, int], band: float,
                          fn: Callable[[np.ndarray], np.ndarray]) -> None:
    """``cover_boxes`` for one whole-pixel box with a soft outer band (rect shape): the box gets
    ``fn``'s output exactly, and only the band's four strips are blended (alpha from the distance
    to the box, built from one row and one column: a big face costs its band, not its area)."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = box
    e = int(np.ceil(band))
    ex0, ey0, ex1, ey1 = max(x0 - e, 0), max(y0 - e, 0), min(x1 + e, w), min(y1 + e, h)
    roi = image[ey0:ey1, ex0:ex1]
    bx0, by0, bx1, by1 = x0 - ex0, y0 - ey0, x1 - ex0, y1 - ey0
    rh, rw = roi.shape[:2]
    # the band's strips: above, below, left of and right of the box (ROI coordinates)
    strips = [s for s in ((0, by0, 0, rw), (by1, rh, 0, rw), (by0, by1, 0, bx0), (by0, by1, bx1, rw))
              if s[1] > s[0] and s[3] > s[2]]
    orig = [roi[r0:r1, c0:c1].copy() for r0, r1, c0, c1 in strips]
    res = fn(roi)
    if res is not roi:
        roi[...] = res
    if not strips:
        return
    xs = np.arange(rw, dtype=np.float32) + np.float32(0.5)
    ys = np.arange(rh, dtype=np.float32) + np.float32(0.5)
    ox = np.maximum(np.maximum(bx0 - xs, xs - bx1), 0)
    oy = np.maximum(np.maximum(by0 - ys, ys - by1), 0)
    inv = np.float32(1.0 / max(band, 1e-6))
    for (r0, r1, c0, c1), before in zip(strips, orig):
        # the strip holds fn's output; fade it back to the original outside the box
        if (r1 - r0) * (c1 - c0) >= _U8_BAND_MIN_PIXELS:
            _blend_u8(roi[r0:r1, c0:c1], before, _fade_back8(oy[r0:r1], ox[c0:c1], inv))
            continue
        t = np.minimum(np.sqrt(oy[r0:r1, None] ** 2 + ox[None, c0:c1] ** 2) * inv, 1)  # rounded corners
        _blend(roi[r0:r1, c0:c1], before, t * t * (3 - 2 * t))


#: A band strip at least this big is blended in uint8 (``_fade_back8``); a small face's strips
#: keep the float blend, which takes fewer calls (three 100 px faces: 0.63 against 0.77 ms).
_U8_BAND_MIN_PIXELS = 16384


def _fade_back8(oy: np.ndarray, ox: np.ndarray, inv_band: np.float32) -> np.ndarray:
    """uint8 weight of the original pixels over a band strip: 255 * smoothstep(distance / band),
    the distance to the box from its rows' (``oy``) and columns' (``ox``) offsets (rounded
    corners). Where a strip lies beside the box one offset is 0 throughout and the weight is one
    row or column broadcast; only the corners take a 2-D distance (a big face's band is mostly
    straight: a 1080p face's cover 6.1 -> 4.9 ms of CPU in the pipeline)."""

    def weight(outside: np.ndarray) -> np.ndarray:
        t = np.minimum(outside * inv_band, 1)
        return np.rint(t * t * (3 - 2 * t) * 255).astype(np.uint8)

    h, w = len(oy), len(ox)
    if not oy.any():
        return np.ascontiguousarray(np.broadcast_to(weight(ox)[None, :], (h, w)))
    if not ox.any():
        return np.ascontiguousarray(np.broadcast_to(weight(oy)[:, None], (h, w)))
    out = np.empty((h, w), np.uint8)
    inside = ox == 0  # columns above or below the box: the row's offset alone
    out[:, inside] = weight(oy)[:, None]
    out[:, ~inside] = weight(np.sqrt(oy[:, None] ** 2 + ox[None, ~inside] ** 2))
    return out


def cover_boxes(
    image: np.ndarray,
    boxes: np.ndarray,
    fn: Callable[[np.ndarray], np.ndarray],
    feather: float = 0.0,
    shape: str = "rect",
) -> None:
    """Replace every box of ``image`` (in place) by ``fn(roi)``; see the module doc for the choice.

    ``boxes``: (N, 4) xyxy pixels (clipped here, rounded outward). ``fn`` takes an ``h x w x 3``
    uint8 view and returns an array of the same shape (it may modify and return its input).
    ``feather``: width of the outward soft band as a fraction of the box size (mean of its sides);
    0 = hard edge. ``shape``: ``"rect"`` (alpha 1 on the box) or ``"ellipse"`` (alpha 1 on the
    ellipse circumscribing the box — still covers the whole box, with rounder edges, at the cost of
    covering more outside it).
    """
    if shape not in ("rect", "ellipse"):
        raise ValueError(f"shape must be 'rect' or 'ellipse', got {shape!r}")
    h, w = image.shape[:2]
    bx = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    for x0f, y0f, x1f, y1f in bx:
        if not np.isfinite([x0f, y0f, x1f, y1f]).all():
            continue
        x0, y0 = max(int(np.floor(x0f)), 0), max(int(np.floor(y0f)), 0)
        x1, y1 = min(int(np.ceil(x1f)), w), min(int(np.ceil(y1f)), h)
        if x1 <= x0 or y1 <= y0:
            continue
        if feather <= 0 and shape == "rect":
            roi = image[y0:y1, x0:x1]
            res = fn(roi)
            if res is not roi:
                roi[...] = res
            continue
        bw, bh = x1f - x0f, y1f - y0f
        band = max(float(feather) * (bw + bh) / 2, 0.0)
        if shape == "rect":
            _cover_rect_feathered(image, (x0, y0, x1, y1), band, fn)
            continue
        ext = band + (np.sqrt(2) - 1) / 2 * max(bw, bh)
        e = int(np.ceil(ext))
        ex0, ey0 = max(x0 - e, 0), max(y0 - e, 0)
        ex1, ey1 = min(x1 + e, w), min(y1 + e, h)
        roi = image[ey0:ey1, ex0:ex1]
        orig = roi.copy()
        res = fn(roi)
        if res is not roi:
            roi[...] = res
        alpha = _band_alpha(
            ey1 - ey0, ex1 - ex0, x0 - ex0, y0 - ey0, x1 - ex0, y1 - ey0, round(band, 2), shape
        )
        # roi currently holds fn's output; fade it back to the original outside the cover region
        _blend(roi, orig, 1.0 - alpha)
