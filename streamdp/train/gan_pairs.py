"""Training pairs for the generator-latent encoder: (w, generated face) from MobileStyleGAN.

``python -m streamdp.train.gan_pairs --out DIR --n 3000`` writes ``DIR/w.npy`` (N, 512) float32,
``DIR/img/NNNNN.jpg`` (the 1024 px face downscaled to ``--size``), ``DIR/w_stats.npz`` (mean and
PCA of w over 20,000 mapped z: the released latent's basis) and is resumable (images already on
disk are kept). Truncation psi is drawn per sample in [0.5, 1.0] so that the encoder sees the
range of faces the renderer produces.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from ..generator.backend import OpenVinoGenerator


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m streamdp.train.gan_pairs")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--n", type=int, default=3000)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stats-samples", type=int, default=20000)
    args = p.parse_args(argv)
    gen = OpenVinoGenerator()
    out: Path = args.out
    (out / "img").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    stats = out / "w_stats.npz"
    if not stats.is_file():
        t0 = time.time()
        z = np.random.default_rng(args.seed + 1).standard_normal((args.stats_samples, 512)).astype(np.float32)
        ws = gen.map(z).astype(np.float64)
        mean = ws.mean(0)
        u, s, vt = np.linalg.svd(ws - mean, full_matrices=False)
        var = s**2 / (len(ws) - 1)
        np.savez(stats, mean=mean.astype(np.float32), components=vt.astype(np.float32), variance=var.astype(np.float32))
        print(f"w statistics from {len(ws)} samples in {time.time() - t0:.1f} s", flush=True)
    w_avg = np.load(stats)["mean"]
    z = rng.standard_normal((args.n, 512)).astype(np.float32)
    psi = rng.uniform(0.5, 1.0, args.n).astype(np.float32)
    w_all = gen.map(z)
    w_all = w_avg + psi[:, None] * (w_all - w_avg)
    np.save(out / "w.npy", w_all.astype(np.float32))
    np.save(out / "psi.npy", psi)
    t0 = time.time()
    done = 0
    for i in range(args.n):
        path = out / "img" / f"{i:05d}.jpg"
        if path.is_file():
            continue
        img = gen.synthesize(w_all[i : i + 1])[0]
        small = cv2.resize(img, (args.size, args.size), interpolation=cv2.INTER_AREA)
        tmp = path.with_suffix(".tmp.jpg")
        cv2.imwrite(str(tmp), cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
        tmp.rename(path)
        done += 1
        if done % 100 == 0:
            print(f"{i + 1}/{args.n} ({(time.time() - t0) / done:.2f} s a face)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
