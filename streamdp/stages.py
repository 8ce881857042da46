"""Thread plumbing shared by every pipeline: bounded queues, stage threads, the micro-batcher.

Stages run as producer/consumer threads (PyAV, OpenCV, onnxruntime and MediaPipe release the GIL
in their heavy calls). Queues are bounded so a slow stage applies back-pressure instead of letting
frames pile up in memory. Every blocking call wakes up regularly to look at the shared stop event,
so a failure anywhere (or Ctrl-C) stops every stage within a fraction of a second.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

END = object()  # end-of-stream marker passed down the queues
POLL_S = 0.05


class Stopped(Exception):
    """Raised inside a stage when the pipeline is being stopped."""


@dataclass
class StageStats:
    """Busy time (excluding queue waits) and item count of one stage."""

    name: str
    busy_s: float = 0.0
    items: int = 0
    _t0: float = field(default=0.0, repr=False)

    def start(self) -> None:
        self._t0 = time.perf_counter()

    def stop(self, items: int = 1) -> float:
        dt = time.perf_counter() - self._t0
        self.busy_s += dt
        self.items += items
        return dt

    def as_dict(self) -> dict[str, Any]:
        return {
            "busy_s": round(self.busy_s, 4),
            "items": self.items,
            "ms_per_item": round(1000 * self.busy_s / self.items, 3) if self.items else None,
            "items_per_s": round(self.items / self.busy_s, 1) if self.busy_s > 0 else None,
        }


class Pipeline:
    """A stop event, an error slot and the threads that share them."""

    def __init__(self) -> None:
        self.stop_event = threading.Event()
        self.errors: list[tuple[str, BaseException]] = []
        self.threads: list[threading.Thread] = []

    def put(self, q: queue.Queue, item: Any) -> None:
        while True:
            if self.stop_event.is_set():
                raise Stopped
            try:
                q.put(item, timeout=POLL_S)
                return
            except queue.Full:
                continue

    def get(self, q: queue.Queue, timeout: float | None = None) -> Any:
        """Next item; raises ``queue.Empty`` after ``timeout`` (None: wait until stopped)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self.stop_event.is_set():
                raise Stopped
            wait = POLL_S if deadline is None else max(0.0, min(POLL_S, deadline - time.monotonic()))
            try:
                return q.get(timeout=wait)
            except queue.Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    def spawn(self, name: str, target: Callable[[], None], joined: bool = True) -> threading.Thread:
        """Start a stage thread; its failure stops every stage. ``joined=False``: not waited for by
        ``stop``/``join`` (threads that may block in native code, e.g. a network read)."""

        def run() -> None:
            name_native_thread(name)
            try:
                target()
            except Stopped:
                pass
            except BaseException as exc:  # noqa: BLE001 - forwarded to the main thread
                log.debug("stage %s failed", name, exc_info=True)
                self.errors.append((name, exc))
                self.stop_event.set()

        thread = threading.Thread(target=run, name=f"streamdp-{name}", daemon=True)
        if joined:
            self.threads.append(thread)
        thread.start()
        return thread

    def raise_if_failed(self) -> None:
        if self.errors:
            raise self.errors[0][1]

    def stop(self, timeout: float = 5.0) -> None:
        self.stop_event.set()
        self.join(timeout)

    def join(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))


def collect_batch(pipe: Pipeline, q: queue.Queue, max_items: int, max_wait_s: float) -> list[Any]:
    """Micro-batcher: block for the first item, then take more until ``max_items`` or ``max_wait_s``.

    The end marker, when met, is the last element of the returned list.
    """
    first = pipe.get(q)
    batch = [first]
    if first is END:
        return batch
    deadline = time.monotonic() + max_wait_s
    while len(batch) < max_items:
        try:
            remaining = deadline - time.monotonic()
            item = q.get_nowait() if remaining <= 0 else pipe.get(q, timeout=remaining)
        except queue.Empty:
            break
        batch.append(item)
        if item is END:
            break
    return batch


def name_native_thread(name: str) -> None:
    """Give the calling thread ``name`` (its first 15 bytes) at the OS level too, where ``top -H``,
    ``ps -L``, /proc/PID/task/*/comm and profilers read it (Python's thread names stay inside the
    interpreter): which stage burns the CPU is then visible from outside. Linux only; elsewhere,
    or when it fails, nothing happens."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(15, name.encode("utf-8", "replace")[:15], 0, 0, 0)  # PR_SET_NAME
    except Exception:  # noqa: BLE001 - a name is a convenience, never a failure
        pass
