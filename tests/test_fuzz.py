"""Property-based fuzzing (hypothesis): whatever boxes, keypoints, configs or detection sequences
arrive, nothing raises unexpectedly and nothing raw is left where a face was said to be.

Bounded: every property runs a fixed number of examples with no deadline (a 2-core CI machine).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis not installed (test extra)")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from streamdp.config import TrackConfig, load_config  # noqa: E402
from streamdp.errors import ConfigError  # noqa: E402
from streamdp.track import FaceTracker  # noqa: E402
from streamdp.types import Detections, Frame, FrameJob  # noqa: E402

W, H = 160, 120
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

coord = st.floats(min_value=-80, max_value=240, allow_nan=False, width=32)


@st.composite
def faces(draw, max_n: int = 4):  # type: ignore[no-untyped-def]
    n = draw(st.integers(0, max_n))
    boxes, kps = [], []
    for _ in range(n):
        x0, y0 = draw(coord), draw(coord)
        bw = draw(st.floats(min_value=0.5, max_value=200, width=32))
        bh = draw(st.floats(min_value=0.5, max_value=200, width=32))
        boxes.append([x0, y0, x0 + bw, y0 + bh])
        cx, cy = x0 + bw / 2, y0 + bh / 2
        jitter = draw(st.lists(st.floats(-30, 30, width=32), min_size=12, max_size=12))
        kps.append(np.array([[cx - bw / 4, cy - bh / 6], [cx + bw / 4, cy - bh / 6], [cx, cy],
                             [cx, cy + bh / 4], [cx - bw / 2, cy], [cx + bw / 2, cy]]) + np.reshape(jitter, (6, 2)))
    predicted = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    ids = list(range(1, n + 1))
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.full(n, 0.9, np.float32),
                      np.array(kps, np.float32).reshape(-1, 6, 2), np.array(ids), np.array(predicted, bool))


def _inner_clipped(box: np.ndarray) -> tuple[int, int, int, int]:
    x0, y0 = max(int(np.ceil(box[0])), 0), max(int(np.ceil(box[1])), 0)
    x1, y1 = min(int(np.floor(box[2])), W), min(int(np.floor(box[3])), H)
    return x0, y0, x1, y1


@pytest.mark.parametrize("name", ["pixelate", "blur", "solid"])
@FUZZ
@given(dets=faces())
def test_pixel_mechanisms_cover_every_box_whatever_its_geometry(name: str, dets: Detections) -> None:
    from streamdp.builder import build_mechanism

    mech = build_mechanism(load_config(None, {"mechanism.name": name}))
    img = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    raw = img.copy()
    mech.apply([FrameJob(Frame(0, img, pts=0, time_base=Fraction(1, 25)), dets)])
    for box in dets.boxes:
        x0, y0, x1, y1 = _inner_clipped(box)
        if x1 - x0 >= 3 and y1 - y0 >= 3:
            same = (img[y0:y1, x0:x1] == raw[y0:y1, x0:x1]).all(axis=2)
            assert same.mean() < 0.5, f"{name} left {same.mean():.0%} of box {box} raw"


@FUZZ
@given(h=st.integers(1, 300), w=st.integers(1, 300), blocks=st.integers(1, 32), seed=st.integers(0, 2**16))
def test_the_mosaic_paints_each_block_its_own_mean(h: int, w: int, blocks: int, seed: int) -> None:
    """Pixelate's blocks (one integral image, ``block_means``): every painted block is the
    rounded mean of exactly the pixels it paints over, whatever the box's size."""
    from streamdp.mechanisms.pixel import Pixelate

    roi = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    out = Pixelate().__class__.cover(type("P", (), {"blocks": blocks})(), roi)  # type: ignore[arg-type]
    assert out.shape == roi.shape
    # the painted blocks: runs of equal columns / rows of the output's block index
    scale = blocks / max(h, w)
    bw, bh = max(1, round(w * scale)), max(1, round(h * scale))
    import cv2

    index = np.arange(bw * bh, dtype=np.float32).reshape(bh, bw)  # which block paints each pixel
    painted_by = cv2.resize(index, (w, h), interpolation=cv2.INTER_NEAREST).astype(np.int64)
    row, col = painted_by // bw, painted_by % bw
    for by in range(bh):
        for bx in range(bw):
            m = (row == by) & (col == bx)
            if not m.any():
                continue
            painted = out[m]
            assert (painted == painted[0]).all()
            mean = roi[m].astype(np.float64).mean(axis=0)
            assert np.abs(painted[0] - mean).max() <= 0.5 + 1e-9


