"""Convert MediaPipe's BlazeFace short-range .tflite to the ONNX model streamdp ships (dev tool).

Run once at development time (not imported by streamdp at run time)::

    .venv/bin/pip install tflite2onnx ai-edge-litert    # dev tools only
    .venv/bin/python tools/tflite_to_onnx.py             # writes streamdp/models/face_detection_short_range.onnx

Steps: ``tflite2onnx`` translates the graph (its float16 weights come out as float32 and the
model's NHWC input becomes NCHW); we then

* put an NHWC input in front (``input``: float32 ``[N, 128, 128, 3]``, RGB scaled to [-1, 1], the
  same layout as the .tflite) followed by a Transpose to the converted NCHW graph,
* make the batch dimension dynamic (``N``): input, outputs and the two Reshape shape constants
  (``[1, -1, k]`` -> ``[0, -1, k]``, 0 = copy the batch dimension),
* make the image height and width dynamic (``H``, ``W``; 128 is what the model was trained on):
  the network is convolutional, so a bigger input (a multiple of 16) gives the same detections on
  a grid of anchors over all of it (``streamdp/detect/canvas.py``: a downscaled frame searched in
  one run instead of overlapping 128x128 tiles); the anchor axis (``A``) follows,
* drop the intermediate shape annotations (they carried batch 1), check the model and, when
  ``ai-edge-litert`` is importable, compare the raw outputs with the .tflite on random inputs and
  on face crops (``--check``, the default).

Outputs (for 128x128; ``A`` = (H/8)(W/8)2 + (H/16)(W/16)6 anchors in general): ``regressors`` float32 ``[N, 896, 16]`` (box x, y, w, h then 6 keypoints x, y, in input
pixels relative to the anchor) and ``classificators`` float32 ``[N, 896, 1]`` (logits).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "streamdp" / "models" / "face_detection_short_range.tflite"
DST = ROOT / "streamdp" / "models" / "face_detection_short_range.onnx"


def convert(src: Path, dst: Path) -> None:
    import onnx
    import onnx.numpy_helper as nh
    import tflite2onnx
    from onnx import TensorProto, helper

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        tflite2onnx.convert(str(src), str(raw))
        model = onnx.load(str(raw))
    g = model.graph
    assert len(g.input) == 1 and [o.name for o in g.output] == ["regressors", "classificators"], g

    # NHWC input -> Transpose -> the converted (NCHW) graph
    old_in = g.input[0]
    nchw_name = old_in.name + "_nchw"
    for node in g.node:
        for i, name in enumerate(node.input):
            if name == old_in.name:
                node.input[i] = nchw_name
    g.node.insert(0, helper.make_node("Transpose", [old_in.name], [nchw_name], perm=[0, 3, 1, 2], name="input_to_nchw"))
    new_in = helper.make_tensor_value_info(old_in.name, TensorProto.FLOAT, ["N", "H", "W", 3])
    g.ClearField("input")
    g.input.append(new_in)

    # dynamic batch in the Reshape targets
    for init in g.initializer:
        a = nh.to_array(init)
        if a.dtype.kind == "i" and a.shape == (3,) and a[0] == 1 and a[1] == -1:
            init.CopyFrom(nh.from_array(np.array([0, -1, a[2]], dtype=a.dtype), init.name))
    for out in g.output:
        out.type.tensor_type.shape.dim[0].ClearField("dim_value")
        out.type.tensor_type.shape.dim[0].dim_param = "N"
        out.type.tensor_type.shape.dim[1].ClearField("dim_value")
        out.type.tensor_type.shape.dim[1].dim_param = "A"
    g.ClearField("value_info")

    model.doc_string = (
        "MediaPipe BlazeFace short-range face detector (Apache-2.0, Copyright 2019 The MediaPipe "
        "Authors), converted from face_detection_short_range.tflite sha256 "
        + hashlib.sha256(src.read_bytes()).hexdigest()
        + " by streamdp tools/tflite_to_onnx.py. Input: float32 [N,H,W,3] RGB in [-1,1] (trained on 128x128; H, W multiples of 16)."
    )
    model.producer_name = "streamdp tools/tflite_to_onnx.py (tflite2onnx)"
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(dst))


def tflite_outputs(src: Path, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw outputs of the .tflite (batch 1 at a time) for an NHWC float batch."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(src))
    it.allocate_tensors()
    inp = it.get_input_details()[0]["index"]
    outs = {o["name"]: o["index"] for o in it.get_output_details()}
    reg, cls = [], []
    for img in x:
        it.set_tensor(inp, img[None].astype(np.float32))
        it.invoke()
        reg.append(it.get_tensor(outs["regressors"])[0].copy())
        cls.append(it.get_tensor(outs["classificators"])[0].copy())
    return np.stack(reg), np.stack(cls)


def onnx_outputs(dst: Path, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import onnxruntime as ort

    s = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    reg, cls = s.run(["regressors", "classificators"], {"input": x.astype(np.float32)})
    return reg, cls


def check_inputs() -> np.ndarray:
    """Random inputs plus letterboxed face crops from the shared media, when present."""
    rng = np.random.default_rng(0)
    xs = [rng.uniform(-1, 1, (4, 128, 128, 3)).astype(np.float32)]
    media = ROOT.parent / "shared" / "media"
    if media.is_dir():
        sys.path.insert(0, str(ROOT))
        import cv2

        from streamdp.detect.letterbox import letterbox

        for name in ("single_face.jpg", "multi_face.jpg"):
            bgr = cv2.imread(str(media / name))
            if bgr is None:
                continue
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            h, w = rgb.shape[:2]
            crops = [rgb, rgb[: h // 2, : w // 2], rgb[h // 4 :, w // 4 :]]
            xs.append(np.stack([letterbox(c)[0] for c in crops]))
    return np.concatenate(xs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=SRC)
    ap.add_argument("--dst", type=Path, default=DST)
    ap.add_argument("--no-check", action="store_true", help="skip the comparison with the .tflite")
    args = ap.parse_args(argv)
    convert(args.src, args.dst)
    print(f"wrote {args.dst} ({args.dst.stat().st_size} bytes)")
    if args.no_check:
        return 0
    x = check_inputs()
    reg_t, cls_t = tflite_outputs(args.src, x)
    reg_o, cls_o = onnx_outputs(args.dst, x)
    print(
        f"{len(x)} inputs: max |diff| regressors {np.abs(reg_t - reg_o).max():.2e} "
        f"(range {np.abs(reg_t).max():.1f}), classificators {np.abs(cls_t - cls_o).max():.2e} "
        f"(range {np.abs(cls_t).max():.1f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
