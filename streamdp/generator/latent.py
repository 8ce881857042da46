"""The released latent: a whitened PCA subspace of MobileStyleGAN's w, and how a release becomes a w.

``w`` (512-d, the mapping network's output) is where the generator's identity lives. The encoder
predicts the top ``D`` whitened principal coordinates ``c = ((w - mean) @ V_D^T) / sigma_D`` of
a face's w; the privacy mechanism clips and noises those ``D`` numbers (the sensitivity is
``2*B*D`` for the L1 clip box, so a small D buys less noise per coordinate), and the decoder side
rebuilds a full w from the released ``c`` alone:

    w = mean + (c * sigma_D) @ V_D  +  psi * residual_D(w_free)

``w_free`` is the mapping of a fresh random ``z`` (public randomness, independent of the input),
of which only the part outside the top-D subspace is kept, shrunk by the truncation ``psi``: the
fine detail of the new face is random, its main axes are the release's. Both steps use only the
release and fresh randomness, so they are post-processing (no epsilon).

Context: a release is post-processed into several candidate ws (posterior samples of the one
noisy release, times several fresh random details), and the one whose predicted rim (what the
rendered image shows at the edge of the replaced ellipse: hair, skin or background) best matches
the frame's public ring just outside it is rendered. The choice reads only the release, fresh randomness and pixels that the output shows
raw anyway: post-processing, no epsilon.

Pose: ``yaw_direction`` is a direction in w along which the generated head turns, fitted by us on
generated samples (ridge regression of a keypoint yaw proxy on w). ``with_yaw(w, t)`` moves w
along it so that the predicted yaw becomes ``t``: public geometry, post-processing.

The statistics (mean, basis, sigmas, yaw fit, a reference colour ring) are computed from the
generator and stored in the model folder as ``latent.npz``; the generator's weights are not.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError


@dataclass(frozen=True)
class LatentSpace:
    mean: np.ndarray  # (512,)
    basis: np.ndarray  # (D, 512), orthonormal rows: the top-D principal directions of w
    sigma: np.ndarray  # (D,) std of w along each direction
    yaw_direction: np.ndarray  # (512,) w-space step that changes the yaw proxy by 1
    yaw_beta: np.ndarray  # (512,) the yaw proxy's linear predictor on (w - mean)
    yaw_bias: float
    ring_reference: np.ndarray  # (2, 3) mean and std of RGB in the context ring of generated faces
    ring_beta: np.ndarray  # (512, F) linear predictor from w of the rendered face's rim colours (8 sectors x RGB)
    ring_bias: np.ndarray  # (F,)
    truncation: float = 0.7

    @property
    def dim(self) -> int:
        return len(self.sigma)

    @classmethod
    def load(cls, path: Path, dim: int | None = None, truncation: float = 0.7) -> LatentSpace:
        try:
            z = np.load(path)
            basis = z["basis"].astype(np.float64)
            sigma = z["sigma"].astype(np.float64)
            if dim is not None:
                if not 1 <= dim <= len(sigma):
                    raise ModelError(f"{path}: latent dim {dim} outside 1..{len(sigma)}")
                basis, sigma = basis[:dim], sigma[:dim]
            space = cls(
                mean=z["mean"].astype(np.float64),
                basis=basis,
                sigma=sigma,
                yaw_direction=z["yaw_direction"].astype(np.float64),
                yaw_beta=z["yaw_beta"].astype(np.float64),
                yaw_bias=float(z["yaw_bias"]),
                ring_reference=z["ring_reference"].astype(np.float64),
                ring_beta=z["ring_beta"].astype(np.float64),
                ring_bias=z["ring_bias"].astype(np.float64),
                truncation=truncation,
            )
        except (OSError, KeyError, ValueError) as exc:
            raise ModelError(f"cannot read the latent statistics {path}: {exc}") from None
        if space.basis.shape != (space.dim, 512) or space.mean.shape != (512,):
            raise ModelError(f"{path}: malformed latent statistics")
        return space

    def coordinates(self, w: np.ndarray) -> np.ndarray:
        """w (N, 512) -> whitened top-D coordinates (N, D): the encoder's training target."""
        return ((np.asarray(w, np.float64) - self.mean) @ self.basis.T) / self.sigma

    def compose(self, coords: np.ndarray, w_free: np.ndarray) -> np.ndarray:
        """Released coordinates (N, D) + fresh random w (N, 512) -> the w to synthesize (N, 512)."""
        c = np.asarray(coords, np.float64)
        free = np.asarray(w_free, np.float64) - self.mean
        residual = free - (free @ self.basis.T) @ self.basis
        return (self.mean + (c * self.sigma) @ self.basis + self.truncation * residual).astype(np.float32)

    def rim_of(self, w: np.ndarray) -> np.ndarray:
        """Predicted ``render.crop_rim`` (N, SECTORS, 3) of the faces rendered from w: the colours
        the rendered image shows just inside the replaced ellipse."""
        flat = (np.asarray(w, np.float64).reshape(-1, 512) - self.mean) @ self.ring_beta + self.ring_bias
        return flat.reshape(len(flat), -1, 3)

    def rank_matches(self, candidates: np.ndarray, ring: np.ndarray, transform: np.ndarray) -> np.ndarray:
        """Candidate indices, best first, by how close their predicted rim, after the frame's
        colour ``transform``, is to the frame's public ring sector means: long dark hair beside
        the face ranks faces with long dark hair first; a white wall, a light background."""
        from .render import rim_mismatch

        err = rim_mismatch(self.rim_of(candidates), ring, transform)
        return np.argsort(err, kind="stable")

    def yaw_of(self, w: np.ndarray) -> np.ndarray:
        return (np.asarray(w, np.float64) - self.mean) @ self.yaw_beta + self.yaw_bias

    def with_yaw(self, w: np.ndarray, yaw: float) -> np.ndarray:
        """w moved along the yaw direction so that its predicted yaw proxy is ``yaw``."""
        w = np.asarray(w, np.float64).reshape(-1, 512)
        step = yaw - self.yaw_of(w)
        return (w + step[:, None] * self.yaw_direction[None]).astype(np.float32)


def yaw_proxy(keypoints: np.ndarray) -> np.ndarray:
    """A yaw proxy from MediaPipe keypoints (N, 6, 2): the nose tip's offset from the eye midpoint
    along the eye axis, in eye distances (0 frontal; the sign follows the image's x axis).

    Public geometry (the keypoints are not protected), used to pick a rendered pose per frame.
    """
    kp = np.asarray(keypoints, np.float64).reshape(-1, 6, 2)
    eye_r, eye_l, nose = kp[:, 0], kp[:, 1], kp[:, 2]
    axis = eye_l - eye_r
    dist = np.maximum(np.linalg.norm(axis, axis=1), 1e-6)
    u = axis / dist[:, None]
    off = ((nose - (eye_r + eye_l) / 2) * u).sum(axis=1)
    return off / dist
