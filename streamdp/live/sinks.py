"""Live outputs: the ``Sink`` interface, a recording file, and the worker thread that feeds a sink
(the RTSP publisher, in a child process, is ``publisher.py``).

Every output takes ``CoveredFrame`` values only (see ``covered.py``) and runs on its own thread
(``SinkWorker``) behind a two-frame queue, so a slow or reconnecting output never holds back the
others or the pipeline: when its queue is full the oldest frame is dropped (and counted).
"""

from __future__ import annotations

import logging
import queue
import time
from abc import ABC, abstractmethod
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..config import OutputConfig
from ..stages import END, Pipeline, Stopped
from ..types import Frame
from .covered import CoveredFrame
from .metrics import StreamMetrics

log = logging.getLogger(__name__)

RTP_TIME_BASE = Fraction(1, 90000)


def even_size(image: np.ndarray) -> np.ndarray:
    """Crop to even width and height (yuv420p needs them)."""
    h, w = image.shape[:2]
    if h % 2 or w % 2:
        image = image[: h - h % 2, : w - w % 2]
    return np.ascontiguousarray(image)


class Sink(ABC):
    """One output. ``write`` is called from the sink's own thread only."""

    name: str = "sink"
    measure_latency = True  # capture->write latency is recorded for this output
    fps: float | None = None  # the output rate; None until ``start`` when not known up front

    def start(self, fps: float) -> None:
        """Called once before the first ``write`` with the stream's output rate (an input's rate
        may only be known once it delivers frames); a rate given at construction is kept."""
        if not self.fps:
            self.fps = fps

    @abstractmethod
    def write(self, frame: CoveredFrame, t_out: float) -> bool:
        """Output ``frame`` at output time ``t_out`` (``time.monotonic()``); False if dropped."""

    @abstractmethod
    def close(self) -> None:
        """Finish the output (flush the encoder, close the connection or file)."""


class RecordingSink(Sink):
    """Record the anonymized stream to a video file (the file pipeline's ``VideoSink``).

    The file is written beside ``path`` and moved there when the recording ends (Ctrl-C and
    SIGTERM included): a stopped live recording is a finished file, not a partial one.
    """

    name = "record"

    def __init__(self, path: Path, fps: float, output_cfg: OutputConfig, preset: str) -> None:
        self.path = Path(path)
        self.fps = fps
        self.cfg = output_cfg.model_copy(update={"copy_audio": False, "copy_subtitles": False, "preset": preset})
        self._sink = None
        self._t0 = 0.0
        self._size: tuple[int, int] | None = None
        self.frames_written = 0

    def _open(self, width: int, height: int) -> None:
        from ..sink import VideoSink
        from ..source import VideoInfo

        info = VideoInfo(
            width=width, height=height, fps=Fraction(self.fps).limit_denominator(1001), time_base=RTP_TIME_BASE,
            frame_count=None, duration_s=None, rotation=0, codec="rawvideo", has_audio=False,
        )
        self._sink = VideoSink(self.path, self.path, info, self.cfg)

    def write(self, frame: CoveredFrame, t_out: float) -> bool:
        if self._sink is None:
            self._size = frame.size
            self._open(*frame.size)
            self._t0 = t_out
        pts = int(round((t_out - self._t0) / RTP_TIME_BASE))
        self._sink.write(Frame(frame.seq, frame.image, pts=pts, time_base=RTP_TIME_BASE))  # type: ignore[union-attr]
        self.frames_written += 1
        return True

    def close(self) -> None:
        sink, self._sink = self._sink, None
        if sink is not None:
            sink.close()
            log.info("recording written: %s (%d frames)", self.path, self.frames_written)


class SinkWorker:
    """Feeds one sink from its own thread through a short queue (oldest frame dropped when full)."""

    def __init__(self, sink: Sink, metrics: StreamMetrics, pipe: Pipeline, depth: int = 2) -> None:
        self.sink = sink
        self.metrics = metrics
        self.pipe = pipe
        self._q: queue.Queue = queue.Queue(depth)
        self.closed_ok = False

    def offer(self, frame: CoveredFrame, t_out: float, new: bool) -> None:
        if not isinstance(frame, CoveredFrame):  # the one rule of the live outputs
            raise TypeError(f"live outputs take CoveredFrame values only, not {type(frame).__name__}")
        item = (frame, t_out, new)
        while True:
            try:
                self._q.put_nowait(item)
                return
            except queue.Full:
                try:
                    self._q.get_nowait()
                    self.metrics.add("frames_output_dropped")
                except queue.Empty:
                    pass

    def finish(self) -> None:
        """No more frames: the worker closes its sink after the queued ones."""
        while True:
            try:
                self._q.put(END, timeout=0.5)
                return
            except queue.Full:
                try:
                    self._q.get_nowait()
                except queue.Empty:
                    pass

    def run(self) -> None:
        stop_seen: float | None = None
        try:
            while True:
                try:
                    item = self._q.get(timeout=0.05)
                except queue.Empty:
                    # On stop, the output thread sends END within a poll interval: write what it
                    # handed over until then (a recording keeps its last frames), but do not wait
                    # for it forever.
                    if self.pipe.stop_event.is_set():
                        stop_seen = stop_seen or time.monotonic()
                        if time.monotonic() - stop_seen > 0.5:
                            break
                    continue
                if item is END:
                    break
                frame, t_out, new = item
                if self.sink.write(frame, t_out):
                    if new and self.sink.measure_latency:
                        self.metrics.add_latency(self.sink.name, time.monotonic() - frame.t_capture)
                elif new:
                    self.metrics.add("frames_output_dropped")
        except Stopped:
            pass
        finally:
            self.sink.close()
            self.closed_ok = True
