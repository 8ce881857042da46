"""The IR -> ONNX conversion of the face generator agrees with OpenVINO running the IR itself."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from streamdp.errors import ModelError

for _module in ("random_face", "openvino", "onnx", "onnxruntime"):
    if importlib.util.find_spec(_module) is None:
        pytest.skip(f"needs the {_module} package (the face generator and its converter)", allow_module_level=True)

from streamdp.generator import ir2onnx  # noqa: E402
from streamdp.generator.backend import generator_data_dir  # noqa: E402


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    mp = pytest.MonkeyPatch()
    mp.setenv("STREAMDP_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    try:
        data_dir = generator_data_dir()
        mapping, synthesis = ir2onnx.cached_onnx_generator(data_dir)  # converts and self-checks
        # a second call finds the cache and does not convert again
        mtime = synthesis.stat().st_mtime_ns
        assert ir2onnx.cached_onnx_generator(data_dir) == (mapping, synthesis)
        assert synthesis.stat().st_mtime_ns == mtime
    finally:
        mp.undo()
    return data_dir, mapping, synthesis


def _runs(data_dir: Path, name: str, onnx_path: Path):  # noqa: ANN202
    import onnxruntime as ort
    import openvino as ov

    core = ov.Core()
    ov_net = core.compile_model(core.read_model(str(data_dir / f"{name}.xml")), "CPU",
                                {"INFERENCE_PRECISION_HINT": "f32"})
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    feed = sess.get_inputs()[0].name
    return (lambda x: ov_net(x)[0]), (lambda x: sess.run(None, {feed: x})[0])


def test_cache_location_and_files(converted: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, mapping, synthesis = converted
    assert mapping.name == "mapping.onnx" and synthesis.name == "synthesis.onnx"
    assert mapping.parent == synthesis.parent
    assert not [p for p in mapping.parent.iterdir() if p.name.startswith(".")]  # no temp files left


def test_mapping_and_synthesis_agree_with_openvino(converted: tuple[Path, Path, Path]) -> None:
    data_dir, mapping, synthesis = converted
    z = np.random.default_rng(7).standard_normal((1, 512)).astype(np.float32)
    ov_map, ort_map = _runs(data_dir, "MappingNetwork", mapping)
    w_ref, w = ov_map(z), ort_map(z)
    assert w.shape == (1, 512)
    assert np.abs(w - w_ref).max() <= 1e-4 * np.abs(w_ref).max()

    ov_syn, ort_syn = _runs(data_dir, "SynthesisNetwork", synthesis)
    img_ref, img = ov_syn(w_ref), ort_syn(w_ref)
    assert img.shape == (1, 3, 1024, 1024)
    assert np.abs(img - img_ref).max() <= 1e-3
    assert 0.1 < img.std() < 1.0  # a real image, not a constant


def test_unsupported_op_is_refused_by_name(tmp_path: Path) -> None:
    xml = tmp_path / "net.xml"
    xml.write_text(
        '<?xml version="1.0" ?><net name="n" version="10"><layers>'
        '<layer id="0" name="x" type="Parameter" version="opset1"><data shape="1,4" element_type="f32"/>'
        '<output><port id="0" precision="FP32"><dim>1</dim><dim>4</dim></port></output></layer>'
        '<layer id="1" name="r" type="Interpolate" version="opset4">'
        '<input><port id="0" precision="FP32"><dim>1</dim><dim>4</dim></port></input>'
        '<output><port id="1" precision="FP32"><dim>1</dim><dim>4</dim></port></output></layer>'
        '</layers><edges><edge from-layer="0" from-port="0" to-layer="1" to-port="0"/></edges></net>'
    )
    xml.with_suffix(".bin").write_bytes(b"")
    with pytest.raises(ModelError, match="unsupported ops: Interpolate"):
        ir2onnx.convert_ir(xml, tmp_path / "net.onnx")


def test_a_wrong_conversion_is_refused_and_not_cached(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Simulate a converter bug: PReLU's negative slope dropped (a plain ReLU).
    monkeypatch.setitem(ir2onnx.HANDLERS, "PReLU", lambda em, layer, ins: em.node("Relu", ins[:1], layer.name))
    monkeypatch.setenv("STREAMDP_CACHE_DIR", str(tmp_path))
    with pytest.raises(ModelError, match="mapping network disagrees with OpenVINO"):
        ir2onnx.cached_onnx_generator(generator_data_dir())
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # the bad file was deleted
