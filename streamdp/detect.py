"""Face detection: MediaPipe's short-range BlazeFace (run by ONNX Runtime, or by MediaPipe Tasks) on
the full frame plus a tile pyramid, with a second look at every uncertain candidate.

The short-range model sees a 128x128 letterboxed copy of whatever it is given and finds faces down
to about a tenth of that input's side (LFW faces pasted into street scenes: a box of ~0.10 of the
input is found about half of the time, ~0.12 nearly always). On a 1080p frame that is a ~200 px
face, so small faces need the frame searched in smaller pieces.

1. Search (``plan_tiles``). The full frame every frame; when tiling is on (``"auto"``: only if
   ``max(W, H) > 1.25 * tile_size``) and ``frame_index % cfg.tile_every == 0``, square tiles of
   sizes ``s0, 2*s0, 4*s0, ...`` (each level while clearly smaller than the short side; ``s0`` =
   ``cfg.tile_size``, or the size giving ``cfg.tiles`` rows) plus short-side squares for a
   non-square frame. Tiles of a level overlap by >= ``cfg.tile_overlap`` and are spread evenly to
   end exactly at the frame's edges. Why a pyramid: a face is reliably found only in a tile that
   contains all of it; an ``s``-grid with overlap ``o`` contains every face up to ``o*s`` wide,
   and the next level (``2s``) finds faces from ~``0.11*2s``: with ``o >= 0.25`` no face size
   falls between two levels (one 384-grid alone misses 150-250 px faces on 1080p whenever a tile
   border cuts them). MediaPipe reports candidates down to ``cfg.min_confidence``.
2. Merge. Candidates go back to frame pixels. A tile candidate touching an inner tile border (not
   the frame's edge) is a cut face with a wrong box: dropped when an uncut candidate covers most
   of it. Then vectorized greedy NMS (higher score first; a lower-scored box almost entirely
   inside a kept one is dropped too — the kept box covers it).
3. Decide (``FaceDetector._verify_plan``). Tiles multiply the chances of a false positive (textures
   score 0.3-0.7 at the model's size floor): keeping every candidate >= 0.3 put a false face in
   45 of 69 face-free frames. So every candidate that is not already sure (>= ``ACCEPT_SCORE`` at
   a comfortable size) gets a second look in a crop of 2x its box, where the face fills half of
   the model's input — its sweet spot: there every real face we measured scores >= 0.80 and
   no non-face in the sample videos > 0.72. A face is kept when that look reaches
   ``max(cfg.min_confidence, cfg.verify_score)``, and the second look's box and keypoints replace the coarse ones. With the
   default config: 66/70 LFW faces of 44-140 px pasted into 720p/1080p street frames found (full
   frame alone: 2/70), no false detection in them, none in no_face.mp4's 95 frames, 2 of 130
   face-free bikes.mp4 frames.

Boxes are clipped to the frame; keypoints are not.

Model runner (``cfg.backend``): ``onnx`` (the default; ``streamdp.blazeface``, the same model
converted to ONNX, MediaPipe's letterbox, anchors, decoding and weighted NMS reimplemented) runs
the full frame and all its tiles in one batched ONNX Runtime call and all second looks in one
more; ``mediapipe`` runs MediaPipe Tasks' FaceDetector, one call per image. They find the same
faces (same count on 190 sample-video frames, boxes IoU >= 0.9, scores 0.0013 apart on average;
near-tied low scores on textures can cluster differently: docs/performance.md).

Cost (``benchmarks/detector.py``, 2-core VM, idle, every frame with the tile pass; images per
frame = 1 + tiles + second looks). Per 128x128 image: MediaPipe Tasks ~1.75 ms (its XNNPACK runs
on one thread); onnx ~1.6 ms with 1 intra-op thread and ~1.05 ms with 2 (the default), pre- and
post-processing included. The per-call overhead MediaPipe adds is small here (~0.15 ms, not the
3-4 ms once assumed); most of the gain is the second core, which the rest of the pipeline (x264,
the mechanism) also wants:

=========  ==================  ==========  =================
frame      images per frame    mediapipe   onnx (2 threads)
=========  ==================  ==========  =================
640x360    1 + 3 + ~1          8.8 ms      6.0 ms
1280x720   1 + 18 + ~4         40.5 ms     25.5 ms
1920x1080  1 + 37 + ~7.5       79.4 ms     47.8 ms
=========  ==================  ==========  =================

(onnx with 1 thread: 7.3, 36.4, 72.4 ms.) On a CPU every tile still costs ~1 ms of model time. ``cfg.tile_every`` amortizes the tile pass; the tracker covers in
between. ``FaceDetector.detect_batch`` batches several frames (for a GPU, where one big batch is
nearly as cheap as one image).
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import sys
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from .config import DetectConfig
from .errors import ModelError
from .types import NUM_KEYPOINTS, Detections

# Must be set before mediapipe is first imported (it is imported lazily in FaceDetector).
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

MODEL_FILENAME = "face_detection_short_range.tflite"
MODEL_SHA256 = "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"

# A tile detection is "cut" when its box comes within this fraction of the tile size of an inner
# tile border; it is "explained" by another detection covering at least this much of its area.
_CUT_MARGIN = 0.01
_EXPLAINED_IOA = 0.5
# A lower-scored box with at least this fraction of its area inside a kept box is suppressed.
_CONTAINED_IOA = 0.85
# Tiling pays off only for frames clearly larger than one tile.
_AUTO_TILE_RATIO = 1.25

# Two-stage detection (propose, then verify at the model's comfort scale); see ``_verify_plan``.
ACCEPT_SCORE = 0.8  # a tile candidate this confident, at a comfortable size, needs no second look
COMFORT_SIZE = 0.25  # box side / model input side from which the model is reliable
VERIFY_CONTEXT = 2.0  # second-look crop side / box side: the face fills half the model's input
VERIFY_IOU = 0.2
MAX_VERIFY = 64  # second looks per frame at most (a texture seen again is remembered: see REJECT_MEMORY_FRAMES)
MAX_CONFIRM = 16  # tracked faces confirmed per frame at most
GATE_LEVELS = 6  # grey levels of mean change in a 32x32 block that make a tile "changed"
GATE_REFRESH = 8  # a tile is searched again after this many skipped turns whatever its pixels
REJECT_MEMORY_FRAMES = 6  # a rejected place is rejected again without a look for this many frames
REJECT_MEMORY_IOU = 0.6
REJECT_MEMORY_SLACK = 0.05  # ... unless the candidate now scores more than this above the rejected one
CONFIRM = object()  # owner tag of a confirmation view (a tracked face's expected place)


def default_model_path() -> Path:
    """The BlazeFace short-range model shipped inside the package."""
    from .model_files import packaged_model

    return packaged_model(MODEL_FILENAME)


# --------------------------------------------------------------------------------------------
# Box geometry (vectorized)
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Tile plan
# --------------------------------------------------------------------------------------------


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
        if long_ <= _AUTO_TILE_RATIO * tile_size:
            return []
        base = tile_size
    else:
        n = int(cfg.tiles)
        # n rows of squares covering the height with the configured overlap
        base = max(32, int(height / (n - (n - 1) * cfg.tile_overlap)))
    levels: list[int] = []
    size = base
    while size * _AUTO_TILE_RATIO <= short:  # levels clearly finer than the short side
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


# A detection from a mirrored view must show at least this fraction of its box inside the frame:
# the mirror image of a face near the edge (a ghost) lies wholly outside it, a cut face straddles it.
_EDGE_MIN_INSIDE = 0.3


# --------------------------------------------------------------------------------------------
# Detector
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for a moment.

    MediaPipe's native runtime (LiteRT) writes INFO lines straight to fd 2 when a graph is
    created or destroyed, bypassing Python and GLOG_minloglevel; users should see only our lines.
    Python-level errors still surface as exceptions.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class FaceDetector:
    """Finds faces in RGB frames; one instance per thread (model sessions are not shared).

    ``cfg.backend``: ``"onnx"`` (and ``"auto"``) runs BlazeFace through ONNX Runtime
    (``streamdp.blazeface``), every frame's full view and tiles in one batch and all second looks
    in one more; ``"mediapipe"`` runs MediaPipe Tasks, one call per image. Both see the same
    model inputs and decode them the same way, so they find the same faces.
    """

    def __init__(
        self,
        cfg: DetectConfig | None = None,
        model_path: Path | str | None = None,
        *,
        verify_score: float | None = None,
        tile_every: int | None = None,
    ) -> None:
        self.cfg = cfg if cfg is not None else DetectConfig()
        self.verify_score = float(self.cfg.verify_score if verify_score is None else verify_score)
        #: tile pass schedule; the file pipeline passes its own (see ``DetectConfig.effective_tile_every``)
        self.tile_every = int(tile_every) if tile_every is not None else self.cfg.effective_tile_every(0)
        #: score a face must reach at the model's favourite scale (see ``_verify_plan``)
        self.new_face_score = max(float(self.cfg.min_confidence), self.verify_score)
        #: the model runner in use: "onnx" or "mediapipe"
        self.backend = "mediapipe" if self.cfg.backend == "mediapipe" else "onnx"
        # the model reports everything down to the proposal score; thresholds are applied here
        self._proposal_score = float(self.cfg.min_confidence)
        if self.backend == "onnx":
            self._init_onnx(model_path)
        else:
            self._init_mediapipe(model_path)
        self._plan_key: tuple[int, int] | None = None
        self._edge_key: tuple[int, int] | None = None
        self._rejects: list[tuple[np.ndarray, float, int]] = []  # (box, score, frame index)
        self._gate_size: tuple[int, int] | None = None
        self._gate_ref: dict[tuple[int, int, int], np.ndarray] = {}  # tile -> its 1/4 grey copy at its last search
        self._gate_state: dict[tuple[int, int, int], int] = {}  # tile -> turns skipped in a row
        self._edge_plan: list[Tile] = []
        self._plan: list[Tile] = []
        self._tile_bufs: dict[int, np.ndarray] = {}
        #: the last ``detect``/``detect_batch`` call: seconds by part, model images by kind and
        #: model invocations (``batches``: 1 per image with mediapipe, 1-2 per call with onnx);
        #: ``candidates``: merged first-look candidates (before the second looks).
        #: With onnx the full frame and its tiles run in one batch: ``search_s`` covers both
        #: (``full_s`` = ``search_s``, ``tiles_s`` = 0).
        self.last_timing: dict[str, float] = {}
        #: running totals over all calls
        self.totals: dict[str, float] = {
            "frames": 0,
            "calls": 0,
            "batches": 0,
            "seconds": 0.0,
            "tile_passes": 0,
            "verified": 0,
            "rejected": 0,
            "rejected_again": 0,
            "tiles_skipped_unchanged": 0,
        }

    def _init_onnx(self, model_path: Path | str | None) -> None:
        from .blazeface import BlazeFaceRunner, default_onnx_path

        path = Path(model_path) if model_path is not None else default_onnx_path()
        if path.suffix == ".tflite":  # the MediaPipe file given: use the ONNX conversion beside it
            path = path.with_suffix(".onnx")
        if not path.is_file():
            raise ModelError(f"face detection model not found: {path}")
        from .model_files import is_shipped, verify_shipped

        if is_shipped(path):
            verify_shipped(path)
        self._runner: BlazeFaceRunner | None = BlazeFaceRunner(path, min_score=self._proposal_score)
        self.model_path = path
        self._finalizer = weakref.finalize(self, lambda: None)
        self._finalizer.atexit = False

    def _init_mediapipe(self, model_path: Path | str | None) -> None:
        path = Path(model_path) if model_path is not None else default_model_path()
        if not path.is_file():
            raise ModelError(f"face detection model not found: {path}")
        try:
            import mediapipe as mp
            from mediapipe.tasks.python import BaseOptions, vision
        except Exception as exc:  # pragma: no cover - environment problem
            raise ModelError(f"mediapipe is not usable: {exc}") from None
        self._mp = mp
        self._runner = None
        opts = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_path=str(path)),
            running_mode=vision.RunningMode.IMAGE,
            min_detection_confidence=self._proposal_score,
        )
        try:
            with native_stderr_silenced():
                self._det = vision.FaceDetector.create_from_options(opts)
                # The first call logs an alignment warning from LiteRT: make it here, silenced.
                self._det.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.zeros((64, 64, 3), np.uint8)))
        except Exception as exc:
            raise ModelError(f"cannot load face detection model {path}: {exc}") from None
        self.model_path = path
        # close() when garbage collected or at interpreter exit if the caller forgot (MediaPipe's
        # own __del__ raises once its worker pool is gone)
        self._finalizer = weakref.finalize(self, _safe_close, self._det)
        self._finalizer.atexit = False  # too late at atexit: see _close_all_at_exit
        _LIVE.add(self)
        _register_exit_hook()

    # -- context manager ----------------------------------------------------------------------
    def close(self) -> None:
        if self._finalizer.alive:
            with native_stderr_silenced():
                self._finalizer()
        self._runner = None

    def __enter__(self) -> FaceDetector:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- public -------------------------------------------------------------------------------
    def edge_tiles_for(self, width: int, height: int) -> list[Tile]:
        """The mirrored edge tiles searched with the tile pass (``plan_edge_tiles``; cached)."""
        if self._edge_key != (width, height):
            self._edge_plan = plan_edge_tiles(width, height, self.cfg)
            self._edge_key = (width, height)
        return self._edge_plan

    def _edge_pad(self, width: int, height: int) -> int:
        """Mirror padding for the edge tiles and their second looks (at least half a tile, and
        enough for a second look of a face as big as the short side)."""
        tiles = self.edge_tiles_for(width, height)
        return max([t.size // 2 for t in tiles] + [min(width, height) // 2]) + 2

    def tiles_for(self, width: int, height: int) -> list[Tile]:
        """The tile plan used for frames of this size (cached)."""
        if self._plan_key != (width, height):
            self._plan = plan_tiles(width, height, self.cfg)
            self._plan_key = (width, height)
        return self._plan

    def detect(self, image_rgb: np.ndarray, frame_index: int = 0) -> Detections:
        """All faces in an ``HxWx3 uint8`` RGB frame, boxes clipped to the frame.

        ``frame_index`` only schedules the tile pass (``cfg.tile_every``).
        """
        return self.detect_batch([image_rgb], [frame_index])[0]

    def detect_batch(
        self,
        frames: Sequence[np.ndarray],
        frame_indices: Sequence[int],
        hints: Sequence[np.ndarray | None] | None = None,
    ) -> list[Detections]:
        """``detect`` for several frames (any sizes) at once: with the onnx backend, every frame's
        full view and tiles go through the model in one call, and all their second looks in one
        more. Each frame's result is what ``detect`` would give for it alone."""
        if not self._finalizer.alive:
            raise RuntimeError("FaceDetector is closed")
        if len(frames) != len(frame_indices):
            raise ValueError(f"{len(frames)} frames but {len(frame_indices)} frame indices")
        imgs = [self._check(f) for f in frames]
        if not imgs:
            return []
        t0 = time.perf_counter()
        batches0 = self.totals["batches"]

        # 1. search: full frames and tiles, all in one go
        views: list[tuple[np.ndarray, int, int]] = []
        owners: list[tuple[int, Tile | None]] = []
        padded: dict[int, tuple[np.ndarray, int]] = {}  # frame -> (mirror-padded copy, pad)
        # the rejection memory and the change gate serve one stream's consecutive frames
        # (detect / FaceStage); a batch of several frames is searched in full
        single = len(imgs) == 1
        n_tiles = 0
        n_confirm = 0
        for f, (img, fi) in enumerate(zip(imgs, frame_indices)):
            views.append((img, 0, 0))
            owners.append((f, None))
            h, w = img.shape[:2]
            # The search is spread over ``tile_every`` frames: frame i searches every tile whose
            # index is i modulo N, so each part of the frame is searched once every N frames at an
            # even cost per frame (files: the look-back covers a face in the frames before it is
            # found; live searches everything every frame).
            phase = fi % self.tile_every
            tiles = self.tiles_for(w, h)[phase :: self.tile_every]
            edges = self.edge_tiles_for(w, h)[phase :: self.tile_every]
            hint = None if hints is None else hints[f]
            if single and self.cfg.skip_unchanged:
                tiles, edges = self._changed_only(img, tiles, edges, hint)
            n_tiles += len(tiles)
            self.totals["tile_passes"] += 1 if tiles else 0
            for tile in tiles:
                views.append((img[tile.y0 : tile.y1, tile.x0 : tile.x1], tile.x0, tile.y0))
                owners.append((f, tile))
            # Tracked faces are confirmed every frame in a view at the model's favourite scale
            # (what a second look is), so a small face found by a tile stays detected between
            # its tiles' turns.
            for box in ([] if hint is None else np.asarray(hint, np.float64).reshape(-1, 4)[:MAX_CONFIRM]):
                view = self._look_view(img, box)
                if view is not None:
                    views.append(view)
                    owners.append((f, CONFIRM))
                    n_confirm += 1
            if edges:
                pad = self._edge_pad(w, h)
                padded[f] = (mirror_padded(img, pad), pad)
                big, p = padded[f]
                n_tiles += len(edges)
                for tile in edges:
                    views.append((big[tile.y0 + p : tile.y1 + p, tile.x0 + p : tile.x1 + p], tile.x0, tile.y0))
                    owners.append((f, tile))
        t_full = t0
        if self._runner is None:  # mediapipe: time the full frame's call on its own, as before
            results = [self._run(*views[0])]
            t_full = time.perf_counter()
            results += self._run_many(views[1:])
        else:
            results = self._run_many(views)
        t_tiles = time.perf_counter()
        if self._runner is not None:
            t_full = t_tiles

        # per candidate: box, score, keypoints, cut by a tile border, size in its input, full frame
        parts: list[list[tuple[np.ndarray, ...]]] = [[] for _ in imgs]
        for (f, tile), (b, s, k) in zip(owners, results):
            h, w = imgs[f].shape[:2]
            if tile is None:
                parts[f].append((b, s, k, np.zeros(len(b), bool), _rel_size(b, max(w, h)), np.ones(len(b), bool), np.zeros(len(b), bool)))
            elif tile is CONFIRM:
                if len(b):
                    parts[f].append((b, s, k, np.zeros(len(b), bool), np.full(len(b), 0.5, np.float32), np.zeros(len(b), bool), np.ones(len(b), bool)))
            if tile is not None and tile is not CONFIRM and len(b):
                cut = self._cut_flags(b, tile, w, h)
                parts[f].append((b, s, k, cut, _rel_size(b, tile.size), np.zeros(len(b), bool), np.zeros(len(b), bool)))
        cands = [self._merge(*(np.concatenate(x) for x in zip(*p))) for p in parts]

        # 2. second looks, all in one go
        memory = self._memory(frame_indices[0]) if single else None
        plans = [self._verify_plan(img, *c, padded=padded.get(f), memory=memory) for f, (img, c) in enumerate(zip(imgs, cands))]
        looks = [crop for p in plans for crop in p[2]]
        look_results = iter(self._run_many(looks))
        out = []
        n_verify = 0
        for img, c, (keep, todo, crops) in zip(imgs, cands, plans):
            res = [next(look_results) for _ in crops]
            rejected: list[tuple[np.ndarray, float]] = []
            boxes, scores, kps = self._verify_apply(c[0], c[1], c[2], keep, todo, res, rejected)
            if single:
                self._remember_rejected(frame_indices[0], rejected)
            n_verify += len(todo)
            out.append(self._finalize(boxes, scores, kps, img.shape[1], img.shape[0]))
        t_end = time.perf_counter()
        calls = len(views) + n_verify
        self.last_timing = {
            "full_s": t_full - t0,
            "tiles_s": t_tiles - t_full,
            "search_s": t_tiles - t0,
            "verify_s": t_end - t_tiles,
            "total_s": t_end - t0,
            "calls": float(calls),
            "tile_calls": float(n_tiles),
            "verify_calls": float(n_verify),
            "confirm_calls": float(n_confirm),
            "candidates": float(sum(len(c[0]) for c in cands)),
            "batches": float(self.totals["batches"] - batches0),
        }
        self.totals["frames"] += len(imgs)
        self.totals["calls"] += calls
        self.totals["seconds"] += t_end - t0
        return out

    # -- internals ----------------------------------------------------------------------------
    @staticmethod
    def _check(image_rgb: np.ndarray) -> np.ndarray:
        img = np.asarray(image_rgb)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 RGB image, got {img.dtype} {img.shape}")
        if not img.flags.c_contiguous:
            img = np.ascontiguousarray(img)
        return img

    def _run_many(self, views: Sequence[tuple[np.ndarray, int, int]]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Model results for (image view, x0, y0) triples, in frame pixels (offset by x0, y0)."""
        if not views:
            return []
        if self._runner is None:
            out = []
            for view, x0, y0 in views:
                if not view.flags.c_contiguous:  # MediaPipe needs its own contiguous buffer
                    key = view.shape[:2]
                    buf = self._tile_bufs.get(key)  # type: ignore[call-overload]
                    if buf is None:
                        buf = self._tile_bufs[key] = np.empty(view.shape, dtype=np.uint8)  # type: ignore[index]
                    np.copyto(buf, view)
                    view = buf
                out.append(self._run(view, x0, y0))
            return out
        results = self._runner.run([v for v, _, _ in views], boxes="mediapipe")
        self.totals["batches"] += 1
        out = []
        for (_, x0, y0), (b, s, k) in zip(views, results):
            if len(b) and (x0 or y0):
                off = np.array([x0, y0], dtype=np.float32)
                b = b + np.tile(off, 2)
                k = k + off
            out.append((b, s, k))
        return out

    def _run(self, rgb: np.ndarray, x0: int, y0: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._runner is not None:
            return self._run_many([(rgb, x0, y0)])[0]
        mp = self._mp
        result = self._det.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb))
        self.totals["batches"] += 1
        dets = result.detections
        n = len(dets)
        boxes = np.empty((n, 4), dtype=np.float32)
        scores = np.empty(n, dtype=np.float32)
        kps = np.zeros((n, NUM_KEYPOINTS, 2), dtype=np.float32)
        th, tw = rgb.shape[:2]
        for i, d in enumerate(dets):
            bb = d.bounding_box
            boxes[i] = (bb.origin_x, bb.origin_y, bb.origin_x + bb.width, bb.origin_y + bb.height)
            scores[i] = d.categories[0].score if d.categories else 0.0
            for j, kp in enumerate(d.keypoints[:NUM_KEYPOINTS]):
                kps[i, j] = (kp.x * tw, kp.y * th)
        if n and (x0 or y0):
            off = np.array([x0, y0], dtype=np.float32)
            boxes += np.tile(off, 2)
            kps += off
        return boxes, scores, kps

    @staticmethod
    def _cut_flags(boxes: np.ndarray, tile: Tile, width: int, height: int) -> np.ndarray:
        """True for boxes touching a tile border that lies inside the frame."""
        m = _CUT_MARGIN * tile.size
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

    def _merge(self, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
        """Drop explained cut boxes, then NMS (score order) over all passes.

        ``arrays``: boxes, scores, keypoints, then per-candidate flags (cut, rel, full), all
        selected together.
        """
        boxes, scores, cut = arrays[0], arrays[1], arrays[3]
        if len(boxes) == 0:
            return arrays
        if cut.any() and (~cut).any():
            explained = (box_ioa(boxes[cut], boxes[~cut]) >= _EXPLAINED_IOA).any(axis=1)
            keep = np.ones(len(boxes), dtype=bool)
            keep[np.flatnonzero(cut)[explained]] = False
            arrays = tuple(a[keep] for a in arrays)
            boxes, scores = arrays[0], arrays[1]
        if len(boxes) > 1:
            k = nms(boxes, scores, self.cfg.nms_iou, contained=_CONTAINED_IOA)
            arrays = tuple(a[k] for a in arrays)
        return arrays

    def _verify_plan(self, img, boxes, scores, kps, cut, rel, full, confirm=None, padded=None, memory=None):  # type: ignore[no-untyped-def]
        """Decide every candidate by the score the model gives it at its favourite scale.

        Returns ``(keep, todo, looks)``: the candidates kept without a second look (and the
        fallback for those over the cap), the candidates to look at again, and their crops as
        ``(view, x0, y0)`` for ``_run_many``; ``_verify_apply`` judges the looks' results.

        A face must reach ``new_face_score`` = ``max(cfg.min_confidence, verify_score)`` there.

        * confident (>= ``ACCEPT_SCORE``) at a comfortable size (box >= ``COMFORT_SIZE`` of the
          model's input) and not cut by a tile border -> kept as is (no non-face scored > 0.74);
        * a full-frame candidate so big that a second look would see the whole frame again: its
          own score is judged;
        * anything else (small in its input, from a tile, cut by a tile border, or unsure) gets a
          second look: a square crop of ``VERIFY_CONTEXT`` (2) x its box around it, where the face
          fills half of the model's input — the short-range model's sweet spot. The crop's
          matching detection is judged and, if kept, replaces the candidate (better box and
          keypoints);
        * beyond ``MAX_VERIFY`` second looks per frame, candidates are kept on their first score
          if >= ``cfg.min_confidence`` (fail closed).

        Measured on 894 candidates (>= 0.2) from face-free video (no_face.mp4, bikes.mp4 parts),
        real faces (single_face, WolfgangLanger, face_noface, noface_face, carphone, bikes) and 60
        LFW faces of 50-200 px pasted at +-30 deg into 720p street frames: the 2x second look
        scores every one of 176 real faces >= 0.80, and 7 of 718 non-face candidates >= 0.7
        (1 of 261 from real face-free video). Over every face-free frame of the sample videos
        (no_face, the title parts of the HEVC clips, bikes) the best second look was 0.712 (the
        "am" of a cartoon title), hence the default ``verify_score`` = 0.75. A plain first-look threshold of
        0.3 kept 45 of 69 face-free frames; 0.7 on the first look would miss 1 real face in 20.
        """
        h, w = img.shape[:2]
        thr = float(self.cfg.min_confidence)
        n = len(boxes)
        if n == 0:
            return np.zeros(0, bool), np.zeros(0, np.int64), []
        need = self.new_face_score
        size = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        sure = (scores >= ACCEPT_SCORE) & (rel >= COMFORT_SIZE) & ~cut
        if confirm is not None:
            # seen in a confirmation view, which is already a look at the favourite scale
            sure |= confirm & (scores >= need)
        # a second look would see about the full frame again: judge the full frame's look
        own_look = full & (VERIFY_CONTEXT * size >= 0.9 * max(w, h)) & ~sure
        keep = sure | (own_look & (scores >= need))
        todo = np.flatnonzero(~sure & ~own_look)
        keep[todo] = scores[todo] >= thr  # the fallback for candidates over the cap
        if memory is not None and len(todo) and len(memory[0]):
            # A candidate where a second look rejected one a moment ago, scoring no better, is a
            # texture seen again: rejected without another look (bounded: the memory lasts
            # ``REJECT_MEMORY_FRAMES`` frames, then the place is looked at again).
            mem_boxes, mem_scores = memory
            iou = box_iou(boxes[todo], mem_boxes)
            again = ((iou >= REJECT_MEMORY_IOU) & (scores[todo, None] <= mem_scores[None, :] + REJECT_MEMORY_SLACK)).any(axis=1)
            keep[todo[again]] = False
            self.totals["rejected_again"] += int(again.sum())
            todo = todo[~again]
        todo = todo[np.argsort(-scores[todo], kind="stable")][:MAX_VERIFY]
        looks = []
        for i in todo:
            c = (boxes[i, :2] + boxes[i, 2:]) / 2
            side = int(round(min(VERIFY_CONTEXT * size[i], max(w, h))))
            at_edge = boxes[i, 0] < 1 or boxes[i, 1] < 1 or boxes[i, 2] > w - 1 or boxes[i, 3] > h - 1
            if padded is not None and at_edge:
                # a face cut by the frame's border is looked at again in the mirrored frame too
                big, p = padded
                side = min(side, min(w, h) + 2 * p)
                x0 = int(np.clip(round(c[0] - side / 2), -p, w + p - side))
                y0 = int(np.clip(round(c[1] - side / 2), -p, h + p - side))
                looks.append((big[y0 + p : y0 + p + side, x0 + p : x0 + p + side], x0, y0))
                continue
            looks.append(self._square_crop(img, c, side))
        return keep, todo, looks

    def _changed_only(self, img: np.ndarray, tiles: list[Tile], edges: list[Tile], hints: np.ndarray | None) -> tuple[list[Tile], list[Tile]]:
        """The scheduled tiles worth searching. A tile is skipped only when its own pixels have
        not changed since it was last searched (no 32x32 block's mean absolute difference, on a 1/4
        grey copy, above ``GATE_LEVELS``; each tile keeps its own reference, so a neighbour's
        search never refreshes it), no tracked face is in it (a face its last search found is a
        track now), and it was not skipped ``GATE_REFRESH`` turns in a row. Same pixels, same result: a
        static camera's background is not searched again and again."""
        import cv2

        h, w = img.shape[:2]
        small = cv2.resize(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
        if self._gate_size != (w, h):
            self._gate_size = (w, h)
            self._gate_ref = {}
            self._gate_state = {}
        hint_boxes = np.zeros((0, 4)) if hints is None else np.asarray(hints, np.float64).reshape(-1, 4)

        def keep(t: Tile) -> bool:
            key = (t.x0, t.y0, t.size)
            x0, y0 = max(t.x0, 0), max(t.y0, 0)
            x1, y1 = min(t.x1, w), min(t.y1, h)
            crop = small[y0 // 4 : max(y0 // 4 + 1, y1 // 4), x0 // 4 : max(x0 // 4 + 1, x1 // 4)]
            ref = self._gate_ref.get(key)
            changed = True
            if ref is not None and ref.shape == crop.shape:
                diff = cv2.absdiff(crop, ref)
                blocks = cv2.resize(diff, (max(1, diff.shape[1] // 8), max(1, diff.shape[0] // 8)), interpolation=cv2.INTER_AREA)
                changed = bool(blocks.max() > GATE_LEVELS)
            tracked = bool(len(hint_boxes)) and bool(((hint_boxes[:, 0] < x1) & (hint_boxes[:, 2] > x0) & (hint_boxes[:, 1] < y1) & (hint_boxes[:, 3] > y0)).any())
            skips = self._gate_state.get(key, 0)
            if changed or tracked or skips >= GATE_REFRESH:
                self._gate_state[key] = 0
                self._gate_ref[key] = crop.copy()  # what this search sees
                return True
            self._gate_state[key] = skips + 1
            self.totals["tiles_skipped_unchanged"] += 1
            return False

        return [t for t in tiles if keep(t)], [t for t in edges if keep(t)]

    def _memory(self, frame_index: int) -> tuple[np.ndarray, np.ndarray]:
        """Boxes and scores rejected by a second look within the last ``REJECT_MEMORY_FRAMES``."""
        self._rejects = [r for r in self._rejects if 0 <= frame_index - r[2] < REJECT_MEMORY_FRAMES]
        if not self._rejects:
            return np.zeros((0, 4)), np.zeros(0)
        return np.array([r[0] for r in self._rejects]), np.array([r[1] for r in self._rejects])

    def _remember_rejected(self, frame_index: int, rejected: list[tuple[np.ndarray, float]]) -> None:
        self._rejects.extend((b, s_, frame_index) for b, s_ in rejected)
        del self._rejects[:-256]  # bounded

    @staticmethod
    def _look_view(img: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, int, int] | None:
        """The square crop of ``VERIFY_CONTEXT`` x the box around it (clipped to the frame)."""
        h, w = img.shape[:2]
        size = float(max(box[2] - box[0], box[3] - box[1]))
        if not np.isfinite(size) or size < 4:
            return None
        c = (box[:2] + box[2:]) / 2
        view, x0, y0 = FaceDetector._square_crop(img, c, int(round(min(VERIFY_CONTEXT * size, max(w, h)))))
        if view.shape[0] < 4 or view.shape[1] < 4:
            return None
        return view, x0, y0

    @staticmethod
    def _square_crop(img: np.ndarray, centre: np.ndarray, side: int) -> tuple[np.ndarray, int, int]:
        """A ``side`` square around ``centre``, moved inside the frame (cut by it if larger)."""
        h, w = img.shape[:2]
        x0 = int(np.clip(round(centre[0] - side / 2), 0, max(w - side, 0)))
        y0 = int(np.clip(round(centre[1] - side / 2), 0, max(h - side, 0)))
        return img[y0 : min(y0 + side, h), x0 : min(x0 + side, w)], x0, y0

    def _verify_apply(self, boxes, scores, kps, keep, todo, results, rejected=None):  # type: ignore[no-untyped-def]
        """Keep a looked-at candidate when its second look's matching detection reaches
        ``new_face_score``; that detection's box and keypoints replace the candidate's."""
        if len(boxes) == 0:
            return boxes, scores, kps
        need = self.new_face_score
        keep = keep.copy()
        rejected = [] if rejected is None else rejected
        out_b, out_s, out_k = boxes.copy(), scores.copy(), kps.copy()
        for i, (vb, vs, vk) in zip(todo, results):
            j = _match(vb, boxes[i]) if len(vb) else -1
            if j >= 0 and vs[j] >= need:
                out_b[i], out_s[i], out_k[i] = vb[j], vs[j], vk[j]
                keep[i] = True
                self.totals["verified"] += 1
            else:
                keep[i] = False
                self.totals["rejected"] += 1
                rejected.append((boxes[i].copy(), float(scores[i])))
        return out_b[keep], out_s[keep], out_k[keep]

    def _finalize(self, boxes, scores, kps, w: int, h: int) -> Detections:  # type: ignore[no-untyped-def]
        """Clip to the frame, drop mirror ghosts, merge duplicates (NMS on the clipped boxes).

        At the frame's border one face can give two boxes (the cut face itself and, from a
        mirrored edge view, the cut face completed by its mirror image, centred on the edge); NMS
        keeps one of them, which may be the narrower: a kept box touching the border is widened to
        the union of the boxes it suppressed, so the cover reaches as far as any of them did.
        """
        if len(boxes) == 0:
            return Detections.empty()
        area = np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1e-6)
        boxes = boxes.copy()
        np.clip(boxes[:, 0::2], 0, w, out=boxes[:, 0::2])
        np.clip(boxes[:, 1::2], 0, h, out=boxes[:, 1::2])
        inside = (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0) / area
        ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]) & (inside >= _EDGE_MIN_INSIDE)
        boxes, scores, kps = boxes[ok], scores[ok], kps[ok]
        if len(boxes) > 1:  # verified boxes moved: merge duplicates again
            k = nms(boxes, scores, self.cfg.nms_iou, contained=_CONTAINED_IOA)
            at_border = (boxes[k, 0] <= 1) | (boxes[k, 1] <= 1) | (boxes[k, 2] >= w - 1) | (boxes[k, 3] >= h - 1)
            if at_border.any():
                same = (box_iou(boxes[k], boxes) > self.cfg.nms_iou) | (box_ioa(boxes, boxes[k]).T >= _CONTAINED_IOA)
                merged = boxes[k].copy()
                for r in np.flatnonzero(at_border):
                    group = boxes[same[r]]
                    merged[r, :2] = np.minimum(merged[r, :2], group[:, :2].min(axis=0))
                    merged[r, 2:] = np.maximum(merged[r, 2:], group[:, 2:].max(axis=0))
                boxes, scores, kps = merged, scores[k], kps[k]
            else:
                boxes, scores, kps = boxes[k], scores[k], kps[k]
        return Detections(boxes, scores, kps)


def _safe_close(det: object) -> None:
    """Close a MediaPipe detector; if its worker pool is already gone, disarm its ``__del__``."""
    try:
        det.close()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - shutting down: nothing left to report to
        if hasattr(det, "_handle"):
            det._handle = None  # type: ignore[attr-defined]


_LIVE: weakref.WeakSet[FaceDetector] = weakref.WeakSet()
_exit_hook_registered = False


def _close_all_at_exit() -> None:
    for det in list(_LIVE):
        det.close()


def _register_exit_hook() -> None:
    """Close forgotten detectors at exit *before* concurrent.futures stops MediaPipe's workers.

    ``threading._register_atexit`` hooks run (last registered first) before the worker pools shut
    down, whereas ``atexit`` hooks run after, when MediaPipe can no longer close cleanly.
    """
    global _exit_hook_registered
    if _exit_hook_registered:
        return
    register = getattr(threading, "_register_atexit", None)
    try:
        if register is None:
            raise RuntimeError
        register(_close_all_at_exit)
    except RuntimeError:
        atexit.register(_close_all_at_exit)
    _exit_hook_registered = True


def _rel_size(boxes: np.ndarray, input_side: int) -> np.ndarray:
    """Box size as a fraction of the (letterboxed, square) input the model saw."""
    size = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    return (size / float(max(input_side, 1))).astype(np.float32)


def _match(cand: np.ndarray, box: np.ndarray) -> int:
    """Index of the verification detection that is the candidate (best IoU, or centre inside), or -1."""
    iou = box_iou(cand, box[None])[:, 0]
    c = (cand[:, :2] + cand[:, 2:]) / 2
    inside = (c[:, 0] >= box[0]) & (c[:, 0] <= box[2]) & (c[:, 1] >= box[1]) & (c[:, 1] <= box[3])
    score = np.where((iou > VERIFY_IOU) | inside, iou + 1e-3, -1.0)
    j = int(np.argmax(score))
    return j if score[j] > 0 else -1
