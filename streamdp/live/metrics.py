"""Live metrics: per-stream counters, capture->publish latency quantiles, fps in/out.

The same numbers go to the end-of-run report (``StreamMetrics.snapshot``) and to a Prometheus
text endpoint (``MetricsServer``, ``--metrics-port``). Labels carry stream *names* and redacted
URLs only: no credentials ever appear here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from .redact import redact_text, redact_url

log = logging.getLogger(__name__)

LATENCY_WINDOW = 4096  # most recent samples kept for the quantiles
RATE_WINDOW_S = 5.0


class LatencyWindow:
    """The most recent latency samples (seconds) and a running maximum."""

    def __init__(self, size: int = LATENCY_WINDOW) -> None:
        self._samples: deque[float] = deque(maxlen=size)
        self.count = 0
        self.sum = 0.0
        self.max = 0.0

    def add(self, seconds: float) -> None:
        self._samples.append(seconds)
        self.count += 1
        self.sum += seconds
        self.max = max(self.max, seconds)

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


def _esc(value: str) -> str:
    return redact_text(str(value)).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def prometheus_text(streams: list[StreamMetrics], extra: dict[str, float] | None = None) -> str:
    """The Prometheus text exposition format (version 0.0.4) for every stream."""
    snaps = [s.snapshot() for s in streams]
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")

    family("streamdp_stream_info", "gauge", "one per stream; labels name the (redacted) input and outputs")
    for s in snaps:
        lines.append(
            f'streamdp_stream_info{{stream="{_esc(s["name"])}",input="{_esc(s["input"])}",'
            f'outputs="{_esc(",".join(s["outputs"]))}"}} 1'
        )
    family("streamdp_input_connected", "gauge", "1 while the input is connected")
    for s in snaps:
        lines.append(f'streamdp_input_connected{{stream="{_esc(s["name"])}"}} {int(s["input_connected"])}')
    for counter, help_text in COUNTERS.items():
        metric = f"streamdp_{counter}_total"
        family(metric, "counter", help_text)
        for s in snaps:
            lines.append(f'{metric}{{stream="{_esc(s["name"])}"}} {s["counts"][counter]}')
    for key, metric, help_text in (
        ("fps_in_now", "streamdp_fps_in", f"input frames per second over the last {RATE_WINDOW_S:g} s"),
        ("fps_out_now", "streamdp_fps_out", f"output frames per second over the last {RATE_WINDOW_S:g} s"),
    ):
        family(metric, "gauge", help_text)
        for s in snaps:
            lines.append(f'{metric}{{stream="{_esc(s["name"])}"}} {s[key]}')
    family("streamdp_latency_seconds", "summary", "capture to publish latency of new frames, per output")
    for stream, s in zip(streams, snaps):
        with stream._lock:
            windows = list(stream.latency.items())
            for sink, w in windows:
                labels = f'stream="{_esc(s["name"])}",sink="{_esc(sink)}"'
                for q in (0.5, 0.95, 0.99):
                    v = w.quantile(q)
                    if v is not None:
                        lines.append(f'streamdp_latency_seconds{{{labels},quantile="{q}"}} {v:.6f}')
                lines.append(f"streamdp_latency_seconds_sum{{{labels}}} {w.sum:.6f}")
                lines.append(f"streamdp_latency_seconds_count{{{labels}}} {w.count}")
    for name, value in (extra or {}).items():
        family(f"streamdp_{name}", "gauge", name.replace("_", " "))
        lines.append(f"streamdp_{name} {value}")
    return "\n".join(lines) + "\n"


class MetricsServer:
    """``GET /metrics`` on ``host:port`` (stdlib ``http.server`` on a daemon thread)."""

    def __init__(self, host: str, port: int, render: Callable[[], str]) -> None:
        self.render = render

        class Handler(BaseHTTPRequestHandler):
            def do_GET(handler) -> None:  # noqa: N805 - the handler instance
                if handler.path.split("?")[0] not in ("/metrics", "/"):
                    handler.send_error(404)
                    return
                try:
                    body = render().encode()
                except Exception:  # noqa: BLE001 - a scrape must never kill the relay
                    log.debug("metrics rendering failed", exc_info=True)
                    handler.send_error(500)
                    return
                handler.send_response(200)
                handler.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                handler.send_header("Content-Length", str(len(body)))
                handler.end_headers()
                handler.wfile.write(body)

            def log_message(handler, *args: Any) -> None:  # noqa: N805 - no access log
                return

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self.host, self.port = self._httpd.server_address[:2]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="streamdp-metrics", daemon=True)

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
