"""The two model runners behind ``FaceDetector`` (``cfg.backend``), one interface.

``LiteRtBackend`` (the default on a CPU: ``litert.py``) and ``OnnxBackend`` (the default with
CUDA) run any number of views through BlazeFace in one call (``blazeface.py``'s pre- and
post-processing); ``MediaPipeBackend`` runs MediaPipe Tasks' FaceDetector, one call per
view. Both take ``(view, x0, y0)`` triples (an RGB image and where its top-left corner lies in the
frame) and give ``(boxes (N,4), scores (N,), keypoints (N,6,2))`` per view in frame pixels, with
MediaPipe's whole-pixel boxes; ``batches`` counts model invocations.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..types import NUM_KEYPOINTS
from .blazeface import BlazeFaceRunner, default_onnx_path
from .native import close_at_exit, native_stderr_silenced, safe_close
from .tiles import MirroredView

MODEL_FILENAME = "face_detection_short_range.tflite"

# an RGB image (or a window past the frame's edges, ``tiles.MirroredView``), and its top-left corner in the frame
View = tuple["np.ndarray | MirroredView", int, int]
Result = tuple[np.ndarray, np.ndarray, np.ndarray]  # boxes (N,4) xyxy, scores (N,), keypoints (N,6,2)


def default_model_path() -> Path:
    """The BlazeFace short-range model shipped inside the package (the .tflite MediaPipe reads)."""
    from ..model_files import packaged_model

    return packaged_model(MODEL_FILENAME)


def _offset(b: np.ndarray, k: np.ndarray, x0: int, y0: int) -> tuple[np.ndarray, np.ndarray]:
    """Boxes and keypoints of a view moved to frame pixels."""
    off = np.array([x0, y0], dtype=np.float32)
    return b + np.tile(off, 2), k + off


class OnnxBackend:
    """BlazeFace through ONNX Runtime: every view of a call in one batch."""

    name = "onnx"
    batched = True

    suffix = ".onnx"  # the model file this engine reads

    def __init__(self, model_path: Path | str | None, min_score: float, threads: int = 1) -> None:
        path = Path(model_path) if model_path is not None else self._default_path()
        if path.suffix in (".onnx", ".tflite"):  # the other engine's file given: use the one beside it
            path = path.with_suffix(self.suffix)
        if not path.is_file():
            raise ModelError(f"face detection model not found: {path}")
        from ..model_files import is_shipped, verify_shipped

        if is_shipped(path):
            verify_shipped(path)
        #: the batched runner (replaceable, e.g. by one with other thread settings)
        self.model: BlazeFaceRunner | None = self._open(path, min_score, threads)
        self.model_path = path
        self.min_score = min_score
        self.batches = 0

    @property
    def closed(self) -> bool:
        return self.model is None

    def close(self) -> None:
        if self.model is not None:
            self.model.close()
        self.model = None

    @staticmethod
    def _default_path() -> Path:
        return default_onnx_path()

    @staticmethod
    def _open(path: Path, min_score: float, threads: int) -> BlazeFaceRunner:
        return BlazeFaceRunner(path, min_score=min_score, intra_op_threads=threads)

    @property
    def canvas_ok(self) -> bool:
        """Whether the model takes canvases (inputs other than 128x128)."""
        return self.model is not None and self.model.any_size

    def run_canvas(self, canvases: Sequence[np.ndarray]) -> list[Result]:
        """Same-sized canvases in one model run; results in canvas pixels (``BlazeFaceRunner.run_canvas``)."""
        assert self.model is not None, "closed"
        out = self.model.run_canvas(canvases)
        self.batches += 1
        return out

    def run_many(self, views: Sequence[View]) -> list[Result]:
        if not views:
            return []
        assert self.model is not None, "closed"
        results = self.model.run([v for v, _, _ in views], boxes="mediapipe")
        self.batches += 1
        out = []
        for (_, x0, y0), (b, s, k) in zip(views, results):
            if len(b) and (x0 or y0):
                b, k = _offset(b, k, x0, y0)
            out.append((b, s, k))
        return out


class MediaPipeBackend:
    """MediaPipe Tasks' FaceDetector, one call per view."""

    name = "mediapipe"
    batched = False
    canvas_ok = False  # MediaPipe Tasks letterboxes every input to 128x128

    def __init__(self, model_path: Path | str | None, min_score: float) -> None:
        path = Path(model_path) if model_path is not None else default_model_path()
        if not path.is_file():
            raise ModelError(f"face detection model not found: {path}")
        try:
            import mediapipe as mp
            from mediapipe.tasks.python import BaseOptions, vision
        except Exception as exc:  # pragma: no cover - environment problem
            raise ModelError(f"mediapipe is not usable: {exc}") from None
        self._mp = mp
        opts = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_path=str(path)),
            running_mode=vision.RunningMode.IMAGE,
            min_detection_confidence=min_score,
        )
        try:
            with native_stderr_silenced():
                self._det = vision.FaceDetector.create_from_options(opts)
                # The first call logs an alignment warning from LiteRT: make it here, silenced.
                self._det.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.zeros((64, 64, 3), np.uint8)))
        except Exception as exc:
            raise ModelError(f"cannot load face detection model {path}: {exc}") from None
        self.model_path = path
        self.min_score = min_score
        self.batches = 0
        self._bufs: dict[tuple[int, ...], np.ndarray] = {}  # view shape -> contiguous copy buffer
        # close() when garbage collected or at interpreter exit if the caller forgot (MediaPipe's
        # own __del__ raises once its worker pool is gone)
        self._finalizer = weakref.finalize(self, safe_close, self._det)
        self._finalizer.atexit = False  # too late at atexit: see native._register_exit_hook
        close_at_exit(self)

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def close(self) -> None:
        if self._finalizer.alive:
            with native_stderr_silenced():
                self._finalizer()

    def run_many(self, views: Sequence[View]) -> list[Result]:
        out = []
        for view, x0, y0 in views:
            if isinstance(view, MirroredView):
                view = view.materialize()
            if not view.flags.c_contiguous:  # MediaPipe needs its own contiguous buffer
                key = view.shape[:2]
                buf = self._bufs.get(key)
                if buf is None:
                    buf = self._bufs[key] = np.empty(view.shape, dtype=np.uint8)
                np.copyto(buf, view)
                view = buf
            out.append(self.run_one(view, x0, y0))
        return out

    def run_one(self, rgb: np.ndarray, x0: int, y0: int) -> Result:
        """One model call on a C-contiguous RGB view."""
        mp = self._mp
        result = self._det.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb))
        self.batches += 1
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
            boxes, kps = _offset(boxes, kps, x0, y0)
        return boxes, scores, kps




