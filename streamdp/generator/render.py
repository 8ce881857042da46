"""Released latent -> aligned face crops, and the per-frame colour match to the public context.

A release is synthesized once (per yaw step it is shown at), its keypoints found by our own
detector, and warped into the canonical crop of ``streamdp.align`` at ``crop_size``. On every
frame the pipeline pastes that crop with the *current* frame's alignment (``composite.paste_crops``):
per-frame cost is one colour transform, one warp and one blend.

Colour and light: ``ring_points`` are canonical-crop positions just outside the blend mask, so in
the output frame they are raw pixels that the paste does not touch (public: anything computed
from them is post-processing). ``colour_transform`` maps the generated face's colours by the
ratio between the frame's ring statistics and the average ring of generated faces
(``LatentSpace.ring_reference``): a dim, desaturated, blue-tinted scene gives a dim, desaturated,
blue-tinted face. Ring points inside another face's box are left out, so one face's raw pixels
never steer another face's colours.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from ..align import EYE_DISTANCE, estimate_transforms, invert_transforms, warp_crops
from .backend import Generator
from .latent import LatentSpace, yaw_proxy

#: The replaced region, in canonical crop coordinates: an ellipse centred between the eyes and the
#: mouth, 1.3 eye distances to each side (ears included) and from above the brows to below the
#: chin. The probe of this design (shared notes, photoreal-probe.md) measured this size (1.35 x
#: 1.25 of the inner face) at 100% protection against dlib, where the inner-face ellipse left the
#: jaw line and face outline to re-identify 3%; larger pulls in the generated image's own hair and
#: background, which look pasted on.
GAN_ELLIPSE_CENTER = (0.5, 0.44 + 0.54 * EYE_DISTANCE)
GAN_ELLIPSE_RADII = (1.2 * EYE_DISTANCE, 1.42 * EYE_DISTANCE)
#: The upper half reaches further, to the hairline (1.3 eye distances above the eyes): the new
#: face's own hairline then meets the real hair, instead of a seam across the forehead.
GAN_ELLIPSE_TOP = 1.8 * EYE_DISTANCE
GAN_MASK_FEATHER = 0.12  # outward band, fraction of the ellipse's width: alpha is 1 on the ellipse
#: The ring sampled for colour, in ellipse radii: past the feather band (ellipse + 0.12 x its
#: width, about 1.24 radii), so these pixels stay raw in the output.
RING_SCALE = (1.32, 1.6)
#: The rim just inside the replaced ellipse (alpha 1): where the generated image meets the frame.
#: Its predicted pattern is matched to the frame's ring when a release's candidate is chosen.
RIM_SCALE = (0.84, 0.98)
#: How far the face's colours follow the scene (1: fully, 0: not at all), and the limits of the
#: per-channel gain and of the saturation change (a red scarf must not paint the face red).
COLOUR_STRENGTH = 0.5
GAIN_RANGE = (0.55, 1.5)
SATURATION_RANGE = (0.35, 1.25)
#: Where MediaPipe's keypoints of an FFHQ-aligned face sit (fractions of the image side); used
#: only when the detector finds no face in a generated image (rare) so that it still aligns.
FFHQ_KEYPOINTS = np.array(
    [[0.385, 0.47], [0.615, 0.47], [0.5, 0.585], [0.5, 0.695], [0.27, 0.53], [0.73, 0.53]], np.float32
)


MIN_RING_POINTS = 12


@lru_cache(maxsize=8)
def generated_face_mask(S: int) -> np.ndarray:
    """``S x S`` float32 alpha: 1 on ``GAN_ELLIPSE``, smoothstep to 0 over the band outside it."""
    band = GAN_MASK_FEATHER * 2 * GAN_ELLIPSE_RADII[0] * S
    dx, dy, d = _egg_offsets(S)
    outside = np.where(d > 1.0, np.hypot(dx, dy) * (1.0 - 1.0 / np.maximum(d, 1e-6)), 0.0)
    t = np.clip(outside / band, 0.0, 1.0)
    mask = (1.0 - t * t * (3.0 - 2.0 * t)).astype(np.float32)
    mask.setflags(write=False)
    return mask


RING_SECTORS = 8  # the ring's pattern (hair beside the face or background?) in 8 angular sectors


@lru_cache(maxsize=8)
def ring_sector_ids(S: int = 64, n_angles: int = 48, n_radii: int = 3, scale: tuple[float, float] = RING_SCALE) -> np.ndarray:
    """The angular sector (0..RING_SECTORS-1) of each of ``ring_points(S, ..., scale)``."""
    ang = np.linspace(0, 2 * np.pi, n_angles, endpoint=False)
    sec = np.tile((ang / (2 * np.pi) * RING_SECTORS).astype(np.int64) % RING_SECTORS, n_radii)
    keep = _ring_keep(S, n_angles, n_radii, scale)
    out = sec[keep]
    out.setflags(write=False)
    return out


def _ring_all(S: int, n_angles: int, n_radii: int, scale: tuple[float, float]) -> np.ndarray:
    cx, cy = GAN_ELLIPSE_CENTER[0] * S, GAN_ELLIPSE_CENTER[1] * S
    rx = GAN_ELLIPSE_RADII[0] * S
    ang = np.linspace(0, 2 * np.pi, n_angles, endpoint=False)
    ry = np.where(np.sin(ang) < 0, GAN_ELLIPSE_TOP * S, GAN_ELLIPSE_RADII[1] * S)  # y down: sin < 0 is up
    pts = [
        np.stack([cx + s * rx * np.cos(ang), cy + s * ry * np.sin(ang)], axis=1)
        for s in np.linspace(scale[0], scale[1], n_radii)
    ]
    return np.concatenate(pts).astype(np.float32)


def _ring_keep(S: int, n_angles: int, n_radii: int, scale: tuple[float, float]) -> np.ndarray:
    p = _ring_all(S, n_angles, n_radii, scale)
    return (p >= 0).all(axis=1) & (p < S - 1).all(axis=1)


def sector_means(pixels: np.ndarray, sectors: np.ndarray) -> np.ndarray:
    """(RING_SECTORS, 3) RGB mean of the points of each angular sector (NaN for an empty one)."""
    px = np.asarray(pixels, np.float64).reshape(-1, 3)
    out = np.full((RING_SECTORS, 3), np.nan)
    for k in range(RING_SECTORS):
        sel = sectors == k
        if sel.any():
            out[k] = px[sel].mean(axis=0)
    return out


def rim_mismatch(rim: np.ndarray, ring: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """Mean squared colour difference per candidate between rims (N, SECTORS, 3), as they will
    look after the colour ``transform`` (3x4), and a frame's ring sector means (SECTORS, 3):
    what a viewer sees across the blend's edge. NaN sectors are ignored."""
    r = np.asarray(rim, np.float64).reshape(-1, RING_SECTORS, 3) @ np.asarray(transform, np.float64)[:, :3].T
    ok = np.isfinite(ring).all(axis=1)
    if not ok.any():
        return np.zeros(len(r))
    return ((r[:, ok] - ring[ok]) ** 2).mean(axis=(1, 2))


