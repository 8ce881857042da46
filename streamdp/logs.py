"""Logging setup for the command line: text (default) or JSON lines (``--log-format json``).

``setup_logging(verbose, fmt)`` puts one handler of streamdp's own on the root logger, writing to
stderr: ``streamdp: LEVEL: message`` lines, or one JSON object per line::

    {"time": "2025-01-31T12:00:00.123Z", "level": "INFO", "logger": "streamdp.live",
     "message": "metrics: http://127.0.0.1:9108/metrics", "stream": "door"}

Fields given with ``log.info(..., extra={"stream": "door"})`` are added beside the standard ones
(values JSON cannot hold become their ``str``). Stream credentials never reach the output in either
format: the handler carries a ``RedactingFilter`` (message and arguments redacted; an exception is
folded into the message as its type and redacted text, its traceback dropped: tracebacks quote
URLs), and the JSON formatter redacts the extra fields too. ``JsonFormatter`` used on a handler of
your own (no filter) puts the redacted traceback under ``exc``.

Calling it again replaces streamdp's handler (``main()`` and then the live commands both call it).
Like ``logging.basicConfig``, it does nothing (no handler, no level) when the root logger already
has other handlers: an embedding application's or a test runner's own.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import Any, TextIO

from .live.redact import RedactingFilter, redact_text

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "streamdp: %(levelname)s: %(message)s"
# The attributes every LogRecord has: anything else on a record came from ``extra=``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601, ms), level, logger, message, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact_text(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key not in entry:
                entry[key] = _redacted(value)
        if record.exc_info:
            entry["exc"] = redact_text(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = redact_text(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False, default=lambda v: redact_text(str(v)))


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _redacted(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redacted(v) for v in value]
    return redact_text(str(value))


class _StreamdpHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler ``setup_logging`` owns, so that a second call replaces it."""


def make_formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter()
    if fmt == "text":
        return logging.Formatter(TEXT_FORMAT)
    raise ValueError(f"unknown log format {fmt!r} (choose from {', '.join(LOG_FORMATS)})")


def setup_logging(verbose: bool = False, fmt: str = "text", stream: TextIO | None = None) -> logging.Handler | None:
    """Root level DEBUG (``verbose``) or WARNING, and streamdp's stderr handler in ``fmt``.
    Returns the handler, or None when the root logger belongs to someone else (see the module)."""
    formatter = make_formatter(fmt)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StreamdpHandler)]:
        root.removeHandler(old)
        old.close()
    if root.handlers:
        return None
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    handler = _StreamdpHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    return handler


def add_log_format_option(parser: Any) -> None:
    """``--log-format text|json`` on an argparse parser."""
    parser.add_argument("--log-format", choices=LOG_FORMATS, default="text",
                        help="log lines as text (default) or one JSON object per line (time, level, logger, message)")
