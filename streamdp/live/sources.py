"""Live inputs: network streams, files at their native rate, cameras (through an injectable opener).

A *capture* is one open connection or device (``Capture``: ``read()`` one RGB frame, ``close()``).
An *opener* makes a fresh capture (``Callable[[], Capture]``). ``LiveSource`` owns an opener and a
thread: it reads frames into a one-slot latest-frame buffer (stale frames are overwritten and
counted, never queued) and, when the input fails or ends, reconnects with exponential backoff,
logging one clear line each time. A file ends the stream at its end (unless looped).

Cameras: ``camera_opener(device, size, fps)`` picks V4L2 through PyAV (``/dev/videoN`` or ``N``),
OpenCV when this PyAV build has no V4L2, FFmpeg's lavfi (``lavfi:testsrc=size=640x360:rate=25``),
or a video file played at its native rate. Tests inject their own opener.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from ..config import LiveConfig
from ..decode import DEFAULT_FPS, decode_frames, error_reason, stream_fps, to_rgb
from ..errors import InputError
from .backoff import Backoff
from .metrics import StreamMetrics
from .redact import redact_text, redact_url
from .slot import LatestSlot

log = logging.getLogger(__name__)

NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "srt", "udp", "tcp", "rtp")
SourceKind = Literal["network", "file", "camera"]


@dataclass
class Captured:
    """A decoded input frame and when it was captured (``time.monotonic()``)."""

    image: np.ndarray  # HxWx3 uint8 RGB
    t_capture: float
    seq: int  # 0-based count of frames read from this source (across reconnects)


class Capture(Protocol):
    """One open input. ``read`` returns None at the end of the stream and raises on errors."""

    fps: float | None

    def read(self) -> np.ndarray | None: ...

    def close(self) -> None: ...


Opener = Callable[[], Capture]


class PyAVCapture:
    """An input opened with PyAV (network URL, file, lavfi graph, V4L2 device).

    ``realtime``: pace frames at their timestamps (a file or a lavfi graph played like a camera).
    Packets that fail to decode (a stream joined between key frames) are skipped and counted.
    """

    def __init__(
        self,
        target: str,
        *,
        format: str | None = None,
        options: dict[str, str] | None = None,
        open_timeout: float = 5.0,
        read_timeout: float = 5.0,
        realtime: bool = False,
    ) -> None:
        import av

        self.target = target
        self.realtime = realtime
        self.bad_packets = 0
        self._container = av.open(
            target, format=format, options=options or {}, timeout=(open_timeout, read_timeout),
            metadata_errors="ignore",
        )
        try:
            videos = self._container.streams.video
            if not videos:
                raise InputError(f"no video stream in {redact_url(target)}")
            self._stream = videos[0]
            ctx = self._stream.codec_context
            # Slice threads only: frame threading would delay every frame by thread_count frames.
            ctx.thread_type = "SLICE"
            self._ctx = ctx
            st = self._stream
            rate = stream_fps(st, hi=240.0)
            self.fps = float(rate) if rate else None
            self.time_base: Fraction | None = st.time_base
            self._frames = self._decode()
        except BaseException:
            self._container.close()
            raise
        self._t0: float | None = None
        self._pts0: int | None = None
        self._last_pts: int | None = None

    def _decode(self) -> Iterator[Any]:
        # A demuxer error is raised (demux_recoveries=0): the source reconnects.
        return decode_frames(self._container, self._stream, on_bad_packet=self._bad_packet,
                             label=redact_url(self.target))

    def _bad_packet(self, exc: BaseException) -> None:
        self.bad_packets += 1

    def read(self) -> np.ndarray | None:
        frame = next(self._frames, None)
        if frame is None:
            return None
        if self.realtime:
            self._pace(frame)
        return to_rgb(frame)

    def _pace(self, frame: Any) -> None:
        pts = frame.pts
        if pts is None or self.time_base is None:
            step = 1.0 / (self.fps or float(DEFAULT_FPS))
            pts_s = 0.0 if self._last_pts is None else self._last_pts + step
        else:
            pts_s = float(pts * self.time_base)
        now = time.monotonic()
        if self._t0 is None or self._pts0 is None:
            self._t0, self._pts0 = now, pts_s  # type: ignore[assignment]
        self._last_pts = pts_s  # type: ignore[assignment]
        due = self._t0 + (pts_s - self._pts0)  # type: ignore[operator]
        if due - now > 5.0 or due - now < -1.0:  # a timestamp jump: re-anchor instead of stalling
            self._t0, self._pts0 = now, pts_s  # type: ignore[assignment]
        elif due > now:
            time.sleep(due - now)

    def close(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            try:
                container.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                log.debug("closing %s failed", redact_url(self.target), exc_info=True)


class OpenCVCapture:
    """A camera through OpenCV (``cv2.VideoCapture``), for PyAV builds without V4L2."""

    def __init__(self, device: int | str, size: tuple[int, int] | None = None, fps: float | None = None) -> None:
        import cv2

        self._cap = cv2.VideoCapture(device)
        if not self._cap.isOpened():
            self._cap.release()
            raise InputError(f"cannot open camera {device}")
        if size:
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
        if fps:
            self._cap.set(cv2.CAP_PROP_FPS, fps)
        reported = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = (reported if 0.5 <= reported <= 240 else None) or fps

    def read(self) -> np.ndarray | None:
        import cv2

        ok, bgr = self._cap.read()
        if not ok or bgr is None:
            return None
        return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))

    def close(self) -> None:
        self._cap.release()


# ----------------------------------------------------------------------------------- openers


def is_network(spec: str) -> bool:
    return "://" in spec and spec.split("://", 1)[0].lower() in NETWORK_SCHEMES


def network_options(url: str, cfg: LiveConfig) -> dict[str, str]:
    """FFmpeg options for a low-latency network input (socket timeouts, no input buffering)."""
    opts = {
        "fflags": "nobuffer",
        "flags": "low_delay",
        "analyzeduration": "1000000",
        "rw_timeout": str(int(cfg.read_timeout_s * 1e6)),
    }
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("rtsp", "rtsps"):
        opts["rtsp_transport"] = cfg.transport
        opts["timeout"] = str(int(cfg.read_timeout_s * 1e6))
        del opts["rw_timeout"]  # the RTSP demuxer has its own socket timeout
    return opts


def network_opener(url: str, cfg: LiveConfig) -> Opener:
    options = network_options(url, cfg)
    return lambda: PyAVCapture(url, options=options, open_timeout=cfg.open_timeout_s, read_timeout=cfg.read_timeout_s)


def file_opener(path: str | Path) -> Opener:
    """A video file played at its native frame rate (for demos and tests)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"input not found: {p}")
    return lambda: PyAVCapture(str(p), realtime=True, open_timeout=30.0, read_timeout=30.0)


