"""The metric (d_X) mechanism: L2 noise with density proportional to exp(-epsilon * ||n||_2 / Delta_2)."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import sampling
from .geometry import PrivacyCost
from .release import LatentRelease


class MetricMechanism(LatentRelease):
    """d_X privacy in L2: noise density proportional to exp(-epsilon * ||n||_2 / Delta_2)."""

    name = "metric"
    sampler = (
        "continuous: uniform direction (normalised Gaussian) times a Gamma(D, Delta_2/epsilon) radius "
        "in float64, rounded to the 2^-10 grid before it is added to the grid-rounded latent"
    )

    @property
    def radius_scale(self) -> float:
        return self.geo.delta_l2 / self.epsilon

    def noise_variance(self) -> np.ndarray:
        return np.full(self.geo.dim, (self.geo.dim + 1) * self.radius_scale**2)

    def sample_noise(self, n: int) -> np.ndarray:
        D = self.geo.dim
        gen = sampling.float_rng(self.rng)  # fresh 128 OS bits per release (sampling.py)
        u = gen.standard_normal((n, D))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        r = gen.gamma(shape=D, scale=self.radius_scale, size=(n, 1))
        return np.round(u * r / self.geo.grid) * self.geo.grid

    def cost(self) -> PrivacyCost:
        return PrivacyCost(self.epsilon, 0.0, self.epsilon**2 / 2, "latent")

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["noise"] = (
            f"density proportional to exp(-(epsilon/Delta_2) * ||n||_2): radius Gamma(D={self.geo.dim}, "
            f"scale={self.radius_scale:.6g}), uniform direction"
        )
        d["epsilon_per_unit_l2"] = self.epsilon / self.geo.delta_l2
        d["guarantee"] = (
            f"d_X privacy: P[M(x) in S] <= exp({self.epsilon:g} * ||z(x)-z(x')||_2 / {self.geo.delta_l2:.6g}) "
            f"P[M(x') in S]; hence pure {self.epsilon:g}-DP between any two faces"
        )
        return d
