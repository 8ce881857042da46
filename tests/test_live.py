"""Live: camera path, RTSP relay, deadlines, reconnects, metrics, credentials, signals.

Everything runs on 127.0.0.1 with child processes the tests start and stop themselves (the RTSP
server is streamdp's own, ``tests/rtsp_server.py``), each loop bounded in count and time.

How "covered" is judged in a frame read back from the relay: the face in
``single_face.mp4`` always lies inside a known region (the intersection of the detector's boxes on
the original frames, shrunk by 10 %). With the ``solid`` mechanism that region must be black
(mean < 25 grey levels; a raw face there measures > 80: checked on the raw input stream as a
positive control), and the face detector must find no face in the frame.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.request
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

import rtsp_server as rs
from conftest import MEDIA, need_shared
from streamdp.config import Config, DetectConfig, load_config
from streamdp.errors import ConfigError
from streamdp.live import covered
from streamdp.live.backoff import Backoff
from streamdp.live.covered import CoveredFrame
from streamdp.live.metrics import StreamMetrics
from streamdp.live.pipeline import LivePipeline, LiveStream
from streamdp.live.redact import RedactingFilter, redact_text, redact_url
from streamdp.live.sinks import RecordingSink, Sink, SinkWorker
from streamdp.live.slot import LatestSlot
from streamdp.live.sources import camera_source
from streamdp.builder import build_mechanism
from streamdp.mechanisms import Mechanism
from streamdp.stages import Pipeline

SOLID_MAX_MEAN = 25.0  # a solid-covered face region (black) after two H.264 encodes
RAW_MIN_MEAN = 80.0  # the raw face region in single_face.mp4 is much brighter than that
SECRET = "s3cr3t-pw"


# ------------------------------------------------------------------------------------ helpers


def _source_frames(path: Path, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]
    if size:
        frames = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]
    return frames


def _face_region(frames: list[np.ndarray]) -> tuple[int, int, int, int]:
    """Where the face is in every frame: intersection of the detections, shrunk by 10 %."""
    from streamdp.detect import FaceDetector

    boxes = []
    with FaceDetector(DetectConfig()) as det:
        for i, f in enumerate(frames):
            d = det.detect(f, i)
            assert len(d) >= 1, f"the detector misses the face in source frame {i}"
            boxes.append(d.boxes[np.argmax(d.scores)])
    b = np.array(boxes)
    x0, y0 = b[:, 0].max(), b[:, 1].max()
    x1, y1 = b[:, 2].min(), b[:, 3].min()
    dx, dy = 0.1 * (x1 - x0), 0.1 * (y1 - y0)
    assert x1 - x0 > 20 and y1 - y0 > 20
    return int(x0 + dx), int(y0 + dy), int(x1 - dx), int(y1 - dy)


def _region_mean(image: np.ndarray, box: tuple[int, int, int, int]) -> float:
    x0, y0, x1, y1 = box
    return float(image[y0:y1, x0:x1].mean())


def _hp_corr(a: np.ndarray, b: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """High-pass correlation of two frames inside ``box`` (~1 for the same face, ~0 if destroyed)."""
    x0, y0, x1, y1 = box
    ga = cv2.cvtColor(a[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY).astype(np.float32)
    gb = cv2.cvtColor(b[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY).astype(np.float32)
    ha = (ga - cv2.GaussianBlur(ga, (0, 0), 2.0)).ravel()
    hb = (gb - cv2.GaussianBlur(gb, (0, 0), 2.0)).ravel()
    ha, hb = ha - ha.mean(), hb - hb.mean()
    d = float(np.sqrt((ha * ha).sum() * (hb * hb).sum()))
    return float((ha * hb).sum() / d) if d > 0 else 0.0


@pytest.fixture(scope="module")
def face_video() -> Path:
    return need_shared(MEDIA / "single_face.mp4")


@pytest.fixture(scope="module")
def face_region(face_video: Path) -> tuple[int, int, int, int]:
    return _face_region(_source_frames(face_video))


@pytest.fixture(scope="module")
def detector():  # type: ignore[no-untyped-def]
    from streamdp.detect import FaceDetector

    det = FaceDetector(DetectConfig(min_confidence=0.5))
    yield det
    det.close()


class FakeCamera:
    """A camera for the injectable opener: frames from a list, paced like a device."""

    def __init__(self, frames: list[np.ndarray], fps: float = 25.0, limit: int | None = None) -> None:
        self.frames = frames
        self.fps = fps
        self.limit = limit
        self.n = 0
        self.t0 = time.monotonic()
        self.closed = False

    def read(self) -> np.ndarray | None:
        if self.limit is not None and self.n >= self.limit:
            return None
        due = self.t0 + self.n / self.fps
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        image = self.frames[self.n % len(self.frames)].copy()
        self.n += 1
        return image

    def close(self) -> None:
        self.closed = True


class Collect(Sink):
    """Keeps what an output would have received."""

    name = "collect"

    def __init__(self) -> None:
        self.fps: float | None = None
        self.frames: list[tuple[float, CoveredFrame]] = []  # new frames
        self.repeats = 0
        self.closed = False

    def write(self, frame: CoveredFrame, t_out: float) -> bool:
        if self.frames and frame is self.frames[-1][1]:
            self.repeats += 1  # the output repeating the last frame
        else:
            self.frames.append((t_out, frame))
        return True

    def close(self) -> None:
        self.closed = True


class SlowMechanism(Mechanism):
    """A privatizer that always misses a live deadline (but would cover the faces)."""

    name = "slow"

    def __init__(self, config: Config, delay: float) -> None:
        self.inner = build_mechanism(config)
        self.delay = delay
        self.batches: list[int] = []

    def apply(self, jobs):  # type: ignore[no-untyped-def]
        self.batches.append(len(jobs))
        time.sleep(self.delay)
        self.inner.apply(jobs)


def _run(pipeline: LivePipeline, seconds: float) -> None:
    pipeline.start()
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and not pipeline.finished():
            time.sleep(0.05)
    finally:
        pipeline.stop("test")
    pipeline.raise_if_failed()


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


def _metric(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


# ------------------------------------------------------------------------------ unit checks


def test_redaction_of_urls_logs_and_text() -> None:
    assert redact_url(f"rtsp://admin:{SECRET}@cam.local:554/stream1") == "rtsp://***@cam.local:554/stream1"
    assert SECRET not in redact_url(f"rtsp://cam/s?user=a&password={SECRET}&channel=1")
    assert "channel=1" in redact_url(f"rtsp://cam/s?password={SECRET}&channel=1")
    assert SECRET not in redact_url(f"https://host/live.m3u8?token={SECRET}")
    assert redact_url("/videos/in.mp4") == "/videos/in.mp4"
    assert redact_url("rtsp://cam.local/stream") == "rtsp://cam.local/stream"
    text = f"Connection refused: 'rtsp://admin:{SECRET}@10.0.0.1/live' and srt://h:1?passphrase={SECRET}"
    assert SECRET not in redact_text(text)
    record = __import__("logging").LogRecord("x", 30, __file__, 1, "open %s failed", (f"rtsp://u:{SECRET}@h/p",), None)
    try:
        raise OSError(f"boom rtsp://u:{SECRET}@h/p")
    except OSError as exc:
        record.exc_info = (type(exc), exc, exc.__traceback__)
    RedactingFilter().filter(record)
    assert SECRET not in record.getMessage() and "rtsp://***@h/p" in record.getMessage()


def test_latest_slot_keeps_only_the_newest() -> None:
    slot: LatestSlot[int] = LatestSlot()
    assert slot.get(timeout=0.01) is None
    assert slot.put(1) is False
    assert slot.put(2) is True and slot.put(3) is True
    assert slot.get(timeout=0) == 3 and slot.dropped == 2
    slot.close()
    t0 = time.monotonic()
    assert slot.get(timeout=5) is None and time.monotonic() - t0 < 1  # closed: no wait


def test_backoff_grows_caps_and_resets() -> None:
    b = Backoff(0.5, 4.0, jitter=0.0)
    assert [b.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    b.reset()
    assert b.next_delay() == 0.5
    stop = threading.Event()
    stop.set()
    assert b.wait(stop, 10) is False


def test_outputs_take_covered_frames_only() -> None:
    raw = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(TypeError):
        CoveredFrame(raw, 0.0, 0, "privatized")  # cannot be made outside covered.py
    worker = SinkWorker(Collect(), StreamMetrics("s", "x"), Pipeline())
    with pytest.raises(TypeError):
        worker.offer(raw, 0.0, True)  # type: ignore[arg-type]
    from streamdp.types import Detections

    frame = covered.no_faces(raw, Detections.empty(), 0, 0.0)
    with pytest.raises(ValueError):
        frame.image[0, 0, 0] = 1  # read-only after covering


def test_live_config_is_validated() -> None:
    cfg = load_config(None, {"live.deadline_ms": 150, "live.fallback": "pixelate"})
    assert cfg.live.deadline_ms == 150 and cfg.live.fallback == "pixelate"
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(None, {"live.deadline": 1})
    with pytest.raises(ConfigError):
        load_config(None, {"live.fallback": "none"})  # the fallback must cover
    repo = Path(__file__).resolve().parents[1]
    multi = load_config(repo / "configs" / "multi.yaml")
    assert len(multi.live.streams) >= 2


# ------------------------------------------------------------------------ in-process pipeline


@pytest.mark.timeout(120)
def test_camera_path_through_injected_opener(face_video: Path, tmp_path: Path, detector) -> None:  # type: ignore[no-untyped-def]
    """A camera opened by an injected opener, pixelated, previewed (collected) and recorded."""
    size = (320, 180)
    frames = _source_frames(face_video, size)
    region = _face_region(frames)
    config = load_config(None, {"mechanism.name": "pixelate"})
    metrics = StreamMetrics("camera", "camera fake")
    opened: list[FakeCamera] = []

    def opener() -> FakeCamera:
        cam = FakeCamera(frames, fps=20.0)
        opened.append(cam)
        return cam

    source = camera_source("fake", config.live, metrics, opener=opener)
    collect = Collect()
    record = RecordingSink(tmp_path / "rec.mp4", 0.0, config.output, "ultrafast")
    stream = LiveStream(0, "camera", source, [collect, record], metrics)
    mechanism = build_mechanism(config)
    pipeline = LivePipeline(config, mechanism, [stream])
    _run(pipeline, 3.0)
    assert len(opened) == 1  # the pipeline used the injected opener, once
    assert collect.closed
    got = [f for _, f in collect.frames]
    assert len(got) >= 20, f"only {len(got)} frames came out of a 3 s, 20 fps camera"
    # every frame has its face covered: pixelate destroys the face's fine detail
    for f in got:
        assert f.how in ("privatized", "fallback") and f.faces >= 1
        assert _hp_corr(f.image, frames[f.seq % len(frames)], region) < 0.4
    # the recording holds the same frames, and the detector finds no face in any of them
    with av.open(str(tmp_path / "rec.mp4")) as c:
        recorded = [fr.to_ndarray(format="rgb24") for fr in c.decode(c.streams.video[0])]
    assert len(recorded) == len(got) + collect.repeats  # the same frames, repeats included
    for i, image in enumerate(recorded):
        assert len(detector.detect(image, i)) == 0, f"a face is visible in recorded frame {i}"
    # positive control: the same checks see the face in the raw frames
    assert len(detector.detect(frames[0], 0)) == 1
    assert _hp_corr(frames[0], frames[0], region) > 0.99
    snap = metrics.snapshot()
    assert snap["counts"]["frames_in"] >= len(got)
    assert snap["latency_capture_to_publish"]["record"]["samples"] == len(got)


@pytest.mark.timeout(120)
def test_deadline_miss_publishes_cheap_cover_never_raw_never_late(face_video: Path) -> None:
    size = (320, 180)
    frames = _source_frames(face_video, size)
    region = _face_region(frames)
    deadline_ms = 150.0
    config = load_config(None, {"mechanism.name": "pixelate", "live.deadline_ms": deadline_ms, "live.fallback": "solid"})
    metrics = StreamMetrics("cam", "fake")
    source = camera_source("fake", config.live, metrics, opener=lambda: FakeCamera(frames, fps=15.0))
    collect = Collect()
    slow = SlowMechanism(config, delay=0.5)  # always misses a 150 ms deadline
    pipeline = LivePipeline(config, slow, [LiveStream(0, "cam", source, [collect], metrics)])
    _run(pipeline, 3.0)
    assert len(collect.frames) >= 10
    late = []
    for t_out, f in collect.frames:
        assert f.how == "fallback", f"frame {f.seq} went out as {f.how!r} although the privatizer is too slow"
        assert _region_mean(f.image, region) < 5.0, "fallback must be the solid cover"
        late.append(t_out - f.t_capture)
    # handed to the outputs by the deadline (+ one scheduling slice on a busy 2-core machine)
    assert max(late) < deadline_ms / 1000 + 0.1, f"latest frame went out {max(late) * 1000:.0f} ms after capture"
    snap = metrics.snapshot()
    assert snap["counts"]["frames_fallback"] >= len(collect.frames)
    assert snap["counts"]["frames_privatized"] == 0


@pytest.mark.timeout(120)
def test_many_streams_share_one_batched_privatizer(face_video: Path) -> None:
    size = (320, 180)
    frames = _source_frames(face_video, size)
    config = load_config(None, {"mechanism.name": "pixelate", "live.deadline_ms": 2000, "batch.max_wait_ms": 30})
    streams, sinks = [], []
    for i in range(3):
        m = StreamMetrics(f"cam{i}", f"fake{i}")
        src = camera_source(f"fake{i}", config.live, m, opener=lambda: FakeCamera(frames, fps=10.0))
        sinks.append(Collect())
        streams.append(LiveStream(i, f"cam{i}", src, [sinks[-1]], m))
    slow = SlowMechanism(config, delay=0.08)  # slower than one frame: the streams' jobs meet in the queue
    pipeline = LivePipeline(config, slow, streams)
    _run(pipeline, 4.0)
    assert max(slow.batches) >= 2, f"no batch mixed streams: {slow.batches}"
    assert pipeline.shared.stats()["max_batch"] >= 2
    for s in sinks:
        assert len(s.frames) >= 5 and all(f.how == "privatized" for _, f in s.frames if f.faces)


# ---------------------------------------------------------------------------------- CLI, files


@pytest.mark.timeout(120)
def test_live_cli_lavfi_camera_records_and_stops_on_signal(tmp_path: Path) -> None:
    rec = tmp_path / "recording.mp4"
    report = tmp_path / "live.json"
    port = rs.free_port()
    cmd = ["--camera", "lavfi:testsrc=size=320x240:rate=25", "-o", str(rec), "--report", str(report),
           "--metrics-port", str(port)]
    proc = rs.Relay(cmd, tmp_path, command="live").start()
    try:
        deadline = time.monotonic() + 60
        published = 0.0
        while time.monotonic() < deadline and proc.alive():
            try:
                published = _metric(_scrape(port), "streamdp_frames_published_total", stream="camera") or 0
            except OSError:
                published = 0
            if published >= 25:
                break
            time.sleep(0.2)
        assert published >= 25, f"the camera pipeline did not start: {proc.stderr[-2000:]}"
        rc, took = proc.stop(signal.SIGINT)
    finally:
        proc.stop(signal.SIGKILL)
    assert rc == 0, proc.stderr[-2000:]
    assert took < 1.5, f"Ctrl-C took {took:.2f} s"
    assert rec.is_file() and not list(tmp_path.glob("*.partial*"))
    with av.open(str(rec)) as c:
        n = sum(1 for _ in c.decode(c.streams.video[0]))
    data = json.loads(report.read_text())
    s = data["streams"][0]
    assert n == s["sinks"]["record"] >= 25
    assert s["fps_in"] == pytest.approx(25, rel=0.2) and s["fps_out"] == pytest.approx(25, rel=0.2)
    assert data["stopped_by"] == "SIGINT"


# --------------------------------------------------------------------------------- RTSP relay


@pytest.fixture
def rtsp_pair():  # type: ignore[no-untyped-def]
    """Two RTSP servers: the camera side (input) and the publishing side (output)."""
    a, b = rs.ServerProc().start(), rs.ServerProc().start()
    yield a, b
    a.stop()
    b.stop()


def _raw_control(url: str, region: tuple[int, int, int, int]) -> None:
    """The raw input has a visible face where the checks look: they can fail."""
    means = [_region_mean(img, region) for _, img in zip(range(10), (img for _, img in rs.read_frames(url, 5)))]
    assert means and min(means) > RAW_MIN_MEAN, f"raw face region means {means}"


@pytest.mark.timeout(120)
def test_relay_rtsp_covers_every_frame_holds_rate_and_latency(  # type: ignore[no-untyped-def]
    face_video: Path, face_region, detector, rtsp_pair, tmp_path: Path
) -> None:
    a, b = rtsp_pair
    pub = rs.Publisher(face_video, a.url("in"), tmp_path / "sent.log", seconds=60).start()
    try:
        assert pub.wait_publishing(), "the test publisher could not publish"
        _raw_control(a.url("in"), face_region)
        mport = rs.free_port()
        report = tmp_path / "relay.json"
        relay = rs.Relay([a.url("in", f"admin:{SECRET}"), b.url("anon"), "-m", "solid", "--report", str(report),
                          "--metrics-port", str(mport), "--deadline-ms", "250"], tmp_path).start()
        try:
            got = []  # (receive time, stamp, region mean, faces found)
            for t, img in rs.read_frames(b.url("anon"), seconds=8, open_timeout=40):
                got.append((t, rs.read_stamp(img), _region_mean(img, face_region), len(detector.detect(img, len(got)))))
            metrics_text = _scrape(mport)
            rc, took = relay.stop(signal.SIGTERM)
        finally:
            relay.stop(signal.SIGKILL)
    finally:
        pub.stop()
    assert rc == 0, relay.stderr[-3000:]
    assert took < 1.5, f"SIGTERM took {took:.2f} s"
    assert len(got) >= 100, f"only {len(got)} frames read back"
    # covered in every frame read, and no face found anywhere
    worst = max(g[2] for g in got)
    assert worst < SOLID_MAX_MEAN, f"a face region was not covered (mean {worst:.1f})"
    assert sum(g[3] for g in got) == 0, "the detector found a face in the relay's output"
    # the frame rate holds: 30 fps in, ~30 fps out (over the reader's own clock)
    span = got[-1][0] - got[0][0]
    fps_read = (len(got) - 1) / span
    assert fps_read == pytest.approx(30, rel=0.2), f"read {fps_read:.1f} fps"
    stamps = [g[1] for g in got if g[1] is not None]
    assert len(stamps) >= 0.9 * len(got), "frames without a readable stamp"
    assert len(set(stamps)) >= 0.5 * len(got), "the relay mostly repeated frames"
    # latency: end to end (publisher -> reader) from the stamps, and the relay's own figures
    sent = pub.sent()
    e2e = [t - sent[s] for t, s, _, _ in got if s is not None and s in sent]
    data = json.loads(report.read_text())
    lat = data["streams"][0]["latency_capture_to_publish"]["rtsp"]
    assert lat["samples"] >= 100
    assert lat["p95_ms"] < 250 + 100, f"relay p95 {lat['p95_ms']} ms"
    assert np.percentile(e2e, 95) < 1.0, f"end-to-end p95 {np.percentile(e2e, 95):.3f} s"
    # metrics endpoint and report: numbers present, credentials absent
    assert _metric(metrics_text, "streamdp_frames_in_total", stream="stream0") > 0
    assert (_metric(metrics_text, "streamdp_latency_seconds_count", stream="stream0", sink="rtsp") or 0) > 0
    for text in (metrics_text, relay.stderr, relay.stdout, report.read_text()):
        assert SECRET not in text and "admin" not in text
    assert data["streams"][0]["counts"]["frames_in"] > 0 and data["stopped_by"] == "SIGTERM"


@pytest.mark.timeout(120)
def test_relay_recovers_when_input_and_output_servers_restart(  # type: ignore[no-untyped-def]
    face_video: Path, face_region, rtsp_pair, tmp_path: Path
) -> None:
    a, b = rtsp_pair
    pub = rs.Publisher(face_video, a.url("in"), tmp_path / "sent1.log", seconds=60).start()
    assert pub.wait_publishing()
    report = tmp_path / "relay.json"
    relay = rs.Relay([a.url("in"), b.url("anon"), "-m", "solid", "--report", str(report)], tmp_path).start()
    phases: dict[str, list[tuple[float, int | None, float]]] = {"before": [], "outage": [], "after": []}
    pub2 = None
    try:
        frames = rs.read_frames(b.url("anon"), seconds=30, open_timeout=40)
        t_start = None
        outage_end = None
        for t, img in frames:
            t_start = t_start or t
            stamp = rs.read_stamp(img)
            entry = (t, stamp, _region_mean(img, face_region))
            if outage_end is None and t - t_start < 3.0:
                phases["before"].append(entry)
                continue
            if outage_end is None:
                # stop the camera side (server and publisher) for 2.5 s, then bring it back
                a.stop()
                pub.stop()
                t_down = time.monotonic()
                outage_end = t_down + 2.5
            if time.monotonic() < outage_end:
                phases["outage"].append(entry)
                continue
            if pub2 is None:
                a.start()
                pub2 = rs.Publisher(face_video, a.url("in"), tmp_path / "sent2.log", seconds=60, start_index=10000)
                pub2.start()
            phases["after"].append(entry)
            if sum(1 for e in phases["after"] if e[1] is not None and e[1] >= 10000) >= 30:
                break
        frames.close()
        # now the output side: restart the server the relay publishes to
        b.stop()
        time.sleep(1.0)
        b.start()
        again = []
        for t, img in rs.read_frames(b.url("anon"), seconds=3, open_timeout=40):
            again.append((t, rs.read_stamp(img), _region_mean(img, face_region)))
        rc, _ = relay.stop(signal.SIGINT)
    finally:
        relay.stop(signal.SIGKILL)
        pub.stop()
        if pub2 is not None:
            pub2.stop()
    err = relay.stderr
    assert rc == 0, err[-3000:]
    everything = phases["before"] + phases["outage"] + phases["after"] + again
    worst = max(e[2] for e in everything)
    assert worst < SOLID_MAX_MEAN, f"an uncovered face region went out (mean {worst:.1f})"
    assert len(phases["before"]) >= 30
    # the output kept its pace during the outage (repeating the last anonymized frame)
    out_span = phases["outage"][-1][0] - phases["outage"][0][0] if len(phases["outage"]) > 1 else 0
    assert out_span > 1.5 and len(phases["outage"]) >= 0.6 * 30 * out_span, (
        f"{len(phases['outage'])} frames in {out_span:.1f} s of input outage"
    )
    assert all(e[1] is None or e[1] < 10000 for e in phases["outage"])
    # it recovered: frames published by the restarted camera came through
    assert sum(1 for e in phases["after"] if e[1] is not None and e[1] >= 10000) >= 30, err[-3000:]
    assert "lost" in err and "reconnected" in err
    # and it published again to the restarted output server
    assert len(again) >= 30 and any(e[1] is not None and e[1] >= 10000 for e in again), err[-3000:]
    assert "publishing again" in err
    counts = json.loads(report.read_text())["streams"][0]["counts"]
    assert counts["input_errors"] >= 1 and counts["input_connects"] >= 2 and counts["output_connects"] >= 2


@pytest.mark.timeout(120)
def test_relay_serve_mode_and_file_input(face_video: Path, face_region, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    port = rs.free_port()
    relay = rs.Relay([str(face_video), "--loop", "--serve", str(port), "--serve-host", "127.0.0.1", "-m", "solid"],
                     tmp_path).start()
    try:
        got = [(t, _region_mean(img, face_region)) for t, img in
               rs.read_frames(f"rtsp://127.0.0.1:{port}/anon", seconds=4, open_timeout=40)]
        rc, took = relay.stop(signal.SIGINT)
    finally:
        relay.stop(signal.SIGKILL)
    assert rc == 0 and took < 1.5, f"rc {rc}, stop took {took:.2f} s: {relay.stderr[-2000:]}"
    assert len(got) >= 60, f"{len(got)} frames: {relay.stderr[-2000:]}"
    assert max(m for _, m in got) < SOLID_MAX_MEAN
    assert f"rtsp://127.0.0.1:{port}/anon" in relay.stderr  # where to watch it


@pytest.mark.timeout(120)
def test_relay_multi_stream_config(face_video: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "multi.yaml"
    cfg.write_text(
        "mechanism: {name: solid}\n"
        "live:\n"
        "  streams:\n"
        f"    - {{name: door, input: '{face_video}', record: '{tmp_path / 'door.mp4'}'}}\n"
        f"    - {{name: hall, input: '{face_video}', record: '{tmp_path / 'hall.mp4'}'}}\n"
    )
    relay = rs.Relay(["--config", str(cfg), "--report", str(tmp_path / "r.json")], tmp_path).start()
    assert relay.proc is not None
    rc = relay.proc.wait(60)  # two 2.4 s files played at their own rate, then the relay ends
    relay.stop()
    assert rc == 0, relay.stderr[-2000:]
    data = json.loads((tmp_path / "r.json").read_text())
    assert [s["name"] for s in data["streams"]] == ["door", "hall"]
    assert data["privatizer"]["batches"] > 0 and data["stopped_by"] == "end of input"
    for name in ("door", "hall"):
        with av.open(str(tmp_path / f"{name}.mp4")) as c:
            assert sum(1 for _ in c.decode(c.streams.video[0])) >= 20


def test_relay_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from streamdp.cli import main

    assert main(["relay", str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "x.mp4")]) == 2
    assert "input not found" in capsys.readouterr().err
    assert main(["relay", f"ftp://u:{SECRET}@h/x", "rtsp://127.0.0.1:1/x"]) == 2
    err = capsys.readouterr().err
    assert "unsupported input" in err and SECRET not in err
    assert main(["relay", "lavfi:testsrc"]) == 2
    assert "no output" in capsys.readouterr().err
    assert main(["relay", "lavfi:testsrc", "rtsp://127.0.0.1:1/x", "--deadline-ms", "1"]) == 2
    assert "deadline_ms" in capsys.readouterr().err


@pytest.mark.timeout(180)
def test_live_dp_image_pixelates_a_new_face_until_its_render_lands(face_video: Path) -> None:
    """The default mechanism live: the generator's first render (~0.5 s on a CPU) runs in the
    background; meanwhile the face is pixelated, never raw; then the generated face is pasted."""
    import importlib.util

    if importlib.util.find_spec("random_face") is None:  # (its own __init__ needs deps we do not install)
        pytest.skip("dp-image's generator (random-face) is not installed")
    size = (480, 270)
    frames = _source_frames(face_video, size)
    region = _face_region(frames)
    config = load_config(None, {"mechanism.dp_image.render": "async", "live.deadline_ms": 1000})
    metrics = StreamMetrics("camera", "camera fake")
    source = camera_source("fake", config.live, metrics, opener=lambda: FakeCamera(frames, fps=15.0))
    collect = Collect()
    stream = LiveStream(0, "camera", source, [collect], metrics)
    mechanism = build_mechanism(config)
    pipeline = LivePipeline(config, mechanism, [stream])
    _run(pipeline, 6.0)
    got = [f for _, f in collect.frames]
    assert len(got) >= 15
    for f in got:
        assert _hp_corr(f.image, frames[f.seq % len(frames)], region) < 0.4, f"frame {f.seq} shows the face"
    d = mechanism.describe()
    assert d["render"] == "async" and d["faces_pixelated_waiting_for_render"] >= 1
    assert d["faces_pasted"] >= 1, "the generated face never replaced the pixelation"
    assert mechanism.privacy_report()["releases"] >= 1
    mechanism.close()


@pytest.mark.timeout(60)
def test_rtsp_publisher_never_stalls_the_process_on_a_silent_server() -> None:
    """A server that accepts TCP and never answers: the RTSP handshake blocks (PyAV holds the GIL
    there), but in the publisher's child process; the relay's threads keep running, each write
    returns within a bound, and the frames are dropped (counted), never queued."""
    import socket

    from streamdp.config import LiveConfig
    from streamdp.live.publisher import RtspPublisher

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)  # accepted by the kernel, never answered
    port = srv.getsockname()[1]
    metrics = StreamMetrics("s", "in")
    pub = RtspPublisher(f"rtsp://127.0.0.1:{port}/x", 25.0, LiveConfig(open_timeout_s=2.0), metrics)
    gaps: list[float] = []
    stop = threading.Event()

    def tick() -> None:
        last = time.monotonic()
        while not stop.wait(0.01):
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    t = threading.Thread(target=tick, daemon=True)
    t.start()
    from streamdp.types import Detections

    took, results = [], []
    try:
        t_end = time.monotonic() + 4.0
        i = 0
        while time.monotonic() < t_end and i < 200:
            t0 = time.monotonic()
            frame = covered.no_faces(np.zeros((64, 96, 3), np.uint8), Detections.empty(), i, t0)
            results.append(pub.write(frame, t0))
            took.append(time.monotonic() - t0)
            i += 1
            time.sleep(0.04)
        t0 = time.monotonic()
        pub.close()
        close_took = time.monotonic() - t0
    finally:
        stop.set()
        t.join(2)
        srv.close()
    assert not any(results) and pub.frames_written == 0
    assert max(took) < 0.8, f"a write took {max(took):.2f} s"
    assert max(gaps) < 0.3, f"the process froze for {max(gaps):.2f} s"
    assert close_took < 2.0


@pytest.mark.timeout(60)
def test_rtsp_publisher_replaces_a_dead_publisher_process() -> None:
    from streamdp.config import LiveConfig
    from streamdp.live.publisher import RtspPublisher
    from streamdp.types import Detections

    with rs.ServerProc() as server:
        metrics = StreamMetrics("s", "in")
        pub = RtspPublisher(server.url("anon"), 25.0, LiveConfig(reconnect_initial_s=0.2), metrics)
        written_before_kill = None
        t_end = time.monotonic() + 20
        try:
            i = 0
            while time.monotonic() < t_end:
                t0 = time.monotonic()
                frame = covered.no_faces(np.full((64, 96, 3), i % 255, np.uint8), Detections.empty(), i, t0)
                pub.write(frame, t0)
                i += 1
                if written_before_kill is None and pub.frames_written >= 10:
                    written_before_kill = pub.frames_written
                    pub._proc.kill()  # type: ignore[union-attr]
                if written_before_kill is not None and pub.frames_written >= written_before_kill + 10:
                    break
                time.sleep(0.04)
        finally:
            pub.close()
    assert written_before_kill is not None, "never published"
    assert pub.frames_written >= written_before_kill + 10, "not published again after the process died"
    assert pub.child_starts == 2
    counts = metrics.snapshot()["counts"]
    assert counts["output_errors"] >= 1 and counts["output_connects"] >= 2, counts


# ------------------------------------------------------------------ pipelining (issue #11)

_BOX = (120, 50, 200, 130)  # the fake face, x0 y0 x1 y1 in a 320x180 frame


def _checker_frames(n: int = 8) -> list[np.ndarray]:
    """Synthetic 320x180 frames with a high-contrast 2 px checkerboard where the 'face' is."""
    x0, y0, x1, y1 = _BOX
    yy, xx = np.mgrid[0 : y1 - y0, 0 : x1 - x0]
    board = (((yy // 2) + (xx // 2)) % 2 * 255).astype(np.uint8)
    frames = []
    for i in range(n):
        f = np.full((180, 320, 3), 60 + 10 * i, np.uint8)
        f[y0:y1, x0:x1] = board[..., None]
        frames.append(f)
    return frames


def _is_raw(image: np.ndarray) -> bool:
    """The checkerboard is still there (its high-pass energy survives): the face is visible."""
    x0, y0, x1, y1 = _BOX
    g = image[y0:y1, x0:x1].astype(np.float32).mean(axis=2)
    return float(np.abs(np.diff(g, axis=1)).mean()) > 20.0  # raw: ~127; pixelated/solid: a few


class FixedFaces:
    """A FaceStage stand-in: one face at ``_BOX`` in every frame, after ``delay`` s (a slow detector)."""

    def __init__(self, delay: float) -> None:
        from streamdp.faces import FaceCounts

        self.delay = delay
        self.spans: list[tuple[int, float, float]] = []  # (seq, start, end)
        self.counts = FaceCounts()
        self.tracker = type("T", (), {"total_tracks": 1})()
        self.closed = False

    search_spread = 1

    def process(self, frame, stream_id: int = 0, search_index: int | None = None):  # type: ignore[no-untyped-def]
        from streamdp.types import Detections, FrameJob

        t0 = time.monotonic()
        time.sleep(self.delay)
        faces = Detections(boxes=[_BOX], scores=[0.9], keypoints=np.zeros((1, 6, 2)), track_ids=[1])
        self.spans.append((frame.index, t0, time.monotonic()))
        return FrameJob(frame, faces, stream_id)

    def close(self) -> None:
        self.closed = True


class TimedMechanism(Mechanism):
    """Pixelate after ``delay(batch number)`` seconds; records each batch's (seqs, start, end)."""

    name = "timed"

    def __init__(self, config: Config, delay) -> None:  # type: ignore[no-untyped-def]
        self.inner = build_mechanism(config)
        self.delay = delay
        self.spans: list[tuple[list[int], float, float]] = []

    def apply(self, jobs):  # type: ignore[no-untyped-def]
        t0 = time.monotonic()
        time.sleep(self.delay(len(self.spans)))
        self.inner.apply(jobs)
        self.spans.append(([j.frame.index for j in jobs], t0, time.monotonic()))


