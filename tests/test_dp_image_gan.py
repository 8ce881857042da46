"""dp-image with the photorealistic generator (mechanisms/dp_image_gan.py): one release per track,
one face per person, relinking, async live renders, fail-closed coasting, overlapping faces.

Needs the generator (``pip install --no-deps random-face==2021.7.21.1`` and openvino, which
``make install`` does); skips with the reason when it is absent.
"""

from __future__ import annotations

import importlib.util
import math
import time
from fractions import Fraction

import numpy as np
import pytest

from streamdp.config import load_config
from streamdp.types import Detections, Frame, FrameJob

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("random_face") is None or importlib.util.find_spec("openvino") is None,
    reason="dp-image's generator is not installed (pip install --no-deps random-face==2021.7.21.1 openvino)",
)

W, H = 480, 360
_MECHS: dict[str, object] = {}


def mechanism(**overrides: object):  # type: ignore[no-untyped-def]
    from streamdp.builder import build_mechanism

    cfg = load_config(None, {"mechanism.dp_image.seed": 7, **{f"mechanism.dp_image.{k}": v for k, v in overrides.items()}})
    with pytest.warns(UserWarning, match="seed"):
        return build_mechanism(cfg)


def face(cx: float, cy: float, eye: float = 40.0, tid: int = 1, predicted: bool = False) -> Detections:
    """A face of eye distance ``eye`` px centred at (cx, cy), MediaPipe keypoint layout."""
    e = eye
    kp = np.array(
        [[cx - 0.5 * e, cy], [cx + 0.5 * e, cy], [cx, cy + 0.57 * e], [cx, cy + 1.08 * e],
         [cx - 1.05 * e, cy + 0.26 * e], [cx + 1.05 * e, cy + 0.26 * e]], np.float32
    )
    box = np.array([[cx - 1.6 * e, cy - 1.1 * e, cx + 1.6 * e, cy + 2.4 * e]], np.float32)
    return Detections(box, np.array([0.9], np.float32), kp[None], np.array([tid]), np.array([predicted]))


def frame(i: int, fps: float = 10.0, seed: int = 0) -> Frame:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    return Frame(i, img, pts=i, time_base=Fraction(1, int(fps)))


def test_the_default_mechanism_is_the_generator_design() -> None:
    from streamdp.builder import build_mechanism

    m = build_mechanism(load_config(None))  # OS entropy: the calibrated epsilon is the real one
    m.apply([FrameJob(frame(0), face(200, 150))])
    assert m.privacy_report()["worst_case"]["epsilon"] == 8.0
    d = m.describe()
    assert type(m).__name__ == "GanDpImage" and d["generator_backend"] in ("openvino", "onnxruntime")
    assert d["latent_mechanism"]["epsilon_per_release"] == 8.0 and d["release_interval_s"] == "whole track"


def test_one_release_per_track_and_the_face_stays_the_same() -> None:
    m = mechanism()
    crops = []
    for i in range(8):
        f = frame(i)
        raw = f.image.copy()
        m.apply([FrameJob(f, face(200 + i, 150))])
        y0, y1, x0, x1 = 140, 200, 180, 230  # the inner face
        assert np.abs(f.image[y0:y1, x0:x1].astype(int) - raw[y0:y1, x0:x1]).mean() > 20
        crops.append(f.image[y0:y1, x0 + i : x1 + i].astype(int))
    rep = m.privacy_report()
    assert rep["releases"] == 1 and rep["tracks"] == 1
    # a fixed seed is no privacy, whatever the calibration: reported as inf
    assert rep["worst_case"]["epsilon"] == "inf" and rep["calibrated_worst_case"]["epsilon"] == 8.0
    # rendered once (up to render_candidates tries at the first frame), warped for every frame
    assert m.describe()["faces_rendered"] <= 3
    # the same face, moved with the track (integer shift: differences come from resampling only)
    assert np.abs(crops[3] - crops[4]).mean() < 12


def test_a_track_found_again_at_the_same_place_keeps_its_release() -> None:
    m = mechanism()
    for i in range(4):
        m.apply([FrameJob(frame(i), face(200, 150, tid=1))])
    for i in range(4, 8):  # the detector lost it; a new track at the same place 0.5 s later
        m.apply([FrameJob(frame(i + 5), face(203, 151, tid=2))])
    m.apply([FrameJob(frame(20), face(380, 150, tid=3))])  # someone else, elsewhere
    rep = m.privacy_report()
    assert rep["releases"] == 2, rep["per_track"]
    assert rep["relinked_tracks"] == {"0:1": [1, 2]}
    assert m.describe()["tracks_relinked"] == 1


