"""RTSP fixtures for the live tests and the latency benchmark (loopback only, bounded in time).

* ``ServerProc``: streamdp's small RTSP server (``python -m streamdp.live.rtsp_server``) in a child
  process: clients publish a path (ANNOUNCE/RECORD) and others read it. ``stop()`` / ``start()``
  again on the same port simulate a server restart.
* ``Publisher``: a child process that publishes a video file (looped, at its native rate) to an
  RTSP URL, re-encoded with low-latency x264 and each frame *stamped* with its index (a column
  of 32 black/white cells on the left edge, away from the faces: 16 bits and their complement).
  It logs each frame's send time (``time.monotonic()``, one clock for every process on the
  machine) so a reader can measure end-to-end latency from the stamps.
* ``read_stamp`` decodes a stamp (None when absent or damaged, e.g. on a repeated black frame).
* ``Relay``: ``python -m streamdp relay ...`` in a child process.

Run the publisher by hand: ``python tests/rtsp_server.py publish SRC URL --seconds 10``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CELL = 10  # stamp cell side, pixels
BITS = 16
STAMP_X = 2  # left edge of the stamp column
STAMP_Y = 10  # top of the stamp column


def child_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", GLOG_minloglevel="2", TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
        time.sleep(0.05)
    return False


def _terminate(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 5.0) -> int | None:
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


# ------------------------------------------------------------------------------------ stamps


def stamp(image: np.ndarray, index: int) -> None:
    """Write ``index`` (16 bits + complement) as a column of black/white cells, in place."""
    value = index & 0xFFFF
    bits = [(value >> b) & 1 for b in range(BITS)] + [1 - ((value >> b) & 1) for b in range(BITS)]
    for i, bit in enumerate(bits):
        y = STAMP_Y + i * CELL
        image[y : y + CELL, STAMP_X : STAMP_X + CELL] = 255 if bit else 0


def read_stamp(image: np.ndarray) -> int | None:
    """The stamped index, or None when the column is not a valid stamp."""
    gray = image[..., 1] if image.ndim == 3 else image
    bits = []
    for i in range(2 * BITS):
        y = STAMP_Y + i * CELL
        cell = gray[y + 3 : y + CELL - 3, STAMP_X + 3 : STAMP_X + CELL - 3].astype(np.float32)
        m = float(cell.mean())
        if 70 < m < 185:  # neither black nor white: no stamp here
            return None
        bits.append(1 if m >= 128 else 0)
    value = sum(bit << b for b, bit in enumerate(bits[:BITS]))
    check = sum(bit << b for b, bit in enumerate(bits[BITS:]))
    return value if value ^ check == 0xFFFF else None


# --------------------------------------------------------------------------------- processes


class ServerProc:
    """The RTSP server in a child process (``port=0`` picks a free one; kept across restarts)."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> ServerProc:
        cmd = [sys.executable, "-m", "streamdp.live.rtsp_server", "--host", "127.0.0.1", "--port", str(self.port),
               "--exit-with-parent"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                     text=True, env=child_env(), cwd=REPO)
        line: list[str] = []
        t = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        t.start()
        t.join(timeout)
        if not line or "port=" not in line[0]:
            self.stop()
            raise RuntimeError(f"RTSP server did not start on port {self.port}")
        self.port = int(line[0].split("port=")[1].split()[0])
        return self

    def url(self, path: str, userinfo: str = "") -> str:
        return f"rtsp://{userinfo + '@' if userinfo else ''}127.0.0.1:{self.port}/{path}"

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        _terminate(proc, signal.SIGKILL)
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> ServerProc:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Publisher:
    """Publishes ``src`` (looped, native rate, stamped) to ``url`` from a child process."""

    def __init__(self, src: Path, url: str, log_path: Path, seconds: float = 30.0, start_index: int = 0) -> None:
        self.cmd = [sys.executable, str(Path(__file__).resolve()), "publish", str(src), url,
                    "--seconds", str(seconds), "--log", str(log_path), "--start-index", str(start_index)]
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> Publisher:
        self.log_path.unlink(missing_ok=True)  # wait_publishing() watches it
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     text=True, env=child_env(), cwd=REPO)
        return self

    def wait_publishing(self, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log_path.exists() and self.log_path.stat().st_size > 0:
                return True
            if self.proc is not None and self.proc.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def sent(self) -> dict[int, float]:
        """index -> send time, as logged so far."""
        out: dict[int, float] = {}
        if self.log_path.exists():
            for line in self.log_path.read_text().splitlines():
                with contextlib.suppress(ValueError):
                    i, t = line.split()
                    out[int(i)] = float(t)
        return out

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        _terminate(proc, signal.SIGKILL)
        if proc is not None and proc.stderr is not None:
            proc.stderr.close()


class Relay:
    """``python -m streamdp relay ARGS`` (or ``live``) in a child process; its output goes to files."""

    def __init__(self, args: list[str], workdir: Path, command: str = "relay", max_seconds: float = 170.0) -> None:
        # --duration bounds the child even if the test process dies without stopping it
        self.cmd = [sys.executable, "-m", "streamdp", command, *args, "--duration", str(max_seconds)]
        self.stderr_path = workdir / "relay.stderr"
        self.stdout_path = workdir / "relay.stdout"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Relay:
        self._err = open(self.stderr_path, "w")  # noqa: SIM115 - closed in stop()
        self._out = open(self.stdout_path, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(self.cmd, stdout=self._out, stderr=self._err, stdin=subprocess.DEVNULL,
                                     env=child_env(), cwd=REPO)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10.0) -> tuple[int | None, float]:
        """Send ``sig``; returns (exit code, seconds it took to exit)."""
        t0 = time.monotonic()
        rc = _terminate(self.proc, sig, timeout)
        took = time.monotonic() - t0
        for fh in (getattr(self, "_err", None), getattr(self, "_out", None)):
            if fh is not None:
                fh.close()
        return rc, took

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""


def open_reader(url: str, timeout: float = 20.0, read_timeout: float = 5.0):  # type: ignore[no-untyped-def]
    """Open an RTSP stream with PyAV, retrying until it is published (bounded by ``timeout``)."""
    import av

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            return av.open(url, options={"rtsp_transport": "tcp", "timeout": str(int(read_timeout * 1e6)),
                                         "fflags": "nobuffer", "flags": "low_delay"},
                           timeout=(read_timeout, read_timeout))
        except Exception as exc:  # noqa: BLE001 - not published yet: retry
            last = exc
            time.sleep(0.2)
    raise TimeoutError(f"could not open {url} within {timeout:.0f} s: {last}")


def read_frames(url: str, seconds: float, open_timeout: float = 20.0) -> Iterator[tuple[float, np.ndarray]]:
    """(receive time, RGB image) for every frame decoded from ``url`` during ``seconds``.

    The stream may end (publisher gone) before that; decode errors before the first key frame are
    skipped.
    """
    import av

    container = open_reader(url, open_timeout)
    try:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "SLICE"
        deadline = time.monotonic() + seconds
        for packet in container.demux(stream):
            try:
                frames = stream.codec_context.decode(packet if packet.size else None)
            except av.InvalidDataError:
                continue
            for f in frames:
                yield time.monotonic(), f.to_ndarray(format="rgb24")
            if time.monotonic() >= deadline:
                return
    except (av.FFmpegError, OSError):
        return  # the stream ended or broke: the caller judges what it got
    finally:
        container.close()


# ------------------------------------------------------------------------------- publisher


def read_clip(src: Path) -> tuple[list[np.ndarray], float]:
    """Every frame of ``src`` (RGB) and its fps: what a camera plays in a loop."""
    import av

    with av.open(str(src)) as inp:
        vin = inp.streams.video[0]
        fps = float(vin.average_rate or 25)
        frames = [f.to_ndarray(format="rgb24") for f in inp.decode(vin)]
    return frames, fps


CAMERA_TB = Fraction(1, 90000)


def add_camera_stream(out: Any, fps: float, size: tuple[int, int]) -> Any:
    """The camera's low-latency x264 stream in ``out`` (``size``: even width, height)."""
    from streamdp.config import LiveConfig
    from streamdp.live.publisher import x264_options

    stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001),
                            options=x264_options(LiveConfig(gop_seconds=0.5, crf=20), fps))
    stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
    stream.codec_context.time_base = CAMERA_TB
    return stream


