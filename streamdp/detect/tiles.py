"""The tile plan: which square pieces of a frame are searched besides the full frame.

A face is reliably found only in a view that contains all of it and where it is at least ~0.1 of
the view's side; ``plan_tiles`` builds the pyramid of grids that guarantees such a view for every
face size, ``plan_edge_tiles`` the views centred on the frame's edges (mirrored outside it) for
faces the border cuts. See the package docstring for the measurements behind the numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..config import DetectConfig

# A tile detection is "cut" when its box comes within this fraction of the tile size of an inner
# tile border.
CUT_MARGIN = 0.01
# Tiling pays off only for frames clearly larger than one tile.
AUTO_TILE_RATIO = 1.25


@dataclass(frozen=True)
class Tile:
    x0: int
    y0: int
    size: int  # square side in frame pixels (clipped frames give x1-x0 == y1-y0 == size)

    @property
    def x1(self) -> int:
        return self.x0 + self.size

    @property
    def y1(self) -> int:
        return self.y0 + self.size


def _starts(length: int, size: int, overlap: float) -> list[int]:
    """Evenly spread starts of ``size`` windows covering ``[0, length)`` with at least ``overlap``."""
    if size >= length:
        return [0]
    stride = max(1.0, size * (1.0 - overlap))
    n = math.ceil((length - size) / stride) + 1
    return [round(i * (length - size) / (n - 1)) for i in range(n)]


def _grid(width: int, height: int, size: int, overlap: float) -> list[Tile]:
    size = min(size, width, height)
    return [Tile(x, y, size) for y in _starts(height, size, overlap) for x in _starts(width, size, overlap)]


def plan_tiles(width: int, height: int, cfg: DetectConfig) -> list[Tile]:
    """The square tiles searched on top of the full frame (empty when tiling is off/not useful)."""
    short, long_ = min(width, height), max(width, height)
    if cfg.tiles == 0:
        return []
    if cfg.tiles == "auto":
        tile_size = cfg.effective_tile_size()  # "auto" here is live's; pipelines settle it (for_pipeline)
        if long_ <= AUTO_TILE_RATIO * tile_size:
            return []
        base = tile_size
    else:
        n = int(cfg.tiles)
        # n rows of squares covering the height with the configured overlap
        base = max(32, int(height / (n - (n - 1) * cfg.tile_overlap)))
    levels: list[int] = []
    size = base
    while size * AUTO_TILE_RATIO <= short:  # levels clearly finer than the short side
        levels.append(size)
        size *= 2
    if long_ > 1.1 * short or not levels:
        # short-side squares: finer than the letterboxed full frame for a non-square frame, and
        # they fully contain the faces too big for the last grid's overlap
        levels.append(short)
    tiles = [t for s in levels for t in _grid(width, height, s, cfg.tile_overlap)]
    # a single tile equal to the whole frame adds nothing
    return [t for t in tiles if not (t.size >= width and t.size >= height)]


def _levels(width: int, height: int, cfg: DetectConfig) -> list[int]:
    """The tile sizes of ``plan_tiles`` (the short side alone when the frame is not tiled)."""
    sizes = sorted({t.size for t in plan_tiles(width, height, cfg)})
    return sizes or [min(width, height)]


def plan_edge_tiles(width: int, height: int, cfg: DetectConfig) -> list[Tile]:
    """Square tiles centred on the frame's edges (half of each lies outside the frame and is
    filled by mirroring the frame at that edge), one row per tile size along each searched edge.

    Why: the model does not see a face cut by the frame's border (measured on LFW faces sliding out
    at the right edge of a 640x360 frame: the plain search found 2 of 12 at 80% visible and none
    below, zero padding 70-80%; mirrored at the edge, 12 of 12 from 40% visible and 5 of 12 at
    30%): the mirror completes a cut face into a roughly symmetric whole one. ``cfg.edge_search``:
    "sides" (left and right: where people walk in and out), "all", or "off".
    """
    if cfg.edge_search == "off":
        return []
    tiles: list[Tile] = []
    for size in _levels(width, height, cfg):
        half = size // 2
        for y in _starts(height, min(size, height), cfg.tile_overlap):
            y = y if size <= height else (height - size) // 2
            tiles += [Tile(-half, y, size), Tile(width - size + half, y, size)]
        if cfg.edge_search == "all":
            for x in _starts(width, min(size, width), cfg.tile_overlap):
                x = x if size <= width else (width - size) // 2
                tiles += [Tile(x, -half, size), Tile(x, height - size + half, size)]
    return tiles


def mirror_padded(image: np.ndarray, pad: int) -> np.ndarray:
    """``image`` with ``pad`` pixels mirrored outside each edge (edge pixel not repeated)."""
    import cv2

    pad = min(pad, image.shape[0] - 1, image.shape[1] - 1)
    return cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)


class MirrorFrame:
    """A frame as if mirror-padded by ``pad`` pixels (as ``mirror_padded``), for crops reaching
    past its edges; the padded copy is built only if given (``padded``), else each crop is
    gathered from the frame itself (a second look at the edge costs its own pixels, not a padded
    copy of the whole frame)."""

    def __init__(self, image: np.ndarray, pad: int, padded: np.ndarray | None = None) -> None:
        self.image = image
        self.pad = min(pad, image.shape[0] - 1, image.shape[1] - 1)
        self._padded = padded

    def crop(self, x0: int, y0: int, side: int) -> np.ndarray:
        """The ``side`` x ``side`` square at (x0, y0) of the padded frame (frame coordinates)."""
        if self._padded is not None:
            p = self.pad
            return self._padded[y0 + p : y0 + p + side, x0 + p : x0 + p + side]
        h, w = self.image.shape[:2]
        ys = _reflect_101(np.arange(y0, y0 + side), h)
        xs = _reflect_101(np.arange(x0, x0 + side), w)
        y_lo, x_lo = int(ys.min()), int(xs.min())
        sub = self.image[y_lo : int(ys.max()) + 1, x_lo : int(xs.max()) + 1]
        # rows then columns of the span the crop touches (3-4x faster than one 2-D gather)
        return sub.take(ys - y_lo, axis=0).take(xs - x_lo, axis=1)


class MirroredView:
    """A ``size`` x ``size`` window of a frame reaching past its edges, read as if the frame were
    mirror-padded (reflect-101, as ``mirror_padded``): the mirrored edge tiles. The model runner
    samples it straight from the frame (``letterbox.letterbox_u8``: the warp's reflect-101
    border gives the padded frame's pixels), so no padded copy of the whole frame is made (a
    720p frame padded for its edge tiles: 2 ms a frame live). ``materialize`` gathers the pixels
    for a runner that needs an array (MediaPipe Tasks)."""

    ndim = 3
    dtype = np.dtype(np.uint8)

    def __init__(self, frame: np.ndarray, x0: int, y0: int, size: int) -> None:
        self.frame, self.x0, self.y0, self.size = frame, int(x0), int(y0), int(size)
        self.shape = (self.size, self.size, 3)

    def materialize(self) -> np.ndarray:
        h, w = self.frame.shape[:2]
        return MirrorFrame(self.frame, max(h, w)).crop(self.x0, self.y0, self.size)


def _reflect_101(i: np.ndarray, n: int) -> np.ndarray:
    """Indices of a reflect-101 border (edge pixel not repeated), within one reflection."""
    i = np.where(i < 0, -i, i)
    return np.clip(np.where(i >= n, 2 * (n - 1) - i, i), 0, n - 1)


def cut_flags(boxes: np.ndarray, tile: Tile, width: int, height: int) -> np.ndarray:
    """True for boxes touching a tile border that lies inside the frame (a face the tile cuts:
    its box is wrong)."""
    m = CUT_MARGIN * tile.size
    cut = np.zeros(len(boxes), dtype=bool)
    if tile.x0 > 0:
        cut |= boxes[:, 0] <= tile.x0 + m
    if tile.y0 > 0:
        cut |= boxes[:, 1] <= tile.y0 + m
    if tile.x1 < width:
        cut |= boxes[:, 2] >= tile.x1 - m
    if tile.y1 < height:
        cut |= boxes[:, 3] >= tile.y1 - m
    return cut
