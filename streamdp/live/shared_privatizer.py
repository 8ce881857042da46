"""The one privatizer all live streams share: it micro-batches their frames (one GPU batch across
streams) and skips frames already past their deadline (their stream covers them itself)."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

from ..builder import build_privatizer
from ..config import Config
from ..mechanisms import Mechanism
from ..stages import Pipeline, collect_batch
from ..types import FrameJob

IN_FLIGHT = 2  # frames per stream between picking and hand-off: one being detected, one privatizing


class LiveJob:
    """A frame handed to the shared privatizer, with its deadline."""

    __slots__ = ("job", "deadline", "done", "ok", "abandoned", "t_done")

    def __init__(self, job: FrameJob, deadline: float) -> None:
        self.job = job
        self.deadline = deadline
        self.done = threading.Event()
        self.ok = False  # set (before ``done``) only when the mechanism has run on the frame
        self.abandoned = False  # the stream gave up waiting and covered a copy instead
        self.t_done = 0.0  # time.monotonic() when the mechanism returned for it


class SharedPrivatizer:
    """One ``Privatizer`` for every stream: micro-batches jobs across streams (one GPU batch)."""

    def __init__(self, config: Config, mechanism: Mechanism, pipe: Pipeline, n_streams: int = 1) -> None:
        self.privatizer = build_privatizer(config, mechanism)
        self.pipe = pipe
        # A stream submits its next frame while the previous one is privatized, so a batch is
        # complete with one frame per stream: a single stream never waits for the batcher.
        self.max_batch = max(1, min(config.batch.max_batch, n_streams))
        self.max_wait_s = config.batch.max_wait_ms / 1000.0
        # Room for every stream's frames in flight: a submit fails only when a stream misbehaves.
        self.queue: queue.Queue = queue.Queue(max(4, 2 * self.max_batch, IN_FLIGHT * n_streams))
        self.skipped = 0  # jobs already past their deadline when their turn came
        self.batch_sizes: list[int] = []

    def submit(self, job: LiveJob) -> bool:
        """Queue ``job`` without blocking; False when the privatizer is saturated."""
        try:
            self.queue.put_nowait(job)
            return True
        except queue.Full:
            return False

    def run(self) -> None:
        while True:
            batch: list[LiveJob] = collect_batch(self.pipe, self.queue, self.max_batch, self.max_wait_s)
            now = time.monotonic()
            live = [j for j in batch if not j.abandoned and j.deadline > now]
            self.skipped += len(batch) - len(live)
            if not live:
                continue
            self.privatizer.apply([j.job for j in live])
            t_done = time.monotonic()
            self.batch_sizes.append(len(live))
            if len(self.batch_sizes) > 4096:
                del self.batch_sizes[:2048]
            for j in live:
                j.t_done = t_done
                j.ok = True
                j.done.set()

    def stats(self) -> dict[str, Any]:
        sizes = self.batch_sizes
        return {
            "batches": self.privatizer.batches,
            "mean_batch": round(sum(sizes) / len(sizes), 2) if sizes else None,
            "max_batch": max(sizes) if sizes else None,
            "skipped_past_deadline": self.skipped,
            "mechanism_failures": self.privatizer.failures,
            **self.privatizer.stats.as_dict(),
        }
