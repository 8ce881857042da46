"""Live outputs: an RTSP publisher (low-latency H.264, reconnects) and a recording file.

Every output takes ``CoveredFrame`` values only (see ``covered.py``) and runs on its own thread
(``SinkWorker``) behind a two-frame queue, so a slow or reconnecting output never holds back the
others or the pipeline: when its queue is full the oldest frame is dropped (and counted).
"""

from __future__ import annotations

import logging
import queue
import socket
import time
from abc import ABC, abstractmethod
from fractions import Fraction
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from ..config import LiveConfig, OutputConfig
from ..errors import OutputError
from ..media import _reason
from ..stages import END, Pipeline, Stopped
from ..types import Frame
from .backoff import Backoff
from .covered import CoveredFrame
from .metrics import StreamMetrics
from .redact import redact_text, redact_url

log = logging.getLogger(__name__)

RTP_TIME_BASE = Fraction(1, 90000)
_DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322}


def _even(image: np.ndarray) -> np.ndarray:
    """Crop to even width and height (yuv420p needs them)."""
    h, w = image.shape[:2]
    if h % 2 or w % 2:
        image = image[: h - h % 2, : w - w % 2]
    return np.ascontiguousarray(image)


class Sink(ABC):
    """One output. ``write`` is called from the sink's own thread only."""

    name: str = "sink"
    measure_latency = True  # capture->write latency is recorded for this output

    @abstractmethod
    def write(self, frame: CoveredFrame, t_out: float) -> bool:
        """Output ``frame`` at output time ``t_out`` (``time.monotonic()``); False if dropped."""

    @abstractmethod
    def close(self) -> None:
        """Finish the output (flush the encoder, close the connection or file)."""


def x264_options(cfg: LiveConfig, fps: float) -> dict[str, str]:
    """Low-latency libx264 settings: no B-frames, no lookahead, a short GOP."""
    gop = max(1, int(round(cfg.gop_seconds * fps)))
    opts = {
        "preset": cfg.preset,
        "tune": "zerolatency",
        "crf": str(cfg.crf),
        "bf": "0",
        "g": str(gop),
        "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:repeat-headers=1",
    }
    if cfg.max_bitrate:
        opts["maxrate"] = str(cfg.max_bitrate)
        opts["bufsize"] = str(cfg.max_bitrate)  # about one second of VBV buffer
    return opts


class RtspPublisher(Sink):
    """Publish to an RTSP server (ANNOUNCE/RECORD over TCP), reconnecting with backoff.

    While disconnected, frames are dropped (counted) and a connection is retried when the backoff
    delay is over: the pipeline never waits for the server. Before each attempt the server's TCP
    port is probed with a plain socket (cheap, with a timeout), because PyAV holds the GIL during
    the RTSP handshake.
    """

    name = "rtsp"

    def __init__(self, url: str, fps: float, cfg: LiveConfig, metrics: StreamMetrics) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("rtsp", "rtsps") or not parts.hostname:
            raise OutputError(f"not an RTSP URL: {redact_url(url)}")
        self.url = url
        self.label = redact_url(url)
        self.fps = fps
        self.cfg = cfg
        self.metrics = metrics
        self.backoff = Backoff(cfg.reconnect_initial_s, cfg.reconnect_max_s)
        self._addr = (parts.hostname, parts.port or _DEFAULT_PORTS[parts.scheme])
        self._out = None
        self._stream = None
        self._size: tuple[int, int] | None = None
        self._t0 = 0.0
        self._last_pts = -1
        self._retry_at = 0.0
        self._failed_since: float | None = None
        self.frames_written = 0

    def _connect(self, width: int, height: int) -> None:
        import av

        with socket.create_connection(self._addr, timeout=min(2.0, self.cfg.open_timeout_s)):
            pass  # the server is listening: the RTSP handshake will not hang on connect
        options = {"rtsp_transport": "tcp", "timeout": str(int(self.cfg.open_timeout_s * 1e6))}
        out = av.open(self.url, "w", format="rtsp", options=options, timeout=self.cfg.open_timeout_s)
        try:
            stream = out.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(1001),
                                    options=x264_options(self.cfg, self.fps))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.codec_context.time_base = RTP_TIME_BASE
            stream.time_base = RTP_TIME_BASE
            stream.codec_context.max_b_frames = 0
            out.start_encoding()  # the RTSP handshake: ANNOUNCE, SETUP, RECORD
        except BaseException:
            self._close_quietly(out)
            raise
        self._out, self._stream = out, stream
        self._t0 = time.monotonic()
        self._last_pts = -1

    @staticmethod
    def _close_quietly(out) -> None:  # type: ignore[no-untyped-def]
        try:
            out.close()
        except Exception:  # noqa: BLE001 - the connection is being dropped anyway
            pass

    def _fail(self, what: str, exc: BaseException) -> None:
        self.metrics.add("output_errors")
        delay = self.backoff.next_delay()
        self._retry_at = time.monotonic() + delay
        if self._failed_since is None:
            self._failed_since = time.monotonic()
        log.warning("output %s: %s (%s); retrying in %.1f s", self.label, what, redact_text(_reason(exc)), delay)
        if self._out is not None:
            out, self._out, self._stream = self._out, None, None
            self._close_quietly(out)

    def write(self, frame: CoveredFrame, t_out: float) -> bool:
        import av

        image = _even(frame.image)
        if self._size is None:
            self._size = (image.shape[1], image.shape[0])
        if self._out is None:
            if time.monotonic() < self._retry_at:
                return False
            try:
                self._connect(*self._size)
            except Exception as exc:  # noqa: BLE001 - any connection failure: retry later
                self._fail("cannot publish", exc)
                return False
            self.metrics.add("output_connects")
            if self._failed_since is None:
                log.info("output %s: publishing", self.label)
            else:
                log.warning("output %s: publishing again after %.1f s", self.label, time.monotonic() - self._failed_since)
                self._failed_since = None
            self.backoff.reset()
        pts = int(round((t_out - self._t0) / RTP_TIME_BASE))
        pts = max(pts, self._last_pts + 1)
        try:
            vf = av.VideoFrame.from_ndarray(image, format="rgb24")
            vf.pts, vf.time_base = pts, RTP_TIME_BASE
            for packet in self._stream.encode(vf):  # type: ignore[union-attr]
                self._out.mux(packet)  # type: ignore[union-attr]
        except Exception as exc:  # noqa: BLE001 - server gone, network error: reconnect
            self._fail("publishing failed", exc)
            return False
        self._last_pts = pts
        self.frames_written += 1
        return True

    def close(self) -> None:
        out, self._out = self._out, None
        if out is None:
            return
        try:
            for packet in self._stream.encode(None):  # type: ignore[union-attr]
                out.mux(packet)
        except Exception:  # noqa: BLE001 - flushing into a dead connection
            pass
        self._close_quietly(out)


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
