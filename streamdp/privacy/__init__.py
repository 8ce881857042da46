"""Differential privacy on the face latent: mechanisms, exact samplers, accounting over time.

numpy only (plus onnxruntime for reading model metadata); no torch. See docs/privacy.md.
"""

from .accounting import PrivacyLedger, TrackNoiseBank
from .mechanisms import (
    MECHANISMS,
    MODEL_FORMAT,
    REQUIRED_METADATA,
    LatentGeometry,
    LatentMechanism,
    PrivacyCost,
    build_latent_mechanism,
    dp_to_zcdp,
    read_model_metadata,
    validate_metadata,
    zcdp_to_dp,
)

__all__ = [
    "MECHANISMS",
    "MODEL_FORMAT",
    "REQUIRED_METADATA",
    "LatentGeometry",
    "LatentMechanism",
    "PrivacyCost",
    "PrivacyLedger",
    "TrackNoiseBank",
    "build_latent_mechanism",
    "dp_to_zcdp",
    "read_model_metadata",
    "validate_metadata",
    "zcdp_to_dp",
]
