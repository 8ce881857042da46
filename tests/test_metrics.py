"""Prometheus metrics (live, relay, batch) scraped over 127.0.0.1, and JSON logs.

Scrapes go through a real HTTP server (``urllib``) and are parsed with ``prometheus_client``'s own
parser, so a malformed exposition fails here. Credentials given in stream URLs must never appear in
a scrape or a log line.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import rtsp_server as rs
from conftest import MEDIA, need_shared
from streamdp.live.metrics import LATENCY_BUCKETS, MetricsServer, StreamMetrics, live_registry
from streamdp.logs import JsonFormatter, setup_logging
from streamdp.metrics import BatchMetrics, serve_metrics
from streamdp.privacy.accounting import PrivacyLedger
from streamdp.privacy.mechanisms import build_latent_mechanism

SECRET = "s3cr3t-pw"
EPSILON = 2.0


# ------------------------------------------------------------------------------------ helpers


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``: (name, sorted labels) -> value."""
    status, text = _get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def _value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def _ledger(releases: dict[str, int]) -> PrivacyLedger:
    """A real privacy ledger (Laplace on a small latent geometry, OS noise) with ``releases`` per track."""
    D, B = 16, 2.5
    metadata = {
        "streamdp.format": "dpimage-v1", "streamdp.crop_size": "32", "streamdp.latent_dim": str(D),
        "streamdp.clip_norm": "linf", "streamdp.clip_bound": str(B), "streamdp.delta_l1": repr(2 * B * D),
        "streamdp.delta_l2": repr(2 * B * math.sqrt(D)), "streamdp.identity_dims": "0:8",
        "streamdp.mask_feather": "0.15", "streamdp.training_data": "none (test)", "streamdp.version": "test",
        "streamdp.sha256": "0" * 64, "streamdp.latent_prior": "normal",
    }
    ledger = PrivacyLedger(build_latent_mechanism("laplace", epsilon=EPSILON, metadata=metadata))
    for track, n in releases.items():
        ledger.record(track, releases=n)
    return ledger


@pytest.fixture
def server_factory() -> Iterator:
    servers: list = []

    def make(registry: CollectorRegistry) -> MetricsServer:
        servers.append(MetricsServer("127.0.0.1", 0, registry).start())
        return servers[-1]

    yield make
    for s in servers:
        s.stop()


# ----------------------------------------------------------------------------- live endpoint


def test_live_endpoint_counters_histograms_epsilon_and_no_credentials(server_factory) -> None:  # type: ignore[no-untyped-def]
    m = StreamMetrics("cam1", f"rtsp://admin:{SECRET}@cam/1?token={SECRET}", [f"rtsp://pub:{SECRET}@srv/anon"])
    m.add("frames_in", 5)
    m.add("frames_published", 3)
    m.add("frames_repeated", 1)
    m.add("frames_fallback", 2)
    m.add("input_connects", 3)
    m.set_connected(True)
    for seconds in (0.004, 0.04, 0.06, 30.0):  # 30 s: above every bucket, counted in +Inf only
        m.add_latency("rtsp", seconds)
    m.add_stage("detected", 0.02)
    ledger = _ledger({"0:1": 3, "0:2": 1})
    server = server_factory(live_registry(lambda: [m], ledger.report))

    status, text = _get(f"http://127.0.0.1:{server.port}/metrics")
    assert status == 200 and SECRET not in text and "admin" not in text
    s = _scrape(server.port)
    assert _value(s, "streamdp_frames_in_total", stream="cam1") == 5
    assert _value(s, "streamdp_frames_out_total", stream="cam1") == 4  # published + repeated
    assert _value(s, "streamdp_frames_fallback_total", stream="cam1") == 2
    assert _value(s, "streamdp_input_reconnects_total", stream="cam1") == 2
    assert _value(s, "streamdp_input_connected", stream="cam1") == 1
    assert _value(s, "streamdp_stream_info", stream="cam1", input="rtsp://***@cam/1?token=***",
                  outputs="rtsp://***@srv/anon") == 1
    # the histogram: cumulative per bound, +Inf = count, sum of the samples
    lat = {"stream": "cam1", "sink": "rtsp"}
    assert _value(s, "streamdp_latency_seconds_bucket", le="0.005", **lat) == 1
    assert _value(s, "streamdp_latency_seconds_bucket", le="0.05", **lat) == 2
    assert _value(s, "streamdp_latency_seconds_bucket", le="0.075", **lat) == 3
    assert _value(s, "streamdp_latency_seconds_bucket", le=f"{LATENCY_BUCKETS[-1]:g}", **lat) == 3
    assert _value(s, "streamdp_latency_seconds_bucket", le="+Inf", **lat) == 4
    assert _value(s, "streamdp_latency_seconds_count", **lat) == 4
    assert _value(s, "streamdp_latency_seconds_sum", **lat) == pytest.approx(30.104)
    assert _value(s, "streamdp_stage_latency_seconds_count", stream="cam1", stage="detected") == 1
    # the privacy ledger: the worst track's epsilon (3 releases, basic composition)
    assert _value(s, "streamdp_epsilon_spent_worst_track") == pytest.approx(3 * EPSILON)
    assert _value(s, "streamdp_privacy_releases_total") == 4
    # counters are read at scrape time: a second scrape sees new events
    m.add("frames_in", 2)
    ledger.record("0:2", releases=5)
    s = _scrape(server.port)
    assert _value(s, "streamdp_frames_in_total", stream="cam1") == 7
    assert _value(s, "streamdp_epsilon_spent_worst_track") == pytest.approx(6 * EPSILON)


