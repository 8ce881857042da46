"""BlazeFace short-range in ONNX Runtime, many images per call, pre/post-processing as MediaPipe's.

MediaPipe Tasks' FaceDetector costs ~3 ms a call whatever the input size (graph and thread
hand-over overhead); streamdp's detector makes 19-38 calls a frame (full frame, tile pyramid,
second looks). ``BlazeFaceRunner.run`` takes any number of images of any sizes and runs the model
once on all of them.

The model is ``models/face_detection_short_range.onnx``, converted once from MediaPipe's
``face_detection_short_range.tflite`` by ``tools/tflite_to_onnx.py`` (input float32
``[N, H, W, 3]`` RGB in [-1, 1], NHWC like the .tflite; outputs ``regressors [N, A, 16]``,
``classificators [N, A, 1]``; for the 128x128 input the model was trained on A = 896).
``BlazeFaceRunner.run_canvas`` runs it on bigger inputs (multiples of 16): the network is
convolutional, so a downscaled frame is searched in one run on a grid of anchors over all of it
(``canvas.py``), what the 128x128 tiles did with overlaps and a call overhead each.

What MediaPipe Tasks does around the model, and this module repeats (read from
``mediapipe/tasks/cc/vision/face_detector/face_detector_graph.cc`` and the calculators it
configures; defaults for a model without detector metadata, and the Python API's
``min_suppression_threshold`` = 0.3):

* ImageToTensor, CPU/OpenCV path: the ROI is the whole image padded to a square around its
  centre (``keep_aspect_ratio``), mapped onto 128x128 by ``cv2.warpPerspective`` with
  ``INTER_LINEAR`` and a zero border (a bilinear point sampling, no antialiasing: a 1080p frame is
  sampled, not averaged), then ``u8 * 2/255 - 1``. Padding pixels are 0 -> -1.
* SsdAnchors: 4 layers, strides 8, 16, 16, 16, aspect ratio 1 plus the interpolated one, fixed
  anchor size -> 16x16x2 + 8x8x6 = 896 anchors at cell centres, width = height = 1.
* TensorsToDetections: ``reverse_output_order`` (x, y, w, h), scale 128, keypoints offset 4
  (6 x (x, y)); logits clipped to +-100 then sigmoid; boxes with score < ``min_score`` or negative
  size dropped.
* NonMaxSuppression: WEIGHTED, IoU, threshold 0.3: the best remaining box takes every remaining
  box overlapping it by IoU > 0.3 and becomes their score-weighted mean (box corners and
  keypoints); its score stays the best one's.
* Projection to the image: relative coordinates in the padded square back to pixels. MediaPipe's
  pixel box (DetectionTransformationCalculator) is ``xmin = clamp(int(xmin), 0, W)``,
  ``width = clamp(int(width), 0, W)`` (same for y): whole pixels, and a box sticking out on the
  left/top is *shifted* inside, not cut; one sticking out on the right/bottom is left as is.
  ``run(boxes="mediapipe")`` (the default) repeats exactly that; ``"clip"`` gives float boxes
  clipped to the image, ``"raw"`` unclipped floats. Keypoints are never clipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np

from ..errors import ModelError
from .letterbox import INPUT_SIZE, letterbox_matrix, prepare_views

NUM_ANCHORS = 896
NUM_KEYPOINTS = 6
ONNX_FILENAME = "face_detection_short_range.onnx"
SCORE_CLIPPING_THRESH = 100.0
MIN_SUPPRESSION_THRESHOLD = 0.3

BoxMode = Literal["mediapipe", "clip", "raw"]
Result = tuple[np.ndarray, np.ndarray, np.ndarray]  # boxes (N,4) xyxy, scores (N,), keypoints (N,6,2)


def default_onnx_path() -> Path:
    """The converted BlazeFace short-range model shipped inside the package."""
    from ..model_files import packaged_model

    return packaged_model(ONNX_FILENAME)


def ssd_anchors() -> np.ndarray:
    """(896, 2) anchor centres (x, y) in [0, 1], MediaPipe's order (row, column, anchor)."""
    out = []
    # (stride, anchors per cell): layers of equal stride are merged, 2 anchors per layer
    for stride, per_cell in ((8, 2), (16, 6)):
        n = int(np.ceil(INPUT_SIZE / stride))
        c = (np.arange(n, dtype=np.float32) + 0.5) / n
        yy, xx = np.meshgrid(c, c, indexing="ij")
        xy = np.stack([xx.ravel(), yy.ravel()], axis=1)
        out.append(np.repeat(xy, per_cell, axis=0))
    anchors = np.concatenate(out).astype(np.float32)
    assert len(anchors) == NUM_ANCHORS
    return anchors


