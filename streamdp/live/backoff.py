"""Retry delays for reconnecting inputs and outputs: exponential, capped, with a little jitter."""

from __future__ import annotations

import random
import threading


class Backoff:
    """``initial``, ``initial * factor``, ... up to ``maximum`` seconds; ``reset()`` after a success."""

    def __init__(self, initial: float = 0.5, maximum: float = 8.0, factor: float = 2.0, jitter: float = 0.1) -> None:
        if initial <= 0 or maximum < initial or factor < 1:
            raise ValueError("backoff needs 0 < initial <= maximum and factor >= 1")
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self.attempts = 0

    def next_delay(self) -> float:
        delay = min(self.maximum, self.initial * self.factor**self.attempts)
        self.attempts += 1
        return delay * (1.0 + random.uniform(-self.jitter, self.jitter))

    def reset(self) -> None:
        self.attempts = 0

    def wait(self, stop: threading.Event, delay: float | None = None) -> bool:
        """Sleep the next delay (or ``delay``); False when ``stop`` was set meanwhile."""
        return not stop.wait(self.next_delay() if delay is None else delay)
