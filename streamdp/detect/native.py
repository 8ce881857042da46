"""MediaPipe's native runtime, kept quiet and closed in time.

Its LiteRT core writes INFO lines straight to file descriptor 2, and its detectors cannot close
once ``concurrent.futures`` has stopped their worker pool at interpreter exit. This module silences
the one and closes forgotten detectors before the other.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
import weakref
from collections.abc import Iterator
from typing import Protocol

# Must be set before mediapipe is first imported (it is imported lazily by the mediapipe backend).
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


class Closable(Protocol):
    def close(self) -> None: ...


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for a moment.

    MediaPipe's native runtime (LiteRT) writes INFO lines straight to fd 2 when a graph is
    created or destroyed, bypassing Python and GLOG_minloglevel; users should see only our lines.
    Python-level errors still surface as exceptions.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def safe_close(det: object) -> None:
    """Close a MediaPipe detector; if its worker pool is already gone, disarm its ``__del__``."""
    try:
        det.close()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - shutting down: nothing left to report to
        if hasattr(det, "_handle"):
            det._handle = None  # type: ignore[attr-defined]


_LIVE: weakref.WeakSet[Closable] = weakref.WeakSet()
_exit_hook_registered = False


def close_at_exit(obj: Closable) -> None:
    """Have ``obj.close()`` called at interpreter exit if it is still alive then."""
    _LIVE.add(obj)
    _register_exit_hook()


def _close_all_at_exit() -> None:
    for obj in list(_LIVE):
        obj.close()


def _register_exit_hook() -> None:
    """Close forgotten detectors at exit *before* concurrent.futures stops MediaPipe's workers.

    ``threading._register_atexit`` hooks run (last registered first) before the worker pools shut
    down, whereas ``atexit`` hooks run after, when MediaPipe can no longer close cleanly.
    """
    global _exit_hook_registered
    if _exit_hook_registered:
        return
    register = getattr(threading, "_register_atexit", None)
    try:
        if register is None:
            raise RuntimeError
        register(_close_all_at_exit)
    except RuntimeError:
        atexit.register(_close_all_at_exit)
    _exit_hook_registered = True
