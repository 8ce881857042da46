"""The canvas search: each level of the tile pyramid as one downscaled copy of the frame.

The tile search cut a frame into overlapping 128x128 views of each level's size (a 256 px tile is
the frame at 1/2, a 512 px tile at 1/4...). BlazeFace is convolutional, so the same level can be
searched by running the model once on the whole frame downscaled by that factor (a *canvas*,
its sides padded to multiples of 16): the same anchors at the same scale, with no overlap counted
twice, no tile border cutting a face and no per-view overhead. At 1280x720 (files) the 37 tiles
and 14 mirrored edge tiles are 51 model inputs, their canvases about 26 inputs' worth of pixels.

* **Levels**: the tile pyramid's sizes (``tiles.plan_tiles``), each a scale of ``size / 128``
  frame pixels per canvas pixel; only those ``canvas_sizes`` needs (a canvas level finds a wider
  range of face sizes than a 128 px tile: 720p searches 224 and 720, not 448).
* **Edges**: the canvas is mirrored outside the frame's edges by half a model input (64 px, as
  the mirrored edge tiles: ``cfg.edge_search``), so a face cut by the border is completed by its
  mirror image; mirror ghosts are dropped later (``candidates.finalize``).
* **Bands**: when the search is spread over N frames (files: the look-back), each canvas is cut
  along its long side into bands overlapping by ``BAND_OVERLAP`` canvas pixels (more than the
  largest face a level has to find whole: bigger faces are the next level's), and the bands are
  dealt over the N frames to even the cost. A face touching a band's inner border is flagged cut
  (``Candidates.cut``), as a tile-cut face was.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..config import DetectConfig
from .candidates import Candidates
from .tiles import CUT_MARGIN, plan_tiles

MODEL_INPUT = 128
EDGE_PAD = MODEL_INPUT // 2  # canvas pixels mirrored beyond a searched edge (half a model input)
BAND_OVERLAP = 48  # canvas pixels two neighbouring bands share (> the ~32 px faces a level must find whole)
MIN_BAND = 128  # a band is never narrower than the model's own input
# A level finds faces from ~18 canvas pixels (32 px at 1.75 frame pixels per canvas pixel) to beyond
# 148 (260 px faces at 224, all found): levels up to ~8x apart leave no size between them.
MAX_LEVEL_RATIO = 5.0
ALIGN = 16  # the model's coarsest stride: canvas sides are multiples of it
CUT_MARGIN_PX = CUT_MARGIN * MODEL_INPUT  # a box this close to a band's inner border is cut (as at a tile's)


def _up(n: float) -> int:
    return int(math.ceil(n / ALIGN) * ALIGN)


@dataclass(frozen=True)
class Level:
    """One pyramid level: the frame downscaled to ``cw x ch`` canvas pixels, mirrored by
    ``pad_x``/``pad_y`` each side, black beyond to ``width x height`` (multiples of 16)."""

    size: int  # the tile size it stands for (frame pixels seen as 128 canvas pixels)
    cw: int
    ch: int
    pad_x: int
    pad_y: int
    width: int
    height: int
    fx: float  # frame pixels per canvas pixel, horizontally
    fy: float

    @property
    def content_w(self) -> int:
        return self.cw + 2 * self.pad_x

    @property
    def content_h(self) -> int:
        return self.ch + 2 * self.pad_y


@dataclass(frozen=True)
class Band:
    """A rectangle ``[u0, u1) x [v0, v1)`` of a level's canvas (sides multiples of 16)."""

    level: int  # index into the plan's levels
    u0: int
    v0: int
    u1: int
    v1: int

    @property
    def area(self) -> int:
        return (self.u1 - self.u0) * (self.v1 - self.v0)


@dataclass(frozen=True)
class CanvasPlan:
    levels: tuple[Level, ...]
    phases: tuple[tuple[Band, ...], ...]  # the bands searched by frame i: phases[i % len(phases)]

    def frames_worth(self, frame_index: int) -> int:
        """How many frames' even share of the spread's search frame ``frame_index`` does (at least
        1): a frame searching the finest level whole gets that many frames' second looks, as
        the same candidates spread over several frames would have had."""
        total = sum(b.area for ph in self.phases for b in ph)
        if not total:
            return 1
        mine = sum(b.area for b in self.phases[frame_index % len(self.phases)])
        return max(1, round(len(self.phases) * mine / total))


def _level(width: int, height: int, size: int, cfg: DetectConfig) -> Level:
    f = size / MODEL_INPUT
    cw, ch = max(1, round(width / f)), max(1, round(height / f))
    pad_x = min(EDGE_PAD, cw - 1) if cfg.edge_search != "off" else 0
    pad_y = min(EDGE_PAD, ch - 1) if cfg.edge_search == "all" else 0
    return Level(size, cw, ch, pad_x, pad_y, _up(cw + 2 * pad_x), _up(ch + 2 * pad_y), width / cw, height / ch)


