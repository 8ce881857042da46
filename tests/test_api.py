"""The Python API: the README's example runs; push mode fails closed and checks its input;
``import streamdp`` stays light."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import streamdp
from conftest import MEDIA, REPO, needs_media, read_rgb
from streamdp.mechanisms import Mechanism

SOLID = (0, 0, 0)  # the fail-closed cover's colour (mechanism.solid.color default)


def _readme_example() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- api-example -->\s*```python\n(.*?)```", text, re.S)
    assert found, "README.md has no <!-- api-example --> python block"
    return found.group(1)


def _cut(src: Path, dst: Path, frames: int) -> None:
    """The first ``frames`` frames of ``src`` as a small H.264 file."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream("libx264", rate=int(round(float(vin.average_rate or 25))))
        vout.width, vout.height, vout.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
        for i, frame in enumerate(inp.decode(vin)):
            if i >= frames:
                break
            for packet in vout.encode(frame.reformat(format="yuv420p")):
                out.mux(packet)
        for packet in vout.encode():
            out.mux(packet)


@needs_media
def test_the_readme_example_runs(tmp_path: Path, monkeypatch, capsys) -> None:
    _cut(MEDIA / "single_face.mp4", tmp_path / "input.mp4", frames=12)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__readme__"}
    exec(compile(_readme_example(), "README.md:api-example", "exec"), namespace)  # noqa: S102
    entry = namespace["entry"]
    assert entry["status"] == "ok" and entry["frames_out"] == 12
    assert entry["faces"]["faces_detected"] > 0
    assert (tmp_path / "anonymized.mp4").stat().st_size > 0
    anon, result = namespace["anon"], namespace["result"]
    assert anon.counts["frames"] == 12 and anon.counts["faces_covered"] > 0
    assert result.image.shape == (360, 640, 3) and result.faces  # the face of the last frame
    assert "faces covered" in capsys.readouterr().out


class Raising(Mechanism):
    """A mechanism that wrecks its jobs' boxes (NaN), half-paints the frame, then raises."""

    name = "raising"

    def __init__(self) -> None:
        self.closed = False

    def apply(self, jobs) -> None:  # type: ignore[no-untyped-def]
        for job in jobs:
            job.frame.image[:8] = 255
            job.faces.boxes[:] = np.nan
        raise RuntimeError("model exploded")

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def face_image() -> np.ndarray:
    path = MEDIA / "single_face.jpg"
    if not path.is_file():
        pytest.skip(f"needs {path} (the shared media folder is absent)")
    return read_rgb(path)


def test_push_mode_fails_closed_to_solid_when_the_mechanism_raises(face_image: np.ndarray) -> None:
    raw = face_image.copy()
    mechanism = Raising()
    with streamdp.Anonymizer(mechanism=mechanism, fps=25.0) as anon:
        results = [anon.process(face_image) for _ in range(2)]
    assert mechanism.closed  # closed with the Anonymizer
    np.testing.assert_array_equal(face_image, raw)  # the caller's array is never touched
    for result in results:
        assert result.fail_closed and result.faces
        assert result.image is not face_image
        for face in result.faces:
            x0, y0, x1, y1 = (int(round(v)) for v in face.box)
            inner = result.image[max(y0, 0) + 1:y1 - 1, max(x0, 0) + 1:x1 - 1]
            assert inner.size and (inner == SOLID).all(), "a face left uncovered by the fallback"
    assert anon.counts["frames_fail_closed"] == 2


def test_push_mode_covers_faces_and_reports_them(face_image: np.ndarray) -> None:
    with streamdp.Anonymizer(mechanism="pixelate", fps=25.0, track__coast_seconds=1.0) as anon:
        assert anon.config.track.coast_seconds == 1.0
        result = anon.process(face_image)
        assert anon.privacy_report() is None  # pixelate carries no formal guarantee
    assert not result.fail_closed and len(result.faces) == 1
    assert result.boxes.shape == (1, 4)
    x0, y0, x1, y1 = (int(round(v)) for v in result.faces[0].box)
    assert not np.array_equal(result.image[y0:y1, x0:x1], face_image[y0:y1, x0:x1])
    band = int(np.ceil(anon.config.mechanism.feather * ((x1 - x0) + (y1 - y0)) / 2)) + 2  # the soft edge
    outside = np.ones(face_image.shape[:2], bool)
    outside[max(y0 - band, 0):y1 + band, max(x0 - band, 0):x1 + band] = False
    np.testing.assert_array_equal(result.image[outside], face_image[outside])


