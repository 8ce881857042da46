"""How a generated face is shown from frame to frame: where (the detector's alignment) and in
what colours (the frame's ring around it), both steadied over time.

BlazeFace's keypoints jitter from frame to frame (on the bundled sample, upscaled to 720p, the
face's scale moves by 2-5% and its centre by ~5 px between frames of a head that barely moves).
Pasting a generated face with each frame's raw alignment makes it shimmer and breathe, which a
viewer sees at once, and which the video encoder pays for in bits and time: the face's texture
shifts by a few pixels every frame, so motion compensation finds no match.

``PlacementFilter`` smooths a track's similarity transform with a One Euro filter (Casiez et al.,
CHI 2012: a low-pass whose cutoff rises with the speed, so a still face stays still and a moving
one follows with little lag) on four parameters: the crop centre's position in the frame, the
log scale and the angle. Positions are measured in the face's own eye distances, so one set of
constants serves a 40 px face and a 900 px one.

Fail closed: the steadied placement never strays from the frame's own alignment by more than
``MAX_DEVIATION`` eye distances at any canonical keypoint (it is pulled back within that bound
otherwise). The replaced ellipse reaches 1.2 eye distances beside the face centre (0.7 beyond the
eyes) plus its feather, so the raw eyes, nose and mouth stay under the generated face; a scene
cut, a jump or a track gap longer than ``RESET_S`` starts again from the raw alignment.

``SteadyCrop`` does the same for colour. The colour transform follows the frame's ring (an
exponential average, ``COLOUR_EMA`` in dp_image_gan.py), and the ring's statistics move with every
frame's noise, compression and the hair beside a moving head: the whole face shifted by a grey
level or so and its edge by ~10, every frame (7.7% of the 720p sample's bits with dp-image,
measured with the transform frozen). The ring sectors are averaged here too, and the face is
recoloured only when the transform would move some pixel by more than ``COLOUR_STEP`` grey
levels or the sectors by more than ``RING_STEP``; otherwise the last crop is shown again,
unchanged (and not recomputed). Colour is not a privacy matter here: what it follows is
the raw pixels outside the replaced region, which stay in the frame anyway.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..align import CANONICAL_KEYPOINTS, EYE_DISTANCE

#: At most this far (in eye distances, at any canonical keypoint) from the frame's own alignment.
MAX_DEVIATION = 0.1
#: One Euro constants: the cutoff (Hz) of a still face, its rise per eye distance a second of
#: speed, and the cutoff of the speed estimate itself. BETA 0.6 / 1.5 / 3 (bundled sample,
#: carphone, bikes): jitter 0.64 / 0.74 / 0.85 px on the sample (2.45 raw), frames pulled back within
#: MAX_DEVIATION (lagging) 37 / 12 / 3 of 472, 35 / 22 / 9 of 120, 16 / 13 / 6 of 17.
MIN_CUTOFF_HZ = 1.0
BETA = 1.5
D_CUTOFF_HZ = 1.0
#: A gap longer than this (or time going backwards) restarts the filter from the raw alignment.
RESET_S = 0.5
#: Grey levels a recolouring must move some pixel by before the shown crop is recomputed.
COLOUR_STEP = 1.5
#: The ring sectors a face's edge is blended towards move by ~11 grey levels from frame to frame
#: (hair and background beside a moving head; the 720p sample's median): averaged like the
#: colour, and the edge redone past this many levels (it fades into the frame's own pixels).
RING_EMA = 0.25
RING_STEP = 4.0


def _alpha(cutoff_hz: float | np.ndarray, dt: float) -> Any:
    """The One Euro smoothing factor of a low-pass at ``cutoff_hz`` (a value or an array) for a step ``dt``."""
    tau = 1.0 / (2.0 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt)


def _params(m: np.ndarray, S: int) -> np.ndarray:
    """Image->crop similarity (2, 3) -> [centre x, centre y (frame px), log scale, angle] of crop->image."""
    a, b = float(m[0, 0]), float(m[1, 0])
    s = math.hypot(a, b)  # image->crop scale
    inv = np.linalg.inv(np.asarray(m[:, :2], np.float64))
    c = inv @ (np.array([S / 2.0, S / 2.0]) - np.asarray(m[:, 2], np.float64))
    return np.array([c[0], c[1], -math.log(s), -math.atan2(b, a)])


def _matrix(p: np.ndarray, S: int) -> np.ndarray:
    """Inverse of ``_params``: the image->crop similarity (2, 3) float64."""
    s = math.exp(-p[2])
    ang = -p[3]
    a, b = s * math.cos(ang), s * math.sin(ang)
    rot = np.array([[a, -b], [b, a]])
    t = np.array([S / 2.0, S / 2.0]) - rot @ p[:2]
    return np.hstack([rot, t[:, None]])


def _keypoints_in_frame(m: np.ndarray, S: int) -> np.ndarray:
    """The canonical keypoints a (2, 3) image->crop matrix places, in frame pixels (6, 2)."""
    inv_a = np.linalg.inv(np.asarray(m[:, :2], np.float64))
    return (CANONICAL_KEYPOINTS * S - np.asarray(m[:, 2], np.float64)) @ inv_a.T


class PlacementFilter:
    """One track's steadied paste transform (see the module doc). ``update`` takes the frame's
    raw image->crop matrix for crops of side ``S`` and returns the one to paste with."""

    def __init__(self) -> None:
        self._t: float | None = None
        self._x: np.ndarray | None = None  # filtered parameters
        self._dx = np.zeros(4)  # filtered speed (normalized units a second)
        self.clamped = 0  # frames pulled back within MAX_DEVIATION (the report's placements_pulled_back)

    def update(self, m_raw: np.ndarray, S: int, t: float) -> np.ndarray:
        raw = _params(m_raw, S)
        if not np.all(np.isfinite(raw)):
            return np.asarray(m_raw, np.float64)
        dt = None if self._t is None else t - self._t
        if self._x is None or dt is None or not (0.0 < dt <= RESET_S):
            if dt == 0.0 and self._x is not None:  # the same instant again (a still image): as before
                return _matrix(self._x, S)
            self._t, self._x, self._dx = t, raw, np.zeros(4)
            return np.asarray(m_raw, np.float64)
        # normalized units: positions in eye distances (of the raw placement), angles in radians
        eye_px = EYE_DISTANCE * S * math.exp(raw[2])
        unit = np.array([eye_px, eye_px, 1.0, 1.0])
        delta = raw - self._x
        delta[3] = (delta[3] + math.pi) % (2.0 * math.pi) - math.pi
        speed = delta / unit / dt
        a_d = _alpha(D_CUTOFF_HZ, dt)
        self._dx = a_d * speed + (1.0 - a_d) * self._dx
        cutoff = MIN_CUTOFF_HZ + BETA * np.abs(self._dx)
        x = self._x + _alpha(cutoff, dt) * delta
        m = _matrix(x, S)
        # fail closed: within MAX_DEVIATION eye distances of the raw alignment at every keypoint
        kp_raw = _keypoints_in_frame(m_raw, S)
        dev = np.linalg.norm(_keypoints_in_frame(m, S) - kp_raw, axis=1).max() / eye_px
        if dev > MAX_DEVIATION:
            self.clamped += 1
            # aimed a little inside the bound: the check below is exact, the aim need not be
            x, m = self._pulled_back(x, raw, m_raw, kp_raw, S, eye_px, 0.99 * MAX_DEVIATION / dev)
        self._t, self._x = t, x
        return m

    @staticmethod
    def _pulled_back(
        x: np.ndarray, raw: np.ndarray, m_raw: np.ndarray, kp_raw: np.ndarray, S: int, eye_px: float, f: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """``x`` moved towards ``raw`` until within MAX_DEVIATION of ``kp_raw`` (``m_raw``'s
        keypoints; scale and angle are not linear in them, so the first guess is checked), else
        ``raw`` itself."""
        for _ in range(6):
            y = raw + (x - raw) * f
            m = _matrix(y, S)
            if np.linalg.norm(_keypoints_in_frame(m, S) - kp_raw, axis=1).max() <= MAX_DEVIATION * eye_px:
                return y, m
            f *= 0.8
        return raw, np.asarray(m_raw, np.float64)


class SteadyCrop:
    """The colour-matched crop one release shows (see the module doc): recomputed when the face
    (its render), its colour transform or the ring sectors its edge follows move enough."""

    def __init__(self) -> None:
        self._face: Any = None
        self._colour: np.ndarray | None = None
        self._sectors: np.ndarray | None = None
        self._refs: np.ndarray | None = None  # (3, 4) the face's dark, mean and bright colours, homogeneous
        self._crop: np.ndarray | None = None
        self._ring: np.ndarray | None = None  # the ring sectors, averaged over frames
        self.reused = 0  # frames shown with the previous crop (tests, diagnostics)

    @property
    def ring_average(self) -> np.ndarray | None:
        """The ring sectors averaged over the frames so far (None before the first)."""
        return self._ring

    def crop(self, face: Any, colour: np.ndarray, sectors: np.ndarray) -> np.ndarray:
        """The crop to paste: ``face`` (a ``RenderedFace``) recoloured by ``colour`` and its edge
        blended towards the ring's ``sectors``, when that would differ from the last crop by more
        than COLOUR_STEP somewhere; else the last crop."""
        from ..generator.render import apply_colour, blend_surround

        colour = np.asarray(colour, np.float64)
        ring = self._averaged(sectors)
        sectors_used = None if face.surround is None else ring  # without surroundings nothing follows the ring
        if face is not self._face:
            px = face.crop.reshape(-1, 3).astype(np.float32)
            refs = np.stack([np.percentile(px, 5, axis=0), px.mean(axis=0), np.percentile(px, 95, axis=0)])
            self._refs = np.hstack([refs, np.ones((3, 1))]).astype(np.float64)
        elif self._crop is not None and self._close(colour, sectors_used):
            self.reused += 1
            return self._crop
        self._face, self._colour = face, colour.copy()
        self._sectors = None if sectors_used is None else sectors_used.copy()
        crop = apply_colour(face.crop, colour.astype(np.float32))
        self._crop = crop if face.surround is None else blend_surround(crop, face.surround, sectors_used, colour)
        return self._crop

    def _averaged(self, sectors: np.ndarray) -> np.ndarray:
        """This frame's ring sectors folded into their running average (a sector the frame does
        not show, NaN, keeps its average; one shown for the first time starts at its value)."""
        new = np.asarray(sectors, np.float64)
        if self._ring is None:
            self._ring = new.copy()
        else:
            old = self._ring
            self._ring = np.where(np.isnan(new), old, np.where(np.isnan(old), new, (1 - RING_EMA) * old + RING_EMA * new))
        return self._ring

    def _close(self, colour: np.ndarray, sectors: np.ndarray | None) -> bool:
        """Whether the last crop (of the same face) still shows ``colour`` and ``sectors``."""
        assert self._refs is not None and self._colour is not None
        if np.abs(self._refs @ (colour - self._colour).T).max() > COLOUR_STEP:
            return False
        if sectors is None:  # the same face: it had no surroundings to follow the ring then either
            return True
        assert self._sectors is not None
        gaps = np.isnan(sectors)
        if (gaps != np.isnan(self._sectors)).any():
            return False
        return bool(np.abs(np.where(gaps, 0.0, sectors - self._sectors)).max(initial=0.0) <= RING_STEP)
