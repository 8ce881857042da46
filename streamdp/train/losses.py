"""Training losses (no pretrained perceptual network exists offline).

- masked L1 on pixels at three scales (full, 1/2, 1/4): colour and coarse structure;
- masked L1 on image gradients at two scales: edges, so the L1 average does not wash out detail;
- 1 - SSIM (local 7x7 statistics) inside the mask: local contrast and structure;
- hinge adversarial loss from a small patch discriminator (optional, after a warm-up);
- latent regularisers: the clip penalty (raw latents beyond the bound) and a moment match of the
  latent batch to N(0, I) (zero mean, unit variance, decorrelated coordinates), so the released
  latent's post-processing can use that prior and random latents decode to plausible faces.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _down(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 2)


def _grads(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def weighted_l1(a: torch.Tensor, b: torch.Tensor, m: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Per-sample weight ``w`` (N,), mask ``m`` (1,1,H,W): mean over masked pixels."""
    per = ((a - b).abs() * m).flatten(1).sum(1) / (m.sum() * a.shape[1] + 1e-6)
    return (per * w).mean()


def multiscale_l1(a, b, m, w):
    loss = 0.0
    for s in range(3):
        loss = loss + weighted_l1(a, b, m, w)
        a, b, m = _down(a), _down(b), _down(m)
    return loss / 3


def gradient_l1(a, b, m, w):
    loss = 0.0
    for s in range(2):
        (ax, ay), (bx, by) = _grads(a), _grads(b)
        mx, my = m[..., :, 1:] * m[..., :, :-1], m[..., 1:, :] * m[..., :-1, :]
        loss = loss + weighted_l1(ax, bx, mx, w) + weighted_l1(ay, by, my, w)
        a, b, m = _down(a), _down(b), _down(m)
    return loss / 2


def ssim_loss(a, b, m, w, k: int = 7):
    c1, c2 = 0.01**2, 0.03**2
    mu_a, mu_b = F.avg_pool2d(a, k, 1, k // 2), F.avg_pool2d(b, k, 1, k // 2)
    sa = F.avg_pool2d(a * a, k, 1, k // 2) - mu_a**2
    sb = F.avg_pool2d(b * b, k, 1, k // 2) - mu_b**2
    sab = F.avg_pool2d(a * b, k, 1, k // 2) - mu_a * mu_b
    ssim = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (sa + sb + c2))
    per = ((1 - ssim) * m).flatten(1).sum(1) / (m.sum() * a.shape[1] + 1e-6)
    return (per * w).mean()


def clip_penalty(raw: torch.Tensor, bound: float) -> torch.Tensor:
    return F.relu(raw.abs() - bound).pow(2).mean()


def moment_penalty(z: torch.Tensor) -> torch.Tensor:
    mean = z.mean(0)
    zc = z - mean
    cov = zc.T @ zc / (len(z) - 1)
    var = torch.diagonal(cov)
    off = cov - torch.diag(var)
    return mean.pow(2).mean() + (var - 1).pow(2).mean() + off.pow(2).sum() / (len(var) * (len(var) - 1)) * 10


def d_hinge(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def g_hinge(fake_logits: torch.Tensor) -> torch.Tensor:
    return -fake_logits.mean()