@lru_cache(maxsize=8)
def ring_points(S: int = 64, n_angles: int = 48, n_radii: int = 3, scale: tuple[float, float] = RING_SCALE) -> np.ndarray:
    """(K, 2) canonical crop coordinates (pixels of an S crop) on the colour ring (or, with
    ``scale=RIM_SCALE``, the rim inside the replaced ellipse), inside the crop."""
    out = _ring_all(S, n_angles, n_radii, scale)[_ring_keep(S, n_angles, n_radii, scale)]
    out.setflags(write=False)
    return out


@dataclass
class Ring:
    """What the public ring around one face in a frame shows."""

    stats: np.ndarray | None  # (2, 3) RGB mean and std; None with too few points in view
    sectors: np.ndarray  # (RING_SECTORS, 3) sector_means, NaN where no point is in view


def ring_stats(image: np.ndarray, matrix: np.ndarray, S: int, exclude_boxes: np.ndarray | None = None) -> Ring:
    """The ring of ``image`` around the face aligned by ``matrix`` (image->crop, for crops of side
    S), leaving out points outside the frame or inside any of ``exclude_boxes`` (other faces).
    ``stats`` is None when fewer than ``MIN_RING_POINTS`` remain (a face filling the frame: its
    colours are then left as generated)."""
    pts_c = ring_points(64) * (S / 64.0)
    inv = invert_transforms(np.asarray(matrix, np.float32).reshape(1, 2, 3))[0]
    pts = pts_c @ inv[:, :2].T + inv[:, 2]
    h, w = image.shape[:2]
    ok = (pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)
    if exclude_boxes is not None and len(exclude_boxes):
        b = np.asarray(exclude_boxes, np.float32).reshape(-1, 4)
        inside = (
            (pts[:, None, 0] >= b[None, :, 0])
            & (pts[:, None, 0] <= b[None, :, 2])
            & (pts[:, None, 1] >= b[None, :, 1])
            & (pts[:, None, 1] <= b[None, :, 3])
        ).any(axis=1)
        ok &= ~inside
    xy = pts[ok].astype(np.int64)
    px = image[xy[:, 1], xy[:, 0]].astype(np.float64)
    sectors = sector_means(px, ring_sector_ids(64)[ok])
    if ok.sum() < MIN_RING_POINTS:
        return Ring(None, sectors)
    return Ring(np.stack([px.mean(axis=0), px.std(axis=0) + 1.0]), sectors)


