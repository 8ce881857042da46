"""The tile schedule: which planned tiles a given frame searches.

``TileSchedule`` caches the plans per frame size and spreads them over ``tile_every`` frames;
``ChangeGate`` (``cfg.skip_unchanged``) drops the scheduled tiles (or canvas bands) whose pixels,
outside the tracked faces, did not change since their own last search.
"""

from __future__ import annotations

import numpy as np

from ..config import DetectConfig
from .tiles import Tile, plan_edge_tiles, plan_tiles

GATE_LEVELS = 6  # grey levels of mean change in an 8x8 block that make a region "changed"
GATE_REFRESH = 8  # a region is searched again after this many skipped turns whatever its pixels


def gate_refresh(every: int) -> int:
    """Skipped turns after which the change gate searches a region again: ``GATE_REFRESH`` frames
    live (every region due every frame), at least 2 turns when the search is spread (files: a
    band due every 5th frame is then searched at least every 15th)."""
    return max(2, -(-GATE_REFRESH // max(1, int(every))))


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
    """Skips a scheduled region (a tile, or a canvas band's part of the frame) only when its own
    pixels have not changed since it was last searched, outside the tracked faces.

    The test, on a 1/4 grey copy of the frame: the absolute difference to the region's copy at
    its last search (each region keeps its own reference, so a neighbour's search never
    refreshes it), averaged over 8x8 frame-pixel blocks; the region is changed when any block
    outside the tracked faces' boxes differs by more than ``GATE_LEVELS`` grey levels. A face
    needs more than one block to be found at all (24 px at least), so it cannot appear, leave or
    turn without some block changing. Inside a tracked box change is expected (the face moves,
    talks) and is not counted: that face is confirmed in its own view every frame, and a new face
    wholly inside another's box is under that face's cover (all of the box with the pixel
    mechanisms, dp-image's face ellipse) until the region's refresh. A region is searched again whatever its pixels
    after ``refresh`` skipped turns in a row (what a re-search could still find is a face the
    model missed on nearly the same pixels), and whenever its last search found a face that no
    tracked box holds now (not tracked yet, or beyond the confirmation views' cap). Same pixels,
    same result: a static camera's background is not searched again and again. Serves one
    stream's consecutive frames, with a tracker (``begin``'s boxes; ``found`` after each frame)."""

    def __init__(self, refresh: int = GATE_REFRESH) -> None:
        self.refresh = max(0, int(refresh))
        self._size: tuple[int, int] | None = None
        self._small: np.ndarray | None = None  # this frame's 1/4 grey copy
        self._outside: np.ndarray | None = None  # 1 outside the tracked boxes (1/4 scale), None: no box
        self._ref: dict[tuple, np.ndarray] = {}  # region -> its 1/4 grey copy at its last search
        self._skips: dict[tuple, int] = {}  # region -> turns skipped in a row
        self._faces: dict[tuple, np.ndarray] = {}  # region -> the faces its last search found
        self._searched: list[tuple[tuple, tuple[float, float, float, float]]] = []  # this frame's
        self._hints = np.zeros((0, 4))
        #: regions skipped so far
        self.skipped = 0

    def begin(self, img: np.ndarray, hints: np.ndarray | None) -> None:
        """Take this frame (``hints``: its tracked boxes, frame pixels)."""
        import cv2

        h, w = img.shape[:2]
        if self._size != (w, h):
            self._size = (w, h)
            self._ref = {}
            self._skips = {}
            self._faces = {}
        self._searched = []
        self._small = cv2.resize(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), (max(1, w // 4), max(1, h // 4)),
                                 interpolation=cv2.INTER_AREA)
        boxes = np.zeros((0, 4)) if hints is None else np.asarray(hints, np.float64).reshape(-1, 4)
        self._hints = boxes
        self._outside = None
        if len(boxes):
            sh, sw = self._small.shape
            outside = np.ones((sh, sw), np.uint8)
            for x0, y0, x1, y1 in boxes:  # only 1/4 pixels wholly inside a box are masked
                if not np.isfinite([x0, y0, x1, y1]).all():
                    continue
                a, b = max(int(np.ceil(x0 / 4)), 0), min(int(np.floor(x1 / 4)), sw)
                c, d = max(int(np.ceil(y0 / 4)), 0), min(int(np.floor(y1 / 4)), sh)
                if b > a and d > c:
                    outside[c:d, a:b] = 0
            self._outside = outside

    def keep(self, key: tuple, x0: float, y0: float, x1: float, y1: float) -> bool:
        """Whether the region ``[x0, x1) x [y0, y1)`` (frame pixels; clipped here) must be
        searched in this frame; ``key`` names it from frame to frame."""
        import cv2

        a, b, c, d = self._bounds(x0, y0, x1, y1)
        crop = self._small[c:d, a:b]
        ref = self._ref.get(key)
        changed = True
        if ref is not None and ref.shape == crop.shape:
            diff = cv2.absdiff(crop, ref)
            if self._outside is not None:
                diff = cv2.multiply(diff, self._outside[c:d, a:b])
            changed = _blocks_changed(diff)
        skips = self._skips.get(key, 0)
        if changed or skips >= self.refresh or self._untracked_face(key):
            self._skips[key] = 0
            self._ref[key] = crop.copy()  # what this search sees
            self._searched.append((key, (x0, y0, x1, y1)))
            return True
        self._skips[key] = skips + 1
        self.skipped += 1
        return False

    def _untracked_face(self, key: tuple) -> bool:
        """Whether the region's last search found a face whose centre no tracked box holds now
        (a face not yet tracked, or beyond the confirmation views' cap): search it again."""
        faces = self._faces.get(key)
        if faces is None or not len(faces):
            return False
        c = (faces[:, :2] + faces[:, 2:]) / 2
        t = self._hints
        if not len(t):
            return True
        held = ((c[:, None, 0] >= t[None, :, 0]) & (c[:, None, 0] <= t[None, :, 2])
                & (c[:, None, 1] >= t[None, :, 1]) & (c[:, None, 1] <= t[None, :, 3])).any(axis=1)
        return not bool(held.all())

    def found(self, boxes: np.ndarray) -> None:
        """This frame's faces (frame pixels): each region searched now remembers those centred in it."""
        b = np.asarray(boxes, np.float64).reshape(-1, 4)
        c = (b[:, :2] + b[:, 2:]) / 2
        for key, (x0, y0, x1, y1) in self._searched:
            inside = (c[:, 0] >= x0) & (c[:, 0] < x1) & (c[:, 1] >= y0) & (c[:, 1] < y1)
            self._faces[key] = b[inside].copy()
        self._searched = []

    def changed_only(self, tiles: list[Tile], edges: list[Tile]) -> tuple[list[Tile], list[Tile]]:
        """The tiles and edge tiles worth searching in this frame; an edge tile is judged by its
        part inside the frame (its mirror shows the same pixels)."""
        return ([t for t in tiles if self.keep(("t", t.x0, t.y0, t.size), t.x0, t.y0, t.x1, t.y1)],
                [t for t in edges if self.keep(("e", t.x0, t.y0, t.size), t.x0, t.y0, t.x1, t.y1)])

    def patch(self, box: np.ndarray) -> np.ndarray | None:
        """This frame's 1/4 grey copy under ``box`` (frame pixels), for ``same`` later."""
        under = self._under(box)
        return None if under is None else under.copy()

    def _under(self, box: np.ndarray) -> np.ndarray | None:
        """A view of this frame's 1/4 grey copy under ``box`` (None for a box not finite)."""
        x0, y0, x1, y1 = (float(v) for v in box)
        if not np.isfinite([x0, y0, x1, y1]).all():
            return None
        a, b, c, d = self._bounds(x0, y0, x1, y1)
        return self._small[c:d, a:b]

    def _bounds(self, x0: float, y0: float, x1: float, y1: float) -> tuple[int, int, int, int]:
        """The columns ``a:b`` and rows ``c:d`` of the 1/4 copy under a frame-pixel rectangle
        (clipped to the frame, never empty)."""
        assert self._small is not None, "begin() first"
        sh, sw = self._small.shape
        a, c = min(max(int(x0) // 4, 0), sw - 1), min(max(int(y0) // 4, 0), sh - 1)
        b, d = max(min(int(np.ceil(x1 / 4)), sw), a + 1), max(min(int(np.ceil(y1 / 4)), sh), c + 1)
        return a, b, c, d

    def same(self, box: np.ndarray, before: np.ndarray | None) -> bool:
        """Whether the pixels under ``box`` are what ``patch`` saw (no 8x8 block by more than
        ``GATE_LEVELS``; tracked boxes are not masked here)."""
        import cv2

        now = self._under(box)  # compared, not kept: no copy
        if before is None or now is None or now.shape != before.shape:
            return False
        return not _blocks_changed(cv2.absdiff(now, before))


def _blocks_changed(diff: np.ndarray) -> bool:
    """Whether any 8x8 frame-pixel block of ``diff`` (2x2 on the 1/4 copy; a last odd row or
    column judged pixel by pixel) has a mean above ``GATE_LEVELS``."""
    import cv2

    if diff.shape[0] < 2 or diff.shape[1] < 2:
        return bool(diff.max() > GATE_LEVELS)
    bw, bh = diff.shape[1] // 2, diff.shape[0] // 2
    blocks = cv2.resize(diff[: 2 * bh, : 2 * bw], (bw, bh), interpolation=cv2.INTER_AREA)
    return bool(blocks.max() > GATE_LEVELS or diff[2 * bh :].max(initial=0) > GATE_LEVELS
                or diff[:, 2 * bw :].max(initial=0) > GATE_LEVELS)
