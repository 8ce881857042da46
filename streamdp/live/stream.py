"""One live stream's state between the live pipeline's threads (``pipeline.py``)."""

from __future__ import annotations

import queue
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ..faces import FaceStage
from ..lookback import LookbackDilator
from .covered import CoveredFrame
from .metrics import StreamMetrics
from .shared_privatizer import LiveJob
from .sinks import Sink, SinkWorker
from .slot import LatestSlot
from .sources import LiveSource


@dataclass
class PendingFrame:
    """A frame between the faces thread and the stream's finisher (capture order)."""

    seq: int
    t_capture: float
    deadline: float
    ready: CoveredFrame | None = None  # already covered (no face to cover)
    job: LiveJob | None = None  # submitted to the shared privatizer (None: it was saturated)
    faces: Any = None  # the tracked faces, for the fallback cover
    raw: Any = None  # private copy of the frame for the fallback cover


@dataclass
class LiveStream:
    """One input and its outputs."""

    stream_id: int
    name: str
    source: LiveSource
    sinks: list[Sink]
    metrics: StreamMetrics
    fps: float | None = None  # output rate; None: the input's (known once it is open)
    faces: FaceStage | None = None
    faces_closed: bool = False
    ready: LatestSlot[CoveredFrame] = field(default_factory=LatestSlot)
    # faces thread -> finisher, in capture order; bounded by the places (IN_FLIGHT), not by size,
    # so the end marker can always be put
    pending: queue.Queue = field(default_factory=queue.Queue)
    places: threading.Condition = field(default_factory=threading.Condition)  # guards n_in_flight
    n_in_flight: int = 0  # frames between picking and hand-off (at most IN_FLIGHT)
    overlap: bool = True  # pick the next frame while this one is privatized (see the module doc)
    latency_ewma: float = 0.0  # running mean of capture->covered, as a fraction of the deadline
    workers: list[SinkWorker] = field(default_factory=list)
    last: CoveredFrame | None = None
    output_fps: float | None = None
    # a spread search (detect.tile_every N > 1): each frame waits for the next N-1 picked frames'
    # detection, which cover back a face they find first (builder.build_live_hold)
    hold: LookbackDilator | None = None
    held: deque = field(default_factory=deque)  # (capture, deadline) of each held frame, in order
    picked: int = 0  # frames detected so far: their place in the spread search

    @property
    def n_held_max(self) -> int:
        """How many detected frames wait for later ones (0 without a spread search)."""
        return (self.hold.frames or 0) if self.hold is not None else 0
