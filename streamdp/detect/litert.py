"""BlazeFace on LiteRT (``ai-edge-litert``: TensorFlow Lite with its XNNPACK CPU kernels).

The same ``face_detection_short_range.tflite`` MediaPipe reads, with the batched runner's pre- and
post-processing (``BlazeFaceRunner``: letterbox, anchors, decoding, weighted NMS); only the model
call differs. Why a second engine: on a CPU, XNNPACK runs this network faster than ONNX Runtime,
and much faster on the big inputs of the canvas search (2-core VM, one thread, ms per 128x128 of
input: 1.28 vs 1.82 at 128x128, 1.54 vs 4.15 at 288x640, 1.71 vs 5.47 at 416x864: ONNX Runtime's
convolutions fall out of the cache as the input grows, XNNPACK's do not). ONNX Runtime stays the
engine for GPUs (CUDA) and where LiteRT has no wheel.

An interpreter has a fixed input shape; one is kept per (height, width) seen (a stream uses a few:
the 128x128 views and the canvas bands), each image of a batch is one ``invoke``. That shape-keyed
cache and the worker pool are ``ShapedBlazeFace``, shared with the OpenVINO engine
(``openvino_engine.py``), which has the same fixed-shape model.

``threads`` > 1 runs that many images of a batch at once, each worker with interpreters of its
own (one XNNPACK thread each): ``invoke`` releases the GIL, so 30 tile views take about half the
wall time for the same CPU (2-core VM: 35 -> 18 ms, 35 CPU ms either way), where XNNPACK's own
two threads inside one invoke cost a third more CPU (23 ms wall, 45 CPU ms).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError
from .blazeface import MIN_SUPPRESSION_THRESHOLD, BlazeFaceRunner
from .letterbox import INPUT_SIZE, prepare_views
from ..stages import name_native_thread
from .native import native_stderr_silenced

MAX_SHAPES = 16  # interpreters kept (least recently used dropped): a frame size change makes new band shapes


def litert_available() -> bool:
    """Whether the LiteRT interpreter can be imported here."""
    try:
        from ai_edge_litert.interpreter import Interpreter  # noqa: F401
    except Exception:
        return False
    return True


class ShapedBlazeFace(BlazeFaceRunner):
    """``BlazeFaceRunner`` over an engine that runs one fixed input shape per loaded model: one
    is kept per (height, width) seen (``MAX_SHAPES``), each image of a batch is one run, and
    ``threads`` > 1 runs that many images of a batch at once, each worker with models of its own.
    An engine says how to load a shape (``_load``) and run one image (``_run``)."""

    engine = "?"

    def __init__(self, model_path: Path | str, *, min_score: float = 0.5,
                 suppression_threshold: float = MIN_SUPPRESSION_THRESHOLD, threads: int = 1) -> None:
        path = Path(model_path)
        if not path.is_file():
            raise ModelError(f"face detection model not found: {path}")
        self._prepare(path)
        self._threads = max(1, int(threads))
        # one model cache per worker (slot 0: the caller's thread); a loaded model is never
        # run by two threads at once
        self._slots: list[OrderedDict[tuple[int, int], Any]] = [OrderedDict() for _ in range(self._threads)]
        self._pool = (ThreadPoolExecutor(self._threads - 1, thread_name_prefix="streamdp-detect",
                                         initializer=name_native_thread, initargs=("detect-worker",))
                      if self._threads > 1 else None)
        self.any_size = True
        self._init_processing(path, min_score, suppression_threshold)
        for slot in range(self._threads):  # load now: a broken model fails here, not mid-stream
            self._loaded(INPUT_SIZE, INPUT_SIZE, slot)

    def close(self) -> None:
        """Stop the worker threads (``threads`` > 1); the runner is not used after this."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _prepare(self, path: Path) -> None:
        """Read and check the model file once, before any shape is loaded (engines that need to)."""

    def _load(self, h: int, w: int) -> Any:
        """The engine's model for ``[1, h, w, 3]`` inputs, run once (raise ModelError if broken)."""
        raise NotImplementedError

    def _run(self, entry: Any, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(regressors, classificators) of one ``[1, h, w, 3]`` image, arrays of their own."""
        raise NotImplementedError

    def _loaded(self, h: int, w: int, slot: int = 0) -> Any:
        """Worker ``slot``'s model for ``[1, h, w, 3]`` inputs, loaded on first use (``MAX_SHAPES`` kept)."""
        key = (h, w)
        cache = self._slots[slot]
        entry = cache.get(key)
        if entry is not None:
            cache.move_to_end(key)
            return entry
        try:
            entry = self._load(h, w)
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(f"cannot load face detection model {self.model_path} ({self.engine}): {exc}") from None
        cache[key] = entry
        while len(cache) > MAX_SHAPES:
            cache.popitem(last=False)
        return entry

    def _invoke(self, batch: np.ndarray, slot: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        entry = self._loaded(batch.shape[1], batch.shape[2], slot)
        regs, clss = [], []
        for i in range(len(batch)):
            r, c = self._run(entry, batch[i : i + 1])
            regs.append(r)
            clss.append(c)
        return regs, clss

    def infer_views(self, images: Sequence[np.ndarray], staged: np.ndarray, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``BlazeFaceRunner.infer_views`` with each worker letterboxing and scaling its own part
        of the views before running it (OpenCV's warp and NumPy's scaling release the GIL too):
        the caller's thread, the live pipeline's busiest, keeps only its share of that work."""
        def part(k: int, a: int, b: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
            prepare_views(images[a:b], staged[a:b], batch[a:b])
            return self._invoke(batch[a:b], k)

        return self._in_parts(len(images), part)

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw model outputs (regressors, classificators) for a float32 NHWC batch, one invoke per
        image; with ``threads`` > 1 the batch is cut into that many runs at once, in order."""
        return self._in_parts(len(batch), lambda k, a, b: self._invoke(batch[a:b], k))

    def _in_parts(self, n: int, part: Callable[[int, int, int], tuple[list[np.ndarray], list[np.ndarray]]]
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Run ``part(k, a, b)`` (worker slot k, images a:b, giving their outputs) over ``n``
        images cut into one part per thread, the first in the caller's thread; the outputs in order."""
        pool = self._pool
        parts = max(1, min(self._threads, n)) if pool is not None else 1
        cuts = [round(i * n / parts) for i in range(parts + 1)]
        futures = [pool.submit(part, k, cuts[k], cuts[k + 1]) for k in range(1, parts)] if pool is not None else []
        regs, clss = part(0, cuts[0], cuts[1])
        for f in futures:  # every part waited for, the first failure raised
            r, c = f.result()
            regs += r
            clss += c
        self.calls += 1
        self.images += n
        return np.concatenate(regs), np.concatenate(clss)


class LiteRtBlazeFace(ShapedBlazeFace):
    """``ShapedBlazeFace`` with the model run by LiteRT (XNNPACK, one thread per interpreter)."""

    engine = "LiteRT"

    def __init__(self, model_path: Path | str, *, min_score: float = 0.5,
                 suppression_threshold: float = MIN_SUPPRESSION_THRESHOLD, threads: int = 1) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except Exception as exc:
            raise ModelError(f"LiteRT (ai-edge-litert) is not usable: {exc}") from None
        self._Interpreter = Interpreter
        self.providers = ["LiteRT (XNNPACK)"]
        super().__init__(model_path, min_score=min_score, suppression_threshold=suppression_threshold, threads=threads)

    def _load(self, h: int, w: int) -> Any:
        # LiteRT prints an INFO line on fd 2 when it creates its XNNPACK delegate (first
        # allocation and invoke): users should see only streamdp's lines
        with native_stderr_silenced():
            it = self._Interpreter(model_path=str(self.model_path), num_threads=1)
            inp = it.get_input_details()[0]
            if list(inp["shape"][1:]) != [INPUT_SIZE, INPUT_SIZE, 3]:
                raise ModelError(f"{self.model_path}: expected input [1, 128, 128, 3], got {list(inp['shape'])}")
            if (h, w) != (INPUT_SIZE, INPUT_SIZE):
                it.resize_tensor_input(inp["index"], [1, h, w, 3])
            it.allocate_tensors()
            it.invoke()
        outs = {d["name"]: d["index"] for d in it.get_output_details()}
        if set(outs) != {"regressors", "classificators"}:
            raise ModelError(f"{self.model_path}: unexpected outputs {sorted(outs)}")
        return it, inp["index"], outs["regressors"], outs["classificators"]

    def _run(self, entry: Any, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        it, inp, reg_i, cls_i = entry
        it.set_tensor(inp, image)
        it.invoke()
        return it.get_tensor(reg_i), it.get_tensor(cls_i)  # copies
