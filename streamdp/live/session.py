"""A live run: streams with their outputs, the live pipeline, the RTSP server, the metrics
endpoint and signal handling, set up and torn down in order (``streamdp live`` and ``relay``)."""

from __future__ import annotations

import logging
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("streamdp.live")


def single_threaded_opencv() -> None:
    """OpenCV's own thread pool off for a live process: its stages already run in threads of
    their own, and on a small machine OpenCV's per-call fan-out of small images (a face's warp
    and blend) costs more CPU than it saves (dp-image's privatizer: 11.0 -> 4.6 CPU ms a 720p
    frame of three faces); the live relay of that clip published 304 and 300 frames of ~450
    instead of 284 and 233 (benchmarks/latency.py, dp-image, alternated)."""
    import cv2

    cv2.setNumThreads(1)


def _check_record_path(path: Path) -> None:
    import os

    from ..errors import OutputError

    if path.is_dir():
        raise OutputError(f"recording path is a folder: {path}")
    parent = path.resolve().parent
    if not parent.is_dir():
        raise OutputError(f"cannot write the recording {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write the recording {path}: folder {parent} is not writable")


@dataclass(frozen=True)
class SessionOptions:
    """What a live session is asked to do besides its streams (the CLI's flags, or a caller's)."""

    serve_port: int | None = None  # serve the anonymized streams on this RTSP port (a child process)
    serve_host: str = "127.0.0.1"
    serve_auth: str | None = None  # "user:password" that readers of the served streams must give
    serve_auth_scheme: str = "digest"  # how they give it: digest | basic | any (rtsp_auth.py)
    show: bool = False  # a preview window
    quiet: bool = False
    duration_s: float | None = None  # stop after this long
    report: Path | None = None  # write the JSON report here


