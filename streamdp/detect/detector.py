"""``FaceDetector``: one frame (or a batch) in, ``Detections`` out.

Per frame: gather the views (full frame, the scheduled tiles and mirrored edge tiles, one
confirmation view per tracked face), run them through the model in one go, merge their candidates,
run every unsure candidate's second look in one more go, and finalize. The jobs live beside it:
``schedule`` (which tiles), ``backends`` (the model runner), ``candidates`` (merging),
``verify`` (second looks and their memory).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import numpy as np

from ..config import DetectConfig
from ..errors import ModelError
from ..types import Detections
from .backends import Backend, Result, View, open_backend, resolve_backend
from .canvas import Band, CanvasPlan, band_candidates, band_rect, build_canvas, plan_canvases
from .candidates import CONFIRM, Candidates, finalize, first_look_sure, from_view, merge
from .schedule import ChangeGate, TileSchedule, gate_refresh
from .tiles import MirroredView, MirrorFrame, Tile, mirror_padded
from .geometry import box_iou
from .verify import MAX_CONFIRM, MAX_VERIFY, RejectMemory, apply_second_looks, look_view, needs_confirmation, plan_second_looks

# a tracked face whose expected box a sure first-look candidate overlaps this much was found: no
# confirmation view for it this frame (tracked boxes move little between frames; a lagging
# prediction, a face crossing another: the view runs)
CONFIRM_FOUND_IOU = 0.5

Owner = tuple[int, "Tile | object | None"]  # frame number in the call, and None (full frame), a Tile or CONFIRM


class FaceDetector:
    """Finds faces in RGB frames; one instance per thread (model sessions are not shared).

    ``cfg.backend`` (``backends.resolve_backend`` settles "auto"): ``"litert"``, ``"openvino"``
    and ``"onnx"`` run BlazeFace through one batched runner (``streamdp.detect.blazeface``), every
    frame's views in one batch and all second looks in one more; ``"mediapipe"`` runs MediaPipe
    Tasks, one call per image. All see the same model inputs and decode them the same way, so they
    find the same faces (bf16 moves scores by a few thousandths: docs/performance.md).
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
        #: score a face must reach at the model's favourite scale (see ``verify.plan_second_looks``)
        self.new_face_score = max(float(self.cfg.min_confidence), self.verify_score)
        #: the model runner in use: "litert", "openvino", "onnx" or "mediapipe"
        self.backend = resolve_backend(self.cfg.backend)
        # the model reports everything down to the proposal score; thresholds are applied here
        #: the runner itself (``backends.OnnxBackend`` or ``MediaPipeBackend``)
        self.runner: Backend = open_backend(self.backend, model_path, float(self.cfg.min_confidence),
                                            self.cfg.effective_threads())
        self.model_path = self.runner.model_path
        #: "canvas" (each pyramid level one downscaled frame, ``canvas.py``) or "tiles"
        self.search = self.cfg.effective_search()
        if self.search == "canvas" and not self.runner.canvas_ok:
            raise ModelError(f"{self.model_path}: detect.search 'canvas' needs a model with a free input size "
                             "(regenerate it with tools/tflite_to_onnx.py, or set detect.search: tiles)")
        self._schedule = TileSchedule(self.cfg)
        self._canvas_plans: dict[tuple[int, int, int], CanvasPlan] = {}
        # the rejection memory and the change gate serve one stream's consecutive frames
        self._memory = RejectMemory(self.tile_every + 1)
        self._gate = ChangeGate(gate_refresh(self.tile_every))
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
            "confirm_skipped": 0,
        }

    # -- context manager ----------------------------------------------------------------------
    def close(self) -> None:
        self.runner.close()

    def __enter__(self) -> FaceDetector:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- public -------------------------------------------------------------------------------
    def edge_tiles_for(self, width: int, height: int) -> list[Tile]:
        """The mirrored edge tiles searched with the tile pass (``plan_edge_tiles``; cached)."""
        return self._schedule.edge_tiles_for(width, height)

    def tiles_for(self, width: int, height: int) -> list[Tile]:
        """The tile plan used for frames of this size (cached)."""
        return self._schedule.tiles_for(width, height)

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
        more. Each frame's result is what ``detect`` would give for it alone.

        ``hints``: per frame the boxes of its tracked faces (or None), each confirmed in a view
        at the model's favourite scale."""
        if self.runner.closed:
            raise RuntimeError("FaceDetector is closed")
        if len(frames) != len(frame_indices):
            raise ValueError(f"{len(frames)} frames but {len(frame_indices)} frame indices")
        imgs = [self._check(f) for f in frames]
        if not imgs:
            return []
        t0 = time.perf_counter()
        batches0 = self.totals["batches"]
        # the rejection memory and the change gate serve one stream's consecutive frames
        # (detect / FaceStage); a batch of several frames is searched in full
        single = len(imgs) == 1
        # The change gate sees each of one stream's frames once (its tracked boxes masked), and
        # only with a tracker's boxes (``hints``, an empty array when nothing is tracked): a face
        # a skipped region found before is then confirmed in its own view. A caller without a
        # tracker (hints None) gets a full search every call.
        tracked = None if hints is None or hints[0] is None else hints[0]
        gate = self._gate if single and self.cfg.skip_unchanged and tracked is not None else None
        if gate is not None:
            gate.begin(imgs[0], tracked)

        # 1. search: full frames and tiles, all in one go
        views, owners, padded, n_tiles, confirms = self._search_views(imgs, frame_indices, hints, gate)
        t_full = t0
        if not self.runner.batched:  # mediapipe: time the full frame's call on its own, as before
            results = [self._run(*views[0])]
            t_full = time.perf_counter()
            results += self._run_many(views[1:])
        else:
            results = self._run_many(views)
        parts: list[list[Candidates]] = [[] for _ in imgs]
        if self.search == "canvas":
            n_tiles += self._search_bands(imgs, frame_indices, parts, gate)
        self._add_parts(imgs, owners, results, parts)
        # then the confirmation views of the tracked faces the first look did not already find
        n_confirm = self._confirm(imgs, confirms, parts)
        t_tiles = time.perf_counter()
        if self.runner.batched:
            t_full = t_tiles
        cands = [merge(Candidates.concat(p), self.cfg.nms_iou, self.new_face_score) for p in parts]

        # 2. second looks, all in one go
        out, n_verify = self._second_looks(imgs, frame_indices, cands, padded, single, gate)
        if gate is not None:
            gate.found(out[0].boxes)  # what the regions searched now found (see ChangeGate.keep)
        t_end = time.perf_counter()
        calls = len(views) + n_confirm + n_verify
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
            "candidates": float(sum(len(c) for c in cands)),
            "batches": float(self.totals["batches"] - batches0),
        }
        self.totals["frames"] += len(imgs)
        self.totals["calls"] += calls
        self.totals["seconds"] += t_end - t0
        return out

    # -- the steps of detect_batch --------------------------------------------------------------
    def _search_views(
        self, imgs: list[np.ndarray], frame_indices: Sequence[int], hints: Sequence[np.ndarray | None] | None,
        gate: ChangeGate | None,
    ) -> tuple[list[View], list[Owner], dict[int, MirrorFrame], int, list[tuple[int, np.ndarray, View]]]:
        """Every first-look view of the frames with its owner; the mirror-padded frames (frame ->
        ``MirrorFrame``) of the frames whose edges are searched; how many tile views; the tracked
        faces' confirmation views (frame, expected box, view), run after the first look."""
        views: list[View] = []
        owners: list[Owner] = []
        padded: dict[int, MirrorFrame] = {}
        confirms: list[tuple[int, np.ndarray, View]] = []
        n_tiles = 0
        for f, (img, fi) in enumerate(zip(imgs, frame_indices)):
            views.append((img, 0, 0))
            owners.append((f, None))
            h, w = img.shape[:2]
            if self.search == "canvas":  # the levels are searched as canvases (_search_bands)
                tiles, edges = [], []
            else:
                tiles, edges = self._schedule.due(w, h, fi, self.tile_every)
            hint = None if hints is None else hints[f]
            if gate is not None:
                skipped0 = gate.skipped
                tiles, edges = gate.changed_only(tiles, edges)
                self.totals["tiles_skipped_unchanged"] += gate.skipped - skipped0
            n_tiles += len(tiles)
            self.totals["tile_passes"] += 1 if tiles else 0
            for tile in tiles:
                views.append((img[tile.y0 : tile.y1, tile.x0 : tile.x1], tile.x0, tile.y0))
                owners.append((f, tile))
            # Tracked faces are confirmed every frame in a view at the model's favourite scale
            # (what a second look is), so a small face found by a tile stays detected between
            # its tiles' turns.
            boxes = [] if hint is None else np.asarray(hint, np.float64).reshape(-1, 4)
            for box in [b for b in boxes if needs_confirmation(img, b)][:MAX_CONFIRM]:
                view = look_view(img, box)
                if view is not None:
                    confirms.append((f, box, view))
            if edges:
                pad = self._schedule.edge_pad(w, h)
                n_tiles += len(edges)
                if self.runner.batched:  # sampled from the frame itself, mirrored by the warp (MirroredView)
                    padded[f] = MirrorFrame(img, pad)
                    views += [(MirroredView(img, tile.x0, tile.y0, tile.size), tile.x0, tile.y0) for tile in edges]
                else:  # MediaPipe Tasks takes arrays: views into one mirror-padded copy
                    padded[f] = MirrorFrame(img, pad, mirror_padded(img, pad))
                    views += [(padded[f].crop(tile.x0, tile.y0, tile.size), tile.x0, tile.y0) for tile in edges]
                owners += [(f, tile) for tile in edges]
        return views, owners, padded, n_tiles, confirms

    def canvas_plan(self, width: int, height: int) -> CanvasPlan:
        """The canvas levels and bands of frames of this size (cached)."""
        key = (width, height, self.tile_every)
        plan = self._canvas_plans.get(key)
        if plan is None:
            plan = self._canvas_plans[key] = plan_canvases(width, height, self.cfg, self.tile_every)
        return plan

    def _search_share(self, img: np.ndarray, frame_index: int) -> int:
        """How many frames' share of the spread search this frame does (its second looks' cap is
        that many times ``MAX_VERIFY``): the canvas search puts a whole level in one frame."""
        if self.search != "canvas":
            return 1
        return self.canvas_plan(img.shape[1], img.shape[0]).frames_worth(frame_index)

    def _search_bands(self, imgs: list[np.ndarray], frame_indices: Sequence[int], parts: list[list[Candidates]],
                      gate: ChangeGate | None = None) -> int:
        """Search every frame's due canvas bands (one model run per band shape, all frames
        together) and add their candidates to ``parts``; how many bands."""
        groups: dict[tuple[int, int], list[tuple[int, Band, np.ndarray]]] = {}
        for f, (img, fi) in enumerate(zip(imgs, frame_indices)):
            plan = self.canvas_plan(img.shape[1], img.shape[0])
            due = plan.phases[fi % len(plan.phases)] if plan.phases else ()
            if gate is not None and due:
                kept = [b for b in due if gate.keep(("b", plan.levels[b.level].size, b.u0, b.v0, b.u1, b.v1),
                                                         *band_rect(b, plan.levels[b.level]))]
                self.totals["tiles_skipped_unchanged"] += len(due) - len(kept)
                due = kept
            canvases: dict[int, np.ndarray] = {}
            for band in due:
                if band.level not in canvases:
                    canvases[band.level] = build_canvas(img, plan.levels[band.level])
                view = canvases[band.level][band.v0 : band.v1, band.u0 : band.u1]
                groups.setdefault(view.shape[:2], []).append((f, band, view))
        n = 0
        for items in groups.values():
            results = self.runner.run_canvas([np.ascontiguousarray(v) for _, _, v in items])
            self.totals["batches"] += 1
            for (f, band, _), (b, sc, k) in zip(items, results):
                plan = self.canvas_plan(imgs[f].shape[1], imgs[f].shape[0])
                part = band_candidates(band, plan.levels[band.level], b, sc, k)
                if part is not None:
                    parts[f].append(part)
            n += len(items)
        if n:
            self.totals["tile_passes"] += 1
        return n

    @staticmethod
    def _add_parts(imgs: list[np.ndarray], owners: list[Owner], results: list[Result],
                   parts: list[list[Candidates]]) -> None:
        """Each view's candidates added to its frame's ``parts``."""
        for (f, owner), (b, s, k) in zip(owners, results):
            h, w = imgs[f].shape[:2]
            part = from_view(owner, b, s, k, w, h)
            if part is not None:
                parts[f].append(part)

    def _confirm(self, imgs: list[np.ndarray], confirms: list[tuple[int, np.ndarray, View]],
                 parts: list[list[Candidates]]) -> int:
        """Run the confirmation views of the tracked faces this frame's first look has not
        already found for sure, and add their candidates to ``parts``; how many ran. Found for
        sure: a candidate the second looks would keep as it is (``candidates.first_look_sure``: no
        tile border cut it, it scored >= 0.8 at a comfortable size) overlapping the expected box
        by IoU >= ``CONFIRM_FOUND_IOU``. A big face the full view sees at the model's favourite
        scale needs no second view of itself each frame; a face the first look missed, only half
        saw or saw too small, or one at the frame's border (cut by it) gets its view as before."""
        todo = []
        sure_boxes: dict[int, np.ndarray] = {}
        for f, box, view in confirms:
            h, w = imgs[f].shape[:2]
            if box[0] <= 1 or box[1] <= 1 or box[2] >= w - 1 or box[3] >= h - 1:
                todo.append((f, view))  # a face at the frame's border: always its own view (continuity)
                continue
            if f not in sure_boxes:
                c = Candidates.concat(parts[f]) if parts[f] else None
                sure_boxes[f] = c.boxes[first_look_sure(c)] if c is not None else np.zeros((0, 4), np.float32)
            found = sure_boxes[f]
            if len(found) and box_iou(np.asarray(box, np.float64)[None], found.astype(np.float64)).max() >= CONFIRM_FOUND_IOU:
                continue
            todo.append((f, view))
        self.totals["confirm_skipped"] += len(confirms) - len(todo)
        self._add_parts(imgs, [(f, CONFIRM) for f, _ in todo], self._run_many([v for _, v in todo]), parts)
        return len(todo)

    def _second_looks(
        self, imgs: list[np.ndarray], frame_indices: Sequence[int], cands: list[Candidates],
        padded: dict[int, MirrorFrame], single: bool, gate: ChangeGate | None = None,
    ) -> tuple[list[Detections], int]:
        """Every frame's faces after the second looks (all run in one go), and how many looks.
        ``single``: one stream's frame (the rejection memory's)."""
        stream_index = frame_indices[0] if single else None
        memory = self._memory.recall(stream_index, gate) if stream_index is not None else None
        need = self.new_face_score
        if self.search == "canvas" and self.cfg.edge_search != "off":
            # a candidate cut by the frame's border is looked at again in the mirrored frame too
            for f, img in enumerate(imgs):
                padded[f] = MirrorFrame(img, self._schedule.edge_pad(img.shape[1], img.shape[0]))
        plans = [plan_second_looks(img, c, need, self.cfg.min_confidence, padded=padded.get(f), memory=memory,
                                   most=MAX_VERIFY * self._search_share(img, fi))
                 for f, (img, fi, c) in enumerate(zip(imgs, frame_indices, cands))]
        look_results = iter(self._run_many([crop for p in plans for crop in p.looks]))
        out = []
        n_verify = 0
        for img, c, plan in zip(imgs, cands, plans):
            res = [next(look_results) for _ in plan.looks]
            rejected: list[tuple[np.ndarray, float]] = []
            boxes, scores, kps, verified = apply_second_looks(c, plan, res, need, rejected)
            self.totals["rejected_again"] += plan.again
            self.totals["verified"] += verified
            self.totals["rejected"] += len(rejected)
            if stream_index is not None:
                self._memory.remember(stream_index, rejected, gate)
            n_verify += len(plan.todo)
            out.append(finalize(boxes, scores, kps, img.shape[1], img.shape[0], self.cfg.nms_iou))
        return out, n_verify

    # -- internals ----------------------------------------------------------------------------
    @staticmethod
    def _check(image_rgb: np.ndarray) -> np.ndarray:
        img = np.asarray(image_rgb)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 RGB image, got {img.dtype} {img.shape}")
        if not img.flags.c_contiguous:
            img = np.ascontiguousarray(img)
        return img

    def _run_many(self, views: Sequence[View]) -> list[Result]:
        """Model results for (image view, x0, y0) triples, in frame pixels (offset by x0, y0)."""
        batches0 = self.runner.batches
        out = self.runner.run_many(views)
        self.totals["batches"] += self.runner.batches - batches0
        return out

    def _run(self, rgb: np.ndarray, x0: int, y0: int) -> Result:
        """One view through the model (a call of its own)."""
        return self._run_many([(rgb, x0, y0)])[0]
