"""The tile schedule: which planned tiles a given frame searches.

``TileSchedule`` caches the plans per frame size and spreads them over ``tile_every`` frames;
``ChangeGate`` (``cfg.skip_unchanged``) drops the scheduled tiles whose pixels did not change since
their own last search.
"""

from __future__ import annotations

import numpy as np

from ..config import DetectConfig
from .tiles import Tile, plan_edge_tiles, plan_tiles

GATE_LEVELS = 6  # grey levels of mean change in a 32x32 block that make a tile "changed"
GATE_REFRESH = 8  # a tile is searched again after this many skipped turns whatever its pixels


class TileSchedule:
    """The tile and edge-tile plans for one frame size at a time (rebuilt when the size changes)."""

    def __init__(self, cfg: DetectConfig) -> None:
        self.cfg = cfg
        self._plan_key: tuple[int, int] | None = None
        self._edge_key: tuple[int, int] | None = None
        self._plan: list[Tile] = []
        self._edge_plan: list[Tile] = []

    def tiles_for(self, width: int, height: int) -> list[Tile]:
        """The tile plan for frames of this size (``plan_tiles``; cached)."""
        if self._plan_key != (width, height):
            self._plan = plan_tiles(width, height, self.cfg)
            self._plan_key = (width, height)
        return self._plan

    def edge_tiles_for(self, width: int, height: int) -> list[Tile]:
        """The mirrored edge tiles searched with the tile pass (``plan_edge_tiles``; cached)."""
        if self._edge_key != (width, height):
            self._edge_plan = plan_edge_tiles(width, height, self.cfg)
            self._edge_key = (width, height)
        return self._edge_plan

    def edge_pad(self, width: int, height: int) -> int:
        """Mirror padding for the edge tiles and their second looks (at least half a tile, and
        enough for a second look of a face as big as the short side)."""
        tiles = self.edge_tiles_for(width, height)
        return max([t.size // 2 for t in tiles] + [min(width, height) // 2]) + 2

    def due(self, width: int, height: int, frame_index: int, every: int) -> tuple[list[Tile], list[Tile]]:
        """The tiles and edge tiles this frame searches.

        The search is spread over ``every`` frames: frame i searches every tile whose index is i
        modulo N, so each part of the frame is searched once every N frames at an even cost per
        frame (files: the look-back covers a face in the frames before it is found; live
        searches everything every frame).
        """
        phase = frame_index % every
        return self.tiles_for(width, height)[phase::every], self.edge_tiles_for(width, height)[phase::every]


class ChangeGate:
    """Skips a scheduled tile only when its own pixels have not changed since it was last searched
    (no 32x32 block's mean absolute difference, on a 1/4 grey copy, above ``GATE_LEVELS``; each
    tile keeps its own reference, so a neighbour's search never refreshes it), no tracked face is
    in it (a face its last search found is a track now), and it was not skipped ``GATE_REFRESH``
    turns in a row. Same pixels, same result: a static camera's background is not searched again
    and again. Serves one stream's consecutive frames."""

    def __init__(self) -> None:
        self._size: tuple[int, int] | None = None
        self._ref: dict[tuple[int, int, int], np.ndarray] = {}  # tile -> its 1/4 grey copy at its last search
        self._skips: dict[tuple[int, int, int], int] = {}  # tile -> turns skipped in a row
        #: tiles skipped so far
        self.skipped = 0

    def changed_only(self, img: np.ndarray, tiles: list[Tile], edges: list[Tile], hints: np.ndarray | None) -> tuple[list[Tile], list[Tile]]:
        """The tiles and edge tiles worth searching in ``img`` (``hints``: tracked boxes)."""
        import cv2

        h, w = img.shape[:2]
        small = cv2.resize(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
        if self._size != (w, h):
            self._size = (w, h)
            self._ref = {}
            self._skips = {}
        hint_boxes = np.zeros((0, 4)) if hints is None else np.asarray(hints, np.float64).reshape(-1, 4)

        def keep(t: Tile) -> bool:
            key = (t.x0, t.y0, t.size)
            x0, y0 = max(t.x0, 0), max(t.y0, 0)
            x1, y1 = min(t.x1, w), min(t.y1, h)
            crop = small[y0 // 4 : max(y0 // 4 + 1, y1 // 4), x0 // 4 : max(x0 // 4 + 1, x1 // 4)]
            ref = self._ref.get(key)
            changed = True
            if ref is not None and ref.shape == crop.shape:
                diff = cv2.absdiff(crop, ref)
                blocks = cv2.resize(diff, (max(1, diff.shape[1] // 8), max(1, diff.shape[0] // 8)), interpolation=cv2.INTER_AREA)
                changed = bool(blocks.max() > GATE_LEVELS)
            tracked = bool(len(hint_boxes)) and bool(((hint_boxes[:, 0] < x1) & (hint_boxes[:, 2] > x0) & (hint_boxes[:, 1] < y1) & (hint_boxes[:, 3] > y0)).any())
            skips = self._skips.get(key, 0)
            if changed or tracked or skips >= GATE_REFRESH:
                self._skips[key] = 0
                self._ref[key] = crop.copy()  # what this search sees
                return True
            self._skips[key] = skips + 1
            self.skipped += 1
            return False

        return [t for t in tiles if keep(t)], [t for t in edges if keep(t)]