def test_healthz_404_and_servers_with_their_own_registries(server_factory) -> None:  # type: ignore[no-untyped-def]
    a, b = StreamMetrics("a", "in-a"), StreamMetrics("b", "in-b")
    a.add("frames_in", 1)
    b.add("frames_in", 9)
    sa, sb = server_factory(live_registry(lambda: [a])), server_factory(live_registry(lambda: [b]))
    assert _get(f"http://127.0.0.1:{sa.port}/healthz") == (200, "ok\n")
    assert _get(f"http://127.0.0.1:{sa.port}/nothing")[0] == 404
    one, two = _scrape(sa.port), _scrape(sb.port)
    assert _value(one, "streamdp_frames_in_total", stream="a") == 1 and _value(one, "streamdp_frames_in_total", stream="b") is None
    assert _value(two, "streamdp_frames_in_total", stream="b") == 9
    # no privacy callable (a mechanism without a guarantee): no epsilon at all, never a 0
    assert _value(one, "streamdp_epsilon_spent_worst_track") is None


def test_a_failing_collector_gives_a_500_and_the_server_keeps_serving(server_factory) -> None:  # type: ignore[no-untyped-def]
    calls = []

    def streams() -> list[StreamMetrics]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("stream list changed")
        return [StreamMetrics("cam", "in")]

    registry = CollectorRegistry()
    server = server_factory(registry)
    from streamdp.live.metrics import LiveCollector

    registry.register(LiveCollector(streams))
    assert _get(f"http://127.0.0.1:{server.port}/metrics")[0] == 500
    assert _value(_scrape(server.port), "streamdp_frames_in_total", stream="cam") == 0


def test_address_in_use_is_an_oserror_at_start(server_factory) -> None:  # type: ignore[no-untyped-def]
    first = server_factory(CollectorRegistry())
    with pytest.raises(OSError):
        MetricsServer("127.0.0.1", first.port, CollectorRegistry())


# ---------------------------------------------------------------------------- relay end to end


