"""The discrete Laplace family: pure epsilon-DP on the whole latent, or on its identity slice only."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

from . import sampling
from .geometry import PrivacyCost
from .release import LatentRelease


class LaplaceMechanism(LatentRelease):
    """Pure epsilon-DP: discrete Laplace with scale Delta_1/epsilon on the grid."""

    name = "laplace"
    sampler = "exact discrete Laplace on the 2^-10 grid (Canonne-Kamath-Steinke 2020, Alg. 2)"

    def __init__(self, geometry, epsilon, seed, postprocess=None, coords: slice | None = None) -> None:
        super().__init__(geometry, epsilon, seed, postprocess)
        self.coords = coords if coords is not None else slice(0, geometry.dim)
        self.k = len(range(*self.coords.indices(geometry.dim)))
        self.delta1 = 2.0 * geometry.bound * self.k  # L1 diameter of the noised coordinates
        # scale in grid units, exactly: (2 * B_units * k) / epsilon
        self.scale_units = Fraction(2 * geometry.bound_units * self.k) / Fraction(self.epsilon)

    @property
    def scale(self) -> float:
        return self.delta1 / self.epsilon

    def noise_variance(self) -> np.ndarray:
        v = np.zeros(self.geo.dim)
        v[self.coords] = 2.0 * self.scale**2
        return v

    def sample_noise(self, n: int) -> np.ndarray:
        out = np.zeros((n, self.geo.dim))
        k = sampling.discrete_laplace_array(self.rng, self.scale_units, n * self.k)
        out[:, self.coords] = k.reshape(n, self.k) * self.geo.grid
        return out

    def _postprocess(self, y: np.ndarray) -> np.ndarray:
        if self.k == self.geo.dim:
            return super()._postprocess(y)
        # identity-only: the un-noised coordinates are passed through (clamped), never resampled
        out = np.clip(y, -self.geo.bound, self.geo.bound)
        out[:, self.coords] = super()._postprocess(y)[:, self.coords]
        return out

    def cost(self) -> PrivacyCost:
        return PrivacyCost(self.epsilon, 0.0, self.epsilon**2 / 2, "latent")

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["noise"] = f"discrete Laplace, scale Delta_1/epsilon = {self.scale:.6g} latent units per coordinate"
        d["guarantee"] = (
            f"pure {self.epsilon:g}-DP per release between ANY two faces (the clip bounds the L1 "
            f"distance of any two latents by Delta_1 = {self.delta1:g})"
        )
        return d


class IdentityOnlyMechanism(LaplaceMechanism):
    name = "identity-only"

    def __init__(self, geometry, epsilon, seed, postprocess=None) -> None:
        super().__init__(geometry, epsilon, seed, postprocess, coords=geometry.identity)

    def cost(self) -> PrivacyCost:
        return PrivacyCost(self.epsilon, 0.0, self.epsilon**2 / 2, "identity-slice")

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        s = self.coords
        d["identity_dims"] = f"{s.start}:{s.stop}"
        d["guarantee"] = (
            f"{self.epsilon:g}-DP per release for latent coordinates {s.start}:{s.stop} only "
            f"(Delta_1 = {self.delta1:g} over that slice)"
        )
        d["unprotected"] = (
            f"latent coordinates outside {s.start}:{s.stop} are released WITHOUT noise and can carry "
            "identity (expression, shape and appearance details the model put there); there is no "
            "differential-privacy guarantee for the face as a whole"
        )
        return d