def test_live_async_render_pixelates_until_the_face_is_ready() -> None:
    m = mechanism(render="async")
    f = frame(0)
    raw = f.image.copy()
    m.apply([FrameJob(f, face(200, 150))])
    box = (slice(110, 250), slice(140, 260))
    assert m.describe()["faces_pixelated_waiting_for_render"] == 1
    assert np.abs(f.image[box].astype(int) - raw[box]).mean() > 20  # covered, not raw
    deadline = time.monotonic() + 30
    pasted = 0
    i = 1
    while time.monotonic() < deadline and not pasted:
        time.sleep(0.2)
        m.apply([FrameJob(frame(i), face(200, 150))])
        pasted = m.describe()["faces_pasted"]
        i += 1
    assert pasted == 1, "the render never landed"
    m.close()


def test_a_coasting_track_is_covered_on_its_whole_box_even_when_the_prediction_lags() -> None:
    m = mechanism()
    m.apply([FrameJob(frame(0), face(200, 150))])
    f = frame(1)
    raw = f.image.copy()
    det = face(200, 150, predicted=True)
    det.keypoints = det.keypoints + np.array([25.0, 0.0], np.float32)  # the face moved, the prediction lags
    m.apply([FrameJob(f, det)])
    x0, y0, x1, y1 = det.boxes[0].astype(int)
    unchanged = (f.image[y0:y1, x0:x1] == raw[y0:y1, x0:x1]).all(axis=2).mean()
    assert unchanged < 0.02, f"{unchanged:.1%} of the coasting box is raw"
    assert m.describe()["coasting_boxes_pixelated_under"] == 1


def test_overlapping_faces_never_reach_each_others_release() -> None:
    m = mechanism()
    a, b = face(200, 150, tid=1), face(250, 170, tid=2)
    both = Detections.concat([a, b])
    f = frame(0)
    job = FrameJob(f, both)
    blanked = m._blanked(job)
    for bx in both.boxes.astype(int):
        x0, y0, x1, y1 = np.clip(bx, 0, None)
        assert (blanked[y0:y1, x0:x1] == 128).all()
    assert (f.image != 128).any()  # the frame itself is untouched
    m.apply([job])
    assert m.privacy_report()["releases"] == 2


def test_the_ring_leaves_out_other_faces_and_the_frame_border() -> None:
    from streamdp.align import estimate_transforms
    from streamdp.generator.render import ring_stats

    img = frame(0).image
    det = face(200, 150)
    mat = estimate_transforms(det.keypoints, 256)[0]
    ring = ring_stats(img, mat, 256)
    assert ring.stats is not None and np.isfinite(ring.sectors).all()
    assert ring_stats(img, mat, 256, np.array([[0, 0, W, H]], np.float32)).stats is None


def test_release_candidates_are_one_release() -> None:
    from streamdp.privacy.accounting import TrackNoiseBank
    from streamdp.privacy.mechanisms import build_latent_mechanism

    meta = {"streamdp.latent_dim": "8", "streamdp.clip_bound": "2.0", "streamdp.clip_norm": "linf",
            "streamdp.delta_l1": "32", "streamdp.delta_l2": str(4 * math.sqrt(8)), "streamdp.identity_dims": "0:8",
            "streamdp.latent_prior": "normal:0.76"}
    with pytest.warns(UserWarning):
        mech = build_latent_mechanism("laplace", epsilon=8.0, metadata=meta, seed=1)
    bank = TrackNoiseBank(mech, math.inf)
    c = bank.release_candidates("t", 0.0, np.zeros(8), 4)
    assert c.shape == (4, 8) and len({tuple(r) for r in c}) == 4  # fresh posterior samples
    assert bank.ledger.releases("t") == 1
    again = bank.release_candidates("t", 100.0, np.ones(8), 1)  # whole track: still the first release
    assert np.array_equal(again[0], c[0]) and bank.ledger.releases("t") == 1


