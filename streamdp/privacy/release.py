"""The release steps shared by every latent mechanism: clip, snap to the grid, add noise, post-process.

``y = round_g(clip(z)) + noise`` is the differentially private output; what the decoder receives is
a post-processing of ``y`` alone (see the package overview in ``mechanisms.py``). A noise family
subclasses ``LatentRelease`` with its sampler, its noise variance and its cost.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np

from . import sampling
from .geometry import LatentGeometry, PrivacyCost


class LatentMechanism(Protocol):
    name: str

    def clip(self, z: np.ndarray) -> np.ndarray: ...
    def sample_noise(self, n: int) -> np.ndarray: ...
    def release(self, z_clipped: np.ndarray, noise: np.ndarray) -> np.ndarray: ...
    def cost(self) -> PrivacyCost: ...
    def describe(self) -> dict[str, Any]: ...


class LatentRelease:
    """The steps every mechanism shares: clip to C, snap to the grid, add noise, post-process."""

    name = "base"
    sampler = ""

    def __init__(self, geometry: LatentGeometry, epsilon: float, seed: int | None, postprocess: str | None) -> None:
        if not (epsilon > 0 and math.isfinite(epsilon)):
            raise ValueError(f"epsilon must be a positive finite number, got {epsilon!r}")
        self.geo = geometry
        self.epsilon = float(epsilon)
        self.seeded = seed is not None
        self.rng = sampling.make_rng(seed)
        if postprocess is None:
            postprocess = "posterior" if geometry.prior_std is not None else "clamp"
        if postprocess not in ("posterior", "clamp"):
            raise ValueError(f"unknown postprocess {postprocess!r}")
        self.postprocess = postprocess

    # -- 1. the clip: the enforced sensitivity bound --------------------------------------------
    def clip(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)
        if z.ndim != 2 or z.shape[1] != self.geo.dim:
            raise ValueError(f"latent must have shape (N, {self.geo.dim}), got {z.shape}")
        B = self.geo.bound
        z = np.nan_to_num(z, nan=0.0, posinf=B, neginf=-B)
        return np.clip(z, -B, B)

    def snap(self, z_clipped: np.ndarray) -> np.ndarray:
        """Round a clipped latent to the grid (stays inside [-B, B]: B is a grid multiple)."""
        g = self.geo.grid
        return np.clip(np.round(self.clip(z_clipped) / g), -self.geo.bound_units, self.geo.bound_units) * g

    # -- 2./3. noise and release ------------------------------------------------------------------
    def noise_variance(self) -> np.ndarray:
        """Per-coordinate variance of the noise (used only by the posterior post-processing)."""
        raise NotImplementedError

    def sample_noise(self, n: int) -> np.ndarray:
        raise NotImplementedError

    def release(self, z_clipped: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """The latent handed to the decoder: post-processing of ``y = snap(clip(z)) + noise``.

        The clip is re-applied here, so the bound holds even if a caller skipped ``clip``.
        """
        noise = np.asarray(noise, dtype=np.float64)
        y = self.snap(z_clipped) + noise.reshape(-1, self.geo.dim)
        return self._postprocess(y).astype(np.float32)

    def _postprocess(self, y: np.ndarray) -> np.ndarray:
        B = self.geo.bound
        if self.postprocess == "clamp":
            return np.clip(y, -B, B)
        s2 = (self.geo.prior_std or 1.0) ** 2  # prior N(0, s2) per coordinate
        var = self.noise_variance()[None, :]
        mean = y * s2 / (s2 + var)
        std = np.sqrt(s2 * var / (s2 + var))
        return np.clip(mean + std * sampling.float_rng(self.rng).standard_normal(y.shape), -B, B)

    def cost(self) -> PrivacyCost:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        c = self.cost()
        return {
            "name": self.name,
            "epsilon_per_release": c.epsilon if math.isfinite(c.epsilon) else "inf",
            "delta_per_release": c.delta,
            "rho_per_release": c.rho if math.isfinite(c.rho) else "inf",
            "scope": c.scope,
            "clip": {"norm": "linf", "bound": self.geo.bound, "latent_dim": self.geo.dim},
            "delta_l1": self.geo.delta_l1,
            "delta_l2": self.geo.delta_l2,
            "grid": self.geo.grid,
            "sampler": self.sampler,
            "postprocess": self.postprocess,
            "noise_source": "fixed seed (TESTS ONLY: no privacy)" if self.seeded else "OS CSPRNG (os.urandom)",
        }
