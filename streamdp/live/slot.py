"""The latest-frame buffer: one slot that a producer always overwrites.

A live source must never queue frames: if the consumer is slower, the frame it has not taken yet
is stale and is replaced by the newer one (counted in ``dropped``). So latency cannot grow, and the
consumer always works on the freshest frame.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """A one-item buffer: ``put`` overwrites, ``get`` takes the item (waiting up to ``timeout``)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._full = False
        self._closed = False
        self.puts = 0
        self.dropped = 0  # items overwritten before anyone took them

    def put(self, item: T) -> bool:
        """Store ``item``; returns True when it replaced an item nobody took (a drop)."""
        with self._cond:
            dropped = self._full
            if dropped:
                self.dropped += 1
            self._item = item
            self._full = True
            self.puts += 1
            self._cond.notify_all()
            return dropped

    def get(self, timeout: float | None = None) -> T | None:
        """The newest item, removed from the slot; None after ``timeout`` or once closed and empty."""
        with self._cond:
            if not self._full and not self._closed:
                self._cond.wait(timeout)
            if not self._full:
                return None
            item, self._item, self._full = self._item, None, False
            return item

    def close(self) -> None:
        """No more items will come: wake the consumer (what is in the slot can still be taken)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def empty(self) -> bool:
        return not self._full