def test_a_face_only_predicted_is_pixelated_and_opens_no_release() -> None:
    """Look-back boxes before a face's first detection (and a coasting box after a cut) may hold
    no face at all: pixelated whole, no generated face floating there, no release opened."""
    m = mechanism()
    f = frame(0)
    raw = f.image.copy()
    det = face(200, 150, predicted=True)
    m.apply([FrameJob(f, det)])
    x0, y0, x1, y1 = det.boxes[0].astype(int)
    assert (f.image[y0:y1, x0:x1] == raw[y0:y1, x0:x1]).all(axis=2).mean() < 0.02
    d = m.describe()
    assert d["predicted_boxes_pixelated_only"] == 1 and d["faces_pasted"] == 0
    assert m.privacy_report()["releases"] == 0
    # detected at 0.1 s: the release opens there; a dropout at 0.2 s shows the face again
    m.apply([FrameJob(frame(1), face(200, 150))])
    m.apply([FrameJob(frame(2), face(200, 150, predicted=True))])
    d = m.describe()
    assert d["faces_pasted"] == 2 and d["coasting_boxes_pixelated_under"] == 1
    assert m.privacy_report()["releases"] == 1


def test_without_the_generator_dp_image_stops_with_one_line(tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    """No silent fallback to another model: a clear error, exit 2, nothing at the output path."""
    from conftest import MEDIA, need_shared
    from streamdp.cli import main

    src = need_shared(MEDIA / "single_face.jpg")
    monkeypatch.setenv("STREAMDP_GENERATOR_DIR", str(tmp_path))  # an empty folder: no networks
    out = tmp_path / "out.jpg"
    assert main(["run", str(src), "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "face generator file missing" in err[0] and "random-face" in err[0]
    assert not out.exists()


def test_a_face_cut_by_the_frame_border_is_pixelated_whole_and_opens_no_release() -> None:
    """#12: a face half out of the frame (an ear keypoint beyond the border) is covered on its
    whole box; no release opens on a part of a face."""
    m = mechanism()
    f = frame(0)
    raw = f.image.copy()
    cut = face(W - 30, 150, eye=40.0)  # right ear at W - 30 + 42: outside
    m.apply([FrameJob(f, cut)])
    x0, y0, x1, y1 = np.clip(cut.boxes[0], 0, [W, H, W, H]).astype(int)
    changed = (f.image[y0:y1, x0:x1] != raw[y0:y1, x0:x1]).any(axis=2)
    assert changed.mean() > 0.97
    assert m.privacy_report()["releases"] == 0
    assert m.describe()["cut_faces_pixelated"] == 1


def test_the_synthesis_splits_as_gathers_give_the_same_pixels() -> None:
    """``split_as_gathers`` (the speed-up of the OpenVINO graph) changes no output value."""
    import openvino as ov

    from streamdp.generator.backend import generator_data_dir, split_as_gathers

    core = ov.Core()
    path = str(generator_data_dir() / "SynthesisNetwork.xml")
    cfg = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    model = core.read_model(path)
    n_splits = sum(op.get_type_name() == "VariadicSplit" for op in model.get_ordered_ops())
    patched = split_as_gathers(core.read_model(path))
    assert n_splits > 0
    assert sum(op.get_type_name() == "VariadicSplit" for op in patched.get_ordered_ops()) == 0
    w = np.random.default_rng(7).standard_normal((1, 512)).astype(np.float32) * 0.5
    a = core.compile_model(model, "CPU", cfg)({0: w})[0]
    b = core.compile_model(patched, "CPU", cfg)({0: w})[0]
    assert a.shape == b.shape == (1, 3, 1024, 1024)
    assert np.array_equal(a, b)


def test_the_noise_maps_as_inputs_keep_the_faces_and_free_the_folded_constants() -> None:
    """``noise_as_inputs``: the frozen noise maps fed per call instead of folded into per-layer
    constants (memory); the generator's faces stay within one level of the folded graph's, and
    the request's noise tensors stay set from one face to the next."""
    import openvino as ov

    from streamdp.generator.backend import OpenVinoGenerator, generator_data_dir, noise_as_inputs, split_as_gathers, to_uint8

    core = ov.Core()
    path = str(generator_data_dir() / "SynthesisNetwork.xml")
    cfg = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    model, noise = noise_as_inputs(split_as_gathers(core.read_model(path)))
    assert sorted({v.shape for v in noise.values()}) == [(1, 1, 64, 64), (1, 1, 128, 128), (1, 1, 256, 256), (1, 1, 512, 512)]
    assert len(model.inputs) == 1 + len(noise)
    w = np.random.default_rng(7).standard_normal((2, 512)).astype(np.float32) * 0.5
    folded = core.compile_model(split_as_gathers(core.read_model(path)), "CPU", cfg)
    expect = np.stack([to_uint8(folded({0: w[i : i + 1]})[0][0]) for i in range(2)])
    got = OpenVinoGenerator().synthesize(w)
    assert got.shape == expect.shape == (2, 1024, 1024, 3)
    diff = np.abs(got.astype(int) - expect)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