class LiteRtBackend(OnnxBackend):
    """BlazeFace's .tflite through LiteRT (XNNPACK): the same batched interface as ``OnnxBackend``
    (``litert.py``: faster on a CPU, above all on canvases)."""

    name = "litert"
    suffix = ".tflite"

    @staticmethod
    def _default_path() -> Path:
        return default_model_path()

    @staticmethod
    def _open(path: Path, min_score: float, threads: int) -> BlazeFaceRunner:
        from .litert import LiteRtBlazeFace

        return LiteRtBlazeFace(path, min_score=min_score, threads=threads)


class OpenVinoBackend(LiteRtBackend):
    """BlazeFace's .tflite through OpenVINO's CPU plugin, in bf16 where the CPU has it natively
    (``openvino_engine.py``): the same batched interface as ``LiteRtBackend``."""

    name = "openvino"

    @staticmethod
    def _open(path: Path, min_score: float, threads: int) -> BlazeFaceRunner:
        from .openvino_engine import OpenVinoBlazeFace

        return OpenVinoBlazeFace(path, min_score=min_score, threads=threads)


Backend = OnnxBackend | LiteRtBackend | OpenVinoBackend | MediaPipeBackend


def resolve_backend(name: str) -> str:
    """``detect.backend`` settled: "auto" is ONNX Runtime where CUDA is there (the batched
    detector on the GPU); on a CPU that computes bfloat16 natively (AVX-512 BF16, AMX) OpenVINO
    in bf16 (about half LiteRT's model time there, docs/performance.md); else LiteRT (OpenVINO's
    fp32 measured level with it on AVX2, and it costs ~85 MB more), ONNX Runtime where LiteRT
    is missing."""
    if name != "auto":
        return name
    from .blazeface import select_providers
    from .litert import litert_available
    from .openvino_engine import bf16_native, openvino_available

    if "CUDAExecutionProvider" in select_providers():
        return "onnx"
    if bf16_native() and openvino_available():  # the cheap question first: no OpenVINO import without bf16
        return "openvino"
    return "litert" if litert_available() else "onnx"


def describe_engine(name: str) -> str:
    """What ``detect.backend`` ``name`` runs on here, in words: "litert", "openvino (bf16)",
    "onnx (CUDAExecutionProvider)", "mediapipe"."""
    resolved = resolve_backend(name)
    if resolved == "openvino":
        from .openvino_engine import bf16_native

        return f"openvino ({'bf16' if bf16_native() else 'f32'})"
    if resolved == "onnx":
        from .blazeface import select_providers

        return f"onnx ({select_providers()[0]})"
    return resolved


def open_backend(name: str, model_path: Path | str | None, min_score: float, threads: int = 1) -> Backend:
    """The runner for ``cfg.backend`` (``resolve_backend``), reporting candidates down to
    ``min_score``; ``threads``: the engine's threads (MediaPipe Tasks picks its own)."""
    name = resolve_backend(name)
    if name == "mediapipe":
        return MediaPipeBackend(model_path, min_score)
    if name == "litert":
        return LiteRtBackend(model_path, min_score, threads)
    if name == "openvino":
        return OpenVinoBackend(model_path, min_score, threads)
    return OnnxBackend(model_path, min_score, threads)
