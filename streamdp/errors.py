"""Errors that reach the user as one clear line and a non-zero exit code."""

from __future__ import annotations


class StreamdpError(Exception):
    """A problem with the user's input or environment, reported as one line (no traceback)."""

    exit_code = 2


class InputError(StreamdpError):
    """The input is missing, unreadable, not media, corrupt or empty."""


class OutputError(StreamdpError):
    """The output cannot be written where asked."""


class ConfigError(StreamdpError):
    """The configuration (file or command line) is invalid."""


class ModelError(StreamdpError):
    """A model file is missing, malformed or lacks required metadata."""


class StalledError(StreamdpError):
    """A pipeline stage made no progress for longer than ``pipeline.stall_timeout_s``."""

    exit_code = 1
