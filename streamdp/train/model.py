"""The DP-Image face autoencoder (torch; only for training and export).

Encoder: the aligned crop, masked to the face region inside the graph (so the latent can only
carry what is inside the face mask), -> a D-dimensional latent (raw, unclipped).
Decoder: latent + the masked context crop + the six keypoints (rasterised as Gaussian heatmaps
inside the graph) -> a full generated crop; the runtime blends it into the frame inside the face
mask, and training scores exactly that blend (``context + face * mask``).

See docs/model.md for the reasons behind the design.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _norm(ch: int) -> nn.Module:
    return nn.GroupNorm(min(8, ch // 4), ch)


class Down(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 4, stride=2, padding=1)
        self.n1 = _norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.n2 = _norm(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.n1(self.conv1(x)), 0.2)
        return F.leaky_relu(x + self.n2(self.conv2(x)), 0.2)


class Up(nn.Module):
    """Upsample x2, concatenate the context skip, conv, FiLM-modulate by the latent."""

    def __init__(self, cin: int, cskip: int, cout: int, dlat: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin + cskip, cout, 3, padding=1)
        self.n1 = nn.GroupNorm(min(8, cout // 4), cout, affine=False)
        self.film = nn.Linear(dlat, 2 * cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.n2 = _norm(cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor, lat: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        x = self.n1(self.conv1(torch.cat([x, skip], 1)))
        gamma, beta = self.film(lat).unsqueeze(-1).unsqueeze(-1).chunk(2, 1)
        x = F.leaky_relu(x * (1 + gamma) + beta, 0.2)
        return F.leaky_relu(x + self.n2(self.conv2(x)), 0.2)


class Encoder(nn.Module):
    def __init__(self, crop_size: int, latent_dim: int, mask: torch.Tensor, width: int = 32) -> None:
        super().__init__()
        self.register_buffer("mask", mask.reshape(1, 1, crop_size, crop_size).float().clone())
        w = width
        self.blocks = nn.Sequential(Down(4, w), Down(w, 2 * w), Down(2 * w, 4 * w), Down(4 * w, 6 * w))
        r = crop_size // 16
        self.head = nn.Linear(6 * w * r * r, latent_dim)

    def forward(self, face: torch.Tensor) -> torch.Tensor:
        m = self.mask.expand(face.shape[0], -1, -1, -1)
        x = torch.cat([(face - 0.5) * 2.0 * m, m], 1)
        x = self.blocks(x)
        return self.head(x.flatten(1))


class Decoder(nn.Module):
    def __init__(
        self, crop_size: int, latent_dim: int, mask: torch.Tensor, width: int = 32, kp_sigma: float = 0.04
    ) -> None:
        super().__init__()
        S = crop_size
        self.S = S
        self.register_buffer("mask", mask.reshape(1, 1, S, S).float().clone())
        ys, xs = torch.meshgrid(torch.arange(S).float(), torch.arange(S).float(), indexing="ij")
        self.register_buffer("gx", ((xs + 0.5) / S).reshape(1, 1, S, S))
        self.register_buffer("gy", ((ys + 0.5) / S).reshape(1, 1, S, S))
        self.kp_inv2s2 = 1.0 / (2.0 * kp_sigma * kp_sigma)
        w = width
        self.d1, self.d2, self.d3, self.d4 = Down(3 + 1 + 6, w), Down(w, 2 * w), Down(2 * w, 4 * w), Down(4 * w, 6 * w)
        r = S // 16
        self.r = r
        self.seed = nn.Linear(latent_dim, 6 * w * r * r)
        self.mid = nn.Conv2d(12 * w, 6 * w, 3, padding=1)
        self.u3 = Up(6 * w, 4 * w, 4 * w, latent_dim)
        self.u2 = Up(4 * w, 2 * w, 2 * w, latent_dim)
        self.u1 = Up(2 * w, w, w, latent_dim)
        self.u0 = Up(w, 3 + 1 + 6, w, latent_dim)
        self.out = nn.Conv2d(w, 3, 3, padding=1)

    def heatmaps(self, keypoints: torch.Tensor) -> torch.Tensor:
        kx = keypoints[:, 0::2].unsqueeze(-1).unsqueeze(-1)
        ky = keypoints[:, 1::2].unsqueeze(-1).unsqueeze(-1)
        return torch.exp(-((self.gx - kx) ** 2 + (self.gy - ky) ** 2) * self.kp_inv2s2)

    def forward(self, latent: torch.Tensor, context: torch.Tensor, keypoints: torch.Tensor) -> torch.Tensor:
        n = latent.shape[0]
        m = self.mask.expand(n, -1, -1, -1)
        x0 = torch.cat([(context - 0.5) * 2.0 * (1 - m), m, self.heatmaps(keypoints)], 1)
        s1 = self.d1(x0)
        s2 = self.d2(s1)
        s3 = self.d3(s2)
        s4 = self.d4(s3)
        h = self.seed(latent).reshape(n, -1, self.r, self.r)
        h = F.leaky_relu(self.mid(torch.cat([h, s4], 1)), 0.2)
        h = self.u3(h, s3, latent)
        h = self.u2(h, s2, latent)
        h = self.u1(h, s1, latent)
        h = self.u0(h, x0, latent)
        # The full crop; the runtime blends it into the frame inside the face mask.
        return torch.sigmoid(self.out(h))


class PatchDiscriminator(nn.Module):
    """A small patch discriminator for the optional adversarial term (training only)."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(3, w, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 4, 2, 1), _norm(2 * w), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1), _norm(4 * w), nn.LeakyReLU(0.2),
            nn.Conv2d(4 * w, 1, 3, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - 0.5) * 2.0)


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def ellipse_mask(S: int, feather: float) -> torch.Tensor:  # only for benchmarks without streamdp.align
    ys, xs = torch.meshgrid(torch.arange(S).float(), torch.arange(S).float(), indexing="ij")
    r = torch.sqrt(((xs - S / 2) / (0.36 * S)) ** 2 + ((ys - S * 0.55) / (0.45 * S)) ** 2)
    return torch.clamp((1.0 - r) / max(feather, 1e-3) + 0.5, 0, 1)


__all__ = ["Encoder", "Decoder", "PatchDiscriminator", "count_params", "ellipse_mask", "math"]
