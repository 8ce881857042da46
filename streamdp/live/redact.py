"""Credentials in stream URLs never reach logs, reports or metrics.

``redact_url`` rewrites one URL (``rtsp://user:pass@cam/stream?token=x`` ->
``rtsp://***@cam/stream?token=***``); ``redact_text`` does the same to every URL inside a free
text (an FFmpeg error message quotes the URL it failed on); ``RedactingFilter`` applies
``redact_text`` to every log record that passes through a handler.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
# Query parameters whose values are secrets (matched case-insensitively, as substrings).
_SECRET_KEYS = ("pass", "pwd", "token", "secret", "key", "auth", "sig", "credential", "session")
_URL_RE = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]{1,15}://[^\s'\"<>]+")
# user:password@ or user@ right after a scheme, in text that failed to parse as a URL
_USERINFO_RE = re.compile(r"(://)[^/\s@'\"]+@")


def _secret_key(name: str) -> bool:
    low = name.lower()
    return any(k in low for k in _SECRET_KEYS)


def redact_url(url: str) -> str:
    """``url`` with its user info and secret-looking query values replaced by ``***``.

    A plain path (a file, a camera index) comes back unchanged.
    """
    text = str(url)
    if "://" not in text:
        return text
    try:
        parts = urlsplit(text)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            if any(_secret_key(k) for k, _ in pairs):
                query = urlencode([(k, MASK if _secret_key(k) else v) for k, v in pairs], safe="*")
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return _USERINFO_RE.sub(rf"\1{MASK}@", text)


def redact_text(text: str) -> str:
    """Every URL inside ``text`` redacted (see ``redact_url``)."""
    if "://" not in text:
        return text
    return _URL_RE.sub(lambda m: redact_url(m.group(0)), text)


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (arguments and exception text included) with ``redact_text``."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is left to the formatter
            return True
        if record.exc_info and record.exc_info[1] is not None:
            # The formatter would print the traceback (with URLs): fold a redacted version in.
            exc = record.exc_info[1]
            message = f"{message}\n{type(exc).__name__}: {exc}"
            record.exc_info = None
            record.exc_text = None
        record.msg = redact_text(message)
        record.args = ()
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Add a ``RedactingFilter`` to every handler of ``logger`` (default: the root logger)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
