"""``streamdp relay`` against RTSP peers that are not streamdp's own (loopback only, bounded).

* an FFmpeg listen-mode receiver (``ffmpeg -rtsp_flags listen``; PyAV in a subprocess when the
  ``ffmpeg`` CLI is absent): it accepts exactly ONE connection, so a publisher that probes the port
  first never gets through (issue #12). The received frames must show the face covered.
* the same receiver stopping mid-stream and a new one coming back on the same port: the relay
  publishes again.
* ``--serve`` read by two (or three) different clients at once: PyAV, GStreamer ``rtspsrc``
  (``gst-launch-1.0``), the ``ffmpeg`` CLI.
* publishing to a GStreamer RTSP server in RECORD mode (gst-rtsp-server, through the system
  python's ``gi``, in a subprocess).

A peer tool that is not installed skips its test with the reason (``.ci/run`` installs them).

"Covered" here: each received frame is matched to its source frame by the background (left of
the face), and inside the face box the detector found on that source frame, the high-pass
correlation between received and source pixels must be low (a pixelated face keeps its mean
colour but none of its detail; the raw face correlates ~1).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

import rtsp_server as rs

SAMPLE = rs.REPO / "samples" / "WolfgangLanger_Pexels.mp4"  # 640x360, 23.98 fps, one face on the right
SIZE = (640, 360)
FFMPEG = shutil.which("ffmpeg")
GST_LAUNCH = shutil.which("gst-launch-1.0")
SYSTEM_PYTHON = "/usr/bin/python3"
MAX_FACE_CORR = 0.4  # high-pass correlation in the face box, received vs source (raw: ~0.9+)
MIN_BG_CORR = 0.6  # the same outside the face: the match with the source frame is real

pytestmark = pytest.mark.timeout(60)


# ------------------------------------------------------------------------------------ helpers


def _hp(gray: np.ndarray) -> np.ndarray:
    g = gray.astype(np.float32)
    h = (g - cv2.GaussianBlur(g, (0, 0), 2.0)).ravel()
    return h - h.mean()


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    ha, hb = _hp(a), _hp(b)
    d = float(np.sqrt((ha * ha).sum() * (hb * hb).sum()))
    return float((ha * hb).sum() / d) if d > 0 else 0.0


class SourceFaces:
    """The sample's frames, their grey backgrounds, and the detector's face box per frame (lazy)."""

    def __init__(self) -> None:
        with av.open(str(SAMPLE)) as c:
            self.frames = [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]
        self.gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in self.frames]
        self.small = np.stack([cv2.resize(g[:, :300], (75, 90), interpolation=cv2.INTER_AREA) for g in self.gray])
        self._boxes: dict[int, tuple[int, int, int, int] | None] = {}
        self._det = None

    def box(self, i: int) -> tuple[int, int, int, int] | None:
        if i not in self._boxes:
            if self._det is None:
                from streamdp.config import DetectConfig
                from streamdp.detect import FaceDetector

                self._det = FaceDetector(DetectConfig())
            d = self._det.detect(self.frames[i], i)
            if len(d) == 0 or float(d.scores.max()) < 0.8:
                self._boxes[i] = None
            else:
                x0, y0, x1, y1 = (float(v) for v in d.boxes[int(np.argmax(d.scores))])
                dx, dy = 0.15 * (x1 - x0), 0.15 * (y1 - y0)
                self._boxes[i] = (int(x0 + dx), int(y0 + dy), int(x1 - dx), int(y1 - dy))
        return self._boxes[i]

    def match(self, image: np.ndarray) -> int:
        g = cv2.resize(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[:, :300], (75, 90), interpolation=cv2.INTER_AREA)
        err = ((self.small.astype(np.float32) - g.astype(np.float32)) ** 2).mean(axis=(1, 2))
        return int(np.argmin(err))

    def close(self) -> None:
        if self._det is not None:
            self._det.close()


@pytest.fixture(scope="module")
def source() -> SourceFaces:
    if not SAMPLE.is_file():
        pytest.skip(f"needs the bundled clip {SAMPLE}")
    s = SourceFaces()
    yield s
    s.close()


def assert_faces_covered(frames: list[np.ndarray], source: SourceFaces, min_checked: int = 20) -> None:
    """Every received frame: its face box does not show the source's face (see the module doc)."""
    checked = 0
    worst = 0.0
    for k, img in enumerate(frames):
        assert img.shape[:2] == (SIZE[1], SIZE[0])
        i = source.match(img)
        gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        bg = _corr(gray[20:340, 20:280], source.gray[i][20:340, 20:280])
        box = source.box(i)
        if box is None or bg < MIN_BG_CORR:
            continue  # no confident face on that source frame, or no sure match: not judged
        x0, y0, x1, y1 = box
        # the source frame itself, and its neighbours (the match can be off by a frame or two)
        c = max(_corr(gray[y0:y1, x0:x1], source.gray[j][y0:y1, x0:x1])
                for j in range(max(0, i - 2), min(len(source.frames), i + 3)))
        worst = max(worst, c)
        assert c < MAX_FACE_CORR, f"received frame {k} (source {i}) shows the face: corr {c:.2f}"
        checked += 1
    assert checked >= min_checked, f"only {checked} of {len(frames)} frames could be judged"


