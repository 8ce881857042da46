"""The discrete Gaussian mechanism: rho-zCDP, calibrated so that one release is (epsilon, delta)-DP."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np

from . import sampling
from .geometry import PrivacyCost
from .release import LatentRelease
from .zcdp import dp_to_zcdp, zcdp_to_dp


class GaussianMechanism(LatentRelease):
    """rho-zCDP: discrete Gaussian with sigma^2 = Delta_2^2 / (2 rho) on the grid."""

    name = "gaussian"
    sampler = "exact discrete Gaussian on the 2^-10 grid (Canonne-Kamath-Steinke 2020, Alg. 3)"

    def __init__(self, geometry, epsilon, delta, seed, postprocess=None) -> None:
        super().__init__(geometry, epsilon, seed, postprocess)
        if not (0.0 < delta < 1.0):
            raise ValueError(f"delta must be in (0, 1), got {delta!r}")
        self.delta = float(delta)
        self.rho = dp_to_zcdp(self.epsilon, self.delta)
        d2_units_sq = 4 * geometry.bound_units**2 * geometry.dim  # Delta_2^2 in grid units^2, exact
        self.sigma2_units = Fraction(d2_units_sq) / (2 * Fraction(self.rho))
        self.sigma = math.sqrt(float(self.sigma2_units)) * geometry.grid

    def noise_variance(self) -> np.ndarray:
        return np.full(self.geo.dim, self.sigma**2)

    def sample_noise(self, n: int) -> np.ndarray:
        k = sampling.discrete_gaussian_array(self.rng, self.sigma2_units, n * self.geo.dim)
        return k.reshape(n, self.geo.dim) * self.geo.grid

    def cost(self) -> PrivacyCost:
        return PrivacyCost(zcdp_to_dp(self.rho, self.delta), self.delta, self.rho, "latent")

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["noise"] = f"discrete Gaussian, sigma = Delta_2/sqrt(2 rho) = {self.sigma:.6g} latent units per coordinate"
        d["guarantee"] = (
            f"rho-zCDP with rho = {self.rho:.6g} per release (Delta_2 = {self.geo.delta_l2:.6g}), "
            f"which implies ({self.epsilon:g}, {self.delta:g})-DP; T releases: T*rho-zCDP"
        )
        return d
