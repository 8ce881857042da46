"""Prometheus metrics endpoint (``prometheus_client``) and the batch metrics.

Serving any registry::

    from prometheus_client import CollectorRegistry
    from streamdp.metrics import serve_metrics

    registry = CollectorRegistry()          # one per server, never the global default
    server = serve_metrics(registry, "127.0.0.1", 9108)   # port 0: any free port (server.port)
    ...
    server.stop()

The server answers ``GET /metrics`` (and ``/``) with the registry in the Prometheus text format
(OpenMetrics when the scraper asks for it) and ``GET /healthz`` with ``200 ok`` without touching the
registry (a cheap liveness probe for a container health check); anything else is a 404. It runs on a
daemon thread and never takes the process down: a collector that raises gives a 500 for that scrape.

Batch metrics (``streamdp batch``)::

    metrics = BatchMetrics(registry)        # registers its collectors on ``registry``
    metrics.file_done(entry)                # each finished file's report entry (ok, error, resumed)
    metrics.add_frames(n)                   # frames processed so far (progress, files in flight too)

``file_done`` reads the keys of a file's report entry (``status``, ``resumed``, ``frames_out``,
``faces.faces_detected``, ``tracks.total``, ``privacy.worst_case`` / ``all_tracks_one_person``), the
same entry the aggregate report is built from. Exposed:

- ``streamdp_batch_files_total{status="ok"|"failed"|"resumed"}``
- ``streamdp_batch_frames_total`` (frames written by finished files),
  ``streamdp_batch_frames_processed_total`` (``add_frames``: includes files still running)
- ``streamdp_batch_faces_detected_total``, ``streamdp_batch_tracks_total``
- ``streamdp_batch_epsilon_worst_track`` (the largest per-track epsilon of any file so far; ``+Inf``
  for a seeded run) and ``streamdp_batch_epsilon_all_files`` (summed over files: the bound if every
  track of every file were one person); absent until a file with a privacy ledger finishes.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

METRICS_PATHS = ("/metrics", "/")
HEALTH_PATH = "/healthz"


class MetricsHTTPServer:
    """``/metrics`` of one registry and ``/healthz`` on ``host:port`` (a daemon thread)."""

    def __init__(self, registry: CollectorRegistry, host: str = "127.0.0.1", port: int = 0) -> None:
        self.registry = registry
        handler = _handler_for(registry)
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self.host, self.port = self._httpd.server_address[:2]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="streamdp-metrics", daemon=True)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}/metrics"

    def start(self) -> MetricsHTTPServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
        self._httpd.server_close()


def serve_metrics(registry: CollectorRegistry, host: str = "127.0.0.1", port: int = 0) -> MetricsHTTPServer:
    """Start serving ``registry`` on ``host:port``; ``stop()`` the returned server when done.
    An address in use raises ``OSError`` here, not later."""
    return MetricsHTTPServer(registry, host, port).start()


def _handler_for(registry: CollectorRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path = self.path.split("?", 1)[0]
            if path == HEALTH_PATH:
                self._reply(200, b"ok\n", "text/plain; charset=utf-8")
            elif path in METRICS_PATHS:
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                try:
                    body = encoder(registry)
                except Exception:  # noqa: BLE001 - a scrape must never kill the process
                    log.debug("metrics collection failed", exc_info=True)
                    self.send_error(500)
                    return
                self._reply(200, body, content_type)
            else:
                self.send_error(404)

        def _reply(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:  # no access log
            return

    return Handler


def epsilon_value(value: Any) -> float | None:
    """A report's epsilon (a number, ``"inf"`` for a seeded run, or None) as a float."""
    if value is None:
        return None
    return math.inf if value == "inf" else float(value)


class BatchMetrics:
    """Counters of a ``streamdp batch`` run, fed from each finished file's report entry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.files = Counter("streamdp_batch_files", "files finished, by outcome (ok, failed, resumed: done before)",
                             ["status"], registry=registry)
        for status in ("ok", "failed", "resumed"):
            self.files.labels(status)  # present at 0 from the first scrape
        self.frames = Counter("streamdp_batch_frames", "frames written by finished files", registry=registry)
        self.frames_processed = Counter("streamdp_batch_frames_processed",
                                        "frames processed so far, files still running included", registry=registry)
        self.faces = Counter("streamdp_batch_faces_detected", "faces detected in finished files", registry=registry)
        self.tracks = Counter("streamdp_batch_tracks", "face tracks in finished files", registry=registry)
        self._privacy = _EpsilonCollector()
        registry.register(self._privacy)

    def add_frames(self, n: int) -> None:
        if n > 0:
            self.frames_processed.inc(n)

    def file_done(self, entry: dict[str, Any]) -> None:
        if entry.get("resumed"):
            self.files.labels("resumed").inc()
        elif entry.get("status") == "error":
            self.files.labels("failed").inc()
            return
        else:
            self.files.labels("ok").inc()
        self.frames.inc(int(entry.get("frames_out") or 0))
        self.faces.inc(int((entry.get("faces") or {}).get("faces_detected") or 0))
        self.tracks.inc(int((entry.get("tracks") or {}).get("total") or 0))
        self._add_privacy(entry.get("privacy") or {})

    def _add_privacy(self, privacy: dict[str, Any]) -> None:
        worst = epsilon_value((privacy.get("worst_case") or {}).get("epsilon"))
        total = epsilon_value((privacy.get("all_tracks_one_person") or {}).get("epsilon"))
        self._privacy.add(worst, total)


class _EpsilonCollector(Collector):
    """The batch's epsilon gauges, exposed only once a file with a privacy ledger is done: a
    mechanism without a formal guarantee (pixelate) must not read as epsilon 0."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # max and sum over files: two finishing files must not race
        self._worst: float | None = None
        self._all: float | None = None

    def add(self, worst: float | None, total: float | None) -> None:
        with self._lock:
            if worst is not None:
                self._worst = worst if self._worst is None else max(self._worst, worst)
            if total is not None:
                self._all = total if self._all is None else self._all + total

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            worst, total = self._worst, self._all
        if worst is not None:
            yield GaugeMetricFamily("streamdp_batch_epsilon_worst_track",
                                    "largest epsilon spent on one track of one file (+Inf: seeded, no privacy)",
                                    value=worst)
        if total is not None:
            yield GaugeMetricFamily("streamdp_batch_epsilon_all_files",
                                    "epsilon summed over every file's tracks (all tracks of all files one person)",
                                    value=total)
