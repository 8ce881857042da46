"""File throughput: streamdp run vs a bare PyAV decode + libx264 encode of the same video.

The goal (docs/performance.md): streamdp >= 0.6x the bare transcode's fps on the same machine,
with the same encoder settings (libx264, the config's preset and crf).

    python benchmarks/throughput.py samples/WolfgangLanger_Pexels.mp4 [--mechanism pixelate] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import av


def bare_transcode(src: Path, dst: Path, crf: int, preset: str) -> tuple[int, float]:
    t0 = time.perf_counter()
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        vout = out.add_stream("libx264", rate=vin.average_rate)
        vout.width, vout.height, vout.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
        vout.options = {"crf": str(crf), "preset": preset}
        n = 0
        for frame in inp.decode(vin):
            frame.pict_type = av.video.frame.PictureType.NONE
            for packet in vout.encode(frame):
                out.mux(packet)
            n += 1
        for packet in vout.encode():
            out.mux(packet)
    return n, time.perf_counter() - t0


def streamdp_run(src: Path, dst: Path, mechanism: str, report: Path) -> tuple[int, float, dict]:
    from streamdp.cli import main

    t0 = time.perf_counter()
    code = main(["run", str(src), "-o", str(dst), "--mechanism", mechanism, "--report", str(report), "--quiet"])
    dt = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"streamdp run failed with exit code {code}")
    data = json.loads(report.read_text())
    entry = data["files"][0]
    return entry["frames_out"], dt, entry["stages"] | {"_pipeline_fps": entry["fps"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("video", type=Path)
    ap.add_argument("--mechanism", default="pixelate")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    from streamdp.config import load_config

    cfg = load_config().output
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        base, ours = [], []
        stages: dict = {}
        pipeline_fps = []
        for _ in range(args.repeat):  # interleave so background load hits both alike
            n, dt = bare_transcode(args.video, tmpd / "bare.mp4", cfg.crf or 23, cfg.preset or "medium")
            base.append(n / dt)
            n2, dt2, stages = streamdp_run(args.video, tmpd / "ours.mp4", args.mechanism, tmpd / "r.json")
            ours.append(n2 / dt2)
            pipeline_fps.append(stages.pop("_pipeline_fps"))
    b, o = max(base), max(ours)
    print(f"machine: {os.cpu_count()} cpus, python {sys.version.split()[0]}, av {av.__version__}")
    print(f"video: {args.video} ({n} frames)")
    print(f"bare decode+libx264 encode: {b:.1f} fps (best of {args.repeat})")
    print(f"streamdp run --mechanism {args.mechanism}: {o:.1f} fps (best of {args.repeat}, incl. start-up)")
    p = max(pipeline_fps)
    print(f"ratio: {o / b:.2f}x with start-up (imports, model loading), {p / b:.2f}x for the pipeline itself "
          f"({p:.1f} fps from the report) (goal >= 0.6x)")
    print("stages (last run):")
    for name, s in stages.items():
        print(f"  {name:10s} {s['ms_per_item']} ms/item  busy {s['busy_s']} s")


if __name__ == "__main__":
    main()
