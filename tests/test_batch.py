"""``streamdp batch`` on a local Ray: one broken file fails alone, a second run skips what is
done, a half-done file is redone from scratch, and the aggregate report adds it all up."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import av
import pytest

from conftest import MEDIA, needs_media
from synth import count_frames

pytest.importorskip("ray", reason="streamdp batch needs Ray (pip install -e '.[scale]')")
pytestmark = needs_media

from streamdp.cli import main  # noqa: E402
from streamdp.scale.archive import STATE_DIR, TMP_MARKER  # noqa: E402

FRAMES = 12


def _cut(src: Path, dst: Path, frames: int = FRAMES) -> Path:
    """The first ``frames`` frames of a real clip, re-encoded small."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        st = out.add_stream("libx264", rate=25)
        vin = inp.streams.video[0]
        st.width, st.height, st.pix_fmt = vin.width // 2 * 2, vin.height // 2 * 2, "yuv420p"
        for i, frame in enumerate(inp.decode(vin)):
            if i == frames:
                break
            small = av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24", width=st.width, height=st.height),
                                               format="rgb24")
            small.pts = i
            out.mux(st.encode(small))
        out.mux(st.encode(None))
    return dst


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two short clips with a face, a still, a broken video (no index) and a text file."""
    root = tmp_path_factory.mktemp("archive")
    (root / "day1").mkdir()
    _cut(MEDIA / "carphone_pristine.mp4", root / "day1" / "car.mp4")
    _cut(MEDIA / "single_face.mp4", root / "face.mp4")
    shutil.copy(MEDIA / "single_face.jpg", root / "day1" / "still.jpg")
    whole = (root / "face.mp4").read_bytes()
    (root / "day1" / "broken.mp4").write_bytes(whole[: len(whole) // 3])  # a recording cut off
    (root / "notes.txt").write_text("not media")
    return root


def _batch(archive: Path, out: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict, str]:
    rc = main(["batch", str(archive), "-o", str(out), "-m", "pixelate", "--workers", "2", "-q", *extra])
    err = capsys.readouterr().err
    return rc, json.loads((out / "batch-report.json").read_text()), err


def _by_name(report: dict) -> dict[str, dict]:
    return {Path(e["input"]).name: e for e in report["files"]}


@pytest.fixture(scope="module")
def first_run(archive: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, dict, str]:
    out = tmp_path_factory.mktemp("out")
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(["batch", str(archive), "-o", str(out), "-m", "pixelate", "--workers", "2", "-q"])
    return out, rc, json.loads((out / "batch-report.json").read_text()), err.getvalue()


def test_broken_file_fails_alone_and_the_report_adds_up(first_run) -> None:  # type: ignore[no-untyped-def]
    out, rc, report, err = first_run
    files = _by_name(report)
    assert rc == 1, "a failed file must make the run exit non-zero"
    assert set(files) == {"car.mp4", "face.mp4", "still.jpg", "broken.mp4"}  # notes.txt is not media
    assert files["broken.mp4"]["status"] == "error" and "moov" in files["broken.mp4"]["error"]
    assert [f["input"] for f in report["failures"]] == [files["broken.mp4"]["input"]]
    assert err.count("FAILED ") == 1 and "broken.mp4" in err
    for name in ("car.mp4", "face.mp4"):
        entry = files[name]
        assert entry["status"] == "ok" and entry["frames_out"] == FRAMES
        assert count_frames(entry["output"]) == FRAMES
        assert entry["faces"]["faces_detected"] > 0, f"no face found in {name}"
        per_file = json.loads(Path(entry["report"]).read_text())
        assert per_file["output_bytes"] == os.path.getsize(entry["output"])
    assert (out / "day1" / "still.jpg").is_file() and not (out / "day1" / "broken.mp4").exists()
    s = report["summary"]
    assert (s["files"], s["files_ok"], s["files_failed"]) == (4, 3, 1)
    assert s["frames"] == 2 * FRAMES + 1
    assert s["faces_detected"] == sum(e.get("faces", {}).get("faces_detected", 0) for e in report["files"])


def test_second_run_skips_what_is_done_and_retries_the_failure(first_run, archive: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out, _, _, _ = first_run
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.mp4")}
    rc, report, err = _batch(archive, out, capsys)
    files = _by_name(report)
    assert rc == 1 and "broken.mp4" in err  # the broken file is tried again, and fails again
    assert report["summary"]["files_resumed"] == 3
    assert all(files[n].get("resumed") for n in ("car.mp4", "face.mp4", "still.jpg"))
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.mp4")} == stamps, "a finished output was rewritten"
    assert report["summary"]["frames"] == 2 * FRAMES + 1  # resumed files still count in the totals


def test_half_done_outputs_are_redone_from_scratch(archive: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "in"
    src.mkdir()
    for name in ("car.mp4", "still.jpg"):
        shutil.copy(archive / "day1" / name, src / name)
    out = tmp_path / "out"
    assert _batch(src, out, capsys)[0] == 0
    # A worker killed between its output and its report; another killed while encoding.
    (out / STATE_DIR / "car.mp4.json").unlink()
    (out / "car.mp4").write_bytes(b"half an mp4")
    (out / "still.jpg").unlink()
    stale = out / f".still.jpg{TMP_MARKER}abcd.jpg"
    stale.write_bytes(b"\xff\xd8 half a jpeg")
    rc, report, _ = _batch(src, out, capsys)
    files = _by_name(report)
    assert rc == 0 and report["summary"]["files_resumed"] == 0
    assert report["summary"]["temp_files_swept"] == 1 and not stale.exists()
    assert count_frames(out / "car.mp4") == FRAMES
    assert files["car.mp4"]["status"] == "ok" and not files["car.mp4"].get("resumed")
    assert (out / "still.jpg").stat().st_size > 1000


def _crashing_worker() -> type:
    """A worker whose process dies (as in native code) on the file named ``crash``; defined in a
    function so that Ray ships it by value to its worker processes."""
    from streamdp.scale.worker import CountingFileWorker

    class Crashing(CountingFileWorker):
        def process(self, job):  # type: ignore[no-untyped-def]
            if Path(job.src).stem == "crash":
                os._exit(1)
            return super().process(job)

    return Crashing


def test_a_worker_that_dies_fails_only_its_file(archive: Path, tmp_path: Path) -> None:
    import ray

    from streamdp.config import load_config
    from streamdp.scale.archive import iter_jobs
    from streamdp.scale.batch import run_batch

    inputs = []
    for name in ("a", "crash", "b"):  # in this order: b needs the replacement worker
        inputs.append(tmp_path / f"{name}.jpg")
        shutil.copy(archive / "day1" / "still.jpg", inputs[-1])
    config = load_config(None, {"mechanism.name": "pixelate"}).model_dump(mode="json")

    def connect():  # type: ignore[no-untyped-def]
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
        return ray, 1

    from prometheus_client import CollectorRegistry

    from streamdp.metrics import BatchMetrics

    registry = CollectorRegistry()
    try:
        outcome = run_batch(iter_jobs(inputs, tmp_path / "out"), config, connect, worker=_crashing_worker(),
                            metrics=BatchMetrics(registry))
    finally:
        ray.shutdown()
    # the batch metrics saw every file as it finished (streamdp batch --metrics-port serves them)
    assert registry.get_sample_value("streamdp_batch_files_total", {"status": "ok"}) == 2
    assert registry.get_sample_value("streamdp_batch_files_total", {"status": "failed"}) == 1
    assert [(Path(e["input"]).stem, e["status"]) for e in outcome.entries] == [
        ("a", "ok"), ("crash", "error"), ("b", "ok")]
    assert "worker process died" in outcome.failures[0]["error"]
    assert (tmp_path / "out" / "b.jpg").is_file() and not (tmp_path / "out" / "crash.jpg").exists()


def test_report_sums_epsilon_over_files(archive: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """dp-image: each file has its own ledger (one face, one release, epsilon 2 here); the
    aggregate bounds a person who is in every file by their sum."""
    src = tmp_path / "in"
    src.mkdir()
    for name in ("one.jpg", "two.jpg"):
        shutil.copy(archive / "day1" / "still.jpg", src / name)
    out = tmp_path / "out"
    rc = main(["batch", str(src), "-o", str(out), "-m", "dp-image", "--epsilon", "2", "--workers", "1", "-q"])
    report = json.loads((out / "batch-report.json").read_text())
    assert rc == 0, capsys.readouterr().err
    per_file = [e["privacy"]["all_tracks_one_person"]["epsilon"] for e in report["files"]]
    assert per_file == [2.0, 2.0]
    assert report["summary"]["all_files_one_person"]["epsilon"] == 4.0
    assert report["summary"]["worst_case_epsilon_per_track"] == 2.0
