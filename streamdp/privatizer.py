"""The privatize stage: the mechanism on micro-batches, failing closed to a cover (files, live
and eval share it)."""

from __future__ import annotations

import logging

from .mechanisms import Mechanism
from .stages import StageStats
from .types import FrameJob

log = logging.getLogger(__name__)


class Privatizer:
    """Runs the mechanism on micro-batches; fails closed to a solid cover if it raises."""

    def __init__(self, mechanism: Mechanism, fallback: Mechanism) -> None:
        """``fallback``: a cover mechanism (no model) for a batch the mechanism failed on."""
        self.mechanism = mechanism
        self.fallback = fallback
        self.stats = StageStats("privatize")
        self.batches = 0
        self.failures = 0

    def apply(self, jobs: list[FrameJob]) -> None:
        self.stats.start()
        # The fallback covers the faces as they were handed in: a mechanism that fails after
        # changing its jobs' boxes (NaN, emptied) must not take the cover's geometry with it.
        faces = [job.faces.copy() for job in jobs]
        try:
            self.mechanism.apply(jobs)
        except Exception:  # noqa: BLE001 - a privatizer fault must never reveal a face
            self.failures += 1
            log.exception("mechanism %s failed on a batch; covering those faces with %s", self.mechanism.name, self.fallback.name)
            for job, f in zip(jobs, faces):
                job.faces = f
            self.fallback.apply(jobs)
        self.stats.stop(len(jobs))
        self.batches += 1
