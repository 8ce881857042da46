"""``streamdp live`` (a camera) and ``streamdp relay`` (a stream in, an anonymized stream out).

``add_live_parsers(subparsers)`` adds both subcommands to the main parser; each sets
``handler`` to the function that runs it (``cmd_live`` / ``cmd_relay``). Heavy imports happen
inside the handlers, so ``streamdp run`` never loads any of this.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..mechanisms.registry import cover_mechanisms, mechanism_help

log = logging.getLogger("streamdp.live")


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 1280x720, not {text!r}") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise argparse.ArgumentTypeError(f"size out of range: {text}")
    return w, h


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range: {port}")
    return port


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--record", type=Path, metavar="FILE", help="also record the anonymized video to FILE")
    p.add_argument("--serve", type=_port, metavar="PORT",
                   help="serve the result over RTSP on PORT (built-in server): rtsp://HOST:PORT/PATH")
    p.add_argument("--serve-host", default="127.0.0.1",
                   help="address --serve listens on (default 127.0.0.1: this machine only; 0.0.0.0 for every interface)")
    p.add_argument("--serve-user", metavar="USER",
                   help="require RTSP Basic auth from --serve's readers: this user, the password from the "
                        "STREAMDP_SERVE_PASSWORD environment variable (never on the command line)")
    p.add_argument("--serve-path", default="anon", help="path of the served stream (default anon)")
    p.add_argument("--show", action="store_true", help="preview window (q or Esc quits)")
    p.add_argument("-m", "--mechanism", metavar="NAME", help=f"{mechanism_help()} (default from config)")
    p.add_argument("-c", "--config", type=Path, help="YAML config file (the 'live' section, see configs/multi.yaml)")
    p.add_argument("--fps", type=float, help="output frame rate (default: the input's)")
    p.add_argument("--deadline-ms", type=float, help="capture->publish deadline before the cheap cover is used")
    p.add_argument("--fallback", choices=cover_mechanisms(), help="cheap cover used when the deadline is missed")
    p.add_argument("--metrics-port", type=_port, help="serve Prometheus metrics on http://HOST:PORT/metrics")
    p.add_argument("--metrics-host", help="address of the metrics endpoint (default 127.0.0.1)")
    p.add_argument("--report", type=Path, help="write a JSON report (latency, fps, drops) when stopped")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop after SECONDS")
    p.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only, no summary")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def add_live_parsers(sub: Any) -> None:
    """Register ``live`` and ``relay`` on the main parser's subparsers."""
    live = sub.add_parser(
        "live", help="anonymize a camera live (preview, record, publish)",
        description="Anonymize a camera as it records. DEVICE: an index (0), /dev/videoN, "
        "lavfi:GRAPH (e.g. lavfi:testsrc=size=640x360:rate=25) or a video file played at its own rate.",
    )
    live.add_argument("--camera", default="0", metavar="DEVICE", help="camera index, device path, lavfi:GRAPH or file")
    live.add_argument("--size", type=_size, metavar="WxH", help="resolution asked of the camera")
    live.add_argument("--output", metavar="URL", help="publish the result to this RTSP URL")
    _common(live)
    live.set_defaults(handler=cmd_live)

    relay = sub.add_parser(
        "relay", help="read a stream (RTSP, RTMP, HLS, HTTP, SRT or a file), publish it anonymized over RTSP",
        description="Relay INPUT as an anonymized RTSP stream. Several inputs: --config configs/multi.yaml.",
    )
    relay.add_argument("input", nargs="?", help="rtsp://..., rtmp://..., http(s)://..., srt://..., a file, lavfi:GRAPH")
    relay.add_argument("output", nargs="?", help="rtsp://server/path to publish to (or use --serve / -o)")
    relay.add_argument("--transport", choices=["tcp", "udp"], help="RTSP input transport (default tcp)")
    relay.add_argument("--loop", action="store_true", help="a file input starts over at its end")
    relay.add_argument("--name", default="stream0", help="stream name in logs, metrics and the report")
    _common(relay)
    relay.set_defaults(handler=cmd_relay)


# ------------------------------------------------------------------------------------ set-up


def _setup_logging(args: argparse.Namespace) -> None:
    from .redact import install_log_redaction

    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.getLogger("streamdp.live").setLevel(level)
    install_log_redaction()


def _load(args: argparse.Namespace) -> Any:
    from ..config import load_config

    overrides: dict[str, Any] = {}
    if args.mechanism:
        overrides["mechanism.name"] = args.mechanism
    for attr, key in (("fps", "fps"), ("deadline_ms", "deadline_ms"), ("fallback", "fallback"),
                      ("metrics_port", "metrics_port"), ("metrics_host", "metrics_host"),
                      ("transport", "transport"), ("size", "camera_size")):
        value = getattr(args, attr, None)
        if value is not None:
            overrides[f"live.{key}"] = list(value) if isinstance(value, tuple) else value
    if args.handler is cmd_live and args.fps is not None:
        overrides["live.camera_fps"] = args.fps  # a camera is asked for the output rate
    config = load_config(args.config, overrides)
    if config.mechanism.dp_image.render == "auto":
        # A generator render (~0.3 s on a CPU) must not hold up a live frame: render in the
        # background, pixelate the new face meanwhile.
        config.mechanism.dp_image.render = "async"
    return config


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