@pytest.mark.timeout(120)
def test_relay_scrape_end_to_end_and_json_logs(tmp_path: Path) -> None:
    """A relay on a looped face video, recorded: the scrape shows frames, faces, tracks and the
    recording's latency histogram; its log lines on stderr are JSON objects."""
    video = need_shared(MEDIA / "single_face.mp4")
    port = rs.free_port()
    relay = rs.Relay([str(video), "--loop", "--name", "door", "-o", str(tmp_path / "rec.mp4"), "-m", "pixelate",
                      "--metrics-port", str(port), "--log-format", "json"], tmp_path).start()
    samples: dict = {}
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and relay.alive():
            try:
                samples = _scrape(port)
            except OSError:
                samples = {}
            if (_value(samples, "streamdp_frames_published_total", stream="door") or 0) >= 30:
                break
            time.sleep(0.2)
        health = _get(f"http://127.0.0.1:{port}/healthz")
        rc, _ = relay.stop(signal.SIGINT)
    finally:
        relay.stop(signal.SIGKILL)
    assert (_value(samples, "streamdp_frames_published_total", stream="door") or 0) >= 30, relay.stderr[-2000:]
    assert health == (200, "ok\n")
    assert rc == 0, relay.stderr[-2000:]
    assert _value(samples, "streamdp_frames_in_total", stream="door") >= 30
    assert _value(samples, "streamdp_faces_detected_total", stream="door") > 0
    assert _value(samples, "streamdp_tracks_total", stream="door") >= 1
    assert _value(samples, "streamdp_latency_seconds_count", stream="door", sink="record") > 0
    assert _value(samples, "streamdp_fps_in", stream="door") > 0
    assert _value(samples, "streamdp_epsilon_spent_worst_track") is None  # pixelate: no guarantee

    lines = [json.loads(line) for line in relay.stderr.splitlines() if line.startswith("{")]
    assert not [line for line in relay.stderr.splitlines() if line.startswith("streamdp: INFO")]
    started = [e for e in lines if e["message"] == f"metrics: http://127.0.0.1:{port}/metrics"]
    assert started and started[0]["level"] == "INFO" and started[0]["logger"] == "streamdp.live"
    assert all(e["time"].endswith("Z") for e in lines)


# ----------------------------------------------------------------------------------- batch


def test_batch_metrics_from_real_file_entries(tmp_path: Path) -> None:
    """A batch worker's entries (one image anonymized, one broken file) fed as ``streamdp batch``
    would: ``file_done`` per entry, ``add_frames`` from the worker's progress callback."""
    from streamdp.config import load_config
    from streamdp.scale.archive import BatchJob
    from streamdp.scale.worker import FileWorker, slim_entry

    image = need_shared(MEDIA / "multi_face.jpg")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    registry = CollectorRegistry()
    metrics = BatchMetrics(registry)
    worker = FileWorker(load_config(None, {"mechanism.name": "pixelate"}).model_dump(mode="json"),
                        on_frames=metrics.add_frames)
    ok = worker.process(BatchJob(str(image), str(tmp_path / "out.jpg"), "image", str(tmp_path / "out.json")))
    failed = worker.process(BatchJob(str(broken), str(tmp_path / "x.mp4"), "video", str(tmp_path / "x.json")))
    assert ok["status"] == "ok" and ok["faces"]["faces_detected"] > 0 and failed["status"] == "error"
    # a dp-image file's entry: the privacy totals of a real ledger (2 and 1 releases)
    dp = {**ok, "privacy": slim_entry({**ok, "privacy": _ledger({"0:1": 2, "0:2": 1}).report()})["privacy"]}

    server = serve_metrics(registry, "127.0.0.1", 0)
    try:
        metrics.file_done(ok)
        metrics.file_done(failed)
        s = _scrape(server.port)
        assert _value(s, "streamdp_batch_files_total", status="ok") == 1
        assert _value(s, "streamdp_batch_files_total", status="failed") == 1
        assert _value(s, "streamdp_batch_files_total", status="resumed") == 0
        assert _value(s, "streamdp_batch_frames_total") == 1
        assert _value(s, "streamdp_batch_frames_processed_total") == 1  # the image; the broken file none
        assert _value(s, "streamdp_batch_faces_detected_total") == ok["faces"]["faces_detected"]
        assert _value(s, "streamdp_batch_tracks_total") == ok["tracks"]["total"]
        assert _value(s, "streamdp_batch_epsilon_worst_track") is None  # pixelate only so far: no epsilon
        metrics.file_done(dp)
        metrics.file_done({**dp, "resumed": True})
        s = _scrape(server.port)
        assert _value(s, "streamdp_batch_files_total", status="resumed") == 1
        assert _value(s, "streamdp_batch_epsilon_worst_track") == pytest.approx(2 * EPSILON)
        assert _value(s, "streamdp_batch_epsilon_all_files") == pytest.approx(2 * 3 * EPSILON)
        metrics.file_done({**dp, "privacy": {"worst_case": {"epsilon": "inf"}}})  # a seeded run
        assert _value(_scrape(server.port), "streamdp_batch_epsilon_worst_track") == math.inf
    finally:
        server.stop()


