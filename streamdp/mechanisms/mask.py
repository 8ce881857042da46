"""``mask``: the face box flattened to its mean colour with a flat head-and-shoulders silhouette.

The whole (dilated) box is replaced, so no pixel of the face survives; the silhouette keeps a
person readable in the scene without any detail. This module is the whole mechanism: its settings
section (``mechanism.mask``), its name in the CLIs, its use as a live fallback and its place in the
evaluation's sweep come from the declaration at the bottom (``mechanisms/registry.py``).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from ..config_base import Section
from .pixel import DEFAULT_FEATHER, BoxCover
from .spec import MechanismSpec


class MaskConfig(Section):
    color: tuple[int, int, int] = (96, 96, 96)  # the silhouette's colour (RGB)


class Mask(BoxCover):
    name = "mask"

    def __init__(self, settings: MaskConfig | None = None, feather: float = DEFAULT_FEATHER) -> None:
        super().__init__(feather)
        self.color = tuple(int(c) for c in (settings or MaskConfig()).color)

    def cover(self, roi: np.ndarray) -> np.ndarray:
        h, w = roi.shape[:2]
        out = np.empty_like(roi)
        out[...] = roi.reshape(-1, roi.shape[-1]).mean(axis=0).astype(roi.dtype)
        # A head (ellipse in the box's upper middle) on shoulders (a wider ellipse cut by the bottom).
        cv2.ellipse(out, (w // 2, int(h * 0.42)), (max(1, int(w * 0.30)), max(1, int(h * 0.36))),
                    0, 0, 360, self.color, -1)
        cv2.ellipse(out, (w // 2, h), (max(1, int(w * 0.48)), max(1, int(h * 0.22))), 0, 180, 360, self.color, -1)
        return out

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "color": list(self.color), "feather": self.feather}


MECHANISMS = [
    MechanismSpec(
        "mask", "the face box flattened, with a flat silhouette (no formal guarantee)", MaskConfig,
        lambda m, ctx: Mask(m.mask, m.feather), cover=True, sweep_params={},
    ),
]
