"""Reproducible benchmark clips, built from the bundled sample (and LFW faces when present).

    .venv/bin/python benchmarks/clips.py [--out ~/.cache/streamdp/bench]

* ``sample_720p.mp4`` / ``sample_1080p.mp4``: samples/WolfgangLanger_Pexels.mp4 (640x360, one face)
  upscaled (bicubic) and played twice (944 frames, 23.976 fps), libx264 crf 18 preset veryfast.
* ``three_faces_720p.mp4``: three LFW evaluation faces moving over a textured street-like
  background, 1280x720, 24 fps, 12 s (needs ../shared/data/faces; skipped with a note otherwise).

A clip that already exists with the same recipe is reused (the recipe is in its file name's sidecar
``.recipe``), so repeated runs measure the same bytes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import av
import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "WolfgangLanger_Pexels.mp4"
DEFAULT_OUT = Path.home() / ".cache" / "streamdp" / "bench"


def _write(path: Path, frames, fps, size: tuple[int, int]) -> int:  # type: ignore[no-untyped-def]
    tmp = path.with_suffix(".part.mp4")
    n = 0
    with av.open(str(tmp), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
        vs.options = {"crf": "18", "preset": "veryfast"}
        for img in frames:
            for p in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
            n += 1
        for p in vs.encode():
            out.mux(p)
    tmp.replace(path)
    return n


def _fresh(path: Path, recipe: str) -> bool:
    side = path.with_suffix(".recipe")
    return path.is_file() and side.is_file() and side.read_text() == recipe


def upscaled_sample(out: Path, height: int, loops: int = 2) -> Path:
    width = height * 16 // 9
    path = out / f"sample_{height}p.mp4"
    recipe = f"{SAMPLE.name} {width}x{height} bicubic x{loops} crf18 veryfast"
    if _fresh(path, recipe):
        return path
    with av.open(str(SAMPLE)) as inp:
        fps = inp.streams.video[0].average_rate
        src = [f.to_ndarray(format="rgb24") for f in inp.decode(video=0)]

    def frames():  # type: ignore[no-untyped-def]
        for _ in range(loops):
            for img in src:
                yield cv2.resize(img, (width, height), interpolation=cv2.INTER_CUBIC)

    _write(path, frames(), fps, (width, height))
    path.with_suffix(".recipe").write_text(recipe)
    return path


def three_faces(out: Path, faces_dir: Path, seconds: float = 12.0) -> Path | None:
    if not (faces_dir / "splits.json").is_file():
        print(f"three_faces_720p: skipped, no shared faces at {faces_dir}", file=sys.stderr)
        return None
    sys.path.insert(0, str(ROOT / "tests"))
    from synth import pick_face_photos

    from streamdp.eval.tracking import Actor, Scene, render

    path = out / "three_faces_720p.mp4"
    recipe = f"three faces seed 5 1280x720 24fps {seconds}s"
    if _fresh(path, recipe):
        return path
    photos = [p for _, p in pick_face_photos(faces_dir, 3, seed=5)]
    w, h, T = 1280, 720, seconds
    actors = [
        Actor(photos[0], [(0, 250, 330, 150, 0), (T / 2, 420, 360, 170, 0), (T, 260, 330, 150, 0)]),
        Actor(photos[1], [(0, 700, 380, 130, 0), (T / 2, 620, 340, 120, 0), (T, 720, 380, 130, 0)]),
        Actor(photos[2], [(0, 1050, 300, 110, 0), (T / 2, 980, 420, 140, 0), (T, 1040, 300, 110, 0)]),
    ]
    scene = Scene("three", actors, T, (w, h), 24.0)
    _write(path, (img for _, img, _ in render(scene)), 24, (w, h))
    path.with_suffix(".recipe").write_text(recipe)
    return path


def build(out: Path = DEFAULT_OUT, faces_dir: Path | None = None) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    clips = {"720p": upscaled_sample(out, 720), "1080p": upscaled_sample(out, 1080)}
    tf = three_faces(out, faces_dir or ROOT.parent / "shared" / "data" / "faces")
    if tf is not None:
        clips["three_faces_720p"] = tf
    return clips


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args()
    for name, path in build(args.out).items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
