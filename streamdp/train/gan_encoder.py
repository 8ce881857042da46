"""Train the encoder into the generator's latent and write the ``dpimage-gan-v1`` model folder.

``python -m streamdp.train.gan_encoder --pairs DIR --out streamdp/models/dpimage-gan`` (train extra:
torch, onnx). DIR comes from ``streamdp.train.gan_pairs``. Steps:

1. Our own detector finds the keypoints of every generated face; our own alignment cuts the
   96 px crop the runtime will cut from a video frame (so train and runtime crops match).
2. ``latent.npz``: w's mean and top-D principal directions and sigmas, the yaw direction (ridge
   regression of the keypoint yaw proxy on w), the average colour ring of generated faces.
3. A small CNN learns crop -> whitened top-D coordinates of w (mean squared error, colour and
   geometric jitter so that real video crops are not out of distribution).
4. ONNX export (``face`` [N,3,96,96] in [0,1] -> ``latent`` [N,D]) with the privacy metadata
   (clip bound, true sensitivities, the prior the posterior post-processing uses).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import cv2
import numpy as np

from ..align import ALIGN_VERSION, estimate_transforms, warp_crops
from ..generator.latent import yaw_proxy
from ..generator.render import crop_rim, ring_points
from .export import privacy_metadata

CROP = 96
DIM = 32
CLIP_BOUND = 2.0  # whitened units; covers > 99% of generated faces' coordinates (std ~0.77)
FORMAT = "dpimage-gan-v1"


def annotate(pairs: Path, limit: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Keypoints (N,6,2) px of the 256 images, found flags, 96 px aligned crops, 64 px crops."""
    from ..detect import FaceDetector

    files = sorted((pairs / "img").glob("[0-9]*.jpg"))
    files = [f for f in files if not f.name.endswith(".tmp.jpg")][: limit or None]
    kps, found, crops, crops64 = [], [], [], []
    with FaceDetector() as det:
        for f in files:
            img = cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB)
            d = det.detect(img)
            ok = len(d) > 0
            kp = d.keypoints[int(np.argmax(d.areas))] if ok else np.zeros((6, 2), np.float32)
            kps.append(kp)
            found.append(ok)
            m = estimate_transforms(kp[None], CROP) if ok else np.zeros((1, 2, 3), np.float32)
            crops.append(warp_crops(img, m, CROP)[0] if ok else np.zeros((CROP, CROP, 3), np.uint8))
            m64 = estimate_transforms(kp[None], 64) if ok else np.zeros((1, 2, 3), np.float32)
            crops64.append(warp_crops(img, m64, 64)[0] if ok else np.zeros((64, 64, 3), np.uint8))
    return np.array(kps), np.array(found), np.array(crops), np.array(crops64)


def fit_latent(pairs: Path, w: np.ndarray, kps: np.ndarray, crops64: np.ndarray, dim: int) -> dict[str, np.ndarray]:
    stats = np.load(pairs / "w_stats.npz")
    mean = stats["mean"].astype(np.float64)
    basis = stats["components"][:dim].astype(np.float64)
    sigma = np.sqrt(stats["variance"][:dim].astype(np.float64))
    yaw = yaw_proxy(kps)
    x = w.astype(np.float64) - mean
    lam = 1e-1 * len(x)
    beta = np.linalg.solve(x.T @ x + lam * np.eye(512), x.T @ (yaw - yaw.mean()))
    bias = float(yaw.mean())
    direction = beta / float(beta @ beta)  # a step of 1 along it changes the predicted yaw by 1
    pred = x @ beta + bias
    r2 = 1 - np.mean((pred - yaw) ** 2) / np.var(yaw)
    pts = ring_points(64).astype(np.int64)
    ring = crops64[:, pts[:, 1], pts[:, 0]].reshape(-1, 3).astype(np.float64)
    ring_ref = np.stack([ring.mean(0), ring.std(0) + 1.0])
    # what the rendered face shows at the edge of the replaced ellipse, sector by sector
    pat = np.stack([crop_rim(c).reshape(-1) for c in crops64])
    rbeta = np.linalg.solve(x.T @ x + lam * np.eye(512), x.T @ (pat - pat.mean(0)))
    ring_r2 = 1 - np.mean((x @ rbeta + pat.mean(0) - pat) ** 2) / np.mean(pat.var(0))
    print(f"rim colour fit R^2 {ring_r2:.3f}", flush=True)
    print(f"yaw proxy: std {yaw.std():.3f}, fit R^2 {r2:.3f}; ring reference mean {ring_ref[0].round(1)}", flush=True)
    return {
        "mean": mean.astype(np.float32),
        "basis": basis.astype(np.float32),
        "sigma": sigma.astype(np.float32),
        "yaw_direction": direction.astype(np.float32),
        "yaw_beta": beta.astype(np.float32),
        "yaw_bias": np.float32(bias),
        "ring_reference": ring_ref.astype(np.float32),
        "ring_beta": rbeta.astype(np.float32),
        "ring_bias": pat.mean(0).astype(np.float32),
        "ring_r2": np.float32(ring_r2),
        "yaw_r2": np.float32(r2),
        "yaw_std": np.float32(yaw.std()),
    }


def build_model(dim: int):  # type: ignore[no-untyped-def]
    import torch.nn as nn

    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        )

    return nn.Sequential(
        block(3, 32), block(32, 64), block(64, 128), block(128, 192),  # 96 -> 6
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(192, dim),
    )


