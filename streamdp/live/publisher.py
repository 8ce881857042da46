"""Publishing to RTSP (low-latency H.264, reconnect with backoff) from a child process that the
relay feeds with covered frames over a pipe (why a process: see ``RtspPublisher``)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import struct
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from ..config import LiveConfig
from ..decode import error_reason
from ..errors import OutputError
from ..encode import add_video_stream, low_latency_x264, video_frame
from .backoff import Backoff
from .covered import CoveredFrame
from .metrics import StreamMetrics
from .redact import redact_text, redact_url
from .sinks import RTP_TIME_BASE, Sink, even_size

log = logging.getLogger(__name__)


def x264_options(cfg: LiveConfig, fps: float) -> dict[str, str]:
    """The live section's low-latency libx264 settings (``encode.low_latency_x264``)."""
    return low_latency_x264(cfg.preset, cfg.crf, fps, cfg.gop_seconds, cfg.max_bitrate)


class _RtspSession:
    """One RTSP publishing session with reconnect and backoff: runs inside the publisher process.

    While disconnected, frames are dropped (``write`` returns False) and a connection is retried
    when the backoff delay is over. There is no TCP pre-check: a listen-mode receiver (``ffmpeg
    -rtsp_flags listen``) accepts exactly one connection, and a probe connection would use it up.
    The handshake can block (for up to ``open_timeout_s`` per socket operation), which is harmless
    here: this process does nothing else (see ``RtspPublisher``).
    """

    def __init__(self, url: str, fps: float, cfg: LiveConfig, on_event=None) -> None:  # type: ignore[no-untyped-def]
        self.url = url
        self.label = redact_url(url)
        self.fps = fps
        self.cfg = cfg
        self.on_event = on_event or (lambda event: None)
        self.backoff = Backoff(cfg.reconnect_initial_s, cfg.reconnect_max_s)
        self._out = None
        self._stream = None
        self._size: tuple[int, int] | None = None
        self._t0 = 0.0
        self._last_pts = -1
        self._retry_at = 0.0
        self._failed_since: float | None = None

    def _connect(self, width: int, height: int) -> None:
        import av

        # "timeout" bounds each socket operation of the handshake (connect, each reply), in µs.
        options = {"rtsp_transport": "tcp", "timeout": str(int(self.cfg.open_timeout_s * 1e6))}
        out = av.open(self.url, "w", format="rtsp", options=options)
        try:
            stream = add_video_stream(out, "libx264", Fraction(self.fps).limit_denominator(1001), RTP_TIME_BASE,
                                      (width, height), "yuv420p", x264_options(self.cfg, self.fps))
            stream.codec_context.max_b_frames = 0
            out.start_encoding()  # the RTSP handshake: ANNOUNCE, SETUP, RECORD
        except BaseException:
            _close_quietly(out)
            raise
        self._out, self._stream = out, stream
        self._t0 = time.monotonic()
        self._last_pts = -1

    def _fail(self, what: str, exc: BaseException) -> None:
        self.on_event("error")
        delay = self.backoff.next_delay()
        self._retry_at = time.monotonic() + delay
        if self._failed_since is None:
            self._failed_since = time.monotonic()
        log.warning("output %s: %s (%s); retrying in %.1f s", self.label, what, redact_text(error_reason(exc)), delay)
        if self._out is not None:
            out, self._out, self._stream = self._out, None, None
            _close_quietly(out)

    def write(self, image: np.ndarray, t_out: float) -> bool:
        image = even_size(image)
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
            self.on_event("connect")
            if self._failed_since is None:
                log.info("output %s: publishing", self.label)
            else:
                log.warning("output %s: publishing again after %.1f s", self.label, time.monotonic() - self._failed_since)
                self._failed_since = None
            self.backoff.reset()
        pts = int(round((t_out - self._t0) / RTP_TIME_BASE))
        pts = max(pts, self._last_pts + 1)
        try:
            vf = video_frame(image)
            vf.pts, vf.time_base = pts, RTP_TIME_BASE
            for packet in self._stream.encode(vf):  # type: ignore[union-attr]
                self._out.mux(packet)  # type: ignore[union-attr]
        except Exception as exc:  # noqa: BLE001 - server gone, network error: reconnect
            self._fail("publishing failed", exc)
            return False
        self._last_pts = pts
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
        _close_quietly(out)