def _has_v4l2() -> bool:
    import av

    return any("v4l2" in name.split(",") for name in av.formats_available)


def camera_opener(device: int | str, size: tuple[int, int] | None = None, fps: float | None = None) -> Opener:
    """The default camera opener: V4L2 (PyAV, else OpenCV), ``lavfi:GRAPH``, or a video file."""
    spec = str(device)
    if spec.startswith("lavfi:"):
        graph = spec[len("lavfi:"):]
        return lambda: PyAVCapture(graph, format="lavfi", realtime=True)
    if spec.isdigit() or spec.startswith("/dev/"):
        path = f"/dev/video{spec}" if spec.isdigit() else spec
        if _has_v4l2():
            options: dict[str, str] = {}
            if size:
                options["video_size"] = f"{size[0]}x{size[1]}"
            if fps:
                options["framerate"] = f"{fps:g}"
            return lambda: PyAVCapture(path, format="v4l2", options=options, read_timeout=5.0)
        index: int | str = int(spec) if spec.isdigit() else spec
        return lambda: OpenCVCapture(index, size, fps)
    return file_opener(spec)


# ----------------------------------------------------------------------------------- source


class LiveSource:
    """One input read on its own thread into a latest-frame slot, reconnecting with backoff.

    ``kind``: ``network`` and ``camera`` inputs reconnect forever (until stopped); a ``file``
    ends the stream at its end (or starts over with ``loop``), and a file that cannot be opened
    is an error at once.
    """

    def __init__(
        self,
        label: str,
        opener: Opener,
        kind: SourceKind,
        metrics: StreamMetrics,
        backoff: Backoff | None = None,
        loop: bool = False,
    ) -> None:
        self.label = redact_url(label)
        self.opener = opener
        self.kind = kind
        self.metrics = metrics
        self.backoff = backoff or Backoff()
        self.loop = loop
        self.slot: LatestSlot[Captured] = LatestSlot()
        self.fps: float | None = None
        self.opened = threading.Event()  # set on the first successful open
        self.ended = threading.Event()  # set when no more frames will come
        self.error: BaseException | None = None
        self._seq = 0

    def run(self, stop: threading.Event) -> None:
        """The source thread's body: read, reconnect, until ``stop`` or the end of a file."""
        try:
            self._run(stop)
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            self.metrics.set_connected(False)
            self.ended.set()
            self.slot.close()

    def _open(self, stop: threading.Event) -> Capture | None:
        while not stop.is_set():
            try:
                return self.opener()
            except Exception as exc:  # noqa: BLE001 - any failure to open is retried (or fatal for files)
                self.metrics.add("input_errors")
                reason = redact_text(error_reason(exc))
                if type(exc).__name__ == "ProtocolNotFoundError":  # retrying cannot help
                    raise InputError(f"this FFmpeg build cannot read {self.label}: {reason}") from None
                if self.kind == "file" or (self.kind == "camera" and not self.opened.is_set()):
                    raise InputError(f"cannot open input {self.label}: {reason}") from None
                delay = self.backoff.next_delay()
                log.warning("input %s: cannot connect (%s); retrying in %.1f s", self.label, reason, delay)
                if stop.wait(delay):
                    return None
        return None

    def _run(self, stop: threading.Event) -> None:
        lost_at: float | None = None
        while not stop.is_set():
            cap = self._open(stop)
            if cap is None:
                return
            self.fps = self.fps or getattr(cap, "fps", None)
            self.metrics.add("input_connects")
            self.metrics.set_connected(True)
            if lost_at is None:
                log.info("input %s: connected (%s fps)", self.label, f"{self.fps:.2f}" if self.fps else "unknown")
            else:
                log.warning("input %s: reconnected after %.1f s; resuming", self.label, time.monotonic() - lost_at)
            self.opened.set()
            reason = "end of stream"
            try:
                while not stop.is_set():
                    image = cap.read()
                    if image is None:
                        break
                    captured = Captured(image, time.monotonic(), self._seq)
                    self._seq += 1
                    self.metrics.add("frames_in")
                    if self.slot.put(captured):
                        self.metrics.add("frames_dropped_stale")
                    self.backoff.reset()
            except Exception as exc:  # noqa: BLE001 - a read failure means reconnect
                reason = redact_text(error_reason(exc)) or type(exc).__name__
            finally:
                self.metrics.set_connected(False)
                cap.close()
            if stop.is_set():
                return
            if self.kind == "file":
                if reason != "end of stream":
                    raise InputError(f"reading {self.label} failed: {reason}")
                if not self.loop:
                    log.info("input %s: end of file", self.label)
                    return
                continue
            self.metrics.add("input_errors")
            lost_at = time.monotonic()
            delay = self.backoff.next_delay()
            log.warning(
                "input %s: lost (%s); reconnecting in %.1f s (the output repeats the last anonymized frame)",
                self.label, reason, delay,
            )
            if stop.wait(delay):
                return


