"""The privacy and utility metrics, as plain numpy functions (no face model needed here).

Privacy (per adversary, with its same-person distance threshold ``thr``):

- ``protected(d, thr)``: the output's descriptor is farther than ``thr`` from the descriptor of
  the *same original photo* (the paper's protection); a face the adversary cannot find at all is
  protected (``d = inf``).
- ``rank1``: the nearest gallery descriptor (the probe's own photo left out) belongs to the
  probe's identity.
- ``verification``: over all (output, gallery photo) pairs, the balanced accuracy of "same person
  iff distance <= thr": (share of genuine pairs accepted + share of impostor pairs rejected) / 2;
  0.5 is chance.

Utility: SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, on the
0-255 range, per RGB channel then averaged; borders of 5 px left out as in "valid" filtering),
of the whole image and averaged over the face box; keypoint displacement normalised by the eye
distance; temporal flicker of a face region over consecutive frames.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

SSIM_SIGMA = 1.5
SSIM_WIN = 11
_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2


# -- SSIM ------------------------------------------------------------------------------------------
def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM of two uint8 (or 0-255 float) images of the same shape -> HxW float64.

    Multi-channel images: the mean of the per-channel maps.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"ssim: shapes differ {a.shape} vs {b.shape}")
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]

    def blur(x: np.ndarray) -> np.ndarray:
        out = cv2.GaussianBlur(x, (SSIM_WIN, SSIM_WIN), SSIM_SIGMA, borderType=cv2.BORDER_REFLECT)
        return out.reshape(x.shape)

    maps = []
    for c in range(a.shape[2]):
        x, y = a[..., c], b[..., c]
        mx, my = blur(x), blur(y)
        sxx = blur(x * x) - mx * mx
        syy = blur(y * y) - my * my
        sxy = blur(x * y) - mx * my
        num = (2 * mx * my + _C1) * (2 * sxy + _C2)
        den = (mx * mx + my * my + _C1) * (sxx + syy + _C2)
        maps.append(num / den)
    return np.mean(maps, axis=0)


def _valid(shape: tuple[int, ...]) -> tuple[slice, slice]:
    pad = SSIM_WIN // 2
    h, w = shape[:2]
    if h <= 2 * pad or w <= 2 * pad:
        return slice(0, h), slice(0, w)
    return slice(pad, h - pad), slice(pad, w - pad)


def ssim(a: np.ndarray, b: np.ndarray, box: Sequence[float] | None = None, smap: np.ndarray | None = None) -> float:
    """Mean SSIM over the image (borders left out), or over ``box`` (xyxy, clipped) when given."""
    m = ssim_map(a, b) if smap is None else smap
    ys, xs = _valid(m.shape)
    if box is None:
        return float(m[ys, xs].mean())
    h, w = m.shape
    x0 = int(np.clip(math.floor(box[0]), xs.start, xs.stop))
    y0 = int(np.clip(math.floor(box[1]), ys.start, ys.stop))
    x1 = int(np.clip(math.ceil(box[2]), xs.start, xs.stop))
    y1 = int(np.clip(math.ceil(box[3]), ys.start, ys.stop))
    if x1 <= x0 or y1 <= y0:
        return float("nan")
    return float(m[y0:y1, x0:x1].mean())


# -- privacy ---------------------------------------------------------------------------------------
def protected(distance: np.ndarray | float, threshold: float) -> np.ndarray:
    """True where the adversary no longer matches the output to its original (NaN/inf: not found)."""
    d = np.asarray(distance, dtype=np.float64)
    return ~(d <= threshold)


def protection_rate(distances: np.ndarray, threshold: float) -> float:
    d = np.asarray(distances, dtype=np.float64)
    return float(protected(d, threshold).mean()) if d.size else float("nan")


def pairwise_l2(q: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Euclidean distances (n, m) between rows of ``q`` (n, d) and ``g`` (m, d); NaN rows stay NaN."""
    q = np.asarray(q, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    d2 = (q * q).sum(1)[:, None] + (g * g).sum(1)[None, :] - 2.0 * q @ g.T
    return np.sqrt(np.maximum(d2, 0.0))


def rank1(
    dist: np.ndarray, probe_ids: np.ndarray, gallery_ids: np.ndarray, exclude: np.ndarray | None = None
) -> np.ndarray:
    """Per probe: is the nearest gallery item (``exclude[i]`` left out) of the probe's identity?

    ``dist`` (n, m); a probe whose row is all NaN (no descriptor) is a miss (False).
    """
    d = np.array(dist, dtype=np.float64, copy=True)
    d[~np.isfinite(d)] = np.inf
    if exclude is not None:
        rows = np.arange(len(d))
        ok = np.asarray(exclude) >= 0
        d[rows[ok], np.asarray(exclude)[ok]] = np.inf
    nearest = np.argmin(d, axis=1)
    found = np.isfinite(d[np.arange(len(d)), nearest])
    return found & (np.asarray(gallery_ids)[nearest] == np.asarray(probe_ids))


def verification_counts(
    dist: np.ndarray, threshold: float, probe_ids: np.ndarray, gallery_ids: np.ndarray, exclude: np.ndarray | None = None
) -> tuple[int, int, int, int]:
    """(genuine accepted, genuine pairs, impostors rejected, impostor pairs) over all pairs.

    A NaN distance (the adversary found no face) rejects the pair.
    """
    d = np.asarray(dist, dtype=np.float64)
    same = np.asarray(probe_ids)[:, None] == np.asarray(gallery_ids)[None, :]
    valid = np.ones_like(same)
    if exclude is not None:
        rows = np.arange(len(d))
        ok = np.asarray(exclude) >= 0
        valid[rows[ok], np.asarray(exclude)[ok]] = False
    accept = d <= threshold  # NaN -> False
    gen = same & valid
    imp = ~same & valid
    return int((accept & gen).sum()), int(gen.sum()), int((~accept & imp).sum()), int(imp.sum())


def balanced_accuracy(counts: tuple[int, int, int, int]) -> float:
    ga, gn, ir, im = counts
    if gn == 0 or im == 0:
        return float("nan")
    return 0.5 * (ga / gn + ir / im)


# -- geometry and detection ------------------------------------------------------------------------
def center_inside(boxes: np.ndarray, box: Sequence[float]) -> np.ndarray:
    """Which of ``boxes`` (N, 4) have their centre inside ``box`` (xyxy)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    cx = (b[:, 0] + b[:, 2]) / 2
    cy = (b[:, 1] + b[:, 3]) / 2
    return (cx >= box[0]) & (cx <= box[2]) & (cy >= box[1]) & (cy <= box[3])


def keypoint_displacement(kp_out: np.ndarray, kp_ref: np.ndarray) -> float:
    """Mean distance of the four inner keypoints (eyes, nose, mouth), in units of the reference's
    eye distance: 0 = pose and geometry kept exactly."""
    a = np.asarray(kp_out, dtype=np.float64).reshape(-1, 2)[:4]
    r = np.asarray(kp_ref, dtype=np.float64).reshape(-1, 2)[:4]
    eye = float(np.linalg.norm(r[1] - r[0]))
    if not np.isfinite(a).all() or eye <= 0:
        return float("nan")
    return float(np.linalg.norm(a - r, axis=1).mean() / eye)


def flicker(frames: Sequence[np.ndarray], box: Sequence[float]) -> float:
    """Mean absolute change (0-255 units) inside ``box`` between consecutive frames.

    Frames must already be registered (the same scene point at the same pixel in every frame);
    for a static input every change is flicker the mechanism added.
    """
    if len(frames) < 2:
        return float("nan")
    x0, y0 = max(int(box[0]), 0), max(int(box[1]), 0)
    x1, y1 = int(math.ceil(box[2])), int(math.ceil(box[3]))
    diffs = [
        np.abs(frames[i][y0:y1, x0:x1].astype(np.int16) - frames[i - 1][y0:y1, x0:x1].astype(np.int16)).mean()
        for i in range(1, len(frames))
    ]
    return float(np.mean(diffs))


def mean_ci(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Mean and the half-width of its 95% normal confidence interval (NaNs ignored)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    if v.size == 1:
        return float(v[0]), float("nan")
    return float(v.mean()), float(1.96 * v.std(ddof=1) / math.sqrt(v.size))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two sets of feature vectors (rows).

    ``|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))``: FID's formula (Heusel et al. 2017),
    here on a recogniser's descriptors instead of Inception features (no Inception network is
    available offline). ``Tr((S_a S_b)^(1/2))`` = sum of the square roots of the eigenvalues of
    ``S_a^(1/2) S_b S_a^(1/2)`` (symmetric PSD), so numpy's ``eigh`` suffices. Rows with a NaN
    are dropped. NaN when either set has fewer than 2 rows.
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    a = a[np.isfinite(a).all(axis=1)]
    b = b[np.isfinite(b).all(axis=1)]
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(s_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    middle = root_a @ s_b @ root_a
    tr_sqrt = float(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum())
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(s_a) + np.trace(s_b) - 2 * tr_sqrt)


def threshold_at_far(impostor_distances: np.ndarray, far: float) -> float:
    """The distance threshold at which a share ``far`` of impostor pairs is accepted (<= it).

    The ``far`` quantile of the impostor distances (lower interpolation: a value that occurs, so
    the accepted share is ``far`` to within one pair). NaN without impostor pairs.
    """
    d = np.asarray(impostor_distances, np.float64).ravel()
    d = d[np.isfinite(d)]
    if not len(d):
        return float("nan")
    return float(np.quantile(d, far, method="lower"))


def detail_ratio(out: np.ndarray, ref: np.ndarray, box: tuple[int, int, int, int] | np.ndarray) -> float:
    """Variance of the Laplacian of the output's face box over the original's: how much fine
    detail (skin texture, eyelashes, hair strands) a mechanism keeps, whoever's detail it is (1:
    as sharp as the original, 0: flat; blur and pixelate keep next to none)."""
    import cv2

    x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    h, w = ref.shape[:2]
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return float("nan")

    def lap_var(img: np.ndarray) -> float:
        g = cv2.cvtColor(np.ascontiguousarray(img[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
        return float(cv2.Laplacian(g, cv2.CV_64F).var())

    base = lap_var(ref)
    return lap_var(out) / base if base > 0 else float("nan")