def camera_frame(frames: list[np.ndarray], index: int, i: int, fps: float) -> Any:
    """The ``i``-th frame sent, showing the clip's frame ``index`` (looped) stamped with
    ``index``, cut to even sides, timed at ``i / fps``."""
    import av

    image = frames[index % len(frames)].copy()
    stamp(image, index)
    h, w = image.shape[:2]
    vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[: h - h % 2, : w - w % 2]), format="rgb24")
    vf.pts, vf.time_base = int(round(i / fps / CAMERA_TB)), CAMERA_TB
    return vf


def publish(src: Path, url: str, seconds: float, log_path: Path | None, start_index: int = 0) -> int:
    import av

    frames, fps = read_clip(src)
    h, w = frames[0].shape[:2]
    out = av.open(url, "w", format="rtsp", options={"rtsp_transport": "tcp", "timeout": "5000000"}, timeout=10)
    stream = add_camera_stream(out, fps, (w - w % 2, h - h % 2))
    out.start_encoding()
    log = open(log_path, "w", buffering=1) if log_path else None  # noqa: SIM115 - line-buffered, closed below
    t0 = time.monotonic()
    i = 0
    try:
        while time.monotonic() - t0 < seconds:
            due = t0 + i / fps
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            index = start_index + i
            for packet in stream.encode(camera_frame(frames, index, i, fps)):
                out.mux(packet)
            if log:
                log.write(f"{index} {time.monotonic():.6f}\n")
            i += 1
        for packet in stream.encode(None):
            out.mux(packet)
    finally:
        out.close()
        if log:
            log.close()
    return 0


