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
* ``--serve-user``: Digest auth by default (PyAV/FFmpeg answer with ``qop=auth``, GStreamer with
  the RFC 2069 form), Basic on request; wrong or missing credentials get 401 and no frames; raw
  sockets against the in-process server for what no client does (replayed responses, foreign and
  expired nonces, a wrong ``uri``); the digest computation against the RFCs' example vectors.

A peer tool that is not installed skips its test with the reason (``.ci/run`` installs them).

"Covered" here: each received frame is matched to its source frame by the background (left of
the face), and inside the face box the detector found on that source frame, the high-pass
correlation between received and source pixels must be low (a pixelated face keeps its mean
colour but none of its detail; the raw face correlates ~1).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
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
FFMPEG = rs.FFMPEG
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


_listening = rs.listening
_wait = rs.wait_until
ListenReceiver = rs.ListenReceiver


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


# ------------------------------------------------------------------------------ serve auth

SERVE_USER = "viewer"
SERVE_PASSWORD = "s3cret-pw"


def _serve_relay(port: int, workdir: Path, *extra: str, max_seconds: float = 40) -> rs.Relay:
    """A relay serving SAMPLE on ``port``/anon to SERVE_USER (password through the environment)."""
    before = os.environ.get("STREAMDP_SERVE_PASSWORD")
    os.environ["STREAMDP_SERVE_PASSWORD"] = SERVE_PASSWORD
    try:
        relay = rs.Relay([str(SAMPLE), "--loop", "--serve", str(port), "--serve-user", SERVE_USER, *extra,
                          "-m", "pixelate"], workdir, max_seconds=max_seconds).start()
    finally:
        if before is None:
            os.environ.pop("STREAMDP_SERVE_PASSWORD", None)
        else:
            os.environ["STREAMDP_SERVE_PASSWORD"] = before
    assert _wait(lambda: f":{port}/anon" in relay.stderr or not relay.alive(), 20), relay.stderr
    assert relay.alive(), relay.stderr[-2000:]
    return relay