def _split(length: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` windows (starts and ends multiples of 16) covering ``[0, length)`` with at least
    ``BAND_OVERLAP`` in common between neighbours; the last ends at ``length`` (a multiple of 16)."""
    if parts <= 1:
        return [(0, length)]
    side = _up((length - BAND_OVERLAP) / parts + BAND_OVERLAP)
    starts = [int(round(i * (length - side) / (parts - 1) / ALIGN)) * ALIGN for i in range(parts)]
    return [(s, min(s + side, length)) for s in starts]


def _bands(index: int, lv: Level, parts: int) -> list[Band]:
    long_is_x = lv.width >= lv.height
    length = lv.width if long_is_x else lv.height
    most = max(1, (length - BAND_OVERLAP) // (MIN_BAND - BAND_OVERLAP))
    spans = _split(length, max(1, min(parts, most)))
    if long_is_x:
        return [Band(index, a, 0, b, lv.height) for a, b in spans]
    return [Band(index, 0, a, lv.width, b) for a, b in spans]


def canvas_sizes(sizes: list[int]) -> list[int]:
    """The pyramid's sizes (ascending) a canvas search needs: the finest and the coarsest, and
    between them only those that keep two consecutive searched levels within ``MAX_LEVEL_RATIO``
    (1280x720: 224, 720, without 448; 1920x1080: 224, 1080; 3840x2160: 224, 896, 2160)."""
    kept = sizes[:1]
    for i, size in enumerate(sizes[1:], 1):
        if i == len(sizes) - 1 or sizes[i + 1] > MAX_LEVEL_RATIO * kept[-1]:
            kept.append(size)
    return kept


def plan_canvases(width: int, height: int, cfg: DetectConfig, spread: int) -> CanvasPlan:
    """The levels of a ``width x height`` frame and their bands dealt over ``spread`` frames
    (largest first to the lightest frame), so each frame searches about 1/``spread`` of them."""
    sizes = canvas_sizes(sorted({t.size for t in plan_tiles(width, height, cfg)}))
    levels = tuple(_level(width, height, s, cfg) for s in sizes)
    spread = max(1, int(spread))
    total = sum(lv.width * lv.height for lv in levels)
    bands: list[Band] = []
    for i, lv in enumerate(levels):
        share = lv.width * lv.height / total if total else 1.0
        bands += _bands(i, lv, max(1, round(share * spread)) if spread > 1 else 1)
    loads = [0] * spread
    phases: list[list[Band]] = [[] for _ in range(spread)]
    for band in sorted(bands, key=lambda b: -b.area):
        k = loads.index(min(loads))
        phases[k].append(band)
        loads[k] += band.area
    return CanvasPlan(levels, tuple(tuple(p) for p in phases))


def build_canvas(img: np.ndarray, lv: Level) -> np.ndarray:
    """The frame at the level's scale (bilinear, as the tile views were sampled: 7x cheaper than
    area-averaging at non-integer scales, and the same recall), mirrored at the searched edges, black to
    the aligned size."""
    import cv2

    small = cv2.resize(img, (lv.cw, lv.ch), interpolation=cv2.INTER_LINEAR)
    return cv2.copyMakeBorder(small, lv.pad_y, lv.height - lv.ch - lv.pad_y, lv.pad_x, lv.width - lv.cw - lv.pad_x,
                              cv2.BORDER_CONSTANT, value=(0, 0, 0)) if not (lv.pad_x or lv.pad_y) else _mirrored(small, lv)


def _mirrored(small: np.ndarray, lv: Level) -> np.ndarray:
    import cv2

    canvas = np.zeros((lv.height, lv.width, 3), dtype=np.uint8)
    canvas[: lv.content_h, : lv.content_w] = cv2.copyMakeBorder(small, lv.pad_y, lv.pad_y, lv.pad_x, lv.pad_x, cv2.BORDER_REFLECT_101)
    return canvas


def band_rect(band: Band, lv: Level) -> tuple[float, float, float, float]:
    """The part of the frame a band shows (frame pixels, clipped to the frame: its mirrored
    margins repeat pixels inside it)."""
    w, h = lv.cw * lv.fx, lv.ch * lv.fy
    x0, x1 = (band.u0 - lv.pad_x) * lv.fx, (band.u1 - lv.pad_x) * lv.fx
    y0, y1 = (band.v0 - lv.pad_y) * lv.fy, (band.v1 - lv.pad_y) * lv.fy
    return max(x0, 0.0), max(y0, 0.0), min(x1, w), min(y1, h)


def band_candidates(band: Band, lv: Level, b: np.ndarray, s: np.ndarray, k: np.ndarray) -> Candidates | None:
    """One band's detections (band pixels) as frame-pixel candidates; ``cut`` where a box
    touches an inner border of the band (another band goes on beyond it)."""
    if not len(b):
        return None
    b = b.copy()
    k = k.copy()
    # clip to the band (a box hanging out of it is a cut one anyway)
    np.clip(b[:, 0::2], 0, band.u1 - band.u0, out=b[:, 0::2])
    np.clip(b[:, 1::2], 0, band.v1 - band.v0, out=b[:, 1::2])
    m = CUT_MARGIN_PX
    cut = np.zeros(len(b), dtype=bool)
    if band.u0 > 0:
        cut |= b[:, 0] <= m
    if band.v0 > 0:
        cut |= b[:, 1] <= m
    if band.u1 < lv.content_w:
        cut |= b[:, 2] >= band.u1 - band.u0 - m
    if band.v1 < lv.content_h:
        cut |= b[:, 3] >= band.v1 - band.v0 - m
    rel = (np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) / MODEL_INPUT).astype(np.float32)
    ox, oy = band.u0 - lv.pad_x, band.v0 - lv.pad_y
    scale = np.array([lv.fx, lv.fy, lv.fx, lv.fy], dtype=np.float32)
    boxes = ((b + np.array([ox, oy, ox, oy], dtype=np.float32)) * scale).astype(np.float32)
    kps = ((k + np.array([ox, oy], dtype=np.float32)) * scale[:2]).astype(np.float32)
    n = len(b)
    return Candidates(boxes, s.astype(np.float32), kps, cut, rel, np.zeros(n, bool), np.zeros(n, bool))