def _close_quietly(out) -> None:  # type: ignore[no-untyped-def]
    try:
        out.close()
    except Exception:  # noqa: BLE001 - the connection is being dropped anyway
        pass


# Parent <-> publisher process protocol. Parent -> child: one JSON line (URL, rate, settings: the
# URL may hold credentials, so it never goes on a command line), then frames, each a header
# (magic, width, height, output time) and width*height*3 bytes of RGB. Child -> parent: single
# status bytes: READY once, then for each frame any events (CONNECT, ERROR) and WRITTEN or DROPPED.
_FRAME = struct.Struct("<4sIId")
_MAGIC = b"SDPF"
_READY, _CONNECT, _ERROR, _WRITTEN, _DROPPED = b"R", b"C", b"E", b"W", b"D"


def _write_all(fd: int, data) -> None:  # type: ignore[no-untyped-def]
    view = memoryview(data).cast("B")
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _read_exact(fd: int, n: int) -> bytearray | None:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = os.readv(fd, [view[got:]])
        if k == 0:
            return None
        got += k
    return buf


class RtspPublisher(Sink):
    """Publish to an RTSP server or receiver (ANNOUNCE/RECORD over TCP), reconnecting with backoff.

    The publishing itself (encode, RTSP handshake, mux) runs in a child process
    (``python -m streamdp.live.publisher``, see ``_RtspSession``) fed with the covered frames over a
    pipe. Why a process: PyAV holds the GIL during the RTSP handshake (``avformat_write_header``),
    so an unreachable or silent server would freeze every thread of the relay for up to the
    socket timeout on each retry. The old defence, a TCP probe of the port before each attempt,
    broke listen-mode receivers (``ffmpeg -rtsp_flags listen``, ``av.open(..., rtsp_flags=listen)``):
    they accept one connection, the probe used it and closed it, and every retry was refused. It
    also did not help against a server that accepts TCP but never answers. In a child process the
    handshake may block as long as it likes: here ``write`` never waits more than
    ``STATUS_WAIT_S`` for the child; a frame offered while it is busy connecting is dropped (and
    counted), as is every frame while it is disconnected. Only covered frames reach the child.
    A child that dies or hangs is replaced, with backoff.
    """

    name = "rtsp"
    STATUS_WAIT_S = 0.25  # longest a write waits for the child (a frame's encode is ~10 ms)
    CLOSE_WAIT_S = 1.0  # for the child to flush, send TEARDOWN and exit

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
        # a handshake is a few socket operations, each bounded by open_timeout_s in the child
        self.hung_after_s = 4 * cfg.open_timeout_s + 5.0
        self._proc: subprocess.Popen | None = None
        self._ready = False
        self._pending_since: float | None = None  # a frame was sent, its status not yet back
        self._last_ok = False
        self._retry_at = 0.0
        self.frames_written = 0
        self.child_starts = 0

    # ------------------------------------------------------------------ child process

    def _spawn(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        root = str(Path(__file__).resolve().parents[2])  # the child imports this same streamdp
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "streamdp.live.publisher"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env=env, bufsize=0, close_fds=True,
        )  # stderr inherited: the child's log lines join the relay's
        self.child_starts += 1
        self._ready, self._pending_since = False, None
        level = logging.getLogger("streamdp.live").getEffectiveLevel()
        hello = {"url": self.url, "fps": self.fps, "cfg": self.cfg.model_dump(mode="json"), "log_level": level}
        _write_all(self._proc.stdin.fileno(), (json.dumps(hello) + "\n").encode())  # type: ignore[union-attr]

    def _child_failed(self, what: str) -> None:
        self.metrics.add("output_errors")
        delay = self.backoff.next_delay()
        self._retry_at = time.monotonic() + delay
        log.warning("output %s: %s; restarting it in %.1f s", self.label, what, delay)
        self._kill()

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        self._ready, self._pending_since = False, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(2.0)
        for fh in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError):
                fh.close()  # type: ignore[union-attr]

    def _poll(self, until, timeout: float) -> bool:  # type: ignore[no-untyped-def]
        """Read the child's status bytes until ``until()`` holds or ``timeout``; False if the child died."""
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while True:
            if until():
                return True
            left = deadline - time.monotonic()
            readable, _, _ = select.select([fd], [], [], max(0.0, left))
            if not readable:
                return True  # nothing more yet
            data = os.read(fd, 256)
            if not data:
                return False  # EOF: the child is gone
            for b in data:
                code = bytes((b,))
                if code == _READY:
                    self._ready = True
                elif code == _CONNECT:
                    self.metrics.add("output_connects")
                    self.backoff.reset()
                elif code == _ERROR:
                    self.metrics.add("output_errors")
                elif code in (_WRITTEN, _DROPPED):
                    self._pending_since = None
                    self._last_ok = code == _WRITTEN
                    self.frames_written += self._last_ok

    def write(self, frame: CoveredFrame, t_out: float) -> bool:
        if not isinstance(frame, CoveredFrame):
            raise TypeError(f"live outputs take CoveredFrame values only, not {type(frame).__name__}")
        if self._proc is None:
            if time.monotonic() < self._retry_at:
                return False
            try:
                self._spawn()
            except OSError as exc:
                self._kill()
                self._child_failed(f"cannot start the publisher process ({exc.strerror or exc})")
                return False
        idle = lambda: self._ready and self._pending_since is None  # noqa: E731
        if not self._poll(idle, self.STATUS_WAIT_S):
            self._child_failed(f"the publisher process exited (code {self._proc.poll()})")  # type: ignore[union-attr]
            return False
        if not idle():
            if self._pending_since is not None and time.monotonic() - self._pending_since > self.hung_after_s:
                self._child_failed(f"the publisher process is stuck (no answer for {self.hung_after_s:.0f} s)")
            return False  # still starting, or connecting: this frame is dropped
        image = even_size(frame.image)
        h, w = image.shape[:2]
        try:
            fd = self._proc.stdin.fileno()  # type: ignore[union-attr]
            _write_all(fd, _FRAME.pack(_MAGIC, w, h, t_out))
            _write_all(fd, image)
        except OSError:
            self._child_failed(f"the publisher process exited (code {self._proc.poll()})")  # type: ignore[union-attr]
            return False
        self._pending_since = time.monotonic()
        if not self._poll(lambda: self._pending_since is None, self.STATUS_WAIT_S):
            self._child_failed(f"the publisher process exited (code {self._proc.poll()})")  # type: ignore[union-attr]
            return False
        # no status yet: the child is connecting; this frame goes out if that succeeds
        return self._pending_since is None and self._last_ok

    def close(self) -> None:
        proc = self._proc
        if proc is None:
            return
        with contextlib.suppress(OSError):
            proc.stdin.close()  # type: ignore[union-attr] - EOF: flush, TEARDOWN, exit
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(self.CLOSE_WAIT_S)
        with contextlib.suppress(Exception):
            self._poll(lambda: False, 0.0)  # the last statuses (frames written)
        self._kill()


