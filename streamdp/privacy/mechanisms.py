"""Privacy mechanisms on the face latent (numpy only; no model code in here).

Every mechanism works in three auditable steps that do not depend on the model at all:

1. ``clip``: project every latent into the bounded set ``C = [-B, B]^D`` (per-coordinate clamp,
   ``clip_norm = "linf"``); NaN goes to 0 and +-inf to +-B, so *any* array the encoder can return
   lands in ``C``. The sensitivities are computed here from ``B`` and ``D`` (never trusted from the
   model file): the L1 diameter of ``C`` is ``2*B*D``, the L2 diameter ``2*B*sqrt(D)``.
2. ``sample_noise``: one release's noise, on the grid ``g * Z^D`` (``g = 2**-10``), from the
   exact integer samplers in ``streamdp.privacy.sampling`` (or, for ``metric``, a continuous
   sample rounded to the grid).
3. ``release``: ``y = round_g(clip(z)) + noise`` is the differentially private output; the latent
   the decoder receives is a *post-processing* of ``y`` alone (it never looks at ``z`` again), so
   it costs no privacy: with ``postprocess="posterior"`` (default when the model declares its
   latent prior ``normal``), a sample of the latent's posterior given ``y`` under the training
   prior N(0, I), clamped to ``C``. Heavy noise then yields a random *plausible* latent (a random
   face) instead of a far-out point the decoder never saw; light noise keeps ``y``.

Guarantees per release (docs/privacy.md has the proofs):

- ``laplace``: pure epsilon-DP between *any* two faces (discrete Laplace of scale
  ``Delta_1/epsilon`` grid units on the grid-rounded clipped latent, ``Delta_1 = 2*B*D``).
- ``metric``: d_X privacy: ``P[M(x) in S] <= exp(epsilon * ||f(x)-f(x')||_2 / Delta_2) P[M(x') in S]``,
  hence also epsilon-DP between any two faces (``||.||_2 <= Delta_2``).
- ``gaussian``: rho-zCDP with ``rho = Delta_2^2 / (2 sigma^2)`` (discrete Gaussian), chosen so
  that one release is (epsilon, delta)-DP; releases compose by adding rho.
- ``identity-only``: epsilon-DP for the identity slice of the latent only; the other coordinates
  are released exactly (no guarantee for what they carry).
- ``none``: no noise; the model's ceiling; epsilon is infinite and reported as such.

Where each piece lives: the clip set and its sensitivities in ``geometry``, the model file's
metadata in ``metadata``, the shared clip/snap/post-process steps in ``release``, one module per
noise family (``laplace`` with identity-only, ``metric``, ``gaussian``; zCDP conversions in
``zcdp``); this module names the mechanisms and builds one (``build_latent_mechanism``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# The pieces live in one module per job; they are re-exported here, the package's historical import path.
from .gaussian import GaussianMechanism
from .geometry import GRID_BITS, LatentGeometry, PrivacyCost
from .laplace import IdentityOnlyMechanism, LaplaceMechanism
from .metadata import MODEL_FORMAT, MODEL_FORMATS, REQUIRED_METADATA, read_model_metadata, validate_metadata
from .metric import MetricMechanism
from .release import LatentMechanism, LatentRelease
from .zcdp import dp_to_zcdp, zcdp_to_dp

__all__ = [
    "GRID_BITS",
    "MECHANISMS",
    "MODEL_FORMAT",
    "MODEL_FORMATS",
    "REQUIRED_METADATA",
    "GaussianMechanism",
    "IdentityOnlyMechanism",
    "LaplaceMechanism",
    "LatentGeometry",
    "LatentMechanism",
    "LatentRelease",
    "MetricMechanism",
    "NoNoise",
    "PrivacyCost",
    "build_latent_mechanism",
    "dp_to_zcdp",
    "read_model_metadata",
    "validate_metadata",
    "zcdp_to_dp",
]

MECHANISMS = ("laplace", "metric", "gaussian", "identity-only", "none")


class NoNoise(LatentRelease):
    """No noise: shows the model's ceiling. There is no privacy guarantee at all."""

    name = "none"
    sampler = "none"

    def __init__(self, geometry, seed, postprocess=None) -> None:
        super().__init__(geometry, 1.0, seed, "clamp")
        self.epsilon = math.inf

    def noise_variance(self) -> np.ndarray:
        return np.zeros(self.geo.dim)

    def sample_noise(self, n: int) -> np.ndarray:
        return np.zeros((n, self.geo.dim))

    def release(self, z_clipped: np.ndarray, noise: np.ndarray) -> np.ndarray:
        return self.clip(z_clipped).astype(np.float32)

    def cost(self) -> PrivacyCost:
        return PrivacyCost(math.inf, 0.0, math.inf, "none")

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["noise"] = "none"
        d["guarantee"] = "NONE: the face is re-synthesised from its exact latent; epsilon is infinite"
        return d


def build_latent_mechanism(
    name: str,
    *,
    epsilon: float,
    delta: float = 1e-6,
    metadata: dict[str, str],
    seed: int | None = None,
    postprocess: str | None = None,
) -> LatentMechanism:
    """The mechanism ``name`` for the model described by ``metadata`` (validated here).

    ``seed`` None (production) draws noise from the OS entropy pool; a fixed seed warns.
    ``postprocess``: "posterior" (default for models with ``streamdp.latent_prior = normal``) or
    "clamp".
    """
    geo = LatentGeometry.from_metadata(metadata)
    if name == "laplace":
        return LaplaceMechanism(geo, epsilon, seed, postprocess)
    if name == "identity-only":
        return IdentityOnlyMechanism(geo, epsilon, seed, postprocess)
    if name == "metric":
        return MetricMechanism(geo, epsilon, seed, postprocess)
    if name == "gaussian":
        return GaussianMechanism(geo, epsilon, delta, seed, postprocess)
    if name == "none":
        return NoNoise(geo, seed)
    raise ValueError(f"unknown latent mechanism {name!r} (choose from {', '.join(MECHANISMS)})")
