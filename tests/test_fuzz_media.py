"""Fuzzing the media bytes (#12): a damaged file (bytes flipped, cut short, garbage spliced in)
must end in either a finished output or one clear error line with a non-zero exit, never a
traceback, a hang or a half-written file; and what is written has its faces covered.

Bounded: a 12-frame 320x180 clip (a face in every frame), 60 examples, each a few tenths of a second.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis not installed (test extra)")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from streamdp.cli import main  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "WolfgangLanger_Pexels.mp4"
FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def clip_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A small clip with a face in every frame, as H.264 in MP4 (the common case)."""
    import av

    dst = tmp_path_factory.mktemp("fuzz_media") / "clip.mp4"
    with av.open(str(SAMPLE)) as inp, av.open(str(dst), "w") as out:
        vs = out.add_stream("libx264", rate=25, options={"preset": "ultrafast", "g": "4"})
        vs.width, vs.height, vs.pix_fmt = 320, 180, "yuv420p"
        for i, frame in enumerate(inp.decode(video=0)):
            if i >= 12:
                break
            f = frame.reformat(width=320, height=180, format="yuv420p")
            f.pts = None
            for p in vs.encode(f):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
    return dst.read_bytes()


@st.composite
def damaged(draw, data: bytes):  # type: ignore[no-untyped-def]
    buf = bytearray(data)
    kind = draw(st.sampled_from(["flip", "truncate", "splice", "zero_run"]))
    n = len(buf)
    if kind == "flip":
        for _ in range(draw(st.integers(1, 40))):
            i = draw(st.integers(0, n - 1))
            buf[i] ^= 1 << draw(st.integers(0, 7))
    elif kind == "truncate":
        del buf[draw(st.integers(0, n - 1)):]
    elif kind == "splice":
        i = draw(st.integers(0, n - 1))
        buf[i:i] = draw(st.binary(min_size=1, max_size=512))
    else:
        i = draw(st.integers(0, n - 1))
        k = draw(st.integers(1, 2048))
        buf[i:i + k] = bytes(min(k, n - i))
    return kind, bytes(buf)


@FUZZ
@given(data=st.data())
def test_a_damaged_file_finishes_or_fails_in_one_line(clip_bytes: bytes, tmp_path: Path, capsys, data) -> None:  # type: ignore[no-untyped-def]
    kind, blob = data.draw(damaged(clip_bytes))
    import tempfile

    case = Path(tempfile.mkdtemp(dir=tmp_path))  # hypothesis may repeat an example
    src, out = case / "in.mp4", case / "out.mp4"
    src.write_bytes(blob)
    code = main(["run", str(src), "-o", str(out), "-m", "solid", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert not any("Traceback" in line for line in err), (kind, err)
    leftovers = [p.name for p in case.iterdir() if p.name not in ("in.mp4", "out.mp4")]
    assert not leftovers, (kind, leftovers)  # no temp or partial files
    if code == 0:
        assert out.is_file()
        _faces_covered(out)
    else:
        assert code in (1, 2), (kind, code, err)
        assert not out.exists(), (kind, "a failed run left an output")
        assert len(err) == 1 and err[0].startswith("streamdp: error:"), (kind, err)


def _faces_covered(path: Path) -> None:
    """Every decodable output frame: the detector finds no face (solid covers them)."""
    import av

    from streamdp.detect import FaceDetector

    with av.open(str(path)) as c, FaceDetector() as det:
        for i, frame in enumerate(c.decode(video=0)):
            img = np.ascontiguousarray(frame.to_ndarray(format="rgb24"))
            assert len(det.detect(img, i)) == 0, f"a face left in output frame {i}"
