"""Live relay latency: p50/p95 capture->publish and end to end, fps in/out, drops.

Everything on 127.0.0.1, with the test fixtures (``tests/rtsp_server.py``): two RTSP servers
(streamdp's own), a publisher that plays VIDEO in a loop at its native rate into server A with
every frame stamped with its index, ``streamdp relay`` from A to B, and a reader on B.

* **relay** latency: what the relay reports, from the moment a frame is decoded from its input
  to the moment its encoded packet has been handed to the RTSP connection (``--report``).
* **end to end**: from the publisher handing a frame's packet to its connection to the reader
  having decoded that frame from the relay's output (the stamps say which frame it is), i.e.
  what a viewer adds on top of the camera. Measured the same way without the relay (the reader
  on server A directly) as the **baseline**: the difference is the cost of the relay.

    python benchmarks/latency.py [--video ../shared/media/single_face.mp4] [--seconds 20] [--mechanism pixelate] [--pre-encoded]

``--pre-encoded``: the camera's stream is encoded before the measurement and only sent while it
runs (``benchmarks/camera.py``), so no camera encoder shares the relay's cores.

Prints a JSON summary and the Markdown rows used in docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

import rtsp_server as rs  # noqa: E402  (the test fixtures)


def _q(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p95_ms": None, "n": 0}
    a = np.asarray(values) * 1000
    return {"p50_ms": round(float(np.percentile(a, 50)), 1), "p95_ms": round(float(np.percentile(a, 95)), 1),
            "max_ms": round(float(a.max()), 1), "n": len(values)}


def _thread_ticks(pid: int) -> dict[str, int]:
    """CPU clock ticks (user + system) so far of each thread of ``pid``, summed by its OS name
    (streamdp names its stage threads: ``stages.name_native_thread``); {} where /proc has none."""
    out: dict[str, int] = {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
        except OSError:
            continue
        out[name] = out.get(name, 0) + int(fields[11]) + int(fields[12])
    return out


def _thread_cpu(before: dict[str, int], after: dict[str, int], seconds: float) -> dict[str, float]:
    """Cores each named thread group used between two ``_thread_ticks`` (busiest first)."""
    hz = os.sysconf("SC_CLK_TCK")
    used = {k: (v - before.get(k, 0)) / hz / seconds for k, v in after.items()}
    return {k: round(v, 3) for k, v in sorted(used.items(), key=lambda kv: -kv[1]) if v > 0.001}


def _read(url: str, seconds: float, sent_of) -> tuple[list[float], int, float, int]:  # type: ignore[no-untyped-def]
    """(end-to-end latencies, frames read, read fps, distinct stamps)."""
    got = [(t, rs.read_stamp(img)) for t, img in rs.read_frames(url, seconds, open_timeout=60)]
    sent = sent_of()
    lat = [t - sent[s] for t, s in got if s is not None and s in sent]
    span = got[-1][0] - got[0][0] if len(got) > 1 else 0.0
    fps = (len(got) - 1) / span if span > 0 else 0.0
    return lat, len(got), fps, len({s for _, s in got if s is not None})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=REPO.parent / "shared" / "media" / "single_face.mp4")
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring time per run")
    parser.add_argument("--mechanism", default="pixelate")
    parser.add_argument("--deadline-ms", type=float, default=250.0)
    parser.add_argument("--json", type=Path, help="also write the summary here")
    parser.add_argument("--report", type=Path, help="also keep the relay's own run report here")
    parser.add_argument("--config", help="the relay's --config (a YAML file or preset)")
    parser.add_argument("--pre-encoded", action="store_true",
                        help="the camera's stream encoded before the measurement, only sent while it runs "
                             "(benchmarks/camera.py): no camera encoder on the relay's cores")
    args = parser.parse_args(argv)
    if not args.video.is_file():
        print(f"video not found: {args.video}", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="streamdp-latency-") as tmp:
        work = Path(tmp)
        a, b = rs.ServerProc().start(), rs.ServerProc().start()
        if args.pre_encoded:
            import camera

            clip = work / "camera.mp4"
            camera.prepare(args.video, clip, 2 * args.seconds + 90)
            pub = camera.PreEncodedPublisher(clip, a.url("in"), work / "sent.log").start()
        else:
            pub = rs.Publisher(args.video, a.url("in"), work / "sent.log", seconds=3 * args.seconds + 120).start()
        relay = None
        try:
            if not pub.wait_publishing(30):
                print("the publisher could not start", file=sys.stderr)
                return 1
            # baseline: the camera stream read directly (no relay)
            base_lat, base_n, base_fps, _ = _read(a.url("in"), args.seconds, pub.sent)
            # through the relay
            report = work / "relay.json"
            relay = rs.Relay([a.url("in"), b.url("anon"), "-m", args.mechanism, "--deadline-ms", str(args.deadline_ms),
                              "--report", str(report), "-q"] + (["--config", args.config] if args.config else []), work, max_seconds=2 * args.seconds + 120).start()
            ticks0, t0 = _thread_ticks(relay.proc.pid), time.monotonic()
            rel_lat, rel_n, rel_fps, distinct = _read(b.url("anon"), args.seconds, pub.sent)
            thread_cpu = _thread_cpu(ticks0, _thread_ticks(relay.proc.pid), time.monotonic() - t0)
            rc, stop_s = relay.stop(signal.SIGINT)
            if rc != 0 or not report.exists():
                print(relay.stderr[-3000:], file=sys.stderr)
                return 1
            data = json.loads(report.read_text())
            if args.report:
                args.report.write_text(report.read_text())
        finally:
            if relay is not None:
                relay.stop(signal.SIGKILL)
            pub.stop()
            a.stop()
            b.stop()

    s = data["streams"][0]
    summary = {
        "video": str(args.video.name),
        "mechanism": args.mechanism,
        "camera": "pre-encoded" if args.pre_encoded else "encoded while measuring",
        "deadline_ms": args.deadline_ms,
        "seconds": args.seconds,
        "host": {"platform": platform.platform(), "cpus": os.cpu_count(),
                 "load_avg_1m": round(os.getloadavg()[0], 2)},
        "relay_capture_to_publish": s["latency_capture_to_publish"].get("rtsp"),
        "relay_stage_ends": s["latency_capture_to_stage_end"],
        "end_to_end_through_relay": _q(rel_lat),
        "end_to_end_baseline_no_relay": _q(base_lat),
        "fps_in": s["fps_in"],
        "fps_out": s["fps_out"],
        "fps_read_through_relay": round(rel_fps, 2),
        "fps_read_baseline": round(base_fps, 2),
        "distinct_frames_read": distinct,
        "frames_read": rel_n,
        "counts": s["counts"],
        "stop_s": round(stop_s, 3),
        # cores each of the relay's threads used while it was read (Linux; x264 runs in its own
        # process, streamdp.live.publisher)
        "relay_thread_cores": thread_cpu,
    }
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    r, e, base = summary["relay_capture_to_publish"] or {}, summary["end_to_end_through_relay"], summary["end_to_end_baseline_no_relay"]
    c = s["counts"]
    print("\n| mechanism | relay p50 / p95 (ms) | end-to-end p50 / p95 (ms) | baseline p50 / p95 (ms) | fps in / out | stale / late dropped | fallback |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {args.mechanism} | {r.get('p50_ms')} / {r.get('p95_ms')} | {e['p50_ms']} / {e['p95_ms']} | "
          f"{base['p50_ms']} / {base['p95_ms']} | {s['fps_in']} / {s['fps_out']} | "
          f"{c['frames_dropped_stale']} / {c['frames_dropped_late']} of {c['frames_in']} | {c['frames_fallback']} |")
    if thread_cpu:
        print("\nrelay threads, cores while measured: " + ", ".join(f"{k} {v:.2f}" for k, v in thread_cpu.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