def _pipelined(name: str, faces_delay: float, mech_delay, overrides: dict, fps: float = 50.0):  # type: ignore[no-untyped-def]
    config = load_config(None, {"mechanism.name": "pixelate", **overrides})
    metrics = StreamMetrics(name, "fake")
    source = camera_source("fake", config.live, metrics, opener=lambda: FakeCamera(_checker_frames(), fps=fps))
    collect = Collect()
    stream = LiveStream(0, name, source, [collect], metrics, fps=fps)
    stream.faces = FixedFaces(faces_delay)  # type: ignore[assignment]
    mechanism = TimedMechanism(config, mech_delay)
    return LivePipeline(config, mechanism, [stream]), stream, collect, mechanism, metrics


@pytest.mark.timeout(60)
def test_live_detection_overlaps_privatization_and_frames_leave_in_order() -> None:
    """A 30 ms detector and a 30 ms privatizer: frame k+1 is detected while frame k is
    privatized, so the stream runs near 1/30 ms, not 1/60 ms; frames still leave in order."""
    pipeline, stream, collect, mech, metrics = _pipelined("pipecam", 0.03, lambda _: 0.03, {"live.deadline_ms": 1000})
    _run(pipeline, 3.0)
    got = [f for _, f in collect.frames]
    assert len(got) >= 20
    seqs = [f.seq for f in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), f"frames out of order: {seqs}"
    for f in got:
        assert f.how == "privatized" and f.faces == 1 and not _is_raw(f.image)
    # overlap, from the stages' own start/stop times (robust on a busy machine): while frame k is
    # privatized, a later frame is being detected
    det = {seq: (a, b) for seq, a, b in stream.faces.spans}  # type: ignore[union-attr]
    overlapped = 0
    for seqs_b, p0, p1 in mech.spans:
        k = max(seqs_b)
        if any(s > k and min(b, p1) - max(a, p0) > 0.005 for s, (a, b) in det.items()):
            overlapped += 1
    assert overlapped >= 0.6 * len(mech.spans), f"only {overlapped} of {len(mech.spans)} batches overlapped detection"
    # throughput against the sequential rate of the same measured stage times (generous slack)
    det_s = np.mean([b - a for a, b in det.values()])
    priv_s = np.mean([p1 - p0 for _, p0, p1 in mech.spans])
    t_out = [t for t, _ in collect.frames]
    rate = (len(t_out) - 1) / (t_out[-1] - t_out[0])
    sequential = 1.0 / (det_s + priv_s)
    assert rate > 1.4 * sequential, f"{rate:.1f} fps published, sequential would be {sequential:.1f} fps"
    stages = metrics.snapshot()["latency_capture_to_stage_end"]
    for stage in ("picked", "detected", "privatized", "covered", "handed_to_outputs"):
        assert stages[stage]["samples"] > 0, stage


