"""The training loop (CPU-friendly; time-budgeted; checkpointed so a partial run still exports).

Every step, a batch of aligned crops is encoded, the latent clamped to the enforced bound
(exactly what the runtime mechanism does), and the decoder is trained on a mix of latents:

- ``clean``: the clamped latent plus a little jitter (reconstruction);
- ``noised``: what the runtime releases: clamped latent + Laplace noise of a random scale
  (log-uniform over ``noise_scale_range``), then the same post-processing as
  ``streamdp.privacy.mechanisms`` (Gaussian-prior posterior sample); for part of these only the
  identity slice is noised (the ``identity-only`` mechanism). The reconstruction weight is the
  fraction of the latent's variance that survives the noise, so heavy noise does not pull the
  decoder towards a blurred average; the adversarial term keeps those outputs sharp;
- ``nested``: the non-identity slice replaced by a prior sample, so the identity slice has to
  carry the main information on its own.

The learning rate follows a cosine in ``max(step / max_steps, elapsed / max_minutes)``, so a run
cut short by the time budget still anneals.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import losses as L
from .model import Decoder, Encoder, PatchDiscriminator

log = logging.getLogger(__name__)

FLIP_KP = [1, 0, 2, 3, 5, 4]  # right/left eye and ear swap under a horizontal flip


@dataclass
class Batch:
    x: torch.Tensor
    kp: torch.Tensor


def sample_batch(crops: np.ndarray, kps: np.ndarray, idx: np.ndarray, rng: np.random.Generator) -> Batch:
    x = torch.from_numpy(np.ascontiguousarray(crops[idx].transpose(0, 3, 1, 2))).float() / 255.0
    kp = torch.from_numpy(kps[idx]).clone().reshape(-1, 6, 2)
    flip = torch.from_numpy(rng.random(len(idx)) < 0.5)
    if flip.any():
        x[flip] = torch.flip(x[flip], dims=[3])
        k = kp[flip][:, FLIP_KP]
        k[..., 0] = 1.0 - k[..., 0]
        kp[flip] = k
    # mild photometric jitter (brightness / contrast), the context carries the lighting
    gain = torch.from_numpy(rng.uniform(0.85, 1.15, (len(idx), 1, 1, 1))).float()
    bias = torch.from_numpy(rng.uniform(-0.05, 0.05, (len(idx), 1, 1, 1))).float()
    x = torch.clamp(x * gain + bias, 0.0, 1.0)
    return Batch(x, kp.reshape(-1, 12))


def posterior_sample(y: torch.Tensor, var: torch.Tensor, bound: float) -> torch.Tensor:
    """Gaussian-prior posterior sample of z given y = z + noise of variance var (per coordinate)."""
    mean = y / (1 + var)
    std = torch.sqrt(var / (1 + var))
    return torch.clamp(mean + std * torch.randn_like(y), -bound, bound)


def make_latents(z: torch.Tensor, cfg: dict, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix of clean / noised / identity-only / nested latents and per-sample recon weights."""
    n, d = z.shape
    B = cfg["clip_bound"]
    k = cfg["identity_dims"]
    u = torch.rand(n, generator=gen)
    lo, hi = (math.log10(v) for v in cfg["noise_scale_range"])
    b = 10 ** (lo + (hi - lo) * torch.rand(n, 1, generator=gen))
    var = 2 * b * b
    lap = torch.distributions.Laplace(0.0, 1.0).sample((n, d)) * b
    noised = posterior_sample(z + lap, var.expand(n, d), B)
    out = z + 0.05 * torch.randn(n, d, generator=gen)
    w = torch.ones(n)
    p_clean, p_noise, p_idonly = cfg["mix"]["clean"], cfg["mix"]["noised"], cfg["mix"]["identity_only"]
    sel_noise = (u >= p_clean) & (u < p_clean + p_noise)
    sel_id = (u >= p_clean + p_noise) & (u < p_clean + p_noise + p_idonly)
    sel_nest = u >= p_clean + p_noise + p_idonly
    keep = (1.0 / (1.0 + var)).squeeze(1)
    floor = cfg["min_recon_weight"]
    out = torch.where(sel_noise[:, None], noised, out)
    w = torch.where(sel_noise, torch.clamp(keep, min=floor), w)
    idn = out.clone()
    idn[:, :k] = noised[:, :k]
    out = torch.where(sel_id[:, None], idn, out)
    w = torch.where(sel_id, torch.clamp(0.5 + 0.5 * keep, min=floor), w)
    prior = torch.clamp(torch.randn(n, d, generator=gen), -B, B)
    nest = out.clone()
    nest[:, k:] = prior[:, k:]
    out = torch.where(sel_nest[:, None], nest, out)
    return torch.clamp(out, -B, B), w


