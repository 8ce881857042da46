"""Pixel-space mechanisms: they carry no formal privacy guarantee, only coverage.

Each covers the whole (margin-dilated) face box that the tracker hands over.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from ..composite import cover_boxes
from ..config import Config
from ..types import FrameJob
from .base import Mechanism


class _BoxMechanism(Mechanism):
    def __init__(self, config: Config) -> None:
        self.feather = config.mechanism.feather

    def cover(self, roi: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def apply(self, jobs: list[FrameJob]) -> None:
        for job in jobs:
            if len(job.faces):
                cover_boxes(job.frame.image, job.faces.boxes, self.cover, feather=self.feather)


class Pixelate(_BoxMechanism):
    """A real mosaic: ``blocks`` blocks across the box's longer side, each the block's mean colour."""

    name = "pixelate"

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.blocks = config.mechanism.pixelate.blocks

    def cover(self, roi: np.ndarray) -> np.ndarray:
        h, w = roi.shape[:2]
        scale = self.blocks / max(h, w)
        bw, bh = max(1, round(w * scale)), max(1, round(h * scale))
        small = cv2.resize(roi, (bw, bh), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "blocks": self.blocks, "feather": self.feather}


class Blur(_BoxMechanism):
    """A strong Gaussian blur whose sigma scales with the face (fixed kernels under-blur big faces)."""

    name = "blur"

    def __init__(self, config: Config, sigma_fraction: float | None = None) -> None:
        super().__init__(config)
        self.sigma_fraction = config.mechanism.blur.sigma_fraction if sigma_fraction is None else sigma_fraction

    def cover(self, roi: np.ndarray) -> np.ndarray:
        h, w = roi.shape[:2]
        sigma = max(1.0, self.sigma_fraction * max(h, w))
        # Blur a downscaled copy: same look, far cheaper for large sigmas.
        factor = max(1, int(sigma // 4))
        if factor > 1:
            small = cv2.resize(roi, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)
            small = cv2.GaussianBlur(small, (0, 0), sigma / factor, borderType=cv2.BORDER_REPLICATE)
            return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        return cv2.GaussianBlur(roi, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "sigma_fraction": self.sigma_fraction, "feather": self.feather}


class Solid(_BoxMechanism):
    name = "solid"

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.color = np.array(config.mechanism.solid.color, dtype=np.uint8)

    def cover(self, roi: np.ndarray) -> np.ndarray:
        out = np.empty_like(roi)
        out[...] = self.color
        return out

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "color": self.color.tolist(), "feather": self.feather}
