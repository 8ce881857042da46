"""Tracking measured: synthetic scenes with known identities scored with motmetrics.

    .venv/bin/python benchmarks/tracking.py [--seeds 1 2 3] [--seconds 6] [--size 640x360] [--plot docs/img/tracking.png]

Scenes (streamdp/eval/tracking.py): two people crossing (one hides the other), a face leaving at
the right edge and coming back, a face half out at the left edge and back, fast motion, a zoom, three
people over a harsh random texture, and the harsh texture alone. Each is run through the real
detector and tracker (live's path, no look-back) for every photo seed; the table sums the seeds.
Needs the shared LFW faces (../shared/data/faces) and the test extra (motmetrics).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def main() -> int:
    from synth import pick_face_photos

    from streamdp.eval.tracking import score, standard_scenes, track_scene

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--faces", type=Path, default=ROOT.parent / "shared" / "data" / "faces")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--size", default="640x360")
    p.add_argument("--plot", type=Path, default=None, help="write a figure of raw face-frames and tracks per scene")
    p.add_argument("--files", action="store_true", help="the file pipeline's path (look-back, spread tile search) instead of live's")
    p.add_argument("--ladder", type=int, nargs="*", default=None,
                   help="instead: face heights (px, brows to chin) for the smallest-face table, live and files paths")
    p.add_argument("--search", choices=["auto", "canvas", "tiles"], default="auto", help="detect.search (how the pyramid is searched)")
    p.add_argument("--tile-size", default="auto", help="detect.tile_size (the finest pyramid level)")
    p.add_argument("--tile-overlap", type=float, default=None, help="detect.tile_overlap (default: the config's)")
    p.add_argument("--tile-every", default="auto", help="detect.tile_every (live: N > 1 spreads the search, each frame held N-1 frames)")
    p.add_argument("--backend", default="auto", help="detect.backend (the model's engine: litert, openvino, onnx...)")
    p.add_argument("--no-gate", action="store_true", help="detect.skip_unchanged: false (search every due region whatever its pixels)")
    args = p.parse_args()
    from streamdp.config import Config

    detect = {"search": args.search, "skip_unchanged": not args.no_gate, "backend": args.backend,
              "tile_size": args.tile_size if args.tile_size == "auto" else int(args.tile_size)}
    if args.tile_every != "auto":
        detect["tile_every"] = int(args.tile_every)
    if args.tile_overlap is not None:
        detect["tile_overlap"] = args.tile_overlap
    args.config = Config.model_validate({"detect": detect})
    if args.ladder is not None:
        return ladder(args)
    size = tuple(int(v) for v in args.size.split("x"))
    totals: dict[str, dict[str, float]] = {}
    t0 = time.time()
    for seed in args.seeds:
        photos = [ph for _, ph in pick_face_photos(args.faces, 3, seed=seed)]
        for sc in standard_scenes(photos, size=size, seconds=args.seconds):  # type: ignore[arg-type]
            r = score(track_scene(sc, args.config, files=args.files))
            agg = totals.setdefault(sc.name, {})
            for k, v in r.items():
                if k in ("idf1", "mota"):
                    agg.setdefault(k, []).append(v)  # type: ignore[union-attr]
                else:
                    agg[k] = agg.get(k, 0) + v
    cols = ["people", "tracks", "false_tracks", "id_switches", "fragmentations", "idf1", "face_frames",
            "face_frames_raw_any_pixel", "face_frames_raw_over_10pct"]
    path = "files (look-back)" if args.files else "live (no look-back)"
    print(f"{len(args.seeds)} photo seeds x {args.seconds:g} s at {args.size}, {path}, search {args.config.detect.effective_search(6 if args.files else 0)}, "
          f"tile size {args.config.detect.tile_size}, {time.time() - t0:.0f} s")
    print("| scene | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for name, agg in totals.items():
        cells = []
        for c in cols:
            v = agg[c]
            if isinstance(v, list):
                vals = [x for x in v if x == x]
                cells.append(f"{sum(vals) / len(vals):.3f}" if vals else "-")
            else:
                cells.append(str(int(v)))
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        names = list(totals)
        fig, ax = plt.subplots(1, 2, figsize=(10, 3.2))
        ax[0].bar(names, [totals[n]["tracks"] for n in names], label="tracks")
        ax[0].plot(names, [totals[n]["people"] for n in names], "k_", markersize=24, label="people")
        ax[0].set_title("tracks vs people (sum over seeds)")
        ax[0].legend()
        ax[1].bar(names, [totals[n]["face_frames_raw_any_pixel"] for n in names], color="tab:red")
        ax[1].set_title("face-frames with any raw pixel")
        for a in ax:
            a.tick_params(axis="x", rotation=45)
        fig.tight_layout()
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=110)
        print(f"wrote {args.plot}")
    return 0


def ladder(args: argparse.Namespace) -> int:
    from synth import pick_face_photos

    from streamdp.eval.tracking import score, size_ladder, track_scene

    size = tuple(int(v) for v in args.size.split("x"))
    heights = args.ladder or [20, 24, 32, 40, 48, 64]
    print(f"faces per height: 3 x {len(args.seeds)} seeds, 4 s at {args.size}, search live {args.config.detect.effective_search(0)} / files {args.config.detect.effective_search(6)}; "
          "face-frames with any raw pixel / > 10% raw")
    print("| face height (px) | live: raw any / >10% / of | files: raw any / >10% / of | tracks / people (live) |")
    print("|---|---|---|---|")
    for fh in heights:
        cells = {"live": [0, 0, 0], "files": [0, 0, 0]}
        tracks = people = 0
        for seed in args.seeds:
            photos = [ph for _, ph in pick_face_photos(args.faces, 3, seed=seed)]
            sc = size_ladder(photos, [fh], size=size)[0]  # type: ignore[arg-type]
            for mode in ("live", "files"):
                r = score(track_scene(sc, args.config, files=mode == "files"))
                c = cells[mode]
                c[0] += r["face_frames_raw_any_pixel"]
                c[1] += r["face_frames_raw_over_10pct"]
                c[2] += r["face_frames"]
                if mode == "live":
                    tracks += r["tracks"]
                    people += r["people"]
        lv, fl = cells["live"], cells["files"]
        print(f"| {fh} | {lv[0]} / {lv[1]} / {lv[2]} | {fl[0]} / {fl[1]} / {fl[2]} | {tracks} / {people} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
