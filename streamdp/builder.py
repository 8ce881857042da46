"""The pipeline builder: the one place that composes configuration sections into stages.

Every stage is built from its own section (the detector from ``detect``, the tracker from
``track``, the mechanism from ``mechanism``); the facts one stage needs about another (the
tracker's box margin for a model mechanism, the batch size, the look-back that settles the
detector's tile schedule) are passed here, explicitly, and nowhere else. ``run``, ``live``,
``relay``, ``batch``, ``eval`` and the Python API build their stages through these functions.
"""

from __future__ import annotations

from .config import Config
from .faces import FaceStage
from .lookback import LookbackDilator
from .mechanisms import Mechanism, MechanismContext, create_mechanism
from .privatizer import Privatizer

# The cover used when the mechanism fails on a batch (never the raw face).
FAIL_CLOSED_COVER = "solid"


def mechanism_context(config: Config) -> MechanismContext:
    return MechanismContext(box_margin=config.track.box_margin, max_batch=config.batch.max_batch)


def build_mechanism(config: Config, name: str | None = None) -> Mechanism:
    """The configured mechanism (or the mechanism ``name``, with its section from ``config``)."""
    return create_mechanism(config.mechanism, mechanism_context(config), name)


def build_privatizer(config: Config, mechanism: Mechanism) -> Privatizer:
    return Privatizer(mechanism, build_mechanism(config, FAIL_CLOSED_COVER))


# Live, the tile search is spread over this many picked frames ("auto" ``detect.tile_every``),
# each frame held until the next is detected (live/pipeline.py): half the views a frame, and a face
# first found in the next frame is covered back (benchmarks/tracking.py: the same raw face-frames)
LIVE_SEARCH_SPREAD = 2


def build_face_stage(config: Config, fps: float, lookback_frames: float = 0.0) -> FaceStage:
    """One stream's detector + tracker. ``lookback_frames``: the files' look-back in frames (0: a
    detector that searches everything every frame, for stills and the frame-by-frame API)."""
    return FaceStage(config.detect, config.track, fps, lookback_frames)


def build_live_face_stage(config: Config, fps: float) -> FaceStage:
    """A live stream's detector + tracker: "auto" ``detect.tile_every`` is ``LIVE_SEARCH_SPREAD``
    (the live pipeline holds each frame for the rest of its search)."""
    detect = config.detect
    if detect.tile_every == "auto":
        detect = detect.model_copy(update={"tile_every": LIVE_SEARCH_SPREAD})
    return FaceStage(detect, config.track, fps, 0.0)


def build_live_hold(config: Config, faces: FaceStage, fps: float) -> LookbackDilator | None:
    """What holds a live stream's frames for the rest of a spread search (``faces.search_spread``
    N > 1: each frame until N-1 more are detected, covered back with the tracks they start),
    or None when every frame is searched in full."""
    spread = faces.search_spread
    if spread <= 1:
        return None
    return LookbackDilator(0.0, fps, config.track.coast_margin_per_second, frames=spread - 1)
