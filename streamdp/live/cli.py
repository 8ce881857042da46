"""``streamdp live`` (a camera) and ``streamdp relay`` (a stream in, an anonymized stream out).

``add_live_parsers(subparsers)`` adds both subcommands to the main parser; each sets
``handler`` to the function that runs it (``cmd_live`` / ``cmd_relay``). Heavy imports happen
inside the handlers, so ``streamdp run`` never loads any of this.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..logs import add_log_format_option
from ..mechanisms.registry import cover_mechanisms, mechanism_help
from ..presets import config_path

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
                   help="require RTSP auth (Digest by default) from --serve's readers: this user, the password "
                        "from the STREAMDP_SERVE_PASSWORD environment variable (never on the command line)")
    p.add_argument("--serve-auth-scheme", choices=("digest", "basic", "any"), default="digest",
                   help="with --serve-user: what readers are offered: digest (default; the password never "
                        "crosses the wire), any (Digest or Basic), basic (base64: readable on the network)")
    p.add_argument("--serve-path", default="anon", help="path of the served stream (default anon)")
    p.add_argument("--show", action="store_true", help="preview window (q or Esc quits)")
    p.add_argument("-m", "--mechanism", metavar="NAME", help=f"{mechanism_help()} (default from config)")
    p.add_argument("-c", "--config", type=config_path,
                   help="YAML config file or preset name: live-camera, relay, multi (streamdp config list)")
    p.add_argument("--fps", type=float, help="output frame rate (default: the input's)")
    p.add_argument("--deadline-ms", type=float, help="capture->publish deadline before the cheap cover is used")
    p.add_argument("--fallback", choices=cover_mechanisms(), help="cheap cover used when the deadline is missed")
    p.add_argument("--metrics-port", type=_port, help="serve Prometheus metrics on http://HOST:PORT/metrics")
    p.add_argument("--metrics-host", help="address of the metrics endpoint (default 127.0.0.1)")
    p.add_argument("--report", type=Path, help="write a JSON report (latency, fps, drops) when stopped")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop after SECONDS")
    p.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only, no summary")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    add_log_format_option(p)


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
    from ..logs import setup_logging
    from .redact import install_log_redaction

    setup_logging(args.verbose, getattr(args, "log_format", "text"))
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.getLogger("streamdp.live").setLevel(level)
    install_log_redaction()


def load_live_config(args: argparse.Namespace) -> Any:
    """The validated config of a live command: the file, then its flags (dp-image renders async)."""
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


def _session(args: argparse.Namespace, argv: list[str], config: Any) -> Any:
    from .session import LiveSession, SessionOptions

    serve_user = getattr(args, "serve_user", None)
    password = os.environ.get("STREAMDP_SERVE_PASSWORD", "") if serve_user else None
    if serve_user and not password:
        raise ConfigError("--serve-user needs the password in the STREAMDP_SERVE_PASSWORD environment variable")
    options = SessionOptions(
        serve_port=args.serve, serve_host=args.serve_host, serve_auth=f"{serve_user}:{password}" if serve_user else None,
        serve_auth_scheme=getattr(args, "serve_auth_scheme", "digest"),
        show=args.show, quiet=args.quiet, duration_s=args.duration, report=args.report,
    )
    return LiveSession(config, options, argv)


def guard_live_command(fn: Any, args: argparse.Namespace, argv: list[str]) -> int:
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

    config = load_live_config(args)
    session = _session(args, argv, config)
    metrics = StreamMetrics("camera", f"camera {args.camera}", [args.output] if args.output else [])
    source = camera_source(args.camera, config.live, metrics)
    session.add_stream("camera", source, metrics, args.output, args.record,
                       args.serve_path if args.serve is not None else None)
    return session.run()


def _relay(args: argparse.Namespace, argv: list[str]) -> int:
    from ..errors import ConfigError
    from .metrics import StreamMetrics
    from .sources import open_input

    config = load_live_config(args)
    session = _session(args, argv, config)
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
    session.add_config_streams(specs, loop=args.loop, serve=args.serve is not None, record=args.record)
    return session.run()


def cmd_live(args: argparse.Namespace, argv: list[str]) -> int:
    """``streamdp live``: a camera (or lavfi / a file through the camera path)."""
    return guard_live_command(_live, args, argv)


def cmd_relay(args: argparse.Namespace, argv: list[str]) -> int:
    """``streamdp relay``: one input (or ``live.streams``) to RTSP / a served stream / a file."""
    return guard_live_command(_relay, args, argv)
