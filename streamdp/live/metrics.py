"""Live metrics: per-stream counters, capture->publish latency, fps in/out, on Prometheus.

The same numbers go to the end-of-run report (``StreamMetrics.snapshot``) and to a Prometheus
endpoint (``MetricsServer``, ``--metrics-port``) built on ``prometheus_client``: a
``LiveCollector`` reads the streams' ``StreamMetrics`` (and each stream's face stage and the
mechanism's privacy ledger) at scrape time, on a ``CollectorRegistry`` of its own per server (never
the global default registry). The pipeline threads only ever touch ``StreamMetrics``: a scrape
costs them one short lock per stream. Labels carry stream *names* and redacted URLs only: no
credentials ever appear here.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from ..metrics import MetricsHTTPServer, epsilon_value
from .redact import redact_text, redact_url

log = logging.getLogger(__name__)

LATENCY_WINDOW = 4096  # most recent samples kept for the quantiles
RATE_WINDOW_S = 5.0
# Histogram bucket bounds (seconds) of the capture->publish and capture->stage latencies: live
# deadlines are 100-500 ms, so the buckets are dense there.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class HistogramCounts:
    """A latency histogram as Prometheus wants it: cumulative counts per upper bound (+Inf last)."""

    buckets: list[tuple[str, int]]
    sum: float


class LatencyWindow:
    """The most recent latency samples (seconds) for the report's quantiles, a running maximum,
    and counts per ``LATENCY_BUCKETS`` bucket over the whole run (the Prometheus histogram)."""

    def __init__(self, size: int = LATENCY_WINDOW) -> None:
        self._samples: deque[float] = deque(maxlen=size)
        self.count = 0
        self.sum = 0.0
        self.max = 0.0
        self._in_bucket = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one: above every bound

    def add(self, seconds: float) -> None:
        self._samples.append(seconds)
        self.count += 1
        self.sum += seconds
        self.max = max(self.max, seconds)
        self._in_bucket[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1  # le: bound >= value

    def histogram(self) -> HistogramCounts:
        cumulative, buckets = 0, []
        for bound, n in zip((*(f"{b:g}" for b in LATENCY_BUCKETS), "+Inf"), self._in_bucket):
            cumulative += n
            buckets.append((bound, cumulative))
        return HistogramCounts(buckets, self.sum)

    def summary(self) -> dict[str, Any]:
        p50, p95 = self.quantile(0.5), self.quantile(0.95)
        return {
            "samples": self.count,
            "p50_ms": round(p50 * 1000, 1) if p50 is not None else None,
            "p95_ms": round(p95 * 1000, 1) if p95 is not None else None,
            "max_ms": round(self.max * 1000, 1) if self.count else None,
            "mean_ms": round(self.sum / self.count * 1000, 1) if self.count else None,
        }

    def quantile(self, q: float) -> float | None:
        if not self._samples:
            return None
        return float(np.quantile(np.fromiter(self._samples, dtype=np.float64), q))


class RateMeter:
    """Events per second over the last ``window`` seconds (0 when events stop)."""

    def __init__(self, window: float = RATE_WINDOW_S) -> None:
        self.window = window
        self._times: deque[float] = deque()
        self._first: float | None = None

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if self._first is None:
            self._first = now
        self._times.append(now)
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] < now - self.window:
            self._times.popleft()

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        self._trim(now)
        if self._first is None:
            return 0.0
        span = min(self.window, now - self._first)
        return len(self._times) / span if span > 0 else 0.0


class _Span:
    """Count, first and last time of a series of events: their average rate."""

    def __init__(self) -> None:
        self.n = 0
        self.first = 0.0
        self.last = 0.0

    def append(self, t: float) -> None:
        if self.n == 0:
            self.first = t
        self.last = t
        self.n += 1

    def rate(self) -> float | None:
        if self.n < 2 or self.last <= self.first:
            return None
        return round((self.n - 1) / (self.last - self.first), 2)


# counter name -> help text (all are *_total counters in Prometheus)
COUNTERS: dict[str, str] = {
    "frames_in": "frames decoded from the input",
    "frames_dropped_stale": "input frames replaced by a newer one before processing (latest-frame policy)",
    "frames_dropped_late": "frames not published because they would have left after the deadline",
    "frames_dropped_unsearched": "frames held for a spread search whose next frame never came (the input ended): not published",
    "frames_privatized": "frames published with the configured mechanism applied",
    "frames_fallback": "frames published with the cheap fallback cover (privatizer missed the deadline)",
    "frames_published": "new anonymized frames handed to the outputs",
    "frames_repeated": "times the last anonymized frame was repeated to keep the output rate",
    "frames_pipelined": "frames picked while the previous one was still being privatized (overlap)",
    "frames_output_dropped": "frames an output could not take (disconnected or too slow)",
    "input_connects": "successful input (re)connections",
    "input_errors": "input failures (open errors, disconnects, stalls)",
    "output_connects": "successful output (re)connections",
    "output_errors": "output failures (publish errors, disconnects)",
}


@dataclass
class StreamMetrics:
    """Everything measured about one stream. Thread-safe (one lock)."""

    name: str
    input_label: str  # redacted
    outputs: list[str] = field(default_factory=list)  # redacted
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    latency: dict[str, LatencyWindow] = field(default_factory=dict)  # sink name -> capture->write
    stages: dict[str, LatencyWindow] = field(default_factory=dict)  # stage -> capture->stage end
    input_connected: bool = False
    started: float = field(default_factory=time.monotonic)
    _rate_in: RateMeter = field(default_factory=RateMeter)
    _rate_out: RateMeter = field(default_factory=RateMeter)
    # (first, last) event times: the average rates are taken over the stream's own span
    _span_in: _Span = field(default_factory=lambda: _Span())
    _span_out: _Span = field(default_factory=lambda: _Span())
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.input_label = redact_url(self.input_label)
        self.outputs = [redact_url(o) for o in self.outputs]

    def add(self, counter: str, n: int = 1) -> None:
        with self._lock:
            self.counts[counter] += n
            if counter == "frames_in":
                self._rate_in.tick()
                self._span_in.append(time.monotonic())
            elif counter in ("frames_published", "frames_repeated"):
                self._rate_out.tick()
                self._span_out.append(time.monotonic())

    def add_latency(self, sink: str, seconds: float) -> None:
        with self._lock:
            self.latency.setdefault(sink, LatencyWindow()).add(seconds)

    def add_stage(self, stage: str, seconds: float) -> None:
        """Time from capture to the end of a pipeline stage (where the latency goes)."""
        with self._lock:
            self.stages.setdefault(stage, LatencyWindow()).add(seconds)

    def set_connected(self, connected: bool) -> None:
        with self._lock:
            self.input_connected = connected

    def histograms(self) -> dict[str, dict[str, HistogramCounts]]:
        """``{"publish": {sink: ...}, "stage": {stage: ...}}``: the latency histograms, copied under the lock."""
        with self._lock:
            return {
                "publish": {sink: w.histogram() for sink, w in self.latency.items()},
                "stage": {stage: w.histogram() for stage, w in self.stages.items()},
            }

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            wall = time.monotonic() - self.started
            lat = {sink: w.summary() for sink, w in self.latency.items()}
            stages = {stage: w.summary() for stage, w in self.stages.items()}
            return {
                "name": self.name,
                "input": self.input_label,
                "outputs": list(self.outputs),
                "input_connected": self.input_connected,
                "wall_s": round(wall, 3),
                "fps_in": self._span_in.rate(),
                "fps_out": self._span_out.rate(),
                "fps_in_now": round(self._rate_in.rate(), 2),
                "fps_out_now": round(self._rate_out.rate(), 2),
                "counts": dict(self.counts),
                "latency_capture_to_publish": lat,
                "latency_capture_to_stage_end": stages,
            }


# FaceCounts field -> help text (per-stream *_total counters, from the stream's face stage)
FACE_COUNTERS: dict[str, str] = {
    "frames_with_faces": "frames with at least one face covered",
    "faces_detected": "detector hits (after NMS)",
    "faces_covered": "face boxes covered, tracks carried through detector misses included",
    "faces_predicted": "covered boxes with no detection in that frame (the tracker's prediction)",
    "faces_lookback": "boxes added before a face's first detection (files: the look-back window; live: the held frame)",
    "frames_fail_closed": "frames covered by the fallback after a privatizer error",
}


class LiveCollector(Collector):
    """The live metrics, read at scrape time.

    ``streams()`` gives the streams to report: ``StreamMetrics``, or objects with a ``metrics``
    attribute (a ``StreamMetrics``) and optionally ``faces`` (the stream's ``FaceStage``: faces and
    tracks), as ``LiveStream`` has. ``privacy()`` gives the mechanism's ``privacy_report()`` (None
    for a mechanism without a formal guarantee: no epsilon is exposed then)."""

    def __init__(self, streams: Callable[[], Iterable[Any]],
                 privacy: Callable[[], dict[str, Any] | None] | None = None) -> None:
        self._streams = streams
        self._privacy = privacy

    def collect(self) -> Iterator[Metric]:
        items = list(self._streams())
        metrics = [s if isinstance(s, StreamMetrics) else s.metrics for s in items]
        faces = [None if isinstance(s, StreamMetrics) else getattr(s, "faces", None) for s in items]
        snaps = [m.snapshot() for m in metrics]
        yield from _stream_families(snaps)
        yield from _latency_families(snaps, [m.histograms() for m in metrics])
        yield from _face_families([(snap["name"], f) for snap, f in zip(snaps, faces)])
        yield from _privacy_families(self._privacy)


def _stream_families(snaps: list[dict[str, Any]]) -> Iterator[Metric]:
    info = GaugeMetricFamily("streamdp_stream_info", "one per stream; labels name the (redacted) input and outputs",
                             labels=["stream", "input", "outputs"])
    connected = GaugeMetricFamily("streamdp_input_connected", "1 while the input is connected", labels=["stream"])
    for s in snaps:
        info.add_metric([s["name"], redact_text(s["input"]), redact_text(",".join(s["outputs"]))], 1)
        connected.add_metric([s["name"]], int(s["input_connected"]))
    yield info
    yield connected
    for counter, help_text in COUNTERS.items():
        family = CounterMetricFamily(f"streamdp_{counter}", help_text, labels=["stream"])
        for s in snaps:
            family.add_metric([s["name"]], s["counts"][counter])
        yield family
    out = CounterMetricFamily("streamdp_frames_out", "frames sent to the outputs: new (published) plus repeated",
                              labels=["stream"])
    reconnects = CounterMetricFamily("streamdp_input_reconnects", "input connections after the first",
                                     labels=["stream"])
    for s in snaps:
        out.add_metric([s["name"]], s["counts"]["frames_published"] + s["counts"]["frames_repeated"])
        reconnects.add_metric([s["name"]], max(0, s["counts"]["input_connects"] - 1))
    yield out
    yield reconnects
    for key, name, help_text in (
        ("fps_in_now", "streamdp_fps_in", f"input frames per second over the last {RATE_WINDOW_S:g} s"),
        ("fps_out_now", "streamdp_fps_out", f"output frames per second over the last {RATE_WINDOW_S:g} s"),
    ):
        family = GaugeMetricFamily(name, help_text, labels=["stream"])
        for s in snaps:
            family.add_metric([s["name"]], s[key])
        yield family


def _latency_families(snaps: list[dict[str, Any]], hists: list[dict[str, dict[str, HistogramCounts]]]) -> Iterator[Metric]:
    publish = HistogramMetricFamily("streamdp_latency_seconds", "capture to publish latency of new frames, per output",
                                    labels=["stream", "sink"])
    stage = HistogramMetricFamily("streamdp_stage_latency_seconds", "capture to the end of a pipeline stage",
                                  labels=["stream", "stage"])
    for s, h in zip(snaps, hists):
        for sink, counts in h["publish"].items():
            publish.add_metric([s["name"], sink], counts.buckets, counts.sum)
        for name, counts in h["stage"].items():
            stage.add_metric([s["name"], name], counts.buckets, counts.sum)
    yield publish
    yield stage


def _face_families(streams: list[tuple[str, Any]]) -> Iterator[Metric]:
    with_faces = [(name, faces) for name, faces in streams if faces is not None]
    counts = {name: asdict(faces.counts) for name, faces in with_faces}
    for counter, help_text in FACE_COUNTERS.items():
        family = CounterMetricFamily(f"streamdp_{counter}", help_text, labels=["stream"])
        for name, c in counts.items():
            family.add_metric([name], c.get(counter, 0))
        yield family
    total = CounterMetricFamily("streamdp_tracks", "face tracks started", labels=["stream"])
    active = GaugeMetricFamily("streamdp_tracks_active", "face tracks followed now", labels=["stream"])
    for name, faces in with_faces:
        tracker = faces.tracker  # read once: a new scene replaces it
        total.add_metric([name], tracker.total_tracks)
        active.add_metric([name], tracker.active_track_count)
    yield total
    yield active


def _privacy_families(privacy: Callable[[], dict[str, Any] | None] | None) -> Iterator[Metric]:
    if privacy is None:
        return
    try:
        report = privacy()
    except Exception:  # noqa: BLE001 - the ledger is written by the privatizer meanwhile: skip this scrape
        log.debug("privacy report unavailable for this scrape", exc_info=True)
        return
    if not report:
        return
    worst = epsilon_value((report.get("worst_case") or {}).get("epsilon"))
    if worst is not None:
        yield GaugeMetricFamily("streamdp_epsilon_spent_worst_track",
                                "epsilon spent on the track with the most releases (+Inf: seeded, no privacy)",
                                value=worst)
    yield CounterMetricFamily("streamdp_privacy_releases", "privatized releases over every track",
                              value=int(report.get("releases") or 0))
    yield GaugeMetricFamily("streamdp_privacy_tracks", "tracks with at least one release", value=int(report.get("tracks") or 0))


def live_registry(streams: Callable[[], Iterable[Any]],
                  privacy: Callable[[], dict[str, Any] | None] | None = None) -> CollectorRegistry:
    """A registry of its own holding one ``LiveCollector`` (see there for the arguments)."""
    registry = CollectorRegistry()
    registry.register(LiveCollector(streams, privacy))
    return registry


class MetricsServer(MetricsHTTPServer):
    """``GET /metrics`` (and ``/healthz``) on ``host:port`` for one registry, on a daemon thread
    (``streamdp.metrics.MetricsHTTPServer`` with the live argument order)."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry) -> None:
        super().__init__(registry, host, port)

    def start(self) -> MetricsServer:
        super().start()
        return self
