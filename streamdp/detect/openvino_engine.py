"""BlazeFace on OpenVINO's CPU plugin, in bfloat16 where the CPU computes it natively.

The same ``face_detection_short_range.tflite`` LiteRT and MediaPipe read (OpenVINO's TFLite
frontend reads it), with the batched runner's pre- and post-processing (``BlazeFaceRunner``);
only the model call differs. Why a third engine: on a CPU with AVX-512 BF16 or AMX, OpenVINO runs
this network's convolutions in bf16, about twice as fast as XNNPACK's fp32 (2-core VM, one thread:
a 128x128 view 0.76 against 1.20 ms, a 544x864 canvas 19 against 38 ms). The scores move by a few
hundredths (bf16 keeps 8 bits of mantissa): what that does to recall is measured, not assumed
(docs/performance.md); the detector's thresholds are the same. Without native bf16 the plugin
would emulate it (slower than LiteRT), so ``bf16_native`` decides, and "auto" does not pick this
engine there (``backends.resolve_backend``).

One compiled model per input shape (``ShapedBlazeFace``: the 128x128 views and the canvas bands,
~0.1 s to compile each), one inference request per worker; ``infer`` releases the GIL.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError
from .blazeface import MIN_SUPPRESSION_THRESHOLD
from .letterbox import INPUT_SIZE
from .litert import ShapedBlazeFace


@lru_cache(maxsize=1)
def _core() -> Any:
    import openvino as ov

    return ov.Core()


def openvino_available() -> bool:
    """Whether OpenVINO and its CPU plugin load here."""
    try:
        return "CPU" in _core().available_devices
    except Exception:
        return False


def _cpu_flags() -> set[str] | None:
    """The kernel's CPU feature flags (Linux ``/proc/cpuinfo``), None where there are none."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return None


@lru_cache(maxsize=1)
def bf16_native() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX). Read from the CPU's
    flags where the kernel lists them: ``detect.backend: auto`` asks on every run, and importing
    OpenVINO to ask it (its ``OPTIMIZATION_CAPABILITIES``, the fallback) costs ~0.16 s and ~58 MB
    on a run that then uses LiteRT."""
    flags = _cpu_flags()
    if flags is not None:
        return bool(flags & {"avx512_bf16", "amx_bf16"})
    try:
        return "BF16" in _core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:
        return False


class OpenVinoBlazeFace(ShapedBlazeFace):
    """``ShapedBlazeFace`` with the model compiled by OpenVINO for the CPU (``precision``: "bf16"
    or "f32"; "auto": bf16 where the CPU has it natively)."""

    engine = "OpenVINO"

    def __init__(self, model_path: Path | str, *, min_score: float = 0.5,
                 suppression_threshold: float = MIN_SUPPRESSION_THRESHOLD, threads: int = 1,
                 precision: str = "auto") -> None:
        if not openvino_available():
            raise ModelError("OpenVINO's CPU plugin is not usable here (pip install openvino)")
        if precision == "auto":
            precision = "bf16" if bf16_native() else "f32"
        if precision not in ("bf16", "f32"):
            raise ModelError(f"OpenVINO precision must be bf16 or f32, not {precision!r}")
        self.precision = precision
        self.providers = [f"OpenVINO CPU ({precision})"]
        super().__init__(model_path, min_score=min_score, suppression_threshold=suppression_threshold, threads=threads)

    def _prepare(self, path: Path) -> None:
        try:
            self._model = _core().read_model(str(path))
        except Exception as exc:
            raise ModelError(f"cannot read face detection model {path} with OpenVINO: {exc}") from None
        inp = self._model.inputs[0].get_partial_shape()
        if inp.is_static and list(inp.to_shape())[1:] != [INPUT_SIZE, INPUT_SIZE, 3]:
            raise ModelError(f"{path}: expected input [1, 128, 128, 3], got {list(inp.to_shape())}")
        outs = {o.get_any_name() for o in self._model.outputs}
        if outs != {"regressors", "classificators"}:
            raise ModelError(f"{path}: unexpected outputs {sorted(outs)}")

    def _load(self, h: int, w: int) -> Any:
        model = self._model.clone()
        model.reshape({model.inputs[0]: [1, h, w, 3]})
        compiled = _core().compile_model(model, "CPU", {
            "INFERENCE_PRECISION_HINT": self.precision,
            "INFERENCE_NUM_THREADS": 1,  # parallel images run on workers of their own (``threads``)
            "PERFORMANCE_HINT": "LATENCY",
            # the plugin pins a latency stream's thread to a core, the same core for every
            # compiled model: two workers' models would then take turns on it (measured: two
            # threads ran no faster than one); the OS scheduler spreads them instead
            "ENABLE_CPU_PINNING": False,
        })
        request = compiled.create_infer_request()
        names = [o.get_any_name() for o in compiled.outputs]
        entry = (compiled, request, names.index("regressors"), names.index("classificators"))
        self._run(entry, np.zeros((1, h, w, 3), np.float32))
        return entry

    def _run(self, entry: Any, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _, request, reg_i, cls_i = entry
        request.infer({0: image})
        # the request's output buffers are reused by its next inference: copy
        return request.get_output_tensor(reg_i).data.copy(), request.get_output_tensor(cls_i).data.copy()
