"""`make bench`: files at 720p and 1080p against a bare transcode, and the live relay at 720p.

    .venv/bin/python benchmarks/bench.py [--pairs 2] [--frames 480] [--skip-live] [--json out.json]

1. Builds the clips (benchmarks/clips.py: the bundled sample upscaled to 720p and 1080p, and three
   LFW faces at 720p when ../shared is present), cut to ``--frames`` frames.
2. For each size, alternated ``--pairs`` times in one run (A B C A B C: background load hits all
   alike): a bare PyAV decode + libx264 encode with streamdp's encoder settings, ``streamdp run
   -m pixelate`` and ``streamdp run`` (dp-image, the default), each in its own process. Prints fps,
   the ratio to the bare transcode (best of the pairs), per-stage ms per frame from the run report
   and each process's peak memory (ru_maxrss).
3. ``benchmarks/latency.py`` on the three-faces clip with pixelate and with dp-image: published
   fraction, capture-to-publish p50/p95.

No figure is asserted: the goals (docs/performance.md) are read off the printout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable

# the bare transcode of benchmarks/throughput.py, in a process of its own (its peak memory alone)
BARE = (
    "import sys; sys.path.insert(0, sys.argv[5]); from pathlib import Path; from throughput import bare_transcode; "
    "n, dt = bare_transcode(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]); print(n, dt)"
)


def _child(cmd: list[str]) -> tuple[str, float, float]:
    """Run ``cmd``; (stdout, wall seconds, that child's own peak RSS in MiB, from wait4)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}): {err.read().strip()[-500:]}")
        return out.read(), wall, usage.ru_maxrss / 1024.0


def _cut(src: Path, dst: Path, frames: int) -> Path:
    import av

    if dst.is_file():
        return dst
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream_from_template(vin)
        n = 0
        for pkt in inp.demux(vin):
            if pkt.dts is None:
                continue
            if n >= frames and pkt.is_keyframe:
                break
            pkt.stream = vout
            out.mux(pkt)
            n += 1
    return dst


def files(clip: Path, pairs: int, tmp: Path) -> dict:
    from streamdp.config import load_config

    out_cfg = load_config().output
    crf, preset = str(out_cfg.crf or 23), out_cfg.preset or "medium"
    runs: dict[str, list[dict]] = {"bare": [], "pixelate": [], "dp-image": []}
    for _ in range(pairs):
        stdout, wall, rss = _child([PY, "-c", BARE, str(clip), str(tmp / "bare.mp4"), crf, preset, str(ROOT / "benchmarks")])
        n, dt = stdout.split()
        runs["bare"].append({"fps": int(n) / float(dt), "rss_mib": rss})
        for mech in ("pixelate", "dp-image"):
            rep = tmp / f"{mech}.json"
            cmd = [PY, "-m", "streamdp", "run", str(clip), "-o", str(tmp / f"{mech}.mp4"), "-m", mech,
                   "--report", str(rep), "--quiet"]
            _, wall, rss = _child(cmd)
            entry = json.loads(rep.read_text())["files"][0]
            runs[mech].append({"fps": entry["fps"], "wall_fps": entry["frames_out"] / wall, "rss_mib": rss,
                               "stages": entry.get("stages", {})})
    best = {k: max(r["fps"] for r in v) for k, v in runs.items()}
    return {"clip": str(clip), "runs": runs, "best_fps": best,
            "ratio": {k: best[k] / best["bare"] for k in ("pixelate", "dp-image")}}


def live(clip: Path, seconds: float) -> dict:
    out = {}
    for mech in ("pixelate", "dp-image"):
        with tempfile.NamedTemporaryFile(suffix=".json") as fh:
            subprocess.run([PY, str(ROOT / "benchmarks" / "latency.py"), "--video", str(clip), "--seconds", str(seconds),
                            "--mechanism", mech, "--json", fh.name], check=True, capture_output=True, text=True)
            out[mech] = json.loads(Path(fh.name).read_text())
    return out


def main() -> int:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import clips

    from streamdp.report import host

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=int, default=2)
    p.add_argument("--frames", type=int, default=480)
    p.add_argument("--sizes", nargs="+", default=["720p", "1080p"])
    p.add_argument("--live-seconds", type=float, default=15.0)
    p.add_argument("--skip-live", action="store_true")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    built = clips.build()
    result: dict = {"date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} cpus, {platform.platform()}",
                    **{k: v for k, v in host("auto").items() if k in ("cpu", "detector_engine")}, "files": {}}
    # the VMs differ by kind, not only by load (docs/performance.md, 2026-12-04): say which one
    print(f"{result['date']}, {result['machine']}, {result['cpu']}; detect.backend auto = {result['detector_engine']}")
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        for size in args.sizes:
            clip = _cut(built[size], tmpd / f"{size}_{args.frames}.mp4", args.frames)
            r = files(clip, args.pairs, tmpd)
            result["files"][size] = r
            print(f"\n{size}, {args.frames} frames, best of {args.pairs} (alternated)")
            print("| run | fps | vs bare | peak RSS MiB | stages ms/frame (decode / detect / privatize / encode) |")
            print("|---|---|---|---|---|")
            for name, runs in r["runs"].items():
                best = max(runs, key=lambda x: x["fps"])
                st = best.get("stages", {})
                stages = " / ".join(str(st.get(k, {}).get("ms_per_item", "-")) for k in ("decode", "detect", "privatize", "encode"))
                ratio = best["fps"] / r["best_fps"]["bare"]
                print(f"| {name} | {best['fps']:.1f} | {ratio:.2f}x | {max(x['rss_mib'] for x in runs):.0f} | {stages if st else '-'} |")
    if not args.skip_live and "three_faces_720p" in built:
        result["live"] = live(built["three_faces_720p"], args.live_seconds)
        print("\nlive relay, 720p, three faces")
        print("| mechanism | new frames published / input | relay capture-to-publish p50 / p95 ms | fallback | relay threads (cores) |")
        print("|---|---|---|---|---|")
        for mech, r in result["live"].items():
            c, lat = r["counts"], r["relay_capture_to_publish"] or {}
            threads = ", ".join(f"{k} {v:.2f}" for k, v in list(r.get("relay_thread_cores", {}).items())[:5])
            print(f"| {mech} | {c['frames_published']} / {c['frames_in']} ({c['frames_published'] / max(c['frames_in'], 1):.0%}) | "
                  f"{lat.get('p50_ms')} / {lat.get('p95_ms')} | {c['frames_fallback']} | {threads or '-'} |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
