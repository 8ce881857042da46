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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import ModelError
from . import sampling

MODEL_FORMAT = "dpimage-v1"
#: Formats whose privacy metadata this module validates: the autoencoder and the generator encoder.
MODEL_FORMATS = (MODEL_FORMAT, "dpimage-gan-v1")
REQUIRED_METADATA = (
    "streamdp.format",
    "streamdp.crop_size",
    "streamdp.latent_dim",
    "streamdp.clip_norm",
    "streamdp.clip_bound",
    "streamdp.delta_l1",
    "streamdp.delta_l2",
    "streamdp.identity_dims",
    "streamdp.mask_feather",
    "streamdp.training_data",
    "streamdp.version",
    "streamdp.sha256",
)
GRID_BITS = 10  # output grid g = 2**-GRID_BITS latent units
MECHANISMS = ("laplace", "metric", "gaussian", "identity-only", "none")


def read_model_metadata(path: str | Path) -> dict[str, str]:
    """The ``streamdp.*`` metadata of one ONNX file, validated (onnxruntime only, no onnx package).

    Raises ``ModelError`` when the file is missing or unreadable, lacks a required key, or has
    another format.
    """
    import onnxruntime as ort

    p = Path(path)
    if not p.is_file():
        raise ModelError(f"model file not found: {p}")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        sess = ort.InferenceSession(str(p), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types
        raise ModelError(f"cannot load model {p}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    meta = dict(sess.get_modelmeta().custom_metadata_map)
    validate_metadata(meta, p)
    return meta


def validate_metadata(meta: dict[str, str], path: str | Path = "(in memory)") -> None:
    missing = [k for k in REQUIRED_METADATA if k not in meta]
    if missing:
        raise ModelError(f"model {path} lacks required metadata: {', '.join(missing)}")
    if meta["streamdp.format"] not in MODEL_FORMATS:
        raise ModelError(f"model {path} has format {meta['streamdp.format']!r}, expected one of {', '.join(MODEL_FORMATS)}")
    LatentGeometry.from_metadata(meta, path)


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

    def identity_delta_l1(self) -> float:
        k = len(range(*self.identity.indices(self.dim)))
        return 2.0 * self.bound * k

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


class LatentMechanism(Protocol):
    name: str

    def clip(self, z: np.ndarray) -> np.ndarray: ...
    def sample_noise(self, n: int) -> np.ndarray: ...
    def release(self, z_clipped: np.ndarray, noise: np.ndarray) -> np.ndarray: ...
    def cost(self) -> PrivacyCost: ...
    def describe(self) -> dict[str, Any]: ...


class _Base:
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


class LaplaceMechanism(_Base):
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


class MetricMechanism(_Base):
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


def zcdp_to_dp(rho: float, delta: float) -> float:
    """epsilon such that rho-zCDP implies (epsilon, delta)-DP (Bun & Steinke 2016, Prop. 1.3)."""
    if math.isinf(rho):
        return math.inf
    return rho + 2.0 * math.sqrt(rho * math.log(1.0 / delta))


def dp_to_zcdp(epsilon: float, delta: float) -> float:
    """The largest rho with zcdp_to_dp(rho, delta) <= epsilon."""
    L = math.log(1.0 / delta)
    rho = (math.sqrt(L + epsilon) - math.sqrt(L)) ** 2
    while zcdp_to_dp(rho, delta) > epsilon:  # never overstate rho through float rounding
        rho = math.nextafter(rho, 0.0)
    return rho


class GaussianMechanism(_Base):
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


class NoNoise(_Base):
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
