"""A picture of a run: chosen frames of the input (top row) above the same frames of the output.

    python benchmarks/frame_strip.py INPUT.mp4 OUTPUT.mp4 strip.png --frames 10,120,240,360,460 [--width 1600]

Used for docs/img/dp_image_strip.png (the bundled sample through the default dp-image).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import av
import cv2
import numpy as np


def frames_at(path: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    out: dict[int, np.ndarray] = {}
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i in wanted:
                out[i] = f.to_ndarray(format="rgb24")
            if i >= max(wanted):
                break
    return out


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument("png", type=Path)
    p.add_argument("--frames", default="10,120,240,360,460")
    p.add_argument("--width", type=int, default=1600)
    args = p.parse_args()
    idx = [int(x) for x in args.frames.split(",")]
    a, b = frames_at(args.input, set(idx)), frames_at(args.output, set(idx))
    idx = [i for i in idx if i in a and i in b]
    grid = np.concatenate([np.concatenate([a[i] for i in idx], 1), np.concatenate([b[i] for i in idx], 1)], 0)
    scale = args.width / grid.shape[1]
    grid = cv2.resize(grid, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    args.png.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.png), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    print(f"wrote {args.png} ({grid.shape[1]}x{grid.shape[0]}, frames {idx})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
