"""Alignment (similarity transforms to a canonical crop), crops, pasting back, box covering."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamdp.align import (
    CANONICAL_BOX,
    CANONICAL_KEYPOINTS,
    estimate_transforms,
    face_mask,
    invert_transforms,
    transform_points,
    warp_crops,
)
from streamdp.composite import cover_boxes, paste_crops
from streamdp.config import DetectConfig

SHARED = Path(__file__).resolve().parents[2] / "shared"
MEDIA = SHARED / "media"
needs_media = pytest.mark.skipif(not MEDIA.is_dir(), reason=f"shared media not found at {MEDIA}")


def read_rgb(path: Path) -> np.ndarray:
    import cv2

    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def faces():
    """Detections on single_face.jpg and multi_face.jpg (real MediaPipe keypoints)."""
    if not MEDIA.is_dir():
        pytest.skip(f"shared media not found at {MEDIA}")
    from streamdp.detect import FaceDetector

    out = {}
    with FaceDetector(DetectConfig()) as det:
        for name in ("single_face.jpg", "multi_face.jpg"):
            img = read_rgb(MEDIA / name)
            out[name] = (img, det.detect(img))
    return out


# ------------------------------------------------------------------------------------------------
# template and mask
# ------------------------------------------------------------------------------------------------


def test_canonical_template_layout():
    k = CANONICAL_KEYPOINTS
    assert k.shape == (6, 2) and ((k > 0) & (k < 1)).all()
    re, le, nose, mouth, rear, lear = k
    assert re[0] < le[0] and re[1] == le[1]  # right eye on the image's left, level
    assert le[1] < nose[1] < mouth[1]
    assert rear[0] < re[0] and lear[0] > le[0]
    assert abs((re[0] + le[0]) / 2 - 0.5) < 1e-6 and abs(nose[0] - 0.5) < 1e-6
    # the face (detector box) sits in the centre with context all round
    x0, y0, x1, y1 = CANONICAL_BOX
    assert 0.15 < x0 < x1 < 0.85 and 0.15 < y0 < y1 < 0.85
    assert 0.4 < x1 - x0 < 0.65


@pytest.mark.parametrize("S", [96, 112, 128])
def test_face_mask(S):
    m = face_mask(S, 0.15)
    assert m.shape == (S, S) and m.dtype == np.float32
    assert m.min() >= 0 and m.max() == 1
    assert not m.flags.writeable and face_mask(S, 0.15) is m  # cached
    for x, y in CANONICAL_KEYPOINTS * S:  # eyes, nose, mouth and ears all fully masked
        assert m[int(y), int(x)] == 1.0
    # forehead and chin of the canonical face
    assert m[int(0.2 * S), S // 2] == 1.0 and m[int(0.8 * S), S // 2] == 1.0
    # nothing on the crop's border, so a pasted crop never shows its edge
    assert m[0].max() == m[-1].max() == m[:, 0].max() == m[:, -1].max() == 0
    # falls off monotonically outward along the middle row
    row = m[S // 2, S // 2 :]
    assert (np.diff(row) <= 1e-6).all()
    hard = face_mask(S, 0.0)
    assert set(np.unique(hard)) <= {0.0, 1.0}
    assert (m >= hard).all()  # the feather lies outside the hard ellipse


# ------------------------------------------------------------------------------------------------
# transforms
# ------------------------------------------------------------------------------------------------


def _similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = np.radians(angle_deg)
    c, s = scale * np.cos(a), scale * np.sin(a)
    return np.array([[c, -s, tx], [s, c, ty]])


def test_estimate_recovers_known_similarities_batched():
    S = 112
    rng = np.random.default_rng(0)
    n = 8
    params = zip(
        rng.uniform(-60, 60, n), rng.uniform(0.3, 4, n), rng.uniform(0, 1500, n), rng.uniform(0, 900, n)
    )
    crop_to_image = np.stack([_similarity(*p) for p in params])
    template = np.broadcast_to(CANONICAL_KEYPOINTS * S, (n, 6, 2))
    kp = transform_points(template, crop_to_image.astype(np.float32))
    kp = kp + rng.normal(0, 0.05, kp.shape).astype(np.float32)  # sub-pixel detector noise
    x0, y0, x1, y1 = CANONICAL_BOX * S
    corners = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], dtype=np.float32)
    pts = transform_points(np.broadcast_to(corners, (n, 4, 2)), crop_to_image.astype(np.float32))
    boxes = np.concatenate([pts.min(axis=1), pts.max(axis=1)], axis=1)  # detector-like upright box
    m, fallback = estimate_transforms(kp, S, boxes, return_fallback=True)
    assert m.shape == (n, 2, 3) and m.dtype == np.float32
    assert not fallback.any()
    np.testing.assert_allclose(invert_transforms(m), crop_to_image, rtol=1e-2, atol=0.5)
    res = transform_points(kp, m)[:, :4] - CANONICAL_KEYPOINTS[:4] * S
    assert np.abs(res).max() < 0.5
    # deterministic
    np.testing.assert_array_equal(estimate_transforms(kp, S), m)


def test_transform_points_and_inverse_round_trip():
    m = _similarity(20, 1.7, 30, -5)[None].astype(np.float32)
    pts = np.array([[[0, 0], [10, 5], [-3, 8]]], dtype=np.float32)
    back = transform_points(transform_points(pts, m), invert_transforms(m))
    np.testing.assert_allclose(back, pts, atol=1e-4)
    np.testing.assert_allclose(transform_points(pts[0], m[0]), transform_points(pts, m)[0])


def test_degenerate_keypoints_fall_back_to_the_box():
    S = 128
    box = np.array([[100, 50, 220, 170]], dtype=np.float32)  # 120 px face box, centre (160, 110)
    cases = {
        "collapsed": np.full((1, 6, 2), 160, dtype=np.float32),
        "nan": np.full((1, 6, 2), np.nan, dtype=np.float32),
        # a plausible face shape but 10x too small for the box (garbage extrapolation)
        "too_small": (CANONICAL_KEYPOINTS * 12 + 154)[None].astype(np.float32),
    }
    for name, kp in cases.items():
        m, fb = estimate_transforms(kp, S, box, return_fallback=True)
        assert fb.tolist() == [True], name
        assert np.isfinite(m).all()
        assert abs(m[0, 0, 1]) < 1e-6 and abs(m[0, 1, 0]) < 1e-6  # no rotation
        c = transform_points(np.array([[[160, 110]]], dtype=np.float32), m)[0, 0]
        cb = CANONICAL_BOX * S
        np.testing.assert_allclose(c, [(cb[0] + cb[2]) / 2, (cb[1] + cb[3]) / 2], atol=1e-3)
        np.testing.assert_allclose(m[0, 0, 0] * 120, cb[2] - cb[0], rtol=0.05)  # box -> canonical box
    # the tracker's cover box (grown by 0.2 a side) maps the face, not the margin, to the template
    cover = np.array([[76, 26, 244, 194]], dtype=np.float32)
    m2 = estimate_transforms(cases["nan"], S, cover, box_margin=0.2)
    np.testing.assert_allclose(m2, estimate_transforms(cases["nan"], S, box), atol=1e-3)
    # no box: the keypoints' own extent stands in for it, never NaN
    m3, fb3 = estimate_transforms(cases["collapsed"], S, return_fallback=True)
    assert fb3.tolist() == [True] and np.isfinite(m3).all()
    assert estimate_transforms(np.zeros((0, 6, 2)), S).shape == (0, 2, 3)


@needs_media
def test_real_faces_map_onto_the_template(faces):
    import cv2

    from streamdp.detect import FaceDetector

    img, dets = faces["single_face.jpg"]
    S = 112
    m, fb = estimate_transforms(dets.keypoints, S, dets.boxes, return_fallback=True)
    assert not fb.any()
    res = np.linalg.norm(transform_points(dets.keypoints, m)[:, :4] - CANONICAL_KEYPOINTS[:4] * S, axis=2)
    assert res.mean() < 0.03 * S, res
    crops = warp_crops(img, m, S)
    assert crops.shape == (1, S, S, 3) and crops.dtype == np.uint8
    # the crop is centred: detected again inside it, the eyes land on the template's eyes
    with FaceDetector(DetectConfig(tiles=0)) as det:
        again = det.detect(np.ascontiguousarray(cv2.resize(crops[0], (256, 256))))
    assert len(again) == 1
    eyes = again.keypoints[0, :2] * (S / 256)
    np.testing.assert_allclose(eyes, CANONICAL_KEYPOINTS[:2] * S, atol=0.06 * S)


@needs_media
def test_paste_round_trip_is_close_and_touches_only_the_mask(faces):
    import cv2

    img, dets = faces["single_face.jpg"]
    S = 384  # about 1:1 with this 200 px face, so the round trip is nearly lossless
    m = estimate_transforms(dets.keypoints, S, dets.boxes)
    crops = warp_crops(img, m, S)
    mask = face_mask(S, 0.15)
    out = img.copy()
    paste_crops(out, crops, m, mask)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    alpha = cv2.warpAffine(mask, m[0], (img.shape[1], img.shape[0]), flags=flags)
    inside = alpha >= 0.99
    assert inside.sum() > 5000
    assert psnr(out[inside], img[inside]) > 30
    untouched = alpha == 0
    np.testing.assert_array_equal(out[untouched], img[untouched])


@needs_media
def test_paste_replaces_the_whole_face(faces):
    img, dets = faces["multi_face.jpg"]
    n = len(dets)
    assert n >= 5
    S = 96
    m = estimate_transforms(dets.keypoints, S, dets.boxes)
    assert m.shape == (n, 2, 3)
    crops = warp_crops(img, m, S)
    assert crops.shape == (n, S, S, 3)
    white = np.full_like(crops, 255)
    out = img.copy()
    paste_crops(out, white, m, face_mask(S, 0.15))
    # eyes, nose and mouth of every face are now exactly the pasted colour, the ears nearly
    for kp in dets.keypoints:
        for k, (x, y) in enumerate(kp.round().astype(int)):
            assert (out[y, x] >= (255 if k < 4 else 240)).all(), (k, x, y, out[y, x])
    # crops written into a reused buffer
    buf = np.zeros_like(crops)
    assert warp_crops(img, m, S, out=buf) is buf
    np.testing.assert_array_equal(buf, crops)


def test_paste_handles_faces_at_the_frame_edge_and_empty_batches():
    S = 64
    img = np.zeros((100, 150, 3), dtype=np.uint8)
    # a face centred on the top-left corner: most of the crop falls outside the frame
    m = np.array([[[0.5, 0, S / 2], [0, 0.5, S / 2]]], dtype=np.float32)
    paste_crops(img, np.full((1, S, S, 3), 200, np.uint8), m, face_mask(S, 0.1))
    assert img[0, 0].tolist() == [200, 200, 200] and img[-1, -1].tolist() == [0, 0, 0]
    paste_crops(img, np.zeros((0, S, S, 3), np.uint8), np.zeros((0, 2, 3)), face_mask(S, 0.1))
    # crops as a model hands them over: a transposed, non-contiguous view
    nchw = np.full((1, 3, S, S), 50, np.uint8)
    paste_crops(img, nchw.transpose(0, 2, 3, 1), m, face_mask(S, 0.1))
    assert img[0, 0].tolist() == [50, 50, 50]
    with pytest.raises(ValueError):
        paste_crops(img, np.zeros((1, S, S, 3), np.uint8), m, face_mask(S + 1, 0.1))


# ------------------------------------------------------------------------------------------------
# cover_boxes (pixel mechanisms)
# ------------------------------------------------------------------------------------------------


def _fill(value: int):
    def fn(roi: np.ndarray) -> np.ndarray:
        return np.full_like(roi, value)

    return fn


def test_cover_boxes_hard_rectangle():
    img = np.full((100, 200, 3), 10, dtype=np.uint8)
    cover_boxes(img, np.array([[20.4, 30.6, 60.2, 70.0], [190, 90, 260, 140]]), _fill(250))
    # rounded outward: 20..61 x 30..70, and clipped at the frame's corner
    assert (img[30:70, 20:61] == 250).all()
    assert (img[90:, 190:] == 250).all()
    changed = (img != 10).any(axis=2)
    assert changed.sum() == 41 * 40 + 10 * 10


def test_cover_boxes_feather_stays_outside_the_box():
    img = np.full((200, 200, 3), 0, dtype=np.uint8)
    box = np.array([[60, 60, 140, 140]], dtype=np.float32)
    cover_boxes(img, box, _fill(200), feather=0.1)  # band of 8 px outside
    assert (img[60:140, 60:140] == 200).all()  # the whole box at alpha 1
    assert 0 < img[100, 55, 0] < 200  # in the band: partly blended
    assert (img[:51] == 0).all() and (img[:, 149:] == 0).all()  # beyond the band: untouched


def test_cover_boxes_ellipse_covers_the_whole_box_and_in_place_fn():
    img = np.full((200, 200, 3), 0, dtype=np.uint8)

    def invert(roi: np.ndarray) -> np.ndarray:
        roi[...] = 255 - roi  # modifies and returns its input
        return roi

    cover_boxes(img, np.array([[70, 80, 130, 120]]), invert, feather=0.05, shape="ellipse")
    assert (img[80:120, 70:130] == 255).all()  # corners of the box included
    assert img[0, 0].tolist() == [0, 0, 0]
    with pytest.raises(ValueError):
        cover_boxes(img, np.array([[0, 0, 1, 1]]), invert, shape="star")


def test_cover_boxes_band_matches_the_float_smoothstep_blend():
    """The rect band's uint8 blend (one row or column of weights beside the box, a 2-D distance
    only at the corners) against the float blend it replaced: the box is fn's output exactly,
    the band within 3 grey levels of ``before * s + fn * (1 - s)``, s = smoothstep(distance / band)."""
    rng = np.random.default_rng(5)
    for H, W in ((120, 160), (360, 480), (720, 1280)):
        img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        for _ in range(6):
            bw, bh = rng.uniform(8, W * 0.5), rng.uniform(8, H * 0.6)
            x0, y0 = rng.uniform(-bw / 2, W - bw / 2), rng.uniform(-bh / 2, H - bh / 2)
            box = np.array([[x0, y0, x0 + bw, y0 + bh]])
            got = img.copy()
            cover_boxes(got, box, _fill(200), feather=0.15)
            band = 0.15 * (bw + bh) / 2
            bx0, by0 = max(int(np.floor(x0)), 0), max(int(np.floor(y0)), 0)
            bx1, by1 = min(int(np.ceil(x0 + bw)), W), min(int(np.ceil(y0 + bh)), H)
            xs, ys = np.arange(W) + 0.5, np.arange(H) + 0.5
            ox = np.maximum(np.maximum(bx0 - xs, xs - bx1), 0)
            oy = np.maximum(np.maximum(by0 - ys, ys - by1), 0)
            t = np.minimum(np.hypot(oy[:, None], ox[None, :]) / band, 1)[..., None]
            s = t * t * (3 - 2 * t)
            want = np.rint(img * s + 200 * (1 - s))
            assert (got[by0:by1, bx0:bx1] == 200).all()
            assert np.abs(got.astype(int) - want).max() <= 3
