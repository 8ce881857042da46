"""Faults in the file pipeline (#12): a stage that raises or returns garbage must leave nothing raw
at the output, say what failed in one line, keep the input untouched and end its threads.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np
import pytest

from streamdp.cli import main

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "WolfgangLanger_Pexels.mp4"


def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    import av

    dst = tmp_path / "in.mp4"
    with av.open(str(SAMPLE)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream_from_template(vin)
        for n, pkt in enumerate(inp.demux(vin)):
            if pkt.dts is None:
                continue
            if n >= 48 and pkt.is_keyframe:
                break
            pkt.stream = vout
            out.mux(pkt)
    return dst


def _threads_before() -> set[str]:
    return {t.name for t in threading.enumerate()}


def test_a_detector_that_raises_stops_the_run_with_nothing_written(clip: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    from streamdp.detect import FaceDetector

    real = FaceDetector.detect_batch
    calls = {"n": 0}

    def flaky(self, frames, idx, hints=None):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 10:
            raise RuntimeError("detector exploded")
        return real(self, frames, idx, hints)

    monkeypatch.setattr(FaceDetector, "detect_batch", flaky)
    before, digest = _threads_before(), _digest(clip)
    out = tmp_path / "out.mp4"
    code = main(["run", str(clip), "-o", str(out), "-m", "pixelate", "-q"])
    assert code != 0
    assert not out.exists(), "a run that failed mid-way must not leave an output"
    assert not list(tmp_path.glob(".out.mp4*")), "temporary files are removed"
    assert _digest(clip) == digest
    err = capsys.readouterr().err.strip().splitlines()
    assert err and "detector exploded" in err[-1] or any("detector exploded" in line for line in err)
    assert {t.name for t in threading.enumerate() if t.is_alive()} - before <= {"dp-noise-reserve"}


def test_a_detector_that_hangs_stops_the_run_after_the_stall_timeout(clip: Path, tmp_path: Path, monkeypatch,
                                                                    capsys) -> None:
    """A stage stuck in a call (a hung model, a decoder that never returns) must not hang the run
    forever: after ``pipeline.stall_timeout_s`` without a finished frame it stops with one line,
    exit 1, and nothing at the output path."""
    from streamdp.detect import FaceDetector

    real = FaceDetector.detect_batch
    release = threading.Event()
    calls = {"n": 0}

    def hangs(self, frames, idx, hints=None):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 5:
            release.wait(60)  # bounded: the test releases it at the end
        return real(self, frames, idx, hints)

    monkeypatch.setattr(FaceDetector, "detect_batch", hangs)
    cfg = tmp_path / "stall.yaml"
    cfg.write_text("pipeline:\n  stall_timeout_s: 2\n")
    out = tmp_path / "out.mp4"
    try:
        code = main(["run", str(clip), "-o", str(out), "-m", "pixelate", "-q", "-c", str(cfg)])
    finally:
        release.set()
    assert code == 1
    assert not out.exists() and not list(tmp_path.glob(".out.mp4*"))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no frame finished for 2 s" in err[0] and "stuck: faces" in err[0], err


@pytest.mark.parametrize("garbage", ["raise", "nan"])
def test_a_mechanism_that_fails_covers_its_faces_solid(clip: Path, tmp_path: Path, monkeypatch, garbage: str) -> None:
    """The privatizer raising (or a mechanism poisoning its output) never lets a face out raw:
    the batch is covered with solid fill (pipeline.Privatizer) and the run completes."""
    import av

    from streamdp.mechanisms.pixel import Pixelate

    def broken(self, jobs):  # type: ignore[no-untyped-def]
        if garbage == "raise":
            raise FloatingPointError("mechanism produced NaN")
        for job in jobs:
            job.faces.boxes[:] = np.nan  # the cover step sees garbage boxes: must not crash either
        raise ValueError("boxes became NaN")

    monkeypatch.setattr(Pixelate, "apply", broken)
    out, rep = tmp_path / "out.mp4", tmp_path / "r.json"
    code = main(["run", str(clip), "-o", str(out), "-m", "pixelate", "-q", "--report", str(rep)])
    assert code == 0 and out.exists()
    import json

    entry = json.loads(rep.read_text())["files"][0]
    assert entry["faces"]["faces_detected"] > 0
    # the face region of the output is solid-covered: far from the input's pixels there
    with av.open(str(clip)) as a, av.open(str(out)) as b:
        fa = next(a.decode(video=0)).to_ndarray(format="rgb24").astype(int)
        fb = next(b.decode(video=0)).to_ndarray(format="rgb24").astype(int)
    from streamdp.detect import FaceDetector

    with FaceDetector() as det:
        box = det.detect(fa.astype(np.uint8), 0).boxes[0].astype(int)
    x0, y0, x1, y1 = box
    assert np.abs(fa[y0:y1, x0:x1] - fb[y0:y1, x0:x1]).mean() > 30


def test_the_output_disk_filling_up_stops_with_one_line_and_nothing_left(clip: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """An injected ENOSPC while muxing: exit code non-zero, a one-line error naming the problem,
    no output and no temporary file left, the input untouched."""
    import errno

    from streamdp import sink as sink_mod

    real = sink_mod.VideoSink._mux_video
    count = {"n": 0}

    def full(self, packet):  # type: ignore[no-untyped-def]
        count["n"] += 1
        if count["n"] > 12:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, packet)

    monkeypatch.setattr(sink_mod.VideoSink, "_mux_video", full)
    digest = _digest(clip)
    out = tmp_path / "out.mp4"
    code = main(["run", str(clip), "-o", str(out), "-m", "pixelate", "-q"])
    assert code != 0
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.mp4")]
    assert _digest(clip) == digest
    err = capsys.readouterr().err
    assert "No space left on device" in err and err.strip().count("\n") <= 1, err