class _Session:
    """What one live command owns: the streams, the pipeline, servers, signals; torn down in order."""

    def __init__(self, args: argparse.Namespace, argv: list[str], config: Any) -> None:
        from datetime import datetime, timezone

        self.args = args
        self.argv = argv
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
        if self.args.serve is None:
            return None
        if self.server is None:
            from .serve import ServerProcess

            auth = None
            if getattr(self.args, "serve_user", None):
                password = os.environ.get("STREAMDP_SERVE_PASSWORD", "")
                if not password:
                    raise ConfigError("--serve-user needs the password in the STREAMDP_SERVE_PASSWORD environment variable")
                auth = f"{self.args.serve_user}:{password}"
            self.server = ServerProcess(self.args.serve_host, self.args.serve, auth=auth).start()
            if not self.args.quiet:
                host = "127.0.0.1" if self.args.serve_host in ("0.0.0.0", "::", "") else self.args.serve_host
                print(f"streamdp: serving rtsp://{host}:{self.server.port}/{path}  "
                      f"(watch: ffplay -rtsp_transport tcp rtsp://{host}:{self.server.port}/{path})", file=sys.stderr)
        return self.server.publish_url(path)

    def add_stream(self, name: str, source: Any, metrics: Any, output: str | None, record: Path | None,
                   serve_path: str | None) -> None:
        from .pipeline import LiveStream
        from .sinks import RecordingSink, RtspPublisher

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
        if self.args.show and self.preview is None:
            from .preview import PreviewSink, check_display

            check_display()
            self.preview = PreviewSink(f"streamdp: {name}", None)  # type: ignore[arg-type]
            sinks.append(self.preview)
        if not sinks:
            from ..errors import ConfigError

            raise ConfigError(f"stream {name}: no output (give an RTSP URL, --serve PORT, -o FILE or --show)")
        self.streams.append(LiveStream(len(self.streams), name, source, sinks, metrics, fps=cfg.fps))

    # ------------------------------------------------------------------------------- run

    def run(self) -> int:
        from ..builder import build_mechanism
        from .metrics import MetricsServer, prometheus_text
        from .pipeline import LivePipeline

        self.mechanism = build_mechanism(self.config)
        self.pipeline = pipeline = LivePipeline(self.config, self.mechanism, self.streams)
        if self.preview is not None:
            self.preview.stop = pipeline.stop_event
        cfg = self.config.live
        if cfg.metrics_port is not None:
            try:
                self.metrics_server = MetricsServer(
                    cfg.metrics_host, cfg.metrics_port, lambda: prometheus_text([s.metrics for s in self.streams])
                ).start()
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

            t_end = time.monotonic() + self.args.duration if self.args.duration else None
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
        if self.args.report:
            from ..report import write_json_atomic

            write_json_atomic(self.args.report, data)
        if not self.args.quiet:
            for line in summary_lines(data):
                print(line)
            if self.args.report:
                print(f"report: {self.args.report}")


def _guard(fn: Any, args: argparse.Namespace, argv: list[str]) -> int:
    """Run a live command; unexpected failures become one redacted line (the traceback with -v)."""
    from ..errors import StreamdpError
    from .redact import redact_text

    _setup_logging(args)
    try:
        return int(fn(args, argv))
    except (StreamdpError, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001
        log.debug("live command failed", exc_info=True)
        raise StreamdpError(redact_text(f"{type(exc).__name__}: {exc}")) from None


def _live(args: argparse.Namespace, argv: list[str]) -> int:
    from .metrics import StreamMetrics
    from .sources import camera_source

    config = _load(args)
    session = _Session(args, argv, config)
    metrics = StreamMetrics("camera", f"camera {args.camera}", [args.output] if args.output else [])
    source = camera_source(args.camera, config.live, metrics)
    session.add_stream("camera", source, metrics, args.output, args.record,
                       args.serve_path if args.serve is not None else None)
    return session.run()


def _relay(args: argparse.Namespace, argv: list[str]) -> int:
    from ..errors import ConfigError
    from .metrics import StreamMetrics
    from .sources import open_input

    config = _load(args)
    session = _Session(args, argv, config)
    specs = config.live.streams
    if specs and args.input:
        raise ConfigError("give either INPUT on the command line or live.streams in the config, not both")
    if not specs:
        if not args.input:
            raise ConfigError("relay needs an INPUT (or live.streams in --config)")
        metrics = StreamMetrics(args.name, args.input, [args.output] if args.output else [])
        source = open_input(args.input, config.live, metrics, loop=args.loop)
        session.add_stream(args.name, source, metrics, args.output, args.record,
                           args.serve_path if args.serve is not None else None)
        return session.run()
    if args.record and len(specs) > 1:
        raise ConfigError("-o/--record takes one stream; set 'record' per stream in live.streams")
    for i, spec in enumerate(specs):
        name = spec.name or f"stream{i}"
        metrics = StreamMetrics(name, spec.input, [spec.output] if spec.output else [])
        source = open_input(spec.input, config.live, metrics, loop=args.loop)
        record = spec.record or (args.record if len(specs) == 1 else None)
        session.add_stream(name, source, metrics, spec.output, record, name if args.serve is not None else None)
    return session.run()


def cmd_live(args: argparse.Namespace, argv: list[str]) -> int:
    """``streamdp live``: a camera (or lavfi / a file through the camera path)."""
    return _guard(_live, args, argv)


def cmd_relay(args: argparse.Namespace, argv: list[str]) -> int:
    """``streamdp relay``: one input (or ``live.streams``) to RTSP / a served stream / a file."""
    return _guard(_relay, args, argv)