def _publisher_main() -> int:
    """The publisher process: frames on stdin, status bytes on (the original) stdout."""
    import signal

    from .redact import install_log_redaction

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the relay, which closes our stdin
    status = os.dup(1)
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the status channel
    line = b""
    while not line.endswith(b"\n"):
        chunk = os.read(0, 1)
        if not chunk:
            return 0
        line += chunk
    hello = json.loads(line)
    logging.basicConfig(level=logging.WARNING, format="streamdp: %(levelname)s: %(message)s")
    logging.getLogger("streamdp.live").setLevel(int(hello["log_level"]))
    install_log_redaction()
    events = bytearray()
    codes = {"connect": _CONNECT, "error": _ERROR}
    session = _RtspSession(hello["url"], float(hello["fps"]), LiveConfig(**hello["cfg"]),
                           on_event=lambda e: events.extend(codes[e]))
    try:
        os.write(status, _READY)
        while True:
            header = _read_exact(0, _FRAME.size)
            if header is None:
                break
            magic, w, h, t_out = _FRAME.unpack(header)
            if magic != _MAGIC:
                raise ValueError("publisher: bad frame header")
            data = _read_exact(0, w * h * 3)
            if data is None:
                break
            image = np.frombuffer(data, np.uint8).reshape(h, w, 3)
            ok = session.write(image, t_out)
            events.extend(_WRITTEN if ok else _DROPPED)
            try:
                _write_all(status, bytes(events))
            except BrokenPipeError:
                break
            events.clear()
    finally:
        session.close()
    return 0


if __name__ == "__main__":  # the publisher process (RtspPublisher)
    sys.exit(_publisher_main())
