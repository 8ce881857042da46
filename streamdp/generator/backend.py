"""Run MobileStyleGAN's mapping and synthesis networks.

The weights are not part of streamdp: they stay in the user's installed ``random-face`` package
(``random_face/data/{Mapping,Synthesis}Network.{xml,bin}``, OpenVINO IR; StyleGAN2-FFHQ lineage,
non-commercial licence, see streamdp/models/NOTICE). Install it with
``pip install --no-deps random-face==2021.7.21.1`` (its own engine and dependencies are not used).

Backends, chosen by what is installed and what runs fastest here (``select_backend``):

- ``onnxruntime``: the IR converted once to ONNX (``ir2onnx``), cached under the user cache dir,
  checked against OpenVINO's output at conversion; CUDAExecutionProvider when onnxruntime has it.
- ``openvino``: the IR on the CPU, in f32, its channel splits run as gathers (``split_as_gathers``:
  0.12 s per 1024x1024 face on our 2 cores, against 0.20 s as shipped and 0.55 s on onnxruntime).
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from functools import lru_cache
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import ModelError

log = logging.getLogger(__name__)

W_DIM = 512
GENERATOR_NAME = "MobileStyleGAN (random-face 2021.7.21.1, StyleGAN2-FFHQ 1024 distillation)"
INSTALL_HINT = "pip install --no-deps random-face==2021.7.21.1 openvino"


def generator_data_dir() -> Path:
    """The folder holding the IR files inside the installed ``random-face`` package."""
    override = os.environ.get("STREAMDP_GENERATOR_DIR")
    if override:
        d = Path(override)
    else:
        spec = importlib.util.find_spec("random_face")
        if spec is None or not spec.submodule_search_locations:
            raise ModelError(f"dp-image's face generator is not installed (the random-face package): {INSTALL_HINT}")
        d = Path(next(iter(spec.submodule_search_locations))) / "data"
    from ..model_files import verify_generator_file

    for name in ("MappingNetwork", "SynthesisNetwork"):
        for ext in ("xml", "bin"):
            if not (d / f"{name}.{ext}").is_file():
                raise ModelError(f"face generator file missing: {d / f'{name}.{ext}'} ({INSTALL_HINT})")
            if not override:  # STREAMDP_GENERATOR_DIR is a developer's explicit choice
                verify_generator_file(d / f"{name}.{ext}")
    return d


class Generator(Protocol):
    backend: str
    device: str

    def map(self, z: np.ndarray) -> np.ndarray: ...
    def synthesize(self, w: np.ndarray) -> np.ndarray: ...


def split_as_gathers(model: Any) -> Any:
    """The synthesis network with each channel VariadicSplit (the inverse wavelet transform's
    LL / high bands at every scale) replaced by one Gather per part: OpenVINO's CPU plugin ran
    those splits as slow layout reorders (35% of a face's time: 67 of 191 ms in the profile);
    as Gathers a face takes 0.12 s instead of 0.20 on two cores, 0.17 s instead of 0.33 on
    one, with bit-identical pixels (tests/test_dp_image_gan.py)."""
    import openvino.opset8 as ops

    for op in model.get_ordered_ops():
        if op.get_type_name() != "VariadicSplit":
            continue
        axis_node, lens_node = op.input_value(1).get_node(), op.input_value(2).get_node()
        if axis_node.get_type_name() != "Constant" or lens_node.get_type_name() != "Constant":
            continue
        lens = [int(v) for v in lens_node.get_vector()]
        if any(v < 0 for v in lens):  # a -1 length: leave it to OpenVINO
            continue
        axis = int(axis_node.get_vector()[0])
        start = 0
        for k, length in enumerate(lens):
            part = ops.gather(op.input_value(0), np.arange(start, start + length, dtype=np.int64), np.int64(axis))
            for target in list(op.output(k).get_target_inputs()):
                target.replace_source_output(part.output(0))
            start += length
    return model


#: Noise maps at least this side become inputs (``noise_as_inputs``); below it their folded
#: constants are small.
NOISE_INPUT_MIN_SIDE = 64


def noise_as_inputs(model: Any) -> tuple[Any, dict[str, np.ndarray]]:
    """The synthesis network with its fixed per-layer noise maps (constants ``[1, 1, H, W]``
    added to the features, StyleGAN's noise inputs frozen at export) as inputs of the model,
    and their values to feed. As constants, OpenVINO's CPU plugin folds each into the bias that
    follows it: a ``[1, C, H, W]`` constant per layer, stored twice (two layouts), 440 MB of the
    600 MB the compiled network held (peak RSS of one face 878 -> 438 MB); as inputs the noise is
    added per call (same speed; pixels within 4e-7 of the folded graph's, the float sums taken in
    another order)."""
    import openvino as ov
    import openvino.opset8 as ops

    params, feeds = [], {}
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Constant":
            continue
        shape = list(op.get_output_shape(0))
        targets = list(op.output(0).get_target_inputs())
        if len(shape) != 4 or shape[:2] != [1, 1] or min(shape[2:]) < NOISE_INPUT_MIN_SIDE:
            continue
        if not targets or any(t.get_node().get_type_name() != "Add" for t in targets):
            continue
        name = f"noise_{op.get_friendly_name()}"
        feeds[name] = np.array(op.get_data(), dtype=np.float32)  # a writable copy: ov.Tensor shares it
        param = ops.parameter(shape, ov.Type.f32, name=name)
        param.output(0).set_names({name})
        for t in targets:
            t.replace_source_output(param.output(0))
        params.append(param)
    model.add_parameters(params)
    model.validate_nodes_and_infer_types()
    return model, feeds


class OpenVinoGenerator:
    """The IR on OpenVINO's CPU plugin."""

    backend = "openvino"
    device = "CPU"

    def __init__(self, data_dir: Path | None = None, threads: int | None = None) -> None:
        try:
            import openvino as ov
        except ImportError:
            raise ModelError(f"OpenVINO is not installed: {INSTALL_HINT}") from None
        d = data_dir or generator_data_dir()
        core = ov.Core()
        # f32: OpenVINO's CPU default here is bf16, which moves pixels by up to 155/255 against
        # the f32 graph (and was slower than f32 as shipped: 0.48 vs 0.44 s a face on 2 cores).
        cfg: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            cfg["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            self._map = core.compile_model(core.read_model(str(d / "MappingNetwork.xml")), "CPU", cfg)
            synthesis, noise = noise_as_inputs(split_as_gathers(core.read_model(str(d / "SynthesisNetwork.xml"))))
            self._syn = core.compile_model(synthesis, "CPU", cfg)
            self._syn_request = self._syn.create_infer_request()
            self._noise = noise  # the request's noise tensors share these arrays' memory
            (self._w_port,) = [port for port in self._syn.inputs if port.get_any_name() not in noise]
            for port in self._syn.inputs:
                if port.get_any_name() in noise:
                    self._syn_request.set_tensor(port, ov.Tensor(noise[port.get_any_name()], shared_memory=True))
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses of its own
            raise ModelError(f"cannot load the face generator from {d}: {str(exc).splitlines()[0]}") from None
        self.data_dir = d
        self._lock = threading.Lock()  # a compiled model's implicit infer request is not thread-safe

    def map(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, np.float32).reshape(-1, W_DIM)
        with self._lock:
            return np.concatenate([self._map(z[i : i + 1])[0] for i in range(len(z))]).astype(np.float32)

    def synthesize(self, w: np.ndarray) -> np.ndarray:
        """w (N, 512) -> images (N, 1024, 1024, 3) uint8 RGB."""
        w = np.asarray(w, np.float32).reshape(-1, W_DIM)
        with self._lock:
            return np.stack([self._synthesize_one(w[i : i + 1]) for i in range(len(w))])

    def _synthesize_one(self, w: np.ndarray) -> np.ndarray:
        self._syn_request.set_tensor(self._w_port, ov_tensor(w))
        self._syn_request.infer()
        return to_uint8(self._syn_request.get_output_tensor(0).data[0])


class OnnxGenerator:
    """The converted ONNX graphs on onnxruntime (CUDA first when available)."""

    backend = "onnxruntime"

    def __init__(self, mapping: Path, synthesis: Path, providers: list[str] | None = None) -> None:
        import onnxruntime as ort

        from ..mechanisms.dp_image_models import select_providers

        providers = providers or select_providers()
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._map = ort.InferenceSession(str(mapping), sess_options=opts, providers=providers)
            self._syn = ort.InferenceSession(str(synthesis), sess_options=opts, providers=providers)
        except Exception as exc:
            raise ModelError(f"cannot load the converted face generator: {str(exc).splitlines()[0]}") from None
        self.device = self._syn.get_providers()[0]
        self._map_in = self._map.get_inputs()[0].name
        self._syn_in = self._syn.get_inputs()[0].name

    def map(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, np.float32).reshape(-1, W_DIM)
        return np.concatenate([self._map.run(None, {self._map_in: z[i : i + 1]})[0] for i in range(len(z))])

    def synthesize(self, w: np.ndarray) -> np.ndarray:
        w = np.asarray(w, np.float32).reshape(-1, W_DIM)
        return np.stack([to_uint8(self._syn.run(None, {self._syn_in: w[i : i + 1]})[0][0]) for i in range(len(w))])


def ov_tensor(array: np.ndarray) -> Any:
    import openvino as ov

    return ov.Tensor(np.ascontiguousarray(array, dtype=np.float32))


def to_uint8(chw: np.ndarray) -> np.ndarray:
    """Synthesis output (3, H, W) in about [-1, 1] -> (H, W, 3) uint8."""
    x = (np.clip(chw, -1.0, 1.0) + 1.0) * 127.5 + 0.5
    return np.ascontiguousarray(x.astype(np.uint8).transpose(1, 2, 0))


def cuda_available() -> bool:
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


def select_backend(preference: str = "auto", threads: int | None = None) -> Generator:
    """``auto``: onnxruntime on CUDA when there is one, else OpenVINO on the CPU (measured faster
    there), else onnxruntime on the CPU. An explicit ``openvino`` / ``onnxruntime`` is obeyed or
    fails with a clear error; nothing falls back silently (the report names the backend).

    Cached per process: a folder run builds a mechanism per file, and loading the two networks
    takes ~2 s; the networks hold no state between calls (each mechanism serializes its own use,
    and a file run uses one mechanism at a time). ``threads``: OpenVINO's CPU threads (None: all
    cores; live renders in the background on one, beside the detector and the encoder)."""
    if preference not in ("auto", "openvino", "onnxruntime"):
        raise ModelError(f"unknown generator backend {preference!r}")
    return _load_backend(preference, generator_data_dir(), threads)


@lru_cache(maxsize=4)
def _load_backend(preference: str, data_dir: Path, threads: int | None = None) -> Generator:
    if preference == "openvino" or (preference == "auto" and not cuda_available() and _has("openvino")):
        return OpenVinoGenerator(data_dir, threads)
    from .ir2onnx import cached_onnx_generator

    mapping, synthesis = cached_onnx_generator(data_dir)
    return OnnxGenerator(mapping, synthesis)


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None