class LiveSession:
    """What one live run owns: the streams, the pipeline, servers, signals; torn down in order.
    ``streamdp live`` / ``relay`` build one from their flags; a supervisor (e.g. a fleet actor)
    can build one directly."""

    def __init__(self, config: Any, options: SessionOptions, argv: list[str] | None = None) -> None:
        from datetime import datetime, timezone

        self.options = options
        self.argv = list(argv or [])
        self.config = config
        self.started = datetime.now(timezone.utc)
        self.streams: list[Any] = []
        self.server = None
        self.metrics_server = None
        self.preview = None
        self.pipeline = None
        self.mechanism = None

    # ---------------------------------------------------------------------------- outputs

    def serve_url(self, path: str) -> str | None:
        if self.options.serve_port is None:
            return None
        if self.server is None:
            from .serve import ServerProcess

            self.server = ServerProcess(self.options.serve_host, self.options.serve_port, auth=self.options.serve_auth,
                                        auth_scheme=self.options.serve_auth_scheme).start()
            if not self.options.quiet:
                host = "127.0.0.1" if self.options.serve_host in ("0.0.0.0", "::", "") else self.options.serve_host
                print(f"streamdp: serving rtsp://{host}:{self.server.port}/{path}  "
                      f"(watch: ffplay -rtsp_transport tcp rtsp://{host}:{self.server.port}/{path})", file=sys.stderr)
        return self.server.publish_url(path)

    def add_stream(self, name: str, source: Any, metrics: Any, output: str | None, record: Path | None,
                   serve_path: str | None) -> None:
        """One input with its outputs: an RTSP URL to publish to, a path on the served RTSP
        server, a recording file, the preview (at least one)."""
        from .stream import LiveStream
        from .publisher import RtspPublisher
        from .sinks import RecordingSink

        cfg = self.config.live
        sinks: list[Any] = []
        if output:
            sinks.append(RtspPublisher(output, cfg.fps or 0.0, cfg, metrics))
        if serve_path is not None:
            url = self.serve_url(serve_path)
            if url:
                sinks.append(RtspPublisher(url, cfg.fps or 0.0, cfg, metrics))
                metrics.outputs.append(f"serve:{serve_path}")
        if record is not None:
            _check_record_path(record)
            sinks.append(RecordingSink(record, cfg.fps or 0.0, self.config.output, cfg.record_preset))
            metrics.outputs.append(str(record))
        if self.options.show and self.preview is None:
            from .preview import PreviewSink, check_display

            check_display()
            self.preview = PreviewSink(f"streamdp: {name}", None)  # type: ignore[arg-type]
            sinks.append(self.preview)
        if not sinks:
            from ..errors import ConfigError

            raise ConfigError(f"stream {name}: no output (give an RTSP URL, --serve PORT, -o FILE or --show)")
        self.streams.append(LiveStream(len(self.streams), name, source, sinks, metrics, fps=cfg.fps))

    def add_config_streams(self, specs: list[Any], loop: bool = False, serve: bool = False,
                           record: Path | None = None) -> None:
        """Add ``live.streams`` entries (input, output, record; served under their name when
        ``serve``). ``record``: the command line's recording path, for a single stream only."""
        from .metrics import StreamMetrics
        from .sources import open_input

        for i, spec in enumerate(specs):
            name = spec.name or f"stream{i}"
            metrics = StreamMetrics(name, spec.input, [spec.output] if spec.output else [])
            source = open_input(spec.input, self.config.live, metrics, loop=loop)
            self.add_stream(name, source, metrics, spec.output, spec.record or (record if len(specs) == 1 else None),
                            name if serve else None)

    # ------------------------------------------------------------------------------- run

    def run(self) -> int:
        from ..builder import build_mechanism
        from .metrics import MetricsServer, live_registry
        from .pipeline import LivePipeline

        single_threaded_opencv()
        self.mechanism = build_mechanism(self.config)
        self.pipeline = pipeline = LivePipeline(self.config, self.mechanism, self.streams)
        if self.preview is not None:
            self.preview.stop = pipeline.stop_event
        cfg = self.config.live
        if cfg.metrics_port is not None:
            try:
                registry = live_registry(lambda: self.streams, self.mechanism.privacy_report)
                self.metrics_server = MetricsServer(cfg.metrics_host, cfg.metrics_port, registry).start()
            except OSError as exc:
                from ..errors import ConfigError

                raise ConfigError(f"cannot serve metrics on {cfg.metrics_host}:{cfg.metrics_port}: {exc.strerror}") from None
            log.info("metrics: http://%s:%d/metrics", self.metrics_server.host, self.metrics_server.port)

        reason = "end of input"
        previous = {}

        def on_signal(signum: int, _frame: Any) -> None:
            nonlocal reason
            if pipeline.stop_event.is_set():
                raise KeyboardInterrupt  # a second Ctrl-C: stop waiting
            reason = signal.Signals(signum).name
            pipeline.stop_event.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
        try:
            pipeline.start()
            import time

            t_end = time.monotonic() + self.options.duration_s if self.options.duration_s else None
            while not pipeline.stop_event.is_set():
                if self.preview is not None:
                    self.preview.pump()
                else:
                    pipeline.stop_event.wait(0.1)
                if pipeline.finished():
                    if not pipeline.pipe.errors:
                        pipeline.wait_outputs()
                    break
                if t_end is not None and time.monotonic() >= t_end:
                    reason = "duration"
                    break
            if pipeline.stop_event.is_set() and reason == "end of input":
                reason = "q key" if self.preview is not None else reason
            pipeline.stop(reason)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.close()
        pipeline.raise_if_failed()
        self.finish_report()
        return 0

    def close(self) -> None:
        if self.pipeline is not None and not self.pipeline.stop_event.is_set():
            self.pipeline.stop("error")
        if self.preview is not None:
            self.preview.destroy()
        if self.metrics_server is not None:
            self.metrics_server.stop()
        if self.server is not None:
            self.server.stop()
        if self.mechanism is not None:
            self.mechanism.close()

    def finish_report(self) -> None:
        from .report import live_report, summary_lines

        assert self.pipeline is not None
        data = live_report(self.argv, self.config, self.pipeline.report(), self.started)
        if self.options.report:
            from ..report import write_json_atomic

            write_json_atomic(self.options.report, data)
        if not self.options.quiet:
            for line in summary_lines(data):
                print(line)
            if self.options.report:
                print(f"report: {self.options.report}")