def colour_transform(
    frame_ring: np.ndarray | None,
    reference: np.ndarray,
    strength: float = COLOUR_STRENGTH,
    rim: np.ndarray | None = None,
    ring_sectors: np.ndarray | None = None,
) -> np.ndarray:
    """A 3x4 affine RGB transform (for ``cv2.transform``) moving a generated face towards the scene.

    Per-channel gain (white balance and brightness) from the ring means relative to the average
    generated ring, partial (``strength``); when the rendered face's own rim (``crop_rim``) and the
    frame's ring sectors are given, mostly the least-squares gain that makes the rim match the
    ring across the blend's edge (its hair to the real hair, its forehead to the real forehead;
    the median over sectors, so that a background sector does not darken the face).
    Then a saturation change from the rings' chroma spread. All bounded.
    """
    if frame_ring is None:
        return np.hstack([np.eye(3), np.zeros((3, 1))]).astype(np.float32)
    fm, ref_m = frame_ring[0], reference[0]
    gain = (np.maximum(fm, 1.0) / np.maximum(ref_m, 1.0)) ** strength
    if rim is not None and ring_sectors is not None:
        ok = np.isfinite(rim).all(axis=1) & np.isfinite(ring_sectors).all(axis=1)
        if ok.sum() >= 3:
            # the median over sectors of ring/rim: robust to the sectors where one side shows
            # background and the other hair
            fit = np.median(np.maximum(ring_sectors[ok], 1.0) / np.maximum(rim[ok], 1.0), axis=0)
            gain = gain**0.5 * fit**0.5
    gain = np.clip(gain, *GAIN_RANGE)
    # chroma: spread of the channel means around their grey level
    def chroma(m: np.ndarray) -> float:
        return float(np.abs(m - m.mean()).mean() + 2.0)

    sat = float(np.clip((chroma(fm) / chroma(ref_m)) ** strength, *SATURATION_RANGE))
    grey = np.full((3, 3), 1.0 / 3.0)
    sat_m = sat * np.eye(3) + (1.0 - sat) * grey  # keeps the grey level, scales colour around it
    m = sat_m @ np.diag(gain)
    return np.hstack([m, np.zeros((3, 1))]).astype(np.float32)