def test_push_mode_refuses_bad_frames() -> None:
    grey = np.full((120, 160, 3), 128, np.uint8)
    with streamdp.Anonymizer(mechanism="pixelate") as anon:
        bad = [
            (grey.astype(np.float32), "uint8"),
            (grey[..., 0], "HxWx3"),
            (np.dstack([grey, grey[..., :1]]), "HxWx3"),
            (grey[:8, :8], "at least 16x16"),
            (grey.tolist(), "numpy array"),
        ]
        for frame, why in bad:
            with pytest.raises(streamdp.FrameError, match=why):
                anon.process(frame)  # type: ignore[arg-type]
        first = anon.process(grey, time_s=1.0)
        assert first.faces == () and np.array_equal(first.image, grey) and first.image is not grey
        with pytest.raises(ValueError, match="first one's size"):
            anon.process(np.full((240, 320, 3), 128, np.uint8))
        with pytest.raises(ValueError, match="time_s must increase"):
            anon.process(grey, time_s=1.0)
        assert anon.process(grey[:, ::-1], time_s=1.04).index == 1  # a non-contiguous view is fine
    with pytest.raises(RuntimeError, match="closed"):
        anon.process(grey)


def test_bad_configuration_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(streamdp.ConfigError, match="unknown key 'detect.tile_sise'"):
        streamdp.Anonymizer(detect__tile_sise=256)
    with pytest.raises(streamdp.ConfigError, match="unknown mechanism 'pixelat'"):
        streamdp.Anonymizer(mechanism="pixelat")
    with pytest.raises(streamdp.ConfigError, match="invalid override mechanism.dp_image.epsilon"):
        streamdp.Anonymizer(config=streamdp.Config(), epsilon=-1.0)
    with pytest.raises(streamdp.InputError, match="not found"):
        streamdp.anonymize_file(tmp_path / "missing.mp4", tmp_path / "out.mp4")


def test_build_config_layers(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("mechanism: {name: blur, dp_image: {epsilon: 2.0}}\ntrack: {coast_seconds: 2.0}\n")
    config = streamdp.build_config(path, "pixelate", epsilon=4.0)
    assert config.mechanism.name == "pixelate" and config.mechanism.dp_image.epsilon == 4.0
    assert config.track.coast_seconds == 2.0
    assert streamdp.build_config("relay").live.reconnect_max_s == 30.0  # a preset by name


@needs_media
def test_anonymize_file_writes_the_report_and_refuses_a_folder(tmp_path: Path) -> None:
    src = tmp_path / "in.mp4"
    _cut(MEDIA / "single_face.mp4", src, frames=4)
    report = tmp_path / "run.json"
    entry = streamdp.anonymize_file(src, tmp_path / "out.mp4", mechanism="pixelate", report=report)
    import json

    written = json.loads(report.read_text())
    assert written["files"][0]["frames_out"] == entry["frames_out"] == 4
    with pytest.raises(streamdp.InputError, match="not a folder"):
        streamdp.anonymize_file(tmp_path, tmp_path / "out_dir")
    with pytest.raises(streamdp.OutputError, match="same as the input"):
        streamdp.anonymize_file(src, src)


def test_import_streamdp_stays_light() -> None:
    code = (
        "import sys, streamdp\n"
        "heavy = ('numpy', 'cv2', 'onnxruntime', 'av', 'mediapipe', 'openvino', 'pydantic')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "streamdp.Anonymizer, streamdp.anonymize_file\n"
        "print(sorted(m for m in ('onnxruntime', 'av', 'mediapipe', 'openvino') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.splitlines() == ["[]", "[]"], out.stdout
    with pytest.raises(AttributeError):
        streamdp.no_such_name  # noqa: B018