def _listening(port: int) -> bool:
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


def _wait(cond, timeout: float, step: float = 0.05) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


PYAV_RECEIVER = r"""
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
            cmd = [sys.executable, "-c", PYAV_RECEIVER, self.url, str(self.out), str(self.n)]
        self._log = open(self.log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                                     env=rs.child_env())
        assert _wait(lambda: _listening(self.port) or self.proc.poll() is not None, 20), "receiver did not listen"
        assert self.proc.poll() is None, self.text()
        return self

    def wait(self, timeout: float) -> int | None:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        rs._terminate(self.proc, signal.SIGKILL)
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


def _report(path: Path) -> dict:
    return json.loads(path.read_text())["streams"][0] if path.exists() else {}


# -------------------------------------------------------------------------------------- tests


def test_relay_publishes_to_an_ffmpeg_listen_mode_receiver(source: SourceFaces, tmp_path: Path) -> None:
    port = rs.free_port()
    rx = ListenReceiver(port, tmp_path, frames=60).start()
    report = tmp_path / "relay.json"
    relay = rs.Relay([str(SAMPLE), f"rtsp://127.0.0.1:{port}/live.sdp", "-m", "pixelate", "--report", str(report)],
                     tmp_path, max_seconds=40).start()
    try:
        rc = rx.wait(30)
        relay.stop(signal.SIGINT)
    finally:
        relay.stop(signal.SIGKILL)
        rx.stop()
    assert rc == 0, f"{rx.tool} receiver rc {rc}: {rx.text()[-1500:]}\nrelay: {relay.stderr[-1500:]}"
    size, frames = rx.frames()
    assert size == SIZE, rx.text()[-1500:]
    assert len(frames) >= 60
    assert_faces_covered(frames, source)
    counts = _report(report).get("counts", {})
    # one connection, the first: no probe used up the receiver (the errors after it left are expected)
    assert counts.get("output_connects") == 1, counts
    assert "cannot publish" not in relay.stderr, relay.stderr[-1500:]


def test_relay_reconnects_when_a_listen_receiver_stops_and_another_comes_back(
    source: SourceFaces, tmp_path: Path
) -> None:
    port = rs.free_port()
    rx1 = ListenReceiver(port, tmp_path, frames=30, tag="rx1").start()
    report = tmp_path / "relay.json"
    relay = rs.Relay([str(SAMPLE), f"rtsp://127.0.0.1:{port}/live.sdp", "--loop", "-m", "pixelate",
                      "--report", str(report)], tmp_path, max_seconds=50).start()
    rx2 = None
    try:
        rc1 = rx1.wait(30)  # takes 30 frames and goes away mid-stream
        assert rc1 == 0, f"{rx1.text()[-1500:]}\nrelay: {relay.stderr[-1500:]}"
        # nothing listens for a while: the relay's attempts are refused (and it backs off)
        assert _wait(lambda: "publishing failed" in relay.stderr or "cannot publish" in relay.stderr, 10), relay.stderr
        time.sleep(1.0)
        rx2 = ListenReceiver(port, tmp_path, frames=30, tag="rx2").start()
        rc2 = rx2.wait(30)
        relay.stop(signal.SIGINT)
    finally:
        relay.stop(signal.SIGKILL)
        rx1.stop()
        if rx2 is not None:
            rx2.stop()
    err = relay.stderr
    assert rc2 == 0, f"{rx2.text()[-1500:]}\nrelay: {err[-2000:]}"
    for rx in (rx1, rx2):
        size, frames = rx.frames()
        assert size == SIZE and len(frames) >= 30
        assert_faces_covered(frames, source, min_checked=10)
    assert "publishing again" in err, err[-2000:]
    counts = _report(report).get("counts", {})
    assert counts.get("output_connects", 0) >= 2 and counts.get("output_errors", 0) >= 1, counts


def _run_until_ok(cmd: list[str], deadline: float, result: dict, parse) -> None:  # type: ignore[no-untyped-def]
    """Run a client command until it exits 0 (the path may not be published yet) or the deadline;
    ``result`` gets its exit code and what ``parse`` reads from its output."""
    while time.monotonic() < deadline:
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            result.update(rc=None, err="timed out")
            return
        result.update(rc=p.returncode, **parse(p))
        if p.returncode == 0:
            return
        time.sleep(0.3)


def _gst_client(url: str, n: int, result: dict, deadline: float) -> None:
    """gst-launch-1.0 rtspsrc ... ! fakesink num-buffers=n; retried until the path is published."""
    decode = "rtph264depay ! h264parse ! avdec_h264 ! videoconvert ! video/x-raw,format=RGB"
    if subprocess.run(["gst-inspect-1.0", "avdec_h264"], capture_output=True).returncode != 0:
        decode = "rtph264depay ! h264parse ! video/x-h264,alignment=au"  # no decoder: count access units
    cmd = [GST_LAUNCH, "-v", "rtspsrc", f"location={url}", "protocols=tcp", "latency=0", "!", *decode.split(),
           "!", "fakesink", f"num-buffers={n}", "sync=false"]

    def parse(p: subprocess.CompletedProcess) -> dict:
        caps = re.findall(r"GstFakeSink:fakesink0\.GstPad:sink: caps = .*?width=\(int\)(\d+), height=\(int\)(\d+)", p.stdout)
        # fakesink reached num-buffers: EOS, exit 0
        return {"size": tuple(map(int, caps[-1])) if caps else None, "err": p.stdout[-800:] + p.stderr[-800:],
                **({"frames": n} if p.returncode == 0 else {})}

    _run_until_ok(cmd, deadline, result, parse)


def _ffmpeg_client(url: str, n: int, result: dict, deadline: float) -> None:
    cmd = [FFMPEG, "-hide_banner", "-nostdin", "-rtsp_transport", "tcp", "-i", url, "-frames:v", str(n), "-f", "null", "-"]

    def parse(p: subprocess.CompletedProcess) -> dict:
        m = re.search(r"Video: h264.*?(\d{2,5})x(\d{2,5})", p.stderr)
        frames = [int(v) for v in re.findall(r"frame=\s*(\d+)", p.stderr)]
        return {"size": (int(m.group(1)), int(m.group(2))) if m else None, "frames": frames[-1] if frames else 0,
                "err": p.stderr[-800:]}

    _run_until_ok(cmd, deadline, result, parse)


def _pyav_client(url: str, n: int, result: dict, deadline: float) -> None:
    frames = []
    for _, img in rs.read_frames(url, seconds=max(1.0, deadline - time.monotonic()), open_timeout=20):
        frames.append(img)
        if len(frames) >= n:
            break
    result.update(rc=0, frames=len(frames), size=(frames[0].shape[1], frames[0].shape[0]) if frames else None,
                  images=frames)


def test_serve_mode_read_by_several_clients_at_once(source: SourceFaces, tmp_path: Path) -> None:
    port = rs.free_port()
    url = f"rtsp://127.0.0.1:{port}/anon"
    clients = {"pyav": _pyav_client}
    if GST_LAUNCH:
        clients["gstreamer"] = _gst_client
    if FFMPEG:
        clients["ffmpeg"] = _ffmpeg_client
    if len(clients) == 1:
        clients["pyav2"] = _pyav_client  # no other client installed: two PyAV readers
    relay = rs.Relay([str(SAMPLE), "--loop", "--serve", str(port), "--serve-host", "127.0.0.1", "-m", "pixelate"],
                     tmp_path, max_seconds=50).start()
    results: dict[str, dict] = {name: {} for name in clients}
    try:
        assert _wait(lambda: f":{port}/anon" in relay.stderr or not relay.alive(), 20), relay.stderr
        deadline = time.monotonic() + 25
        threads = [threading.Thread(target=fn, args=(url, 40, results[name], deadline), daemon=True)
                   for name, fn in clients.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(0.0, deadline + 2 - time.monotonic()))
        rc, took = relay.stop(signal.SIGINT)
    finally:
        relay.stop(signal.SIGKILL)
    assert rc == 0, relay.stderr[-2000:]
    for name, r in results.items():
        assert r.get("rc") == 0 and r.get("frames", 0) >= 40, f"{name}: {r.get('err', r)}"
        assert r.get("size") == SIZE, f"{name}: size {r.get('size')}"
    assert_faces_covered(results["pyav"]["images"], source, min_checked=10)


GST_RECORD_SERVER = r"""
import sys
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer

