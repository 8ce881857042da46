"""Is the replaced face one identity while the person is in view? And is it not the original?

    python benchmarks/track_identity.py INPUT.mp4 OUTPUT.mp4 [--every 10]

With dlib's ResNet descriptor (the eval extra): for every ``--every``-th frame where dlib finds a
face in the output, the distance between output frames (same track: should be well under dlib's
0.6 same-person threshold) and from each output frame to the input frame (should be above it).
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import av
import numpy as np


def main() -> int:
    from streamdp.eval.adversaries import DlibResNet

    p = argparse.ArgumentParser()
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument("--every", type=int, default=10)
    args = p.parse_args()
    dlib = DlibResNet()
    outs, origs = [], []
    with av.open(str(args.input)) as a, av.open(str(args.output)) as b:
        for i, (fa, fb) in enumerate(zip(a.decode(video=0), b.decode(video=0))):
            if i % args.every:
                continue
            ia, ib = fa.to_ndarray(format="rgb24"), fb.to_ndarray(format="rgb24")
            ga, gb = dlib.locate(ia), dlib.locate(ib)
            if gb is not None:
                outs.append(dlib.embed(ib, gb))
                origs.append(dlib.embed(ia, ga) if ga is not None else None)
    if len(outs) < 2:
        print("dlib found fewer than 2 faces in the output")
        return 1
    within = [dlib.distance(x, y) for x, y in itertools.combinations(outs, 2)]
    to_orig = [dlib.distance(x, o) for x, o in zip(outs, origs) if o is not None]
    print(f"{len(outs)} output frames with a face (every {args.every}th frame)")
    print(f"output vs output (same track): median {np.median(within):.3f}, max {np.max(within):.3f} (threshold 0.6)")
    if to_orig:
        print(f"output vs its input frame: median {np.median(to_orig):.3f}, min {np.min(to_orig):.3f} "
              f"({np.mean(np.array(to_orig) < 0.6):.0%} under 0.6)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
