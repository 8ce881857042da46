"""The generated face's steadied placement (mechanisms/steady.py): it removes keypoint jitter,
follows real motion, and never strays from the frame's own alignment by more than its bound."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from streamdp.align import CANONICAL_KEYPOINTS, EYE_DISTANCE, estimate_transforms
from streamdp.mechanisms.steady import MAX_DEVIATION, RESET_S, PlacementFilter, _matrix, _params

S = 256


def _face(cx: float, cy: float, eye_px: float, angle: float = 0.0) -> np.ndarray:
    """(6, 2) keypoints of a face centred at (cx, cy) with this eye distance and roll."""
    c, s = math.cos(angle), math.sin(angle)
    rel = (CANONICAL_KEYPOINTS - 0.5) * (eye_px / EYE_DISTANCE)
    return np.stack([cx + c * rel[:, 0] - s * rel[:, 1], cy + s * rel[:, 0] + c * rel[:, 1]], axis=1)


def _m(kps: np.ndarray) -> np.ndarray:
    return estimate_transforms(kps[None].astype(np.float32), S)[0].astype(np.float64)


def _in_frame(m: np.ndarray) -> np.ndarray:
    inv = np.linalg.inv(m[:, :2])
    return (CANONICAL_KEYPOINTS * S - m[:, 2]) @ inv.T


def _deviation(m: np.ndarray, m_raw: np.ndarray, eye_px: float) -> float:
    """In eye distances of the raw alignment (as the filter measures it: ``eye_px`` is the
    nominal one, which the float32 alignment reproduces to ~1e-7)."""
    scale = math.hypot(m_raw[0, 0], m_raw[1, 0])  # image->crop
    measured = EYE_DISTANCE * S / scale
    assert abs(measured - eye_px) <= 1e-4 * eye_px
    return float(np.linalg.norm(_in_frame(m) - _in_frame(m_raw), axis=1).max() / measured)


def test_parameters_round_trip():
    m = _m(_face(400.0, 300.0, 120.0, 0.2))
    assert np.allclose(_matrix(_params(m, S), S), m, atol=1e-9)


def test_a_still_face_stays_still():
    rng = np.random.default_rng(0)
    f = PlacementFilter()
    raw_c, out_c = [], []
    for i in range(240):  # 10 s at 24 fps: a still face, keypoints jittering by ~2% of the eye distance
        kps = _face(640.0, 360.0, 100.0) + rng.normal(0, 2.0, (6, 2))
        m_raw = _m(kps)
        m = f.update(m_raw, S, i / 24)
        raw_c.append(_in_frame(m_raw).mean(0))
        out_c.append(_in_frame(m).mean(0))
    raw_jitter = np.linalg.norm(np.diff(raw_c[24:], axis=0), axis=1).mean()
    out_jitter = np.linalg.norm(np.diff(out_c[24:], axis=0), axis=1).mean()
    assert out_jitter < raw_jitter / 3, (raw_jitter, out_jitter)


def test_follows_motion_within_the_bound():
    f = PlacementFilter()
    for i in range(96):  # 2 eye distances a second to the right, then a stop
        x = 300.0 + min(i, 60) * (200.0 / 24)
        m_raw = _m(_face(x, 360.0, 100.0))
        m = f.update(m_raw, S, i / 24)
        assert _deviation(m, m_raw, 100.0) <= MAX_DEVIATION * (1 + 1e-9)
    assert _deviation(m, m_raw, 100.0) < 0.01  # settled where the face stopped


def test_a_gap_restarts_from_the_raw_alignment():
    f = PlacementFilter()
    f.update(_m(_face(300.0, 300.0, 80.0)), S, 0.0)
    m_raw = _m(_face(900.0, 500.0, 150.0))
    assert np.allclose(f.update(m_raw, S, RESET_S + 0.01), m_raw)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(-400, 400), st.floats(-300, 300), st.floats(20, 400), st.floats(-0.8, 0.8),
                          st.floats(0.005, 0.6)), min_size=2, max_size=30))
def test_never_further_than_the_bound(steps):
    """Any sequence of placements and frame gaps (jumps, zooms, turns): within MAX_DEVIATION."""
    f = PlacementFilter()
    t = 0.0
    for dx, dy, eye_px, angle, dt in steps:
        t += dt
        m_raw = _m(_face(640.0 + dx, 360.0 + dy, eye_px, angle))
        m = f.update(m_raw, S, t)
        assert np.all(np.isfinite(m))
        assert _deviation(m, m_raw, eye_px) <= MAX_DEVIATION * (1 + 1e-9)


# -- the colour-matched crop ---------------------------------------------------------------------
from types import SimpleNamespace  # noqa: E402

from streamdp.generator.render import RING_SECTORS, apply_colour, blend_surround, surround_of  # noqa: E402
from streamdp.mechanisms.steady import COLOUR_STEP, RING_STEP, SteadyCrop  # noqa: E402


def _rendered(seed: int = 0, surround: bool = True):
    rng = np.random.default_rng(seed)
    crop = np.clip(rng.normal(140, 30, (64, 64, 3)), 0, 255).astype(np.uint8)
    return SimpleNamespace(crop=crop, surround=surround_of(crop) if surround else None)


def _gain(g: float) -> np.ndarray:
    return np.hstack([np.eye(3) * g, np.zeros((3, 1))])


def test_a_crop_is_kept_while_colours_hold_and_redone_when_they_move():
    face, steady = _rendered(), SteadyCrop()
    ring = np.full((RING_SECTORS, 3), 100.0)
    first = steady.crop(face, _gain(1.0), ring)
    expected = blend_surround(apply_colour(face.crop, _gain(1.0).astype(np.float32)), face.surround, ring, _gain(1.0))
    assert np.array_equal(first, expected)
    # a gain moving the brightest colours by less than the step, the ring by less than its own
    small = 1.0 + 0.5 * COLOUR_STEP / 255.0
    assert steady.crop(face, _gain(small), ring + 0.5 * RING_STEP) is first
    assert steady.reused == 1
    moved = steady.crop(face, _gain(1.1), ring)  # ~20 grey levels on the bright side
    assert moved is not first and not np.array_equal(moved, first)
    # a new render of the face is always recoloured
    other = _rendered(1)
    shown = steady.crop(other, _gain(1.1), ring)
    again = blend_surround(apply_colour(other.crop, _gain(1.1).astype(np.float32)), other.surround, steady.ring_average, _gain(1.1))
    assert np.array_equal(shown, again)


def test_the_ring_is_averaged_and_a_missing_sector_keeps_its_average():
    face, steady = _rendered(), SteadyCrop()
    ring = np.full((RING_SECTORS, 3), 100.0)
    steady.crop(face, _gain(1.0), ring)
    jump = ring.copy()
    jump[0] = 200.0  # one frame's hair beside the head: a quarter of it reaches the average
    jump[1] = np.nan  # a sector this frame does not show
    steady.crop(face, _gain(1.0), jump)
    avg = steady.ring_average
    assert avg[0, 0] == 125.0 and avg[1, 0] == 100.0 and avg[2, 0] == 100.0


def test_a_face_without_surroundings_ignores_the_ring():
    face, steady = _rendered(surround=False), SteadyCrop()
    first = steady.crop(face, _gain(1.0), np.full((RING_SECTORS, 3), 50.0))
    assert steady.crop(face, _gain(1.0), np.full((RING_SECTORS, 3), 250.0)) is first
