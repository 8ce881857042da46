"""Mechanisms used only by the evaluation: ``identity`` (the control) and ``dp-pix`` (Fan 2018).

They implement streamdp's ``Mechanism`` interface and run through the same pipeline (detection,
tracking margin, ``composite.cover_boxes``) as the shipped pixel mechanisms; they are not
registered for ``streamdp run`` (DP-Pix is a baseline, not a product: see below).

DP-Pix (L. Fan, "Image Pixelization with Differential Privacy", DBSec 2018): pixelize the region
in b x b pixel blocks (each block its mean), then add Laplace noise of scale ``255*m/(b^2*eps)``
to every block value; ``m`` is the number of pixels in which two neighbouring images may differ.
Applied here to each (margin-grown) face box, per colour channel, the block grid anchored at the
box's top-left corner, values clipped to 0-255 after the noise (post-processing). Its guarantee is
m-neighbourhood pixel DP for the box's pixels, not anything about identity. The noise is exact:
block means are rounded to a grid of 2^-10 grey levels and get discrete Laplace noise on that grid
(Canonne-Kamath-Steinke, ``streamdp.privacy.sampling``, as the dp-image latent does), so the
floating-point attack of Mironov (2012) does not apply; the rounding can move each of the <= m
affected blocks by one more grid step, which the scale includes.
"""

from __future__ import annotations

import math
import secrets
import warnings
from fractions import Fraction
from typing import Any

import numpy as np

from ..composite import cover_boxes
from ..mechanisms.base import Mechanism
from ..types import FrameJob


GRID_BITS = 10  # block means live on a grid of 2**-10 grey levels


class Identity(Mechanism):
    """Leaves every face as it is: the evaluation's control (protection ~0 by construction)."""

    name = "identity"

    def apply(self, jobs: list[FrameJob]) -> None:
        return None


class DpPix(Mechanism):
    name = "dp-pix"

    def __init__(self, block: int = 16, m: int = 16, epsilon: float = 1.0, feather: float = 0.15, seed: int | None = None) -> None:
        if block < 1 or m < 1 or not epsilon > 0:
            raise ValueError("dp-pix needs b >= 1, m >= 1, epsilon > 0")
        self.block = int(block)
        self.m = int(m)
        self.epsilon = float(epsilon)
        self.feather = float(feather)
        if seed is not None:
            warnings.warn("dp-pix with a fixed seed: for tests only, no privacy", UserWarning, stacklevel=2)
        self.rng = np.random.default_rng(seed if seed is not None else secrets.randbits(128))

    @property
    def scale(self) -> float:
        """Fan's Laplace scale in grey levels (the noise actually drawn is ``scale_units`` grid steps)."""
        return 255.0 * self.m / (self.block**2 * self.epsilon)

    @property
    def scale_units(self) -> Fraction:
        """The exact discrete Laplace scale in grid steps: (L1 sensitivity + rounding slack) / epsilon,
        with epsilon rounded *down* to 1e-6 (never a smaller scale than the guarantee needs)."""
        sensitivity = Fraction(255 * self.m, self.block**2) / Fraction(1, 2**GRID_BITS) + self.m
        eps = Fraction(math.floor(self.epsilon * 10**6), 10**6)
        if eps <= 0:
            raise ValueError("dp-pix epsilon below 1e-6")
        return sensitivity / eps

    def cover(self, roi: np.ndarray) -> np.ndarray:
        from ..privacy.sampling import discrete_laplace_array

        h, w = roi.shape[:2]
        b = self.block
        nby, nbx = -(-h // b), -(-w // b)
        padded = np.pad(roi.astype(np.float64), ((0, nby * b - h), (0, nbx * b - w), (0, 0)), mode="edge")
        blocks = padded.reshape(nby, b, nbx, b, -1).mean(axis=(1, 3))
        units = np.round(blocks * 2**GRID_BITS).astype(np.int64)
        units += discrete_laplace_array(self.rng, self.scale_units, units.size).reshape(units.shape)
        values = units.astype(np.float64) / 2**GRID_BITS
        out = np.repeat(np.repeat(np.clip(values, 0, 255), b, axis=0), b, axis=1)[:h, :w]
        return (out + 0.5).astype(np.uint8)

    def apply(self, jobs: list[FrameJob]) -> None:
        for job in jobs:
            if len(job.faces):
                cover_boxes(job.frame.image, job.faces.boxes, self.cover, feather=self.feather)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "b": self.block, "m": self.m, "epsilon": self.epsilon, "laplace_scale": self.scale,
                "sampler": "exact discrete Laplace on a 2^-10 grey-level grid"}