@FUZZ
@given(dets=faces())
def test_the_autoencoder_dp_image_never_raises_and_covers_uncertain_boxes(tmp_path_factory, dets: Detections) -> None:
    from tiny_model import build_tiny_model

    from streamdp.mechanisms.base import keypoints_outside
    from streamdp.mechanisms import MechanismContext
    from streamdp.mechanisms.dp_image import DpImage

    folder = tmp_path_factory.getbasetemp() / "fuzz_ae"
    if not (folder / "encoder.onnx").is_file():
        build_tiny_model(folder)
    mech = DpImage(load_config(None, {"mechanism.name": "dp-image", "mechanism.dp_image.model": str(folder), "mechanism.dp_image.allow_custom_model": True}).mechanism, MechanismContext())
    img = np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8)
    raw = img.copy()
    mech.apply([FrameJob(Frame(0, img, pts=0, time_base=Fraction(1, 25)), dets)])
    unsure = dets.predicted | keypoints_outside(dets.keypoints, W, H) if len(dets) else np.zeros(0, bool)
    for box, u in zip(dets.boxes, unsure):
        x0, y0, x1, y1 = _inner_clipped(box)
        if u and x1 - x0 >= 3 and y1 - y0 >= 3:
            same = (img[y0:y1, x0:x1] == raw[y0:y1, x0:x1]).all(axis=2)
            assert same.mean() < 0.5


@FUZZ
@given(steps=st.lists(faces(max_n=3), min_size=1, max_size=12), dts=st.lists(st.floats(0.0, 0.5), min_size=12, max_size=12))
def test_the_tracker_covers_every_detection_from_its_first_frame(steps: list[Detections], dts: list[float]) -> None:
    """Fail closed: every detection handed to the tracker is inside one of its cover boxes."""
    tracker = FaceTracker(TrackConfig(), fps=25.0)
    t = 0.0
    for dets, dt in zip(steps, dts):
        t += dt
        dets = Detections(dets.boxes, dets.scores, dets.keypoints)  # the detector's view: no ids
        out = tracker.update(dets, t, (W, H))
        for box in dets.boxes:
            c = np.clip(box, 0, [W, H, W, H])
            if c[2] - c[0] < 1 or c[3] - c[1] < 1:
                continue  # wholly outside the frame: nothing to cover
            inside = (out.boxes[:, 0] <= c[0] + 1e-3) & (out.boxes[:, 1] <= c[1] + 1e-3) & (
                out.boxes[:, 2] >= c[2] - 1e-3) & (out.boxes[:, 3] >= c[3] - 1e-3)
            assert inside.any(), (box, out.boxes)


keys = st.sampled_from(["detect.min_confidence", "detect.tiles", "detect.edge_search", "track.coast_seconds",
                        "track.edge_hold_seconds", "mechanism.name", "mechanism.dp_image.epsilon",
                        "output.crf", "live.deadline_ms", "nonsense.key", "detect.nonsense"])
values = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                   st.text(max_size=12), st.lists(st.integers(), max_size=3))


@FUZZ
@given(overrides=st.dictionaries(keys, values, max_size=4))
def test_any_configuration_is_valid_or_refused_with_a_config_error(overrides: dict) -> None:
    try:
        load_config(None, overrides)
    except ConfigError as exc:
        assert str(exc).strip() and "\n" not in str(exc).strip().splitlines()[0]