def open_input(spec: str, cfg: LiveConfig, metrics: StreamMetrics, loop: bool = False) -> LiveSource:
    """The ``LiveSource`` for a relay input: a network URL, a file (native rate), or ``lavfi:``."""
    backoff = Backoff(cfg.reconnect_initial_s, cfg.reconnect_max_s)
    if is_network(spec):
        return LiveSource(spec, network_opener(spec, cfg), "network", metrics, backoff)
    if spec.startswith("lavfi:"):
        return LiveSource(spec, camera_opener(spec), "camera", metrics, backoff)
    if "://" in spec:
        raise InputError(f"unsupported input URL scheme: {redact_url(spec)} (use one of {', '.join(NETWORK_SCHEMES)})")
    return LiveSource(spec, file_opener(spec), "file", metrics, backoff, loop=loop)


def camera_source(
    device: int | str,
    cfg: LiveConfig,
    metrics: StreamMetrics,
    opener: Opener | None = None,
) -> LiveSource:
    """A camera ``LiveSource``; ``opener`` replaces the device access (tests, demos)."""
    backoff = Backoff(cfg.reconnect_initial_s, cfg.reconnect_max_s)
    op = opener or camera_opener(device, cfg.camera_size, cfg.camera_fps)
    return LiveSource(f"camera {device}", op, "camera", metrics, backoff)
