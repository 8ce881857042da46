"""Anonymization mechanisms behind one interface, chosen by name (as DeepPrivacy2's anonymizers).

Each mechanism is one module of this package that declares itself (``MECHANISMS``, see
``spec.py``); ``registry.py`` finds them. Pixel mechanisms (``pixelate``, ``blur``, ``solid``,
``mask``) cover the whole (dilated) face box. ``dp-image`` runs the encoder -> latent privacy
mechanism -> generator and blends a new face back.
"""

from __future__ import annotations

from .base import Mechanism
from .registry import available_mechanisms, cover_mechanisms, create_mechanism, mechanism_help, mechanism_specs
from .spec import MechanismContext, MechanismSpec

__all__ = [
    "Mechanism", "MechanismContext", "MechanismSpec", "available_mechanisms", "cover_mechanisms",
    "create_mechanism", "mechanism_help", "mechanism_specs",
]
