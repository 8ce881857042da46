"""Soak: a relay running for minutes must not grow (memory, open files, threads) or stall.

Runs ``streamdp relay INPUT --loop --serve PORT`` as a child process for ``--minutes``, reads the
served stream back with PyAV the whole time (a real reader: the RTSP server forwards to it), and
samples the relay's resident memory, open file descriptors and thread count from /proc every
``--every`` seconds. Prints the samples, the growth per minute over the second half (after
warm-up), frames read back, and the relay's own report summary. A figure, not a test: nothing is
asserted (docs/performance.md, "Soak").

    .venv/bin/python benchmarks/soak.py [--minutes 3] [--mechanism pixelate] [INPUT]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "WolfgangLanger_Pexels.mp4"


def _proc_sample(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss_kb = int(fields["VmRSS"].split()[0])
    threads = int(fields["Threads"])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return {"rss_mib": rss_kb / 1024, "fds": fds, "threads": threads}


def _children_rss(pid: int) -> float:
    """The publisher/server child processes' memory (the relay spawns them)."""
    total = 0.0
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            total += _proc_sample(int(child))["rss_mib"]
        except (FileNotFoundError, ProcessLookupError, KeyError):
            continue
    return total


def _reader(url: str, stop: threading.Event, counts: dict[str, int]) -> None:
    import av

    while not stop.is_set():
        try:
            with av.open(url, options={"rtsp_transport": "tcp"}, timeout=(5, 5)) as c:
                for _ in c.decode(video=0):
                    counts["frames"] += 1
                    if stop.is_set():
                        return
        except Exception:  # noqa: BLE001 - the stream may not be up yet, or reconnecting
            counts["reconnects"] += 1
            stop.wait(1.0)


def _slope(samples: list[dict[str, float]], key: str) -> float:
    """Least-squares growth per minute of ``key`` over the second half of the run."""
    half = samples[len(samples) // 2:]
    if len(half) < 2:
        return 0.0
    ts = [s["t"] / 60 for s in half]
    ys = [s[key] for s in half]
    mt, my = sum(ts) / len(ts), sum(ys) / len(ys)
    den = sum((t - mt) ** 2 for t in ts)
    return sum((t - mt) * (y - my) for t, y in zip(ts, ys)) / den if den else 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input", nargs="?", type=Path, default=SAMPLE)
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--every", type=float, default=5.0)
    ap.add_argument("--mechanism", default="pixelate")
    ap.add_argument("--port", type=int, default=8650)
    args = ap.parse_args()

    report = Path(f"/tmp/streamdp-soak-{os.getpid()}.json")
    cmd = [sys.executable, "-m", "streamdp.cli", "relay", str(args.input), "--loop", "--serve", str(args.port),
           "-m", args.mechanism, "--duration", str(args.minutes * 60), "--report", str(report), "-q"]
    relay = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stop, counts = threading.Event(), {"frames": 0, "reconnects": 0}
    reader = threading.Thread(target=_reader, args=(f"rtsp://127.0.0.1:{args.port}/anon", stop, counts), daemon=True)
    time.sleep(3.0)
    reader.start()
    samples: list[dict[str, float]] = []
    t0 = time.monotonic()
    try:
        while relay.poll() is None:
            try:
                s = _proc_sample(relay.pid)
                s["children_rss_mib"] = _children_rss(relay.pid)
            except (FileNotFoundError, ProcessLookupError):
                break
            s["t"] = time.monotonic() - t0
            s["frames_read"] = counts["frames"]
            samples.append(s)
            print(f"{s['t']:7.1f} s  rss {s['rss_mib']:7.1f} MiB  children {s['children_rss_mib']:6.1f} MiB  "
                  f"fds {s['fds']:4d}  threads {s['threads']:3d}  frames read {counts['frames']}", flush=True)
            time.sleep(args.every)
        err = relay.communicate(timeout=30)[1]
    finally:
        stop.set()
        if relay.poll() is None:
            relay.kill()
    print(f"relay exit {relay.returncode}; {err.strip().splitlines()[-1] if err.strip() else 'no error output'}")
    print(f"growth over the second half: rss {_slope(samples, 'rss_mib'):+.2f} MiB/min, "
          f"fds {_slope(samples, 'fds'):+.2f}/min, threads {_slope(samples, 'threads'):+.2f}/min")
    print(f"frames read back: {counts['frames']} ({counts['reconnects']} reader reconnects)")
    if report.is_file():
        from streamdp.live.report import summary_lines

        for line in summary_lines(json.loads(report.read_text())):
            print(line)
        report.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