class SpreadFaces(FixedFaces):
    """A detector whose search is spread over two picked frames: the face (there in every frame)
    lies in the half searched at odd picked frames, so it is first found in the second frame;
    from then on it is tracked (found every frame)."""

    def __init__(self, spread: int) -> None:
        super().__init__(0.005)
        self.search_spread = spread
        self.found = False

    def process(self, frame, stream_id: int = 0, search_index: int | None = None):  # type: ignore[no-untyped-def]
        job = super().process(frame, stream_id, search_index)
        self.found = self.found or bool(search_index is not None and search_index % 2 == 1)
        if not self.found:
            job.faces = job.faces[np.zeros(len(job.faces), bool)]
        return job


@pytest.mark.timeout(60)
@pytest.mark.parametrize("spread", [2, 1])
def test_live_spread_search_holds_each_frame_until_the_next_is_searched(spread: int) -> None:
    """``detect.tile_every: 2`` live: each frame waits for the next picked frame's detection, and
    a face first found there is covered in it too, so the first frame (searched where the face is
    not) never goes out raw; frames leave in order. Control (spread 1, nothing held): that first
    frame goes out with the face raw, as a one-frame search cannot know better."""
    pipeline, stream, collect, _, _ = _pipelined(f"spread{spread}", 0.0, lambda _: 0.0, {"live.deadline_ms": 1000})
    stream.faces = SpreadFaces(spread)  # type: ignore[assignment]
    _run(pipeline, 2.0)
    got = [f for _, f in collect.frames]
    assert len(got) >= 10
    seqs = [f.seq for f in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    raw = [f.seq for f in got if _is_raw(f.image)]
    if spread == 2:
        assert not raw, f"frames {raw} went out raw"
        assert got[0].faces == 1  # the first frame's face came from the next frame's search
        assert pipeline.report()["streams"][0]["faces"]["faces_lookback"] >= 1
    else:
        assert raw == [got[0].seq]  # the control: without the hold the first frame leaks


@pytest.mark.timeout(60)
def test_live_late_privatization_is_fallback_covered_in_order_never_raw() -> None:
    """Every 4th batch takes 0.5 s (deadline 200 ms): that frame, and the one queued behind it,
    go out solid-covered by their deadline, in capture order, never raw; the rest privatized."""
    deadline_ms = 200.0
    pipeline, _, collect, mech, metrics = _pipelined(
        "latecam", 0.01, lambda i: 0.5 if i % 4 == 3 else 0.01,
        {"live.deadline_ms": deadline_ms, "live.fallback": "solid"}, fps=25.0)
    _run(pipeline, 4.0)
    got = collect.frames
    assert len(got) >= 20
    seqs = [f.seq for _, f in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), f"frames out of order: {seqs}"
    hows = {f.how for _, f in got}
    assert hows == {"privatized", "fallback"}, hows
    x0, y0, x1, y1 = _BOX
    for t_out, f in got:
        assert not _is_raw(f.image), f"frame {f.seq} ({f.how}) shows the face"
        if f.how == "fallback":
            assert f.image[y0:y1, x0:x1].mean() < 5.0, "the fallback is the solid cover"
        assert t_out - f.t_capture < deadline_ms / 1000 + 0.1, f"frame {f.seq} went out late"
    # the slow batches' frames were not waited for: each fallback went out before its batch ended
    slow_seqs = {s for seqs_b, p0, p1 in mech.spans if p1 - p0 > 0.4 for s in seqs_b}
    fallback_seqs = {f.seq for _, f in got if f.how == "fallback"}
    for _, f in got:
        if f.seq in slow_seqs:
            assert f.how == "fallback", f"frame {f.seq} was waited for beyond its give-up time"
    c = metrics.snapshot()["counts"]
    assert c["frames_fallback"] >= len(fallback_seqs) >= 1


@pytest.mark.timeout(60)
def test_live_stop_with_frames_in_flight_leaves_no_thread() -> None:
    pipeline, stream, collect, _, _ = _pipelined("stopcam", 0.02, lambda _: 0.3, {"live.deadline_ms": 1000})
    before = set(threading.enumerate())
    pipeline.start()
    time.sleep(1.0)
    t0 = time.monotonic()
    pipeline.stop("test")
    assert time.monotonic() - t0 < 2.0, "stop took too long"
    pipeline.raise_if_failed()
    assert all(not t.is_alive() for t in pipeline.pipe.threads + pipeline._worker_threads)
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline and [t for t in threading.enumerate() if t not in before and t.is_alive()]:
        time.sleep(0.05)
    left = [t.name for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not left, f"threads left running: {left}"
    assert collect.closed and stream.ready.closed
    assert len(collect.frames) >= 1 and all(not _is_raw(f.image) for _, f in collect.frames)


@pytest.mark.timeout(60)
def test_live_overlap_stops_when_latency_nears_the_deadline() -> None:
    """A 30 ms detector and a 120 ms privatizer against a 200 ms deadline: overlapping would make
    every frame slower (on a CPU the stages share the cores), so the stream falls back to detect,
    then privatize (nothing in flight when the next frame is picked); frames stay covered, in order."""
    pipeline, stream, collect, mech, metrics = _pipelined("edgecam", 0.03, lambda _: 0.12, {"live.deadline_ms": 200})
    _run(pipeline, 3.0)
    assert not stream.overlap and stream.latency_ewma > 0.5
    got = [f for _, f in collect.frames]
    assert len(got) >= 5 and all(not _is_raw(f.image) for f in got)
    seqs = [f.seq for f in got]
    assert seqs == sorted(seqs)
    det = stream.faces.spans  # type: ignore[union-attr]
    t_switch = det[0][1] + 2.0  # the switch takes ~8 frames (~1 s here); look at the last second
    late = [(p0, p1) for _, p0, p1 in mech.spans if p0 > t_switch]
    assert len(late) >= 3, "too few batches after the switch"
    overlapping = sum(1 for p0, p1 in late for _, a, b in det if min(b, p1) - max(a, p0) > 0.005)
    assert overlapping <= 1, f"{overlapping} detections overlapped privatization after the switch"
    c = metrics.snapshot()["counts"]
    assert c["frames_pipelined"] < c["frames_privatized"] + c["frames_fallback"]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc")
def test_stage_threads_carry_their_names_to_the_os():
    """A stage thread's name reaches the OS (``top -H``, /proc/PID/task/*/comm: which stage
    burns the CPU, seen from outside; benchmarks/latency.py sums the relay's threads by it)."""
    from streamdp.stages import Pipeline

    seen: list[str] = []

    def stage() -> None:
        seen.append(Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip())

    pipe = Pipeline()
    pipe.spawn("faces-stream0", stage).join(5)
    assert seen == ["faces-stream0"]
    pipe.spawn("sink-stream0-recording", stage).join(5)
    assert seen[1] == "sink-stream0-re"  # the OS keeps 15 bytes
