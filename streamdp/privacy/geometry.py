"""The enforced clip set ``[-B, B]^D`` of the face latent, its true sensitivities, and one release's cost.

The sensitivities are computed here from ``B`` and ``D`` (never trusted from the model file): the L1
diameter of ``C`` is ``2*B*D``, the L2 diameter ``2*B*sqrt(D)``; a model whose metadata states a
smaller one is refused at load time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelError

GRID_BITS = 10  # output grid g = 2**-GRID_BITS latent units


@dataclass(frozen=True)
class PrivacyCost:
    """The cost of ONE release (one noise draw for one face track)."""

    epsilon: float  # math.inf when there is no guarantee
    delta: float
    rho: float  # zCDP parameter (pure epsilon-DP implies epsilon^2/2-zCDP); math.inf for none
    scope: str  # what the guarantee covers: "latent", "identity-slice", "none"


@dataclass(frozen=True)
class LatentGeometry:
    """The enforced clip set ``[-B, B]^D`` and its true diameters, computed from B and D."""

    dim: int
    bound: float  # B, rounded down to the grid
    identity: slice
    prior: str  # "normal" / "normal:STD" (the latent was trained towards N(0, STD^2 I)) or "unknown"
    grid_bits: int = GRID_BITS

    @property
    def prior_std(self) -> float | None:
        """The latent prior's per-coordinate std, or None when the model declares no prior."""
        if self.prior == "normal":
            return 1.0
        if self.prior.startswith("normal:"):
            return float(self.prior.split(":", 1)[1])
        return None

    @property
    def grid(self) -> float:
        return 2.0**-self.grid_bits

    @property
    def bound_units(self) -> int:  # B in grid units
        return int(round(self.bound / self.grid))

    @property
    def delta_l1(self) -> float:
        return 2.0 * self.bound * self.dim

    @property
    def delta_l2(self) -> float:
        return 2.0 * self.bound * math.sqrt(self.dim)

    @classmethod
    def from_metadata(cls, meta: dict[str, str], path: str | Path = "(in memory)") -> LatentGeometry:
        try:
            dim = int(meta["streamdp.latent_dim"])
            bound = float(meta["streamdp.clip_bound"])
            norm = meta["streamdp.clip_norm"]
            claimed_l1 = float(meta["streamdp.delta_l1"])
            claimed_l2 = float(meta["streamdp.delta_l2"])
            a, b = (int(v) for v in meta["streamdp.identity_dims"].split(":"))
        except (KeyError, ValueError) as exc:
            raise ModelError(f"model {path}: malformed privacy metadata ({exc})") from None
        if norm != "linf":
            raise ModelError(f"model {path}: clip_norm {norm!r} is not supported (only 'linf')")
        if dim < 1 or not (0.0 < bound < 1e6) or not (0 <= a < b <= dim):
            raise ModelError(f"model {path}: invalid latent_dim/clip_bound/identity_dims")
        if not (math.isfinite(claimed_l1) and math.isfinite(claimed_l2)):
            # NaN compares false with everything: it would pass the understatement check below
            raise ModelError(f"model {path}: delta_l1/delta_l2 must be finite numbers, got {claimed_l1}/{claimed_l2}")
        g = 2.0**-GRID_BITS
        bound_g = math.floor(bound / g) * g  # a grid multiple, never larger than the declared B
        if bound_g < g:
            raise ModelError(
                f"model {path}: clip_bound {bound:g} is below the noise grid step {g:g}: every latent would "
                "clip to 0 (nothing released, and no noise scale to calibrate)"
            )
        prior = meta.get("streamdp.latent_prior", "unknown")
        geo = cls(dim, bound_g, slice(a, b), prior)
        try:
            std = geo.prior_std
        except ValueError:
            std = -1.0
        if std is not None and not (0.0 < std < 1e3):
            raise ModelError(f"model {path}: malformed latent_prior {prior!r}")
        # The file may not understate the sensitivity: refuse a model whose stated Delta is smaller
        # than the true diameter of its own clip set (the paper's flaw, caught at load time).
        if claimed_l1 < geo.delta_l1 * (1 - 1e-9) or claimed_l2 < geo.delta_l2 * (1 - 1e-9):
            raise ModelError(
                f"model {path}: metadata delta_l1={claimed_l1:g}/delta_l2={claimed_l2:g} understate the "
                f"clip set's true diameters {geo.delta_l1:g}/{geo.delta_l2:g}"
            )
        return geo