class RtspPeer:
    """A raw RTSP client on one TCP connection: one request, one reply head, bounded in time."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.cseq = 0

    def request(self, method: str, url: str, authorization: str | None = None) -> tuple[int, list[str]]:
        """(status, the reply's WWW-Authenticate values)."""
        self.cseq += 1
        head = f"{method} {url} RTSP/1.0\r\nCSeq: {self.cseq}\r\n"
        if authorization is not None:
            head += f"Authorization: {authorization}\r\n"
        self.sock.sendall((head + "\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 65536:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            data += chunk
        lines = data.decode("utf-8", "replace").split("\r\n")
        status = int(lines[0].split(" ")[1]) if lines[0].startswith("RTSP/1.0 ") else 0
        return status, [ln.split(":", 1)[1].strip() for ln in lines[1:] if ln.lower().startswith("www-authenticate:")]

    def close(self) -> None:
        self.sock.close()


def _param(challenge: str, name: str) -> str | None:
    m = re.search(rf'\b{name}=(?:"([^"]*)"|([^\s,]+))', challenge)
    return None if m is None else (m.group(1) if m.group(1) is not None else m.group(2))


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _digest(method: str, uri: str, nonce: str, password: str = SERVE_PASSWORD, nc: int | None = 1,
            cnonce: str = "0a4f113b", response_uri: str | None = None) -> str:
    """An Authorization value computed here, independently of streamdp (RFC 2617 3.2.2); nc=None:
    the RFC 2069 form GStreamer sends. ``response_uri``: hash another URI than the one named."""
    ha1 = _md5(f"{SERVE_USER}:streamdp:{password}")
    ha2 = _md5(f"{method}:{response_uri or uri}")
    head = f'Digest username="{SERVE_USER}", realm="streamdp", nonce="{nonce}", uri="{uri}"'
    if nc is None:
        return head + f', response="{_md5(f"{ha1}:{nonce}:{ha2}")}"'
    ncs = f"{nc:08x}"
    response = _md5(f"{ha1}:{nonce}:{ncs}:{cnonce}:auth:{ha2}")
    return head + f', algorithm=MD5, qop=auth, nc={ncs}, cnonce="{cnonce}", response="{response}"'


def _basic(password: str = SERVE_PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{SERVE_USER}:{password}".encode()).decode()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def auth_server():  # type: ignore[no-untyped-def]
    """An in-process server (nothing published: an authenticated DESCRIBE gets 404, a refused one
    401) with a clock the test moves; ``make(scheme)`` starts it."""
    from streamdp.live.rtsp_server import RtspServer

    servers = []

    def make(scheme: str = "digest") -> tuple[RtspServer, FakeClock]:
        server = RtspServer("127.0.0.1", 0, auth=f"{SERVE_USER}:{SERVE_PASSWORD}", auth_scheme=scheme)
        clock = FakeClock()
        server.auth.clock = clock
        servers.append(server.start())
        return server, clock

    yield make
    for server in servers:
        server.stop()


def test_digest_response_matches_the_rfc_example_vectors() -> None:
    from streamdp.live.rtsp_auth import digest_response, parse_digest

    # RFC 2617 section 3.5
    ha1 = _md5("Mufasa:testrealm@host.com:Circle Of Life")
    assert digest_response(ha1, "GET", "/dir/index.html", "dcd98b7102dd2f0e8b11d0f600bfb0c093", "auth",
                           "00000001", "0a4f113b") == "6629fae49393a05397450978507c4ef1"
    # RFC 7616 section 3.9.1 (MD5)
    ha1 = _md5("Mufasa:http-auth@example.org:Circle of Life")
    assert digest_response(ha1, "GET", "/dir/index.html", "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "auth",
                           "00000001", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ") == "8ca523f5e9506fed4657c9700eebdbec"
    # the header as FFmpeg writes it parses back to its parameters
    p = parse_digest('Digest username="Mufasa", realm="a\\"b", nonce="n1", uri="rtsp://h/x", response="r", '
                     'algorithm=MD5, cnonce="c", nc=00000001, qop=auth')
    assert p == {"username": "Mufasa", "realm": 'a"b', "nonce": "n1", "uri": "rtsp://h/x", "response": "r",
                 "algorithm": "MD5", "cnonce": "c", "nc": "00000001", "qop": "auth"}
    assert parse_digest(_basic()) is None


def test_digest_nonces_are_bounded_reused_per_connection_and_expire() -> None:
    from streamdp.live.rtsp_auth import RtspAuth

    clock = FakeClock()
    auth = RtspAuth(f"{SERVE_USER}:{SERVE_PASSWORD}", max_nonces=64, nonce_ttl_s=30, clock=clock)
    first = _param(auth.challenges(owner=1)[0], "nonce")
    for _ in range(1000):  # one connection spamming requests: one nonce
        assert _param(auth.challenges(owner=1)[0], "nonce") == first
    assert auth.held() == 1
    nonces = {_param(auth.challenges(owner=o)[0], "nonce") for o in range(2, 2000)}  # many connections
    assert len(nonces) == 1998 and auth.held() == 64  # all different, the oldest evicted
    assert all(len(n or "") == 32 for n in nonces)
    clock.now += 31
    assert _param(auth.challenges(owner=1999)[0], "nonce") not in nonces  # expired: a new one
    auth.forget(1999)
    assert auth.held() == 63


def test_digest_raw_socket_refuses_replays_foreign_and_expired_nonces_and_wrong_uris(
    auth_server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="streamdp.live.rtsp_server")
    server, clock = auth_server("digest")
    url = f"rtsp://127.0.0.1:{server.port}/anon"
    a, b = RtspPeer(server.port), RtspPeer(server.port)
    try:
        assert a.request("OPTIONS", url)[0] == 200  # OPTIONS needs no credentials
        status, challenges = a.request("DESCRIBE", url)
        assert status == 401 and len(challenges) == 1 and challenges[0].startswith("Digest "), challenges
        assert _param(challenges[0], "realm") == "streamdp" and _param(challenges[0], "qop") == "auth"
        assert "stale" not in challenges[0]
        na = _param(challenges[0], "nonce")
        good = _digest("DESCRIBE", url, na)
        assert a.request("DESCRIBE", url, good)[0] == 404  # authenticated (nothing is published)
        assert a.request("DESCRIBE", url, good)[0] == 401  # the same nc again: a replay
        assert a.request("DESCRIBE", url, _digest("DESCRIBE", url, na, nc=2))[0] == 404
        assert a.request("DESCRIBE", url, _digest("DESCRIBE", url, na, nc=None))[0] == 404  # RFC 2069 form
        status, challenges = a.request("DESCRIBE", url, _digest("DESCRIBE", url, na, password="wrong", nc=3))
        assert status == 401 and "stale" not in challenges[0]
        assert a.request("DESCRIBE", url, _basic())[0] == 401  # digest only: Basic is not accepted
        # a response made for another URI: under its own uri, or under this request's
        other = f"rtsp://127.0.0.1:{server.port}/other"
        assert a.request("DESCRIBE", url, _digest("DESCRIBE", other, na, nc=4))[0] == 401
        assert a.request("DESCRIBE", url, _digest("DESCRIBE", url, na, nc=5, response_uri=other))[0] == 401
        assert a.request("SETUP", url, _digest("DESCRIBE", url, na, nc=6))[0] == 401  # made for another method

        status, challenges = b.request("DESCRIBE", url)
        nb = _param(challenges[0], "nonce")
        assert status == 401 and nb != na
        # A's request replayed on B: its nonce is A's (stale: retry), or swapped for B's (no match)
        status, challenges = b.request("DESCRIBE", url, _digest("DESCRIBE", url, na, nc=7))
        assert status == 401 and _param(challenges[0], "stale") == "true", challenges
        nb = _param(challenges[0], "nonce")
        replayed = _digest("DESCRIBE", url, na, nc=8).replace(f'nonce="{na}"', f'nonce="{nb}"')
        status, challenges = b.request("DESCRIBE", url, replayed)
        assert status == 401 and "stale" not in challenges[0]
        assert b.request("DESCRIBE", url, _digest("DESCRIBE", url, nb))[0] == 404
        # expired: refused with stale=true and a fresh nonce, which works
        clock.now += server.auth.nonce_ttl_s + 1
        status, challenges = b.request("DESCRIBE", url, _digest("DESCRIBE", url, nb, nc=2))
        assert status == 401 and _param(challenges[0], "stale") == "true", challenges
        fresh = _param(challenges[0], "nonce")
        assert fresh != nb
        assert b.request("DESCRIBE", url, _digest("DESCRIBE", url, fresh))[0] == 404
    finally:
        a.close()
        b.close()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "refused" in logged and "stale" in logged  # the reasons are logged ...
    for secret in (SERVE_PASSWORD, na, nb, fresh, "0a4f113b", _param(good, "response"), _basic().split()[1]):
        assert secret not in logged  # ... never a header's content


@pytest.mark.parametrize("scheme", ["any", "basic"])
def test_auth_scheme_any_offers_digest_and_basic_and_basic_offers_basic_only(auth_server, scheme: str) -> None:
    server, _ = auth_server(scheme)
    url = f"rtsp://127.0.0.1:{server.port}/anon"
    peer = RtspPeer(server.port)
    try:
        status, challenges = peer.request("DESCRIBE", url)
        assert status == 401
        if scheme == "any":
            assert [c.split()[0] for c in challenges] == ["Digest", "Basic"], challenges
            digest_status = peer.request("DESCRIBE", url, _digest("DESCRIBE", url, _param(challenges[0], "nonce")))[0]
            assert digest_status == 404
        else:
            assert challenges == ['Basic realm="streamdp"'], challenges
            assert peer.request("DESCRIBE", url, _digest("DESCRIBE", url, "made-up"))[0] == 401
        assert peer.request("DESCRIBE", url, _basic())[0] == 404
        assert peer.request("DESCRIBE", url, _basic("wrong"))[0] == 401
    finally:
        peer.close()


@pytest.fixture(scope="module")
def digest_relay(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One relay serving with --serve-user (Digest, the default) for the peer tests below."""
    if not SAMPLE.is_file():
        pytest.skip(f"needs the bundled clip {SAMPLE}")
    port = rs.free_port()
    relay = _serve_relay(port, tmp_path_factory.mktemp("digest"), max_seconds=120)
    yield relay, port
    relay.stop(signal.SIGINT)
    relay.stop(signal.SIGKILL)


def _pyav_refusal(url: str) -> str | None:
    """The error PyAV gives opening ``url`` (None if it opened)."""
    try:
        with av.open(url, options={"rtsp_transport": "tcp", "timeout": "5000000"}, timeout=(5, 5)):
            return None
    except av.FFmpegError as exc:
        return str(exc)


def test_serve_digest_auth_offers_only_digest_and_pyav_reads_with_the_credentials(digest_relay) -> None:
    relay, port = digest_relay
    peer = RtspPeer(port)
    try:
        status, challenges = peer.request("DESCRIBE", f"rtsp://127.0.0.1:{port}/anon")
    finally:
        peer.close()
    assert status == 401 and len(challenges) == 1 and challenges[0].startswith("Digest realm=\"streamdp\""), challenges
    frames = []
    for _, img in rs.read_frames(f"rtsp://{SERVE_USER}:{SERVE_PASSWORD}@127.0.0.1:{port}/anon", seconds=20,
                                 open_timeout=15):
        frames.append(img)
        if len(frames) >= 10:
            break
    assert len(frames) >= 10 and frames[0].shape[:2] == (SIZE[1], SIZE[0]), relay.stderr[-1500:]


def test_serve_digest_auth_gstreamer_rtspsrc_reads_with_the_credentials(digest_relay) -> None:
    if not GST_LAUNCH:
        pytest.skip("gst-launch-1.0 not installed (gstreamer1.0-tools)")
    relay, port = digest_relay
    result: dict = {}
    _gst_client(f"rtsp://{SERVE_USER}:{SERVE_PASSWORD}@127.0.0.1:{port}/anon", 10, result, time.monotonic() + 25)
    assert result.get("rc") == 0 and result.get("frames", 0) >= 10, f"{result.get('err', result)}\n{relay.stderr[-800:]}"


def test_serve_digest_auth_refuses_wrong_and_missing_credentials(digest_relay) -> None:
    relay, port = digest_relay
    for userinfo in (f"{SERVE_USER}:wrong-pw@", ""):
        err = _pyav_refusal(f"rtsp://{userinfo}127.0.0.1:{port}/anon")
        assert err is not None and "401" in err, f"{userinfo!r}: {err}"
    if FFMPEG:
        p = subprocess.run([FFMPEG, "-hide_banner", "-nostdin", "-rtsp_transport", "tcp", "-i",
                            f"rtsp://{SERVE_USER}:wrong-pw@127.0.0.1:{port}/anon", "-frames:v", "1", "-f", "null", "-"],
                           capture_output=True, text=True, timeout=20)
        assert p.returncode != 0 and "401" in p.stderr and "frame=" not in p.stderr, p.stderr[-800:]
    if GST_LAUNCH:
        p = subprocess.run([GST_LAUNCH, "rtspsrc", f"location=rtsp://{SERVE_USER}:wrong-pw@127.0.0.1:{port}/anon",
                            "protocols=tcp", "!", "fakesink", "num-buffers=1"], capture_output=True, text=True, timeout=20)
        assert p.returncode != 0 and "Unauthorized" in p.stdout + p.stderr, (p.stdout + p.stderr)[-800:]
    assert relay.alive(), relay.stderr[-1500:]
    assert SERVE_PASSWORD not in relay.stderr and SERVE_PASSWORD not in relay.stdout


def test_serve_basic_auth_on_request_refuses_readers_without_the_credentials_and_serves_those_with_them(
    tmp_path: Path,
) -> None:
    """--serve-auth-scheme basic: the 401 offers Basic only, rtsp://user:password@ reads frames;
    the password never reaches the relay's output."""
    port = rs.free_port()
    relay = _serve_relay(port, tmp_path, "--serve-auth-scheme", "basic")
    try:
        peer = RtspPeer(port)
        try:
            status, challenges = peer.request("DESCRIBE", f"rtsp://127.0.0.1:{port}/anon")
        finally:
            peer.close()
        assert status == 401 and challenges == ['Basic realm="streamdp"'], challenges
        frames = []
        for _, img in rs.read_frames(f"rtsp://{SERVE_USER}:{SERVE_PASSWORD}@127.0.0.1:{port}/anon", seconds=20,
                                     open_timeout=15):
            frames.append(img)
            if len(frames) >= 10:
                break
        assert len(frames) >= 10
        rc, _ = relay.stop(signal.SIGINT)
    finally:
        relay.stop(signal.SIGKILL)
    assert rc == 0, relay.stderr[-2000:]
    assert SERVE_PASSWORD not in relay.stderr and SERVE_PASSWORD not in relay.stdout