def crop_rim(crop: np.ndarray) -> np.ndarray:
    """(RING_SECTORS, 3) sector means of a rendered crop's rim (just inside the replaced ellipse)."""
    S = crop.shape[0]
    pts = (ring_points(64, scale=RIM_SCALE) * (S / 64.0)).astype(np.int64)
    return sector_means(crop[pts[:, 1], pts[:, 0]], ring_sector_ids(64, scale=RIM_SCALE))


@lru_cache(maxsize=8)
def _egg_offsets(S: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel of an S crop: offsets (dx, dy) from the replaced region's centre and the
    egg-normalised radius (1 on the region's edge; the upper half reaches to GAN_ELLIPSE_TOP)."""
    cx, cy = GAN_ELLIPSE_CENTER[0] * S, GAN_ELLIPSE_CENTER[1] * S
    rx = GAN_ELLIPSE_RADII[0] * S
    ys, xs = np.mgrid[0:S, 0:S].astype(np.float32) + 0.5
    dx, dy = xs - cx, ys - cy
    ry = np.where(dy < 0, GAN_ELLIPSE_TOP * S, GAN_ELLIPSE_RADII[1] * S)
    r = np.sqrt((dx / rx) ** 2 + (dy / ry) ** 2)
    for a in (dx, dy, r):
        a.setflags(write=False)
    return dx, dy, r


@lru_cache(maxsize=8)
def _egg_geometry(S: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel of an S crop: the egg-normalised radius (1 on the replaced region's edge) and the
    two neighbouring ring sectors with the interpolation weight between them (by angle)."""
    dx, dy, r = _egg_offsets(S)
    rx = GAN_ELLIPSE_RADII[0] * S
    ry = np.where(dy < 0, GAN_ELLIPSE_TOP * S, GAN_ELLIPSE_RADII[1] * S)
    ang = np.mod(np.arctan2(dy / ry, dx / rx), 2 * np.pi)  # same angle convention as the ring points
    pos = ang / (2 * np.pi) * RING_SECTORS - 0.5  # sector centres at k + 0.5
    k0 = np.floor(pos).astype(np.int64)
    frac = (pos - k0).astype(np.float32)
    k0 %= RING_SECTORS
    k1 = (k0 + 1) % RING_SECTORS
    for a in (k0, k1, frac):
        a.setflags(write=False)
    return r, k0, k1, frac


@dataclass
class Surround:
    """Where a rendered crop shows its own surroundings (background, hair, clothes) rather than
    its face, near the edge of the replaced region, and what colour they are per sector."""

    weight: np.ndarray  # (S, S) float32 in [0, 1]
    colours: np.ndarray  # (RING_SECTORS, 3) mean RGB of those pixels on the rim (NaN: none)


def surround_of(crop: np.ndarray) -> Surround:
    """Skin is found by colour: pixels far (in Lab) from the central face's colour are
    surroundings. The weight also rises from 0 at 0.7 of the replaced region's radius to 1 at its
    edge, so the face itself is never recoloured."""
    S = crop.shape[0]
    r, k0, _, _ = _egg_geometry(S)
    lab = cv2.cvtColor(crop, cv2.COLOR_RGB2LAB).astype(np.float32)
    centre = r < 0.45
    m = np.median(lab[centre], axis=0)
    d2 = ((lab[..., 0] - m[0]) / 40.0) ** 2 + ((lab[..., 1] - m[1]) / 9.0) ** 2 + ((lab[..., 2] - m[2]) / 9.0) ** 2
    nonskin = 1.0 - np.exp(-0.5 * d2)
    t = np.clip((r - 0.7) / 0.3, 0.0, 1.0)
    radial = t * t * (3 - 2 * t)
    weight = (radial * nonskin).astype(np.float32)
    rim = (r >= RIM_SCALE[0]) & (r <= 1.2)
    colours = np.full((RING_SECTORS, 3), np.nan)
    for k in range(RING_SECTORS):
        sel = rim & (k0 == k)
        w = nonskin[sel]
        if sel.any() and w.sum() > 5:
            colours[k] = (crop[sel].astype(np.float64) * w[:, None]).sum(axis=0) / w.sum()
    weight.setflags(write=False)
    return Surround(weight, colours)


def blend_surround(crop: np.ndarray, surround: Surround, ring_sectors: np.ndarray, transform: np.ndarray,
                   strength: float = 1.0, limit: float = 90.0) -> np.ndarray:
    """Shift the rendered surroundings near the region's edge, sector by sector, towards the
    colour of the frame's public ring there: a generated light wall beside a face that sits in
    front of dark hair becomes dark, so no halo of another scene shows around the new face.
    ``crop`` is already colour-transformed by ``transform``; returns a new uint8 crop."""
    gen = surround.colours @ np.asarray(transform, np.float64)[:, :3].T
    shift = np.asarray(ring_sectors, np.float64) - gen
    shift = np.where(np.isfinite(shift), np.clip(shift, -limit, limit), 0.0).astype(np.float32)
    # The shift varies smoothly with the angle (and is weighted 0 at the centre, where the
    # sectors meet): interpolated on a quarter-size grid and scaled up, 4x cheaper per frame and
    # within 1 grey level of the full-size interpolation.
    s = crop.shape[0]
    q = max(8, s // 4)
    _, k0, k1, frac = _egg_geometry(q)
    small = (1.0 - frac)[..., None] * shift[k0] + frac[..., None] * shift[k1]
    per_px = cv2.resize(small, (crop.shape[1], s), interpolation=cv2.INTER_LINEAR)
    out = cv2.add(crop.astype(np.float32), per_px * (strength * surround.weight)[..., None])
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def apply_colour(crop: np.ndarray, transform: np.ndarray) -> np.ndarray:
    return cv2.transform(crop, transform)  # saturates to uint8


@dataclass
class RenderedFace:
    crop: np.ndarray  # (S, S, 3) uint8, canonical alignment
    keypoints: np.ndarray  # (6, 2) in the generated image (fractions of its side)
    yaw: float  # measured yaw proxy of the rendered face
    detected: bool  # False: aligned by the FFHQ template (the detector missed the generated face)
    rim: np.ndarray  # crop_rim(crop): what it shows at the edge of the replaced ellipse
    surround: Surround | None = None  # where it shows its own surroundings (surround_of)


class FaceRenderer:
    """Synthesizes a w and aligns the result into the canonical crop."""

    def __init__(self, generator: Generator, space: LatentSpace, crop_size: int, detector: object | None = None) -> None:
        self.generator = generator
        self.space = space
        self.crop_size = int(crop_size)
        if detector is None:
            from ..detect import FaceDetector

            detector = FaceDetector()
        self.detector = detector
        self.rendered = 0

    def free_w(self, rng: np.random.Generator, n: int = 1) -> np.ndarray:
        """Mappings of fresh random z: the random detail of a new face (public randomness)."""
        return self.generator.map(rng.standard_normal((n, 512)).astype(np.float32))

    def render(self, w: np.ndarray, yaw: float | None = None) -> RenderedFace:
        w = np.asarray(w, np.float32).reshape(1, 512)
        if yaw is not None:
            w = self.space.with_yaw(w, yaw)
        img = self.generator.synthesize(w)[0]
        self.rendered += 1
        return self.align(img)

    def align(self, img: np.ndarray) -> RenderedFace:
        S = self.crop_size
        side = max(2 * S, 256)
        work = cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA) if img.shape[0] != side else img
        small = cv2.resize(work, (256, 256), interpolation=cv2.INTER_AREA)
        dets = self.detector.detect(small)  # type: ignore[attr-defined]
        if len(dets):
            i = int(np.argmax(dets.areas))
            kp = dets.keypoints[i] / 256.0
            detected = True
        else:
            kp = FFHQ_KEYPOINTS.copy()
            detected = False
        m = estimate_transforms(kp[None] * side, S)
        crop = warp_crops(work, m, S)[0]
        return RenderedFace(
            crop, kp.astype(np.float32), float(yaw_proxy(kp[None])[0]), detected, crop_rim(crop), surround_of(crop)
        )