_ANCHORS = ssd_anchors()


def grid_anchors(height: int, width: int) -> np.ndarray:
    """(A, 2) anchor centres (x, y) in input pixels for an ``height x width`` input (multiples of
    16), in the model's output order: the stride-8 cells (2 anchors each) row by row, then the
    stride-16 cells (6 each). For 128x128 this is ``ssd_anchors() * 128``."""
    out = []
    for stride, per_cell in ((8, 2), (16, 6)):
        ys = (np.arange(height // stride, dtype=np.float32) + 0.5) * stride
        xs = (np.arange(width // stride, dtype=np.float32) + 0.5) * stride
        yy, xx = np.meshgrid(ys, xs, indexing="ij")
        out.append(np.repeat(np.stack([xx.ravel(), yy.ravel()], axis=1), per_cell, axis=0))
    return np.concatenate(out)


def decode(regressors: np.ndarray, classificators: np.ndarray, min_score: float,
           anchors: np.ndarray | None = None, scale: float = INPUT_SIZE) -> list[Result]:
    """Raw outputs of a batch -> per image (boxes, scores, keypoints) before NMS: only anchors
    scoring >= ``min_score`` with a non-negative box size. Default: the 128x128 input's anchors,
    results in relative model coordinates; ``anchors`` in input pixels with ``scale`` 1: results
    in input pixels."""
    logits = np.clip(classificators[..., 0], -SCORE_CLIPPING_THRESH, SCORE_CLIPPING_THRESH)
    with np.errstate(over="ignore"):  # exp(100) overflows float32 -> inf -> score 0, as intended
        scores = 1.0 / (1.0 + np.exp(-logits))
    # every image's candidates at once (one pass over the batch, not one per image)
    bi, ai = np.nonzero(scores >= min_score)
    raw = regressors[bi, ai] / np.float32(scale)
    anc = (_ANCHORS if anchors is None else anchors)[ai]
    cxy = raw[:, 0:2] + anc
    wh = raw[:, 2:4]
    ok = (wh >= 0).all(axis=1)
    boxes = np.concatenate([cxy - wh / 2, cxy + wh / 2], axis=1)[ok].astype(np.float32)
    kps = (raw[:, 4:].reshape(-1, NUM_KEYPOINTS, 2) + anc[:, None, :])[ok].astype(np.float32)
    sc = scores[bi, ai][ok].astype(np.float32)
    cuts = np.searchsorted(bi[ok], np.arange(1, len(regressors)))
    return list(zip(np.split(boxes, cuts), np.split(sc, cuts), np.split(kps, cuts)))


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, kps: np.ndarray, threshold: float = MIN_SUPPRESSION_THRESHOLD) -> Result:
    """MediaPipe's WEIGHTED non-maximum suppression (IoU > ``threshold`` joins a cluster).

    In score order, the best remaining box takes every remaining box overlapping it by more than
    ``threshold`` and becomes their score-weighted mean. Its cluster heads are exactly greedy
    NMS's kept boxes (a box no better box overlaps heads its own cluster), and a box joins the
    first head, in score order, that overlaps it: so the heads come from OpenCV's C++ greedy NMS
    and the clusters from one heads x boxes IoU matrix, no loop per cluster (a textured 720p
    canvas gives hundreds of candidates: the loop took 26 ms a frame). Degenerate boxes take the
    reference loop (``_weighted_nms_loop``).
    """
    n = len(boxes)
    if n == 0:
        return boxes, scores, kps
    wh = boxes[:, 2:] - boxes[:, :2]
    if n == 1 and (wh > 0).all():  # a cluster of one: itself
        return boxes.astype(np.float32), scores.astype(np.float32), kps.astype(np.float32)
    if n <= 4 or not (wh > 0).all():
        return _weighted_nms_loop(boxes, scores, kps, threshold)
    import cv2

    heads = np.asarray(cv2.dnn.NMSBoxes(np.concatenate([boxes[:, :2], wh], axis=1).astype(np.float64).tolist(),
                                        scores.astype(np.float64).tolist(), 0.0, float(threshold)), dtype=np.int64).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    heads = heads[np.argsort(rank[heads], kind="stable")]
    hb = boxes[heads]
    iw = np.minimum(hb[:, None, 2], boxes[None, :, 2]) - np.maximum(hb[:, None, 0], boxes[None, :, 0])
    ih = np.minimum(hb[:, None, 3], boxes[None, :, 3]) - np.maximum(hb[:, None, 1], boxes[None, :, 1])
    np.maximum(iw, 0, out=iw)
    np.maximum(ih, 0, out=ih)
    inter = iw * ih
    area = wh[:, 0] * wh[:, 1]
    over = inter / (area[heads, None] + area[None, :] - inter) > threshold
    over &= rank[heads, None] <= rank[None, :]  # a head takes only boxes after it
    over[np.arange(len(heads)), heads] = True
    # each box's cluster: the first head overlapping it; its score is its weight there
    members = np.flatnonzero(over.any(axis=0))
    w = np.zeros((len(heads), n), dtype=np.float32)
    w[np.argmax(over[:, members], axis=0), members] = scores[members]
    tw = w.sum(axis=1)
    out_b = (w @ boxes) / tw[:, None]
    out_k = (w @ kps.reshape(n, -1)).reshape(len(heads), *kps.shape[1:]) / tw[:, None, None]
    return out_b.astype(np.float32), scores[heads].astype(np.float32), out_k.astype(np.float32)


def _weighted_nms_loop(boxes: np.ndarray, scores: np.ndarray, kps: np.ndarray, threshold: float = MIN_SUPPRESSION_THRESHOLD) -> Result:
    """MediaPipe's weighted NMS as written: one loop per output cluster (the reference)."""
    n = len(boxes)
    if n == 0:
        return boxes, scores, kps
    order = np.argsort(-scores, kind="stable")
    b, s, k = boxes[order], scores[order], kps[order]
    wh = np.clip(b[:, 2:] - b[:, :2], 0, None)
    area = wh[:, 0] * wh[:, 1]
    lt = np.maximum(b[:, None, :2], b[None, :, :2])
    rb = np.minimum(b[:, None, 2:], b[None, :, 2:])
    iwh = np.clip(rb - lt, 0, None)
    inter = iwh[..., 0] * iwh[..., 1]
    union = area[:, None] + area[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        over = np.where(union > 0, inter / union, 0.0) > threshold
    alive = np.ones(n, dtype=bool)
    out_b, out_s, out_k = [], [], []
    while True:
        rest = np.flatnonzero(alive)
        if len(rest) == 0:
            break
        top = rest[0]
        members = rest[over[top, rest]]
        if len(members):
            w = s[members]
            tw = w.sum()
            out_b.append((b[members] * w[:, None]).sum(axis=0) / tw)
            out_k.append((k[members] * w[:, None, None]).sum(axis=0) / tw)
        else:  # a degenerate box overlaps nothing, not even itself: kept as is, then stop
            out_b.append(b[top])
            out_k.append(k[top])
        out_s.append(s[top])
        if len(members) == 0:
            break
        alive[members] = False
    return (
        np.asarray(out_b, dtype=np.float32).reshape(-1, 4),
        np.asarray(out_s, dtype=np.float32),
        np.asarray(out_k, dtype=np.float32).reshape(-1, NUM_KEYPOINTS, 2),
    )


def _to_image(b: np.ndarray, w: int, h: int, mode: BoxMode) -> np.ndarray:
    if mode == "clip":
        b = b.copy()
        np.clip(b[:, 0::2], 0, w, out=b[:, 0::2])
        np.clip(b[:, 1::2], 0, h, out=b[:, 1::2])
        return b
    if mode != "mediapipe":
        raise ValueError(f"unknown box mode {mode!r}")
    lim = np.array([w, h], dtype=np.float32)
    xy = np.clip(np.trunc(b[:, :2]), 0, lim)
    wh = np.clip(np.trunc(b[:, 2:] - b[:, :2]), 0, lim)
    return np.concatenate([xy, xy + wh], axis=1).astype(np.float32)


def select_providers(available: Sequence[str] | None = None) -> list[str]:
    """CUDA when this onnxruntime has it, else CPU (the detector's, dp-image's encoder's and the
    generator's sessions all choose here). Without CUDA while both the ``onnxruntime`` and the
    ``onnxruntime-gpu`` wheels are installed, says once why (``onnxruntime_clash``)."""
    import onnxruntime as ort

    available = list(ort.get_available_providers()) if available is None else list(available)
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    clash = onnxruntime_clash()
    if clash:
        _warn_once(clash)
    return ["CPUExecutionProvider"]


@lru_cache(maxsize=1)
def onnxruntime_clash() -> str | None:
    """Why CUDA may be missing: ``pip install '.[gpu]'`` leaves both wheels installed, and both
    write the one ``onnxruntime`` module (whichever went in last is the one imported)."""
    from importlib import metadata

    names = set()
    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            metadata.version(dist)
            names.add(dist)
        except metadata.PackageNotFoundError:
            pass
    if names != {"onnxruntime", "onnxruntime-gpu"}:
        return None
    return ("onnxruntime and onnxruntime-gpu are both installed and this onnxruntime has no CUDA: running on "
            "the CPU. For the GPU: pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu")


@lru_cache(maxsize=4)
def _warn_once(message: str) -> None:
    import logging

    logging.getLogger("streamdp").warning(message)


class BlazeFaceRunner:
    """BlazeFace short-range on a batch of images in one ONNX Runtime call.

    ``min_score``: candidates below it are dropped before NMS (MediaPipe's
    ``min_detection_confidence``). ``intra_op_threads``: ONNX Runtime's CPU threads (default 1:
    a second thread saves ~40% of the wall time but costs ~60% more CPU, which the pipeline's other
    stages want; ``detect.threads``). Not thread-safe for concurrent ``run`` calls on one instance
    (the input buffer is reused).
    """

    def __init__(
        self,
        model_path: Path | str | None = None,
        *,
        min_score: float = 0.5,
        suppression_threshold: float = MIN_SUPPRESSION_THRESHOLD,
        intra_op_threads: int | None = None,
        providers: Sequence[str] | None = None,
    ) -> None:
        try:
            import onnxruntime as ort
        except Exception as exc:  # pragma: no cover - environment problem
            raise ModelError(f"onnxruntime is not usable: {exc}") from None
        path = Path(model_path) if model_path is not None else default_onnx_path()
        if not path.is_file():
            raise ModelError(f"face detection model not found: {path}")
        if intra_op_threads is None:
            intra_op_threads = 1
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, int(intra_op_threads))
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.providers = list(providers) if providers is not None else select_providers()
        try:
            self._sess = ort.InferenceSession(str(path), sess_options=opts, providers=self.providers)
        except Exception as exc:
            raise ModelError(f"cannot load face detection model {path}: {exc}") from None
        inp = self._sess.get_inputs()[0]
        if len(inp.shape) != 4 or inp.shape[3] != 3:
            raise ModelError(f"{path}: expected an NHWC RGB input, got {inp.shape}")
        #: whether the model takes inputs other than 128x128 (``run_canvas``)
        self.any_size = not all(isinstance(d, int) for d in inp.shape[1:3])
        if not self.any_size and list(inp.shape[1:3]) != [INPUT_SIZE, INPUT_SIZE]:
            raise ModelError(f"{path}: expected input [N, 128, 128, 3], got {inp.shape}")
        self._input = inp.name
        self._init_processing(path, min_score, suppression_threshold)

    def _init_processing(self, path: Path, min_score: float, suppression_threshold: float) -> None:
        """The state the pre- and post-processing keep, whatever engine runs the model."""
        self._anchors: dict[tuple[int, int], np.ndarray] = {}
        self.model_path = path
        self.min_score = float(min_score)
        self.suppression_threshold = float(suppression_threshold)
        self._buf = np.empty((0, INPUT_SIZE, INPUT_SIZE, 3), dtype=np.float32)
        self._buf_u8 = np.empty((0, INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8)
        #: model calls and images run so far
        self.calls = 0
        self.images = 0

    def close(self) -> None:
        """Nothing to release here (ONNX Runtime's session goes with the object)."""

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw model outputs (regressors, classificators) for a float32 NHWC batch."""
        reg, cls = self._sess.run(["regressors", "classificators"], {self._input: batch})
        self.calls += 1
        self.images += len(batch)
        return reg, cls

    def infer_views(self, images: Sequence[np.ndarray], staged: np.ndarray, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Letterbox ``images`` into ``staged`` (uint8), scale them into ``batch`` and run the model."""
        prepare_views(images, staged, batch)
        return self.infer(batch)

    def run_canvas(self, canvases: Sequence[np.ndarray]) -> list[Result]:
        """Faces in same-sized ``HxWx3 uint8`` RGB canvases (H, W multiples of 16), one model run:
        per canvas ``(boxes (N,4), scores (N,), keypoints (N,6,2))`` in canvas pixels (floats,
        unclipped), after MediaPipe's weighted NMS; a face is found where it is 13-128 px."""
        if not canvases:
            return []
        if not self.any_size:
            raise ModelError(f"{self.model_path}: this model takes 128x128 inputs only (regenerate it with tools/tflite_to_onnx.py)")
        h, w = canvases[0].shape[:2]
        if h % 16 or w % 16 or any(c.shape != canvases[0].shape for c in canvases):
            raise ValueError(f"canvases must share one HxWx3 shape with sides multiple of 16, got {[c.shape for c in canvases]}")
        batch = np.empty((len(canvases), h, w, 3), dtype=np.float32)
        for i, c in enumerate(canvases):
            np.multiply(c, np.float32(2.0 / 255.0), out=batch[i], casting="unsafe")
        batch -= np.float32(1.0)
        reg, cls = self.infer(batch)
        anchors = self._anchors.get((h, w))
        if anchors is None:
            anchors = self._anchors.setdefault((h, w), grid_anchors(h, w))
        return [weighted_nms(b, s, k, self.suppression_threshold)
                for b, s, k in decode(reg, cls, self.min_score, anchors=anchors, scale=1.0)]

    def run(self, images: Sequence[np.ndarray], *, boxes: BoxMode = "mediapipe") -> list[Result]:
        """Faces in each ``HxWx3 uint8`` RGB image (any sizes; views into a bigger frame are fine).

        Returns per image ``(boxes (N,4) xyxy, scores (N,), keypoints (N,6,2))`` in that image's
        pixels, highest score first. ``boxes``: ``"mediapipe"`` = MediaPipe Tasks' whole-pixel
        boxes (see the module docstring), ``"clip"`` = float boxes clipped to the image, ``"raw"``
        = unclipped. All images go through the model in one call.
        """
        n = len(images)
        if n == 0:
            return []
        if len(self._buf) < n:
            self._buf = np.empty((max(n, 2 * len(self._buf)), INPUT_SIZE, INPUT_SIZE, 3), dtype=np.float32)
            self._buf_u8 = np.empty(self._buf.shape, dtype=np.uint8)
        batch, staged = self._buf[:n], self._buf_u8[:n]
        frames = []
        for img in images:
            if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                raise ValueError(f"expected an HxWx3 uint8 RGB image, got {img.dtype} {img.shape}")
            frames.append(letterbox_matrix(img.shape[1], img.shape[0])[1:])
        reg, cls = self.infer_views(images, staged, batch)
        out: list[Result] = []
        for (left, top, side), img, (b, s, k) in zip(frames, images, decode(reg, cls, self.min_score)):
            if not len(b):
                out.append((b.reshape(0, 4), s, k.reshape(0, NUM_KEYPOINTS, 2)))
                continue
            b, s, k = weighted_nms(b, s, k, self.suppression_threshold)
            b = b * np.float32(side) + np.array([left, top, left, top], dtype=np.float32)
            k = k * np.float32(side) + np.array([left, top], dtype=np.float32)
            if len(b) and boxes != "raw":
                b = _to_image(b, *img.shape[1::-1], boxes)
            out.append((b.astype(np.float32, copy=False), s, k.astype(np.float32, copy=False)))
        return out
