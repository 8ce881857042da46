"""Anonymization mechanisms behind one interface, chosen by name (as DeepPrivacy2's anonymizers).

Pixel mechanisms (``blur``, ``pixelate``, ``solid``) cover the whole (dilated) face box. ``dp-image``
runs the ONNX encoder -> latent privacy mechanism -> decoder and blends a new face back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Mechanism

if TYPE_CHECKING:
    from ..config import Config

# name -> "module:Class"; imported lazily so that a pixel run never loads onnxruntime.
_REGISTRY: dict[str, str] = {
    "pixelate": "streamdp.mechanisms.pixel:Pixelate",
    "blur": "streamdp.mechanisms.pixel:Blur",
    "solid": "streamdp.mechanisms.pixel:Solid",
    "dp-image": "streamdp.mechanisms.dp_image:build_dp_image",
}


def available_mechanisms() -> list[str]:
    return list(_REGISTRY)


def build_mechanism(config: Config) -> Mechanism:
    import importlib

    from ..errors import ConfigError

    name = config.mechanism.name
    if name not in _REGISTRY:
        raise ConfigError(f"unknown mechanism {name!r} (choose from {', '.join(_REGISTRY)})")
    module_name, cls_name = _REGISTRY[name].split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    return cls(config)


__all__ = ["Mechanism", "available_mechanisms", "build_mechanism"]