def augment(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Colour (gain, saturation, gamma), blur, noise and small misalignment: video crops are all of those."""
    out = np.empty_like(batch)
    for i, img in enumerate(batch):
        a = img.astype(np.float32)
        a *= rng.uniform(0.7, 1.3, 3)[None, None] * rng.uniform(0.7, 1.2)
        grey = a.mean(axis=2, keepdims=True)
        a = grey + (a - grey) * rng.uniform(0.3, 1.3)
        a = 255.0 * (np.clip(a, 0, 255) / 255.0) ** rng.uniform(0.8, 1.25)
        ang, sc = rng.normal(0, 4), math.exp(rng.normal(0, 0.05))
        m = cv2.getRotationMatrix2D((CROP / 2 + rng.normal(0, 2), CROP / 2 + rng.normal(0, 2)), ang, sc)
        a = cv2.warpAffine(a, m, (CROP, CROP), borderMode=cv2.BORDER_REPLICATE)
        if rng.random() < 0.4:
            a = cv2.GaussianBlur(a, (0, 0), rng.uniform(0.5, 1.6))
        if rng.random() < 0.4:  # downscale-upscale: small faces in video
            s = int(rng.integers(24, 64))
            a = cv2.resize(cv2.resize(a, (s, s), interpolation=cv2.INTER_AREA), (CROP, CROP))
        a += rng.normal(0, rng.uniform(0, 6), a.shape)
        out[i] = np.clip(a, 0, 255).astype(np.uint8)
    return out


def train(crops: np.ndarray, targets: np.ndarray, minutes: float, seed: int = 0):  # type: ignore[no-untyped-def]
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(2)
    rng = np.random.default_rng(seed)
    n = len(crops)
    val = rng.permutation(n)[: max(n // 10, 32)]
    tr = np.setdiff1d(np.arange(n), val)
    model = build_model(targets.shape[1])
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    t_end = time.time() + minutes * 60
    step, epoch = 0, 0
    xv = torch.from_numpy(crops[val].astype(np.float32).transpose(0, 3, 1, 2) / 255.0)
    yv = torch.from_numpy(targets[val].astype(np.float32))
    history = []
    while time.time() < t_end:
        model.train()
        order = rng.permutation(tr)
        for s in range(0, len(order) - 31, 64):
            idx = order[s : s + 64]
            x = torch.from_numpy(augment(crops[idx], rng).astype(np.float32).transpose(0, 3, 1, 2) / 255.0)
            y = torch.from_numpy(targets[idx].astype(np.float32))
            frac = min((time.time() - (t_end - minutes * 60)) / (minutes * 60), 1.0)
            for g in opt.param_groups:
                g["lr"] = 2e-3 * 0.5 * (1 + math.cos(math.pi * frac))
            loss = torch.nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if time.time() >= t_end:
                break
        epoch += 1
        model.eval()
        with torch.no_grad():
            pv = model(xv)
            r2 = 1 - ((pv - yv) ** 2).mean(0) / yv.var(0)
        history.append({"epoch": epoch, "step": step, "train_loss": float(loss), "val_r2_mean": float(r2.mean())})
        print(f"epoch {epoch} step {step} loss {float(loss):.3f} val R^2 {float(r2.mean()):.3f} (first 8: {float(r2[:8].mean()):.3f})", flush=True)
    return model, history, val


def export(model, out: Path, meta: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    import torch

    from .export import stamp_metadata

    model.eval()
    path = out / "encoder.onnx"
    tmp = out / "encoder.tmp.onnx"
    torch.onnx.export(
        model, torch.zeros(1, 3, CROP, CROP), str(tmp), input_names=["face"], output_names=["latent"],
        dynamic_axes={"face": {0: "n"}, "latent": {0: "n"}}, opset_version=17, dynamo=False,
    )
    stamp_metadata(tmp, meta)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m streamdp.train.gan_encoder")
    p.add_argument("--pairs", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--minutes", type=float, default=15.0)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--dim", type=int, default=DIM)
    p.add_argument("--latent-only", action="store_true", help="refit latent.npz only; keep the encoder in --out")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    kps, found, crops, crops64 = annotate(args.pairs, args.limit)
    n = len(found)
    w = np.load(args.pairs / "w.npy")[:n]
    print(f"{n} generated faces, detector found {found.mean():.1%} ({time.time() - t0:.0f} s)", flush=True)
    kps, crops, crops64, w = kps[found], crops[found], crops64[found], w[found]
    lat = fit_latent(args.pairs, w, kps, crops64, args.dim)
    np.savez(args.out / "latent.npz", **lat)
    from ..model_files import is_shipped, write_manifest

    if is_shipped(args.out / "latent.npz"):  # keep the shipped checksum list true
        write_manifest()
    if args.latent_only:
        print(f"wrote {args.out / 'latent.npz'}", flush=True)
        return 0
    targets = ((w.astype(np.float64) - lat["mean"]) @ lat["basis"].T.astype(np.float64)) / lat["sigma"]
    print(f"target std {targets.std(0).mean():.3f}; |c| > clip {np.mean(np.abs(targets) > CLIP_BOUND):.4f}", flush=True)
    model, history, val = train(crops, targets, args.minutes)
    D = args.dim
    meta = {
        **privacy_metadata(FORMAT, CROP, D, CLIP_BOUND, D),
        "streamdp.mask_feather": "0.15",
        "streamdp.latent_prior": f"normal:{float(targets.std()):.3f}",
        "streamdp.training_data": f"{len(w)} MobileStyleGAN samples (psi 0.5-1.0), crops by streamdp.detect + align",
        "streamdp.align_version": ALIGN_VERSION,
        "streamdp.generator": "MobileStyleGAN (random-face 2021.7.21.1)",
        "streamdp.version": "2.0.0",
        "streamdp.exported": time.strftime("%Y-%m-%d"),
    }
    export(model, args.out, meta)
    (args.out / "training.json").write_text(json.dumps({"samples": len(w), "history": history, "minutes": args.minutes}, indent=1))
    print(f"wrote {args.out} in {(time.time() - t0) / 60:.1f} min", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
