"""A camera that encodes off the machine: the stamped stream encoded once, then only sent.

``benchmarks/latency.py --pre-encoded`` uses it instead of the test fixtures' publisher
(``tests/rtsp_server.py``), which decodes, stamps and x264-encodes every frame while the relay
runs, on the relay's own cores (~0.3 of our 2): a real camera's encoder is not on the relay's
machine. Here every frame (stamped with its index, as the fixtures' publisher does) is encoded
before the measurement into an MP4 with the same low-latency settings, and the child process
only copies its packets to the RTSP URL at the native rate, logging each frame's send time.

    python benchmarks/camera.py publish FILE URL --log LOG     # the child process
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

import rtsp_server as rs  # noqa: E402  (the test fixtures: stamps, child environment)


def prepare(src: Path, dst: Path, seconds: float) -> float:
    """Encode ``seconds`` of ``src`` (looped, each frame stamped with its index) to ``dst``; its fps."""
    import av

    frames, fps = rs.read_clip(src)
    h, w = frames[0].shape[:2]
    with av.open(str(dst), "w") as out:
        stream = rs.add_camera_stream(out, fps, (w - w % 2, h - h % 2))
        for i in range(int(seconds * fps)):
            for packet in stream.encode(rs.camera_frame(frames, i, i, fps)):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return fps


def publish(path: Path, url: str, log_path: Path) -> int:
    """Copy ``path``'s packets to ``url`` at their own pace (no B-frames: packet i is frame i)."""
    import av

    with av.open(str(path)) as inp:
        vin = inp.streams.video[0]
        fps = float(vin.average_rate or 25)
        out = av.open(url, "w", format="rtsp", options={"rtsp_transport": "tcp", "timeout": "5000000"}, timeout=10)
        vout = out.add_stream_from_template(vin)
        t0 = time.monotonic()
        with open(log_path, "w", buffering=1) as log:
            try:
                i = 0
                for packet in inp.demux(vin):
                    if packet.dts is None:
                        continue
                    delay = t0 + i / fps - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    packet.stream = vout
                    out.mux(packet)
                    log.write(f"{i} {time.monotonic():.6f}\n")
                    i += 1
            finally:
                out.close()
    return 0


class PreEncodedPublisher(rs.Publisher):
    """``rs.Publisher``'s interface (start, wait_publishing, sent, stop) over ``publish``."""

    def __init__(self, path: Path, url: str, log_path: Path) -> None:
        self.cmd = [sys.executable, str(Path(__file__).resolve()), "publish", str(path), url, "--log", str(log_path)]
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("publish")
    p.add_argument("path", type=Path)
    p.add_argument("url")
    p.add_argument("--log", type=Path, required=True)
    args = parser.parse_args(argv)
    return publish(args.path, args.url, args.log)


if __name__ == "__main__":
    sys.exit(main())
