"""Figures for docs/model.md: training curves and sample grids (evaluation identities only).

The sample grid runs the *shipped* ONNX model through the real numpy mechanisms
(``streamdp.privacy``), so it shows what ``streamdp run`` produces, not a torch-side idealisation.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np


def training_curves(log_path: Path, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in Path(log_path).read_text().splitlines() if line.strip()]
    rows.sort(key=lambda r: r["step"])
    dedup: dict[int, dict] = {r["step"]: r for r in rows}
    rows = [dedup[k] for k in sorted(dedup)]
    step = np.array([r["step"] for r in rows])

    def series(key: str) -> np.ndarray:
        return np.array([r.get(key, np.nan) for r in rows], dtype=float)

    def smooth(v: np.ndarray, k: int = 5) -> np.ndarray:
        if len(v) < k:
            return v
        return np.convolve(np.pad(v, (k // 2, k - 1 - k // 2), mode="edge"), np.ones(k) / k, mode="valid")

    fig, ax = plt.subplots(1, 3, figsize=(15, 4))
    for key, label in (("l1_clean", "L1 (clean latents)"), ("l1", "L1 (weighted, all)"), ("grad", "gradient L1"), ("ssim", "1-SSIM")):
        ax[0].plot(step, smooth(series(key)), label=label)
    ax[0].set_title("reconstruction (face region)")
    ax[0].set_xlabel("step")
    ax[0].set_yscale("log")
    ax[0].legend()
    for key, label in (("adv_g", "generator hinge"), ("adv_d", "discriminator hinge")):
        ax[1].plot(step, smooth(series(key)), label=label)
    ax[1].set_title("adversarial terms")
    ax[1].set_xlabel("step")
    ax[1].legend()
    for key, label in (("moments", "moment penalty"), ("latent_std", "latent std (mean over dims)"), ("clipped_frac", "fraction of coordinates clipped")):
        ax[2].plot(step, smooth(series(key)), label=label)
    ax[2].set_title("latent")
    ax[2].set_xlabel("step")
    ax[2].legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def _label(img: np.ndarray, text: str) -> np.ndarray:
    h = 18
    bar = np.full((h, img.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text, (3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, img], 0)


def pick_eval_faces(eval_data: dict[str, np.ndarray], n: int, seed: int = 0) -> np.ndarray:
    """Indices of n crops of n different evaluation identities."""
    people = np.array([p.split("/")[1] if "/" in p else p for p in eval_data["path"]])
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(people))
    seen, idx = set(), []
    for i in order:
        if people[i] not in seen:
            seen.add(people[i])
            idx.append(int(i))
        if len(idx) == n:
            break
    return np.array(idx)


def run_model(model_dir: Path, crops_u8: np.ndarray, kps: np.ndarray, mechanism: str, epsilon: float, seed: int | None, delta: float = 1e-6) -> np.ndarray:
    """Encode -> clip -> release (one per face) -> decode -> blend, like the runtime. uint8 NHWC."""
    import onnxruntime as ort

    from ..align import face_mask
    from ..privacy import build_latent_mechanism, read_model_metadata

    meta = read_model_metadata(model_dir / "encoder.onnx")
    S = int(meta["streamdp.crop_size"])
    mask = face_mask(S, float(meta["streamdp.mask_feather"]))
    so = ort.SessionOptions()
    so.log_severity_level = 3
    enc = ort.InferenceSession(str(model_dir / "encoder.onnx"), so, providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(model_dir / "decoder.onnx"), so, providers=["CPUExecutionProvider"])
    x = crops_u8.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    ctx = (x * (1 - mask)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mech = build_latent_mechanism(mechanism, epsilon=epsilon, delta=delta, metadata=meta, seed=seed)
    z = mech.clip(enc.run(["latent"], {"face": x})[0])
    released = mech.release(z, mech.sample_noise(len(z)))
    out = dec.run(["face"], {"latent": released, "context": ctx, "keypoints": kps.astype(np.float32)})[0]
    comp = x * (1 - mask) + out * mask
    return (np.clip(comp, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)


def sample_grid(cfg: dict[str, Any], model_dir: Path, eval_data: dict[str, np.ndarray], out: Path) -> Path:
    sc = cfg["samples"]
    n = int(cfg["data"].get("eval_samples", 8))
    idx = pick_eval_faces(eval_data, n, int(sc.get("seed", 1)))
    crops, kps = eval_data["crops"][idx], eval_data["keypoints"][idx]
    from ..align import face_mask

    S = crops.shape[1]
    mask = face_mask(S, float(cfg["data"]["mask_feather"]))
    cols = [("original", crops), ("context (input)", (crops * (1 - mask[..., None])).astype(np.uint8))]
    cols.append(("no noise", run_model(model_dir, crops, kps, "none", 1.0, None)))
    for i, eps in enumerate(sc["epsilons"]):
        cols.append((f"laplace e={eps:g}", run_model(model_dir, crops, kps, sc["mechanism"], float(eps), int(sc["seed"]) + i)))
    _write_grid(cols, out)
    # a second grid: the other mechanisms at a few epsilons
    cols2 = [("original", crops)]
    for mech, eps in (("metric", 1000.0), ("metric", 100.0), ("gaussian", 100.0), ("gaussian", 10.0), ("identity-only", 1000.0), ("identity-only", 8.0)):
        cols2.append((f"{mech} e={eps:g}", run_model(model_dir, crops, kps, mech, eps, int(sc["seed"]) + 100)))
    _write_grid(cols2, out.with_name(out.stem + "_mechanisms.png"))
    return out


def _write_grid(cols: list[tuple[str, np.ndarray]], out: Path) -> None:
    columns = []
    for title, imgs in cols:
        col = np.concatenate([np.pad(im, ((1, 1), (1, 1), (0, 0)), constant_values=255) for im in imgs], 0)
        columns.append(_label(col, title))
    grid = np.concatenate(columns, 1)
    grid = cv2.resize(grid, None, fx=1.5, fy=1.5, interpolation=cv2.INTER_CUBIC)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))


def eval_table(model_dir: Path, eval_data: dict[str, np.ndarray], n: int = 96, mechanism: str = "laplace",
               epsilons: tuple[float, ...] = (1e5, 1e4, 3e3, 1e3, 100.0, 8.0), seed: int = 3) -> list[dict[str, float]]:
    """Face-region L1 / PSNR of the blended output against the original, per epsilon (eval identities)."""
    from ..align import face_mask
    from ..privacy import read_model_metadata

    meta = read_model_metadata(model_dir / "encoder.onnx")
    S = int(meta["streamdp.crop_size"])
    inside = face_mask(S, float(meta["streamdp.mask_feather"])) > 0.5
    crops, kps = eval_data["crops"][:n], eval_data["keypoints"][:n]
    ref = crops.astype(np.float32) / 255.0
    rows = []
    for eps in (None, *epsilons):
        out = run_model(model_dir, crops, kps, "none" if eps is None else mechanism, eps or 1.0, seed).astype(np.float32) / 255.0
        err = np.abs(out - ref)[:, inside]
        mse = float(np.mean((out - ref)[:, inside] ** 2))
        rows.append({"epsilon": "none" if eps is None else eps, "l1": float(err.mean()), "psnr_db": 10 * np.log10(1.0 / mse)})
    return rows