# ------------------------------------------------------------------------------------ logs


@contextlib.contextmanager
def bare_root() -> Iterator[logging.Logger]:
    """The root logger as a fresh process has it (no handlers): pytest's own (added for each test
    phase, so this runs inside the test body) are put back after."""
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    for h in saved:
        root.removeHandler(h)
    # Earlier tests (or libraries they load) may leave logging disabled above some level, a level
    # on an ancestor logger, or a logger disabled (logging.config.dictConfig): start neutral.
    disabled = logging.root.manager.disable
    logging.disable(logging.NOTSET)
    names = ("streamdp", "streamdp.test")
    states = {n: (logging.getLogger(n).level, logging.getLogger(n).disabled) for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.NOTSET)
        logging.getLogger(n).disabled = False
    try:
        yield root
    finally:
        for h in root.handlers[:]:
            root.removeHandler(h)
        for h in saved:
            root.addHandler(h)
        root.setLevel(level)
        logging.disable(disabled)
        for n, (lvl, was_disabled) in states.items():
            logging.getLogger(n).setLevel(lvl)
            logging.getLogger(n).disabled = was_disabled


def test_json_logs_one_object_per_line_redacted() -> None:
    buf = io.StringIO()
    log = logging.getLogger("streamdp.test")
    _json_log_lines(log, buf)
    text = buf.getvalue()
    assert SECRET not in text
    first, second = (json.loads(line) for line in text.splitlines())
    assert set(first) == {"time", "level", "logger", "message", "stream", "url"}
    assert first["level"] == "WARNING" and first["logger"] == "streamdp.test" and first["stream"] == "door"
    assert first["message"] == "input rtsp://***@cam/1 lost" and first["url"] == "rtsp://***@h/x"
    assert "OSError: cannot open rtsp://***@cam/1" in second["message"]


def _json_log_lines(log: logging.Logger, buf: io.StringIO) -> None:
    with bare_root() as root:
        setup_logging(False, "json", stream=buf)
        setup_logging(False, "json", stream=buf)  # main() and then the live command: still one handler
        assert len(root.handlers) == 1
        log.info("not shown at WARNING")
        log.warning("input rtsp://admin:%s@cam/1 lost", SECRET,
                    extra={"stream": "door", "url": f"rtsp://u:{SECRET}@h/x"})
        try:
            raise OSError(f"cannot open rtsp://admin:{SECRET}@cam/1")
        except OSError:
            log.error("open failed", exc_info=True)


def test_json_formatter_alone_redacts_the_traceback() -> None:
    record = logging.LogRecord("streamdp.x", logging.ERROR, __file__, 1, "boom %s", (f"rtsp://a:{SECRET}@h",), None)
    try:
        raise ValueError(f"rtsp://a:{SECRET}@h/x")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "boom rtsp://***@h" and "ValueError" in entry["exc"] and SECRET not in json.dumps(entry)


def test_text_logs_and_verbose() -> None:
    buf = io.StringIO()
    with bare_root():
        setup_logging(True, "text", stream=buf)
        logging.getLogger("streamdp.test").debug("at %s", f"rtsp://u:{SECRET}@h/x")
    assert buf.getvalue() == "streamdp: DEBUG: at rtsp://***@h/x\n"


def test_foreign_handlers_are_left_alone() -> None:
    """An embedding application (here: pytest) configured logging: setup_logging changes nothing."""
    root = logging.getLogger()
    before, level = root.handlers[:], root.level
    if not before:
        pytest.skip("the root logger has no handler here")
    assert setup_logging(True, "json") is None
    assert root.handlers == before and root.level == level


def test_log_format_flag_on_run_live_relay() -> None:
    from streamdp.cli import _parser

    parser = _parser()
    for argv in (["run", "in.mp4", "-o", "out.mp4"], ["live"], ["relay", "in.mp4"]):
        assert parser.parse_args([*argv, "--log-format", "json"]).log_format == "json"
        assert parser.parse_args(argv).log_format == "text"
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "in.mp4", "-o", "out.mp4", "--log-format", "xml"])