# -- a listen-mode RTSP receiver (the relay connects to it): FFmpeg's CLI, else PyAV ---------------
FFMPEG = shutil.which("ffmpeg")


def listening(port: int) -> bool:
    """Is something listening on 127.0.0.1:port? Read from /proc, NOT by connecting: a listen-mode
    receiver takes exactly one connection, and a test probe would use it up."""
    want = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[1].endswith(want) and fields[3] == "0A":
                return True
    return False


def wait_until(cond, timeout: float, step: float = 0.05) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


PYAV_LISTEN_RECEIVER = r"""
import sys, av
url, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
# listen_timeout (s) must be given: with PyAV's FFmpeg the default (-1, "forever") fails at once
# with "Numerical result out of range"
c = av.open(url, options={"rtsp_flags": "listen", "listen_timeout": "30"}, timeout=(30, 10))
got = 0
with open(out, "wb") as fh:
    for f in c.decode(c.streams.video[0]):
        if got == 0:
            print(f"Video: h264, {f.width}x{f.height}", file=sys.stderr, flush=True)
        fh.write(f.to_ndarray(format="rgb24").tobytes())
        got += 1
        if got >= n:
            break
c.close()
"""


class ListenReceiver:
    """An RTSP receiver in listen mode (the publisher connects to it), in a subprocess.

    The ``ffmpeg`` CLI when installed (an FFmpeg build other than PyAV's), else PyAV. It keeps the
    first ``frames`` decoded frames (rgb24, in a file) and exits.
    """

    def __init__(self, port: int, workdir: Path, frames: int, tag: str = "rx") -> None:
        self.port = port
        self.url = f"rtsp://127.0.0.1:{port}/live.sdp"
        self.n = frames
        self.out = workdir / f"{tag}.rgb"
        self.log = workdir / f"{tag}.log"
        self.tool = "ffmpeg" if FFMPEG else "pyav"
        self.proc: subprocess.Popen | None = None

    def start(self) -> ListenReceiver:
        if FFMPEG:
            cmd = [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "info", "-rtsp_flags", "listen",
                   "-i", self.url, "-frames:v", str(self.n), "-f", "rawvideo", "-pix_fmt", "rgb24", "-y", str(self.out)]
        else:
            cmd = [sys.executable, "-c", PYAV_LISTEN_RECEIVER, self.url, str(self.out), str(self.n)]
        self._log = open(self.log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                                     env=child_env())
        assert wait_until(lambda: listening(self.port) or self.proc.poll() is not None, 20), "receiver did not listen"
        assert self.proc.poll() is None, self.text()
        return self

    def wait(self, timeout: float) -> int | None:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        _terminate(self.proc, signal.SIGKILL)
        if getattr(self, "_log", None):
            self._log.close()

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def frames(self) -> tuple[tuple[int, int] | None, list[np.ndarray]]:
        m = re.search(r"Video: h264.*?(\d{2,5})x(\d{2,5})", self.text())
        if not m:
            return None, []
        w, h = int(m.group(1)), int(m.group(2))
        data = np.fromfile(self.out, np.uint8) if self.out.exists() else np.zeros(0, np.uint8)
        n = data.size // (w * h * 3)
        return (w, h), list(data[: n * w * h * 3].reshape(n, h, w, 3))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="publish a stamped, looped video file to an RTSP URL")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("publish")
    p.add_argument("src", type=Path)
    p.add_argument("url")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--log", type=Path)
    p.add_argument("--start-index", type=int, default=0)
    args = parser.parse_args(argv)
    return publish(args.src, args.url, args.seconds, args.log, args.start_index)


if __name__ == "__main__":
    sys.exit(main())