Gst.init(None)
path, n, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
decode = "h264parse ! avdec_h264 ! videoconvert ! video/x-raw,format=RGB"
if Gst.ElementFactory.find("avdec_h264") is None:
    decode = "h264parse ! video/x-h264,alignment=au"
server = GstRtspServer.RTSPServer.new()
server.set_address("127.0.0.1")
server.set_service("0")
factory = GstRtspServer.RTSPMediaFactory.new()
factory.set_transport_mode(GstRtspServer.RTSPTransportMode.RECORD)
factory.set_launch(f"( rtph264depay name=depay0 ! {decode} ! fakesink name=sink signal-handoffs=true sync=false )")
loop = GLib.MainLoop()
count = [0]

def on_handoff(sink, buf, pad):
    count[0] += 1
    if count[0] == 1:
        s = pad.get_current_caps().get_structure(0)
        print(f"size={s.get_value('width')}x{s.get_value('height')}", flush=True)
    if count[0] >= n:
        print(f"frames={count[0]}", flush=True)
        GLib.idle_add(loop.quit)

def on_configure(factory, media):
    media.get_element().get_by_name("sink").connect("handoff", on_handoff)

factory.connect("media-configure", on_configure)
server.get_mount_points().add_factory("/" + path, factory)
server.attach(None)
print(f"port={server.get_bound_port()}", flush=True)
GLib.timeout_add(int(seconds * 1000), loop.quit)
loop.run()
print(f"frames={count[0]}", flush=True)
"""


def _gst_rtsp_server_available() -> str | None:
    """None when the system python has gst-rtsp-server's bindings, else why not."""
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} not found"
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    p = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True)
    if p.returncode != 0:
        return "GStreamer RTSP server bindings absent (python3-gi, gir1.2-gst-rtsp-server-1.0)"
    return None


