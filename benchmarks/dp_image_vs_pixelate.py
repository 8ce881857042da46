"""dp-image (the generator design) against pixelate on the same video, whole runs alternated.

The goal (issue #10): dp-image costs at most 1.2x pixelate's time per frame on a CPU, since the
generator runs once per person (per pose), not per frame.

    python benchmarks/dp_image_vs_pixelate.py VIDEO [--pairs 3] [--preset medium]

Prints, per pair, both runs' wall fps and the ratio; then the median ratio, and from the reports
the privatize stage's ms per frame and dp-image's renders (a render is ~0.44 s on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(video: Path, mechanism: str, out_dir: Path, preset: str) -> tuple[float, dict]:
    out, rep = out_dir / f"{mechanism}.mp4", out_dir / f"{mechanism}.json"
    cmd = [sys.executable, "-m", "streamdp", "run", str(video), "-o", str(out), "-m", mechanism,
           "--report", str(rep), "--quiet"]
    cfg = out_dir / "bench.yaml"
    cfg.write_text(f"output:\n  preset: {preset}\n", encoding="utf-8")
    cmd += ["--config", str(cfg)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t0
    return wall, json.loads(rep.read_text())["files"][0]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("video", type=Path)
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--preset", default="medium")
    args = p.parse_args()
    ratios = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for i in range(args.pairs):
            w_px, r_px = run(args.video, "pixelate", tmp, args.preset)
            w_dp, r_dp = run(args.video, "dp-image", tmp, args.preset)
            n = r_px["frames_out"]
            ratios.append(w_dp / w_px)
            print(f"pair {i + 1}: pixelate {n / w_px:.1f} fps, dp-image {n / w_dp:.1f} fps, "
                  f"time ratio {w_dp / w_px:.2f} (whole process)", flush=True)
        priv = lambda r: r["stages"]["privatize"]["ms_per_item"]  # noqa: E731
        mech = r_dp["mechanism"]
        print(f"median time ratio dp-image / pixelate: {statistics.median(ratios):.2f} over {len(ratios)} pairs")
        print(f"privatize stage: pixelate {priv(r_px):.1f} ms/frame, dp-image {priv(r_dp):.1f} ms/frame; "
              f"dp-image renders {mech.get('faces_rendered')}, releases {mech.get('releases')}, "
              f"backend {mech.get('generator_backend')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