class EMA:
    def __init__(self, modules: list[torch.nn.Module], decay: float) -> None:
        self.decay = decay
        self.shadow = [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in modules]

    def update(self, modules: list[torch.nn.Module]) -> None:
        with torch.no_grad():
            for sh, m in zip(self.shadow, modules):
                for k, v in m.state_dict().items():
                    if v.dtype.is_floating_point:
                        sh[k].mul_(self.decay).add_(v.detach(), alpha=1 - self.decay)
                    else:
                        sh[k].copy_(v)


def build_models(cfg: dict[str, Any], mask: np.ndarray) -> tuple[Encoder, Decoder]:
    S, D, W = cfg["data"]["crop_size"], cfg["model"]["latent_dim"], cfg["model"]["width"]
    m = torch.from_numpy(np.array(mask, np.float32, copy=True))  # never alias streamdp.align's cache
    return Encoder(S, D, m, W), Decoder(S, D, m, W)


def fit(cfg: dict[str, Any], data: dict[str, np.ndarray], mask: np.ndarray, out_dir: Path) -> Path:
    """Train (resuming from ``out_dir/ckpt.pt`` when present); returns the checkpoint path."""
    tc, mc, lw = cfg["train"], cfg["model"], cfg["loss"]
    torch.set_num_threads(int(tc.get("threads", 2)))
    torch.manual_seed(int(tc["seed"]))
    rng = np.random.default_rng(int(tc["seed"]))
    gen = torch.Generator().manual_seed(int(tc["seed"]) + 1)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = out_dir / "ckpt.pt"
    log_path = out_dir / "train_log.jsonl"

    enc, dec = build_models(cfg, mask)
    disc = PatchDiscriminator(int(mc.get("disc_width", 32)))
    g_params = list(enc.parameters()) + list(dec.parameters())
    opt_g = torch.optim.Adam(g_params, lr=tc["lr"], betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=tc["lr"], betas=(0.5, 0.999))
    ema = EMA([enc, dec], float(tc["ema"]))
    step, elapsed_before = 0, 0.0
    if ckpt_path.is_file() and tc.get("resume", True):
        st = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        enc.load_state_dict(st["encoder"])
        dec.load_state_dict(st["decoder"])
        disc.load_state_dict(st["disc"])
        opt_g.load_state_dict(st["opt_g"])
        opt_d.load_state_dict(st["opt_d"])
        ema.shadow = [st["ema_encoder"], st["ema_decoder"]]
        step, elapsed_before = int(st["step"]), float(st["elapsed_s"])
        log.info("resumed at step %d (%.1f min)", step, elapsed_before / 60)
        # The face mask is part of the graphs (buffers). If streamdp.align's mask changed since the
        # checkpoint, continue (fine-tune) with the current one: the runtime uses the current one.
        cur = torch.from_numpy(np.array(mask, np.float32, copy=True)).reshape(enc.mask.shape)
        if not torch.equal(enc.mask, cur):
            log.warning("face mask differs from the checkpoint's: fine-tuning with the current streamdp.align mask")
        for mod, shadow in zip([enc, dec], ema.shadow):
            mod.mask.copy_(cur)
            shadow["mask"].copy_(cur)

    crops, kps = data["crops"], data["keypoints"]
    N = len(crops)
    S = int(cfg["data"]["crop_size"])
    m = torch.from_numpy(np.array(mask, np.float32, copy=True)).reshape(1, 1, S, S)
    lm = torch.clamp(m * 4.0, 0.0, 1.0)  # loss region: the mask including its feathered rim
    lat_cfg = {
        "clip_bound": float(mc["clip_bound"]),
        "identity_dims": int(mc["identity_dims"]),
        "noise_scale_range": tc["noise_scale_range"],
        "mix": tc["mix"],
        "min_recon_weight": float(tc["min_recon_weight"]),
    }
    max_steps, budget_s = int(tc["max_steps"]), float(tc["max_minutes"]) * 60
    bs = int(tc["batch_size"])
    t_start = time.time() - elapsed_before
    last_ckpt = time.time()
    perm, pos = rng.permutation(N), 0

    def save() -> None:
        st = {
            "encoder": enc.state_dict(), "decoder": dec.state_dict(), "disc": disc.state_dict(),
            "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
            "ema_encoder": ema.shadow[0], "ema_decoder": ema.shadow[1],
            "step": step, "elapsed_s": time.time() - t_start, "config": cfg,
        }
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save(st, tmp)
        os.replace(tmp, ckpt_path)

    with open(log_path, "a", encoding="utf-8") as logf:
        while True:
            elapsed = time.time() - t_start
            frac = max(step / max_steps, elapsed / budget_s)
            if frac >= 1.0:
                break
            lr = tc["lr_min"] + 0.5 * (tc["lr"] - tc["lr_min"]) * (1 + math.cos(math.pi * frac))
            for o in (opt_g, opt_d):
                for g in o.param_groups:
                    g["lr"] = lr
            if pos + bs > N:
                perm, pos = rng.permutation(N), 0
            idx = np.sort(perm[pos : pos + bs])
            pos += bs
            b = sample_batch(crops, kps, idx, rng)
            ctx = b.x * (1 - m)

            raw = enc(b.x)
            z = torch.clamp(raw, -lat_cfg["clip_bound"], lat_cfg["clip_bound"])
            zl, w = make_latents(z, lat_cfg, gen)
            face = dec(zl, ctx, b.kp)
            y = ctx + face * m  # what the runtime pastes into the frame
            rec = L.multiscale_l1(y, b.x, lm, w) + lw["outside"] * (face - b.x).abs().mean()
            grd = L.gradient_l1(y, b.x, lm, w)
            ssim = L.ssim_loss(y, b.x, lm, w)
            cpen = L.clip_penalty(raw, lat_cfg["clip_bound"])
            mom = L.moment_penalty(raw)
            use_adv = lw["adv"] > 0 and frac >= tc["adv_start"]
            adv = torch.zeros(())
            if use_adv:
                adv = L.g_hinge(disc(y))
            loss = (
                lw["l1"] * rec + lw["grad"] * grd + lw["ssim"] * ssim
                + lw["clip"] * cpen + lw["moments"] * mom + lw["adv"] * adv
            )
            opt_g.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(g_params, 5.0)
            opt_g.step()
            ema.update([enc, dec])
            dloss = torch.zeros(())
            if use_adv:
                dloss = L.d_hinge(disc(b.x), disc(y.detach()))
                opt_d.zero_grad(set_to_none=True)
                dloss.backward()
                opt_d.step()
            step += 1
            if step % 10 == 0 or step == 1:
                rec_clean = float(((y - b.x).abs() * lm).flatten(1).sum(1)[w >= 0.999].mean() / (lm.sum() * 3))
                rec_line = {
                    "step": step, "elapsed_s": round(time.time() - t_start, 1), "lr": lr,
                    "loss": float(loss), "l1": float(rec), "grad": float(grd), "ssim": float(ssim),
                    "clip": float(cpen), "moments": float(mom), "adv_g": float(adv), "adv_d": float(dloss),
                    "l1_clean": rec_clean, "latent_std": float(raw.std(0).mean()),
                    "clipped_frac": float((raw.abs() > lat_cfg["clip_bound"]).float().mean()),
                }
                logf.write(json.dumps(rec_line) + "\n")
                logf.flush()
                if step % 50 == 0 or step == 1:
                    log.info("step %d %.1f min loss %.4f l1_clean %.4f", step, rec_line["elapsed_s"] / 60, float(loss), rec_clean)
            if time.time() - last_ckpt > float(tc["ckpt_every_s"]):
                save()
                last_ckpt = time.time()
    save()
    log.info("training done: %d steps in %.1f min", step, (time.time() - t_start) / 60)
    return ckpt_path


def load_ema(ckpt_path: Path, cfg: dict[str, Any], mask: np.ndarray) -> tuple[Encoder, Decoder, dict]:
    st = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    enc, dec = build_models(cfg, mask)
    enc.load_state_dict(st["ema_encoder"])
    dec.load_state_dict(st["ema_decoder"])
    enc.eval()
    dec.eval()
    return enc, dec, st
