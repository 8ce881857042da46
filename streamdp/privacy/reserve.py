"""Noise drawn ahead of the release, each vector in a fixed time budget: release timing that does
not depend on the noise.

The exact samplers (``sampling.py``) run in time that grows with the magnitude of what they draw
(discrete Laplace: a loop per unit of ``|k|/t``). Where an observer sees latency (a live relay with
deadlines, the moment a generated face appears), a release drawn on the frame's path would carry
information about its own noise. So:

1. **Sampled ahead.** ``NoiseReserve`` keeps ``size`` noise vectors drawn in a background thread
   before any face needs them; a release pops one (constant time, a lock and a deque).
2. **Padded.** Every draw, in the background or (when a burst of new faces empties the reserve)
   on the release path, takes exactly ``budget_s`` of wall-clock time: the draw, then a sleep to
   the budget. The budget is fixed at construction from calibration draws that are thrown away
   (``BUDGET_FACTOR`` times the slowest of them, at least ``MIN_BUDGET_S``), so it says nothing
   about any noise that is used. A draw that overruns its budget (the OS descheduled us, or an
   extreme sample) is used anyway (dropping it would bias the noise distribution) and counted in
   ``overruns``, which the report shows.

What remains, said in docs/privacy.md §3: the background draw's CPU time (about 0.3 ms for the
default 32 coordinates, 1.4 ms for 128) competes with the frame threads while it runs; the
schedule of draws is noise-independent, their CPU share is not exactly. A seeded mechanism (tests
only, no privacy) draws synchronously and unpadded, so seeded runs stay reproducible.
"""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

from .release import LatentMechanism

MIN_BUDGET_S = 0.005
BUDGET_FACTOR = 8.0
CALIBRATION_DRAWS = 3


class NoiseReserve:
    """One mechanism's noise vectors, drawn ahead in a fixed time budget each (module docstring)."""

    def __init__(self, mechanism: LatentMechanism, size: int = 4, budget_s: float | None = None) -> None:
        self.mechanism = mechanism
        self.size = max(1, int(size))
        self.seeded = bool(getattr(mechanism, "seeded", False))
        self.overruns = 0
        self.draws = 0
        self._queue: deque[np.ndarray] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        if self.seeded:
            self.budget_s = 0.0
            return
        if budget_s is None:
            slowest = 0.0
            for _ in range(CALIBRATION_DRAWS):  # thrown away: the budget depends on no used noise
                t0 = time.perf_counter()
                mechanism.sample_noise(1)
                slowest = max(slowest, time.perf_counter() - t0)
            budget_s = max(MIN_BUDGET_S, BUDGET_FACTOR * slowest)
        self.budget_s = float(budget_s)
        self._start()  # fill the reserve before the first face needs it

    # -- the release path ---------------------------------------------------------------------
    def take(self) -> np.ndarray:
        """One noise vector (D,): from the reserve when it has one, else drawn now in the budget."""
        if self.seeded:
            self.draws += 1
            return self.mechanism.sample_noise(1)[0]
        self._start()
        with self._cond:
            if self._queue:
                vec = self._queue.popleft()
                self._cond.notify_all()
                return vec
        return self._draw_padded()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def describe(self) -> dict[str, object]:
        if self.seeded:
            return {"timing": "seeded: drawn on the release path, unpadded (tests only)"}
        return {
            "timing": "drawn ahead in a background thread, every draw padded to a fixed budget",
            "budget_ms": round(self.budget_s * 1000, 3),
            "reserve": self.size,
            "draws": self.draws,
            "overruns": self.overruns,
        }

    # -- internals ----------------------------------------------------------------------------
    def _draw_padded(self) -> np.ndarray:
        t0 = time.perf_counter()
        vec = self.mechanism.sample_noise(1)[0]
        left = self.budget_s - (time.perf_counter() - t0)
        with self._cond:
            self.draws += 1
            if left < 0:
                self.overruns += 1
        if left > 0:
            time.sleep(left)
            # sleep() may wake early on some platforms: finish the budget exactly
            while time.perf_counter() - t0 < self.budget_s:
                time.sleep(0)
        return vec

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._fill, name="dp-noise-reserve", daemon=True)
            self._thread.start()

    def _fill(self) -> None:
        while True:
            with self._cond:
                while not self._closed and len(self._queue) >= self.size:
                    self._cond.wait()
                if self._closed:
                    return
            vec = self._draw_padded()
            with self._cond:
                self._queue.append(vec)
                self._cond.notify_all()