def test_relay_publishes_to_a_gstreamer_rtsp_server_in_record_mode(tmp_path: Path) -> None:
    why = _gst_rtsp_server_available()
    if why:
        pytest.skip(why)
    script = tmp_path / "gst_record_server.py"
    script.write_text(GST_RECORD_SERVER)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    server = subprocess.Popen([SYSTEM_PYTHON, str(script), "record", "40", "30"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env)
    relay = None
    try:
        line = server.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("port="), line + server.stderr.read()  # type: ignore[union-attr]
        port = int(line.split("=")[1])
        relay = rs.Relay([str(SAMPLE), f"rtsp://127.0.0.1:{port}/record", "--loop", "-m", "pixelate"],
                         tmp_path, max_seconds=40).start()
        out, err = server.communicate(timeout=35)
        relay.stop(signal.SIGINT)
    finally:
        if relay is not None:
            relay.stop(signal.SIGKILL)
        rs._terminate(server, signal.SIGKILL)
    frames = [int(v) for v in re.findall(r"frames=(\d+)", out)]
    assert frames and frames[-1] >= 40, f"{out}\n{err[-1500:]}\nrelay: {relay.stderr[-1500:] if relay else ''}"
    assert "size=640x360" in out, out


def test_serve_auth_refuses_readers_without_the_credentials_and_serves_those_with_them(tmp_path: Path) -> None:
    """--serve-user (password from STREAMDP_SERVE_PASSWORD): a reader without credentials gets 401,
    one with rtsp://user:password@ reads frames; the password never reaches the relay's output."""
    import os
    import socket

    port = rs.free_port()
    password = "s3cret-pw"
    env_before = os.environ.get("STREAMDP_SERVE_PASSWORD")
    os.environ["STREAMDP_SERVE_PASSWORD"] = password
    try:
        relay = rs.Relay([str(SAMPLE), "--loop", "--serve", str(port), "--serve-user", "viewer", "-m", "pixelate"],
                         tmp_path, max_seconds=40).start()
    finally:
        if env_before is None:
            os.environ.pop("STREAMDP_SERVE_PASSWORD", None)
        else:
            os.environ["STREAMDP_SERVE_PASSWORD"] = env_before
    try:
        assert _wait(lambda: f":{port}/anon" in relay.stderr or not relay.alive(), 20), relay.stderr
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(f"DESCRIBE rtsp://127.0.0.1:{port}/anon RTSP/1.0\r\nCSeq: 1\r\n\r\n".encode())
            head = s.recv(4096).decode()
        assert head.startswith("RTSP/1.0 401") and "WWW-Authenticate: Basic" in head, head
        frames = []
        for _, img in rs.read_frames(f"rtsp://viewer:{password}@127.0.0.1:{port}/anon", seconds=20, open_timeout=15):
            frames.append(img)
            if len(frames) >= 10:
                break
        assert len(frames) >= 10
        rc, _ = relay.stop(signal.SIGINT)
    finally:
        relay.stop(signal.SIGKILL)
    assert rc == 0, relay.stderr[-2000:]
    assert password not in relay.stderr and password not in relay.stdout
