"""streamdp eval: the metrics on small cases that can fail, then the real pipeline on a few LFW
evaluation identities (skipped without the 'eval' extra or the shared data)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamdp.errors import ConfigError
from streamdp.eval import metrics as M
from streamdp.eval.baselines import DpPix, Identity
from streamdp.eval.cache import FeatureCache, array_key
from streamdp.eval.dataset import load_dataset
from streamdp.eval.settings import parse_settings


def _image(seed: int = 0, size: int = 96) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8), (size, size), interpolation=cv2.INTER_CUBIC)
    return base


# -- SSIM --------------------------------------------------------------------------------------------
def test_ssim_identical_is_one_and_noise_lowers_it_monotonically():
    a = _image()
    assert M.ssim(a, a) == pytest.approx(1.0, abs=1e-9)
    rng = np.random.default_rng(1)
    values = []
    for sigma in (2, 10, 40):
        noisy = np.clip(a.astype(np.float64) + rng.normal(0, sigma, a.shape), 0, 255).astype(np.uint8)
        values.append(M.ssim(noisy, a))
    assert 1.0 > values[0] > values[1] > values[2] > 0.0
    # unrelated images: near zero; inverted image: negative structure
    assert abs(M.ssim(_image(5), a)) < 0.3
    assert M.ssim(255 - a, a) < 0.0


def test_ssim_face_box_sees_only_the_box():
    a = _image(2, 120)
    b = a.copy()
    b[:, :40] = 0  # change only the left strip
    box = (60, 20, 110, 100)
    assert M.ssim(b, a, box=box) == pytest.approx(1.0, abs=1e-6)
    assert M.ssim(b, a) < 0.9
    c = a.copy()
    c[20:100, 60:110] = 128  # flatten the box
    assert M.ssim(c, a, box=box) < 0.2
    assert M.ssim(c, a) > M.ssim(c, a, box=box)


def test_ssim_matches_scikit_image_when_available():
    skm = pytest.importorskip("skimage.metrics", reason="scikit-image is optional (a cross-check only)")
    a = _image(3, 80)
    b = np.clip(a.astype(int) + np.random.default_rng(4).normal(0, 15, a.shape), 0, 255).astype(np.uint8)
    ref = skm.structural_similarity(a, b, channel_axis=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    assert M.ssim(a, b) == pytest.approx(ref, abs=1e-6)


# -- privacy metrics ------------------------------------------------------------------------------
def _gallery(n_ids: int = 20, per_id: int = 3, dim: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 1, (n_ids, dim))
    G = np.repeat(centers, per_id, axis=0) + rng.normal(0, 0.05, (n_ids * per_id, dim))
    ids = np.repeat(np.arange(n_ids), per_id)
    probes = np.arange(0, n_ids * per_id, per_id)  # first photo of each identity
    return G, ids, probes


def test_identity_outputs_give_no_protection_and_full_rank1():
    G, ids, probes = _gallery()
    out = G[probes] + 1e-3  # the mechanism changed nothing (up to rounding)
    d_same = np.linalg.norm(out - G[probes], axis=1)
    assert M.protection_rate(d_same, 0.6) == 0.0
    D = M.pairwise_l2(out, G)
    assert M.rank1(D, ids[probes], ids, exclude=probes).mean() == 1.0
    acc = M.balanced_accuracy(M.verification_counts(D, 0.6, ids[probes], ids, exclude=probes))
    assert acc > 0.99


def test_random_outputs_are_protected_and_rank1_is_chance():
    G, ids, probes = _gallery()
    rng = np.random.default_rng(9)
    out = rng.normal(0, 1, (len(probes), G.shape[1]))
    d_same = np.linalg.norm(out - G[probes], axis=1)
    assert M.protection_rate(d_same, 0.6) == 1.0
    D = M.pairwise_l2(out, G)
    assert M.rank1(D, ids[probes], ids, exclude=probes).mean() <= 0.2
    acc = M.balanced_accuracy(M.verification_counts(D, 0.6, ids[probes], ids, exclude=probes))
    assert acc == pytest.approx(0.5, abs=0.05)


def test_rank1_leaves_out_the_probes_own_photo_and_handles_missing_faces():
    G = np.array([[0.0, 0.0], [5.0, 5.0], [0.1, 0.0]])
    ids = np.array([0, 1, 1])
    q = np.array([[0.0, 0.0]])
    # nearest is G[0] (its own photo): left out, the next nearest is G[2] of identity 1
    assert M.rank1(M.pairwise_l2(q, G), np.array([1]), ids, exclude=np.array([0])).tolist() == [True]
    assert M.rank1(M.pairwise_l2(q, G), np.array([1]), ids).tolist() == [False]
    missing = np.full((1, 2), np.nan)
    assert M.rank1(M.pairwise_l2(missing, G), np.array([1]), ids).tolist() == [False]
    assert M.protected(np.nan, 0.6)  # the adversary found no face: protected
    ga, gn, ir, im = M.verification_counts(M.pairwise_l2(missing, G), 0.6, np.array([1]), ids)
    assert (ga, gn, ir, im) == (0, 2, 1, 1)


def test_keypoint_displacement_and_flicker():
    kp = np.array([[40, 50], [60, 50], [50, 60], [50, 70], [30, 55], [70, 55]], np.float64)
    assert M.keypoint_displacement(kp, kp) == 0.0
    assert M.keypoint_displacement(kp + [2, 0], kp) == pytest.approx(0.1)  # 2 px / 20 px eye distance
    frames = [np.full((20, 20, 3), 100, np.uint8)] * 3
    assert M.flicker(frames, (0, 0, 20, 20)) == 0.0
    alt = [np.full((20, 20, 3), v, np.uint8) for v in (100, 110, 100)]
    assert M.flicker(alt, (0, 0, 20, 20)) == pytest.approx(10.0)
    assert M.center_inside(np.array([[0, 0, 10, 10], [50, 50, 60, 60]]), (0, 0, 20, 20)).tolist() == [True, False]


# -- DP-Pix, identity -----------------------------------------------------------------------------
def test_dp_pix_blocks_and_noise_scale():
    with pytest.warns(UserWarning):
        mech = DpPix(block=8, m=16, epsilon=1.0, seed=0)
    assert mech.scale == pytest.approx(255 * 16 / 64)
    roi = np.full((64, 64, 3), 128, np.uint8)
    out = mech.cover(roi.copy())
    blocks = out.reshape(8, 8, 8, 8, 3)
    assert (blocks == blocks[:, :1, :, :1]).all()  # constant inside every 8x8 block
    # Laplace(b) has variance 2 b^2; large samples of block values (clipping aside) match it
    with pytest.warns(UserWarning):
        wide = DpPix(block=1, m=1, epsilon=255 / 4.0, seed=1)  # scale 4: rarely clipped around 128
    vals = wide.cover(np.full((100, 100, 3), 128, np.uint8)).astype(np.float64) - 128
    assert vals.std() == pytest.approx(math.sqrt(2) * 4, rel=0.05)
    assert abs(vals.mean()) < 0.15  # centred
    # the exact sampler's scale: sensitivity 255 grey levels + 1 grid step of rounding slack
    assert float(wide.scale_units) / 2**10 == pytest.approx(4.0, rel=1e-3)
    with pytest.raises(ValueError):
        DpPix(block=0)
    assert Identity().apply([]) is None


# -- dataset, settings, cache ------------------------------------------------------------------------
def _write_faces(root: Path, people: dict[str, int]) -> Path:
    data = root / "faces"
    for name, n in people.items():
        (data / name).mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(data / name / f"{name}_{i:04d}.jpg"), _image(i, 32))
    return data


def test_dataset_split_filter_limit_and_training_guard(tmp_path):
    data = _write_faces(tmp_path, {"Ann": 3, "Bob": 2, "Cid": 1, "Dee": 4, "Eve": 2})
    (tmp_path / "splits.json").write_text(json.dumps({"lfw_eval_identities": ["Ann", "Bob", "Cid", "Dee"], "lfw_train_identities": ["Eve"]}))
    ds = load_dataset(data)  # DATASET/../splits.json found by itself
    assert ds.identities == ["Ann", "Bob", "Dee"]  # Cid has one photo, Eve is training
    assert len(ds.probes) == 3 and len(ds.gallery) == 9
    assert all(ds.images[p].path.name.endswith("_0000.jpg") for p in ds.probes)
    small = load_dataset(data, limit=2)
    assert len(small.identities) == 2 and set(small.identities) <= {"Ann", "Bob", "Dee"}
    capped = load_dataset(data, gallery_per_identity=2)
    assert len(capped.gallery) == 6
    (tmp_path / "leak.json").write_text(json.dumps({"eval": ["Ann", "Eve"], "train_ids": ["Eve"]}))
    with pytest.raises(ConfigError, match="training identities"):
        load_dataset(data, split_file=tmp_path / "leak.json", split_key="eval")
    with pytest.raises(ConfigError, match="no key"):
        load_dataset(data, split_key="nope")


def test_settings_parse_and_default_sweep():
    from streamdp.config import load_config

    cfg = load_config(None)
    sweep = parse_settings(["default"], None, cfg)
    keys = [s.key for s in sweep]
    assert "identity" in keys and "solid" in keys
    assert sum(s.family == "pixelate" for s in sweep) >= 2
    assert any(s.family == "dp-pix" for s in sweep)
    assert any(s.family == "dp-image" and s.epsilon == math.inf for s in sweep)  # the no-noise ceiling
    assert any(s.family == "dp-image" and s.epsilon == cfg.mechanism.dp_image.epsilon for s in sweep)
    eps = parse_settings(["dp-image", "dp-pix:b=8", "blur"], [1, 10], cfg)
    assert [(s.family, s.epsilon) for s in eps] == [("dp-image", 1.0), ("dp-image", 10.0), ("dp-pix", 1.0), ("dp-pix", 10.0), ("blur", None)]
    with pytest.raises(ConfigError, match="no parameter"):
        parse_settings(["pixelate:sigma=3"], None, cfg)
    with pytest.raises(ConfigError, match="unknown mechanism"):
        parse_settings(["mosaic"], None, cfg)


def test_feature_cache_roundtrip(tmp_path):
    c = FeatureCache(tmp_path)
    k = array_key(np.zeros((4, 4, 3), np.uint8), np.array([1.0, 2.0]))
    assert k != array_key(np.zeros((4, 4, 3), np.uint8), np.array([1.0, 2.5]))
    c.put("dlib-x", k, np.arange(5))
    c.save()
    again = FeatureCache(tmp_path)
    assert again.get("dlib-x", k).tolist() == [0, 1, 2, 3, 4]
    assert again.get("dlib-x", "0" * 40) is None


def test_cli_registers_eval():
    from streamdp.cli import _parser

    args = _parser().parse_args(["eval", "some/folder", "-m", "solid", "--limit", "3"])
    assert args.command == "eval" and args.limit == 3 and callable(args.handler)


# -- the real thing (needs the eval extra and the shared LFW data) ---------------------------------
def _need_eval_extra() -> None:
    from streamdp.eval.adversaries import eval_extra_missing

    why = eval_extra_missing()
    if why:
        pytest.skip(f"needs the 'eval' extra (pip install 'streamdp[eval]'): {why}")


def _lfw(faces_dir: Path) -> Path:
    lfw = faces_dir / "lfw"
    if not lfw.is_dir() or not (faces_dir / "splits.json").is_file():
        pytest.skip(f"needs {lfw} and {faces_dir / 'splits.json'}")
    return lfw


def test_facenet_conversion_separates_people(faces_dir, tmp_path):
    _need_eval_extra()
    from streamdp.eval.adversaries import FaceNet
    from streamdp.source import read_image

    lfw = _lfw(faces_dir)
    eval_ids = json.loads((faces_dir / "splits.json").read_text())["lfw_eval_identities"]
    people = [p for p in eval_ids if len(list((lfw / p).glob("*.jpg"))) >= 2][:3]
    adv = FaceNet(tmp_path)
    emb = {}
    for p in people:
        for f in sorted((lfw / p).glob("*.jpg"))[:2]:
            img = read_image(f).image
            g = adv.locate(img)
            assert g is not None
            emb[(p, f.name)] = adv.embed(img, g)
    same = [adv.distance(*[v for (q, _), v in emb.items() if q == p]) for p in people]
    diff = [adv.distance(emb[next(k for k in emb if k[0] == a)], emb[next(k for k in emb if k[0] == b)]) for a, b in zip(people, people[1:])]
    assert max(same) < min(diff)
    assert all(abs(np.linalg.norm(v) - 1) < 1e-4 for v in emb.values())


def test_real_pipeline_identity_vs_solid(faces_dir, tmp_path):
    """identity: ~0% protection and high rank-1; solid: ~100% protection and no face detected."""
    _need_eval_extra()
    from streamdp.eval.runner import EvalOptions, aggregate, run_eval

    lfw = _lfw(faces_dir)
    from streamdp.config import load_config

    ds = load_dataset(lfw, limit=5, gallery_per_identity=3)
    settings = parse_settings(["identity", "solid"], None, load_config(None))
    opts = EvalOptions(adversaries=("dlib",), workers=1, cache_dir=None, progress=False)
    result = aggregate(run_eval(ds, settings, opts))
    ident, solid = result["rows"]
    assert ident["dlib.informed.protection"] <= 0.2
    assert ident["dlib.informed.rank1"] >= 0.8
    assert ident["mediapipe_detect"] >= 0.8 and ident["ssim"] == pytest.approx(1.0)
    assert solid["dlib.informed.protection"] >= 0.99
    assert solid["dlib.naive.protection"] >= 0.99
    assert solid["mediapipe_detect"] == 0.0 and solid["hog_detect"] == 0.0
    assert solid["ssim_face"] < 0.2
    # per-probe distances kept for analysis: identity's are ~0, solid's beyond the threshold
    d = result["per_probe"]["distance"]
    assert len(result["per_probe"]["probe"]) == 5
    assert max(d["identity"]["dlib.informed"]) < 0.1 and min(d["solid"]["dlib.informed"]) > 0.6
    # the equal-false-accept view: a threshold from the originals, protection at it for each row
    assert 0.2 < result["summary"]["equal_far_thresholds"]["dlib"] < 1.0
    assert ident["dlib.informed.protection_equal_far"] <= 0.2 and solid["dlib.informed.protection_equal_far"] >= 0.99


# -- the TensorFlow-graph -> ONNX converter (needs onnx + onnxruntime: the 'test' extra) -----------
def _pb_varint(v: int) -> bytes:
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _pb_ld(field_no: int, payload: bytes) -> bytes:
    return _pb_varint((field_no << 3) | 2) + _pb_varint(len(payload)) + payload


def _pb_vi(field_no: int, v: int) -> bytes:
    return _pb_varint(field_no << 3) + _pb_varint(v)


def _tf_tensor(arr: np.ndarray) -> bytes:
    dtype = {np.dtype(np.float32): 1, np.dtype(np.int32): 3}[arr.dtype]
    shape = b"".join(_pb_ld(2, _pb_vi(1, d)) for d in arr.shape)
    return _pb_vi(1, dtype) + _pb_ld(2, shape) + _pb_ld(4, np.ascontiguousarray(arr).tobytes())


def _tf_node(name: str, op: str, inputs=(), **attrs) -> bytes:
    body = _pb_ld(1, name.encode()) + _pb_ld(2, op.encode())
    for i in inputs:
        body += _pb_ld(3, i.encode())
    for k, v in attrs.items():
        if isinstance(v, np.ndarray):
            val = _pb_ld(8, _tf_tensor(v))
        elif isinstance(v, str):
            val = _pb_ld(2, v.encode())
        elif isinstance(v, list):
            val = _pb_ld(1, _pb_ld(3, b"".join(_pb_varint(x) for x in v)))
        elif isinstance(v, float):
            import struct

            val = _pb_varint((4 << 3) | 5) + struct.pack("<f", v)
        else:
            val = _pb_vi(3, int(v))
        body += _pb_ld(5, _pb_ld(1, k.encode()) + _pb_ld(2, val))
    return _pb_ld(1, body)


def _conv_nhwc(x: np.ndarray, w: np.ndarray, stride: int, padding: str) -> np.ndarray:
    n, h, wd, _ = x.shape
    kh, kw, _, co = w.shape
    if padding == "SAME":
        oh, ow = -(-h // stride), -(-wd // stride)
        ph, pw = max((oh - 1) * stride + kh - h, 0), max((ow - 1) * stride + kw - wd, 0)
        x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    else:
        oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
    out = np.zeros((n, oh, ow, co))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, i * stride : i * stride + kh, j * stride : j * stride + kw, :]
            out[:, i, j, :] = np.einsum("nhwc,hwco->no", patch, w)
    return out


def test_tf_graph_converter_matches_a_numpy_reference(tmp_path):
    pytest.importorskip("onnx", reason="needs the onnx package (test extra)")
    ort = pytest.importorskip("onnxruntime")
    from streamdp.eval.tfgraph import convert_facenet

    rng = np.random.default_rng(0)
    f = lambda *s: rng.normal(0, 0.5, s).astype(np.float32)  # noqa: E731
    W1, b1, W2, b2, W3, Wf = f(3, 3, 3, 4), f(4), f(1, 1, 4, 2), f(2), f(3, 3, 4, 3), f(5, 6)
    gamma, beta, mean = f(6), f(6), f(6)
    var = np.abs(f(6)) + 0.5
    nodes = [
        # deliberately not in topological order, as in frozen graphs
        _tf_node("c1", "Conv2D", ["input:0", "W1"], strides=[1, 2, 2, 1], padding="SAME", data_format="NHWC"),
        _tf_node("input", "Placeholder"),
        _tf_node("W1", "Const", value=W1),
        _tf_node("b1", "Const", value=b1),
        _tf_node("c1/bias", "BiasAdd", ["c1", "b1"]),
        _tf_node("r1", "Relu", ["c1/bias"]),
        _tf_node("W2", "Const", value=W2),
        _tf_node("b2", "Const", value=b2),
        _tf_node("c2", "Conv2D", ["r1", "W2"], strides=[1, 1, 1, 1], padding="VALID"),
        _tf_node("c2/bias", "BiasAdd", ["c2", "b2"]),
        _tf_node("W3", "Const", value=W3),
        _tf_node("c3", "Conv2D", ["r1", "W3"], strides=[1, 1, 1, 1], padding="SAME"),
        _tf_node("axis", "Const", value=np.array(3, np.int32)),
        _tf_node("cat", "ConcatV2", ["c2/bias", "c3", "axis"]),
        _tf_node("half", "Const", value=np.array(0.5, np.float32)),
        _tf_node("m", "Mul", ["half", "cat"]),
        _tf_node("s", "Add", ["cat", "m"]),
        _tf_node("mp", "MaxPool", ["s"], ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="VALID"),
        _tf_node("ap", "AvgPool", ["mp"], ksize=[1, 2, 2, 1], strides=[1, 1, 1, 1], padding="VALID"),
        _tf_node("shape", "Const", value=np.array([-1, 5], np.int32)),
        _tf_node("fl", "Reshape", ["ap", "shape"]),
        _tf_node("Wf", "Const", value=Wf),
        _tf_node("mm", "MatMul", ["fl", "Wf"]),
        _tf_node("g", "Const", value=gamma),
        _tf_node("be", "Const", value=beta),
        _tf_node("mu", "Const", value=mean),
        _tf_node("va", "Const", value=var),
        _tf_node("bn", "FusedBatchNorm", ["mm", "g", "be", "mu", "va"], epsilon=0.001),
    ]
    pb = tmp_path / "g.pb"
    pb.write_bytes(b"".join(nodes))
    onnx_path = convert_facenet(pb, tmp_path / "g.onnx", input_size=8)
    x = rng.random((2, 8, 8, 3)).astype(np.float32)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x.transpose(0, 3, 1, 2).copy()})[0]

    r1 = np.maximum(_conv_nhwc(x, W1, 2, "SAME") + b1, 0)
    cat = np.concatenate([_conv_nhwc(r1, W2, 1, "VALID") + b2, _conv_nhwc(r1, W3, 1, "SAME")], axis=3)
    s = cat + 0.5 * cat
    mp = s.reshape(2, 2, 2, 2, 2, 5).max(axis=(2, 4))
    ap = mp.mean(axis=(1, 2))
    want = (ap @ Wf - mean) / np.sqrt(var + 0.001) * gamma + beta
    assert got.shape == (2, 6)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_matched_protection_compares_ssim_at_equal_protection() -> None:
    """The dp-image row used is the best-SSIM one that protects at least as well (1 point slack)."""
    from streamdp.eval.report import matched_protection, matched_protection_text

    def row(setting: str, family: str, eps: float | None, p_dlib: float, p_fn: float, ssim: float) -> dict:
        return {"setting": setting, "family": family, "epsilon": eps, "ssim_face": ssim,
                "dlib.informed.protection": p_dlib, "facenet.informed.protection": p_fn}

    result = {
        "summary": {"adversaries": [{"name": "dlib"}, {"name": "facenet"}]},
        "rows": [  # rates are fractions, as aggregate() writes them
            row("blur", "blur", None, 0.990, 0.995, 0.40),
            row("pixelate (16 blocks)", "pixelate", None, 0.970, 0.900, 0.45),
            row("dp-image, no noise", "dp-image", math.inf, 0.970, 0.830, 0.52),  # no guarantee: never matched
            row("dp-image (laplace)", "dp-image", 8.0, 0.980, 0.985, 0.38),
            row("dp-image (laplace)", "dp-image", 2048.0, 0.960, 0.895, 0.49),
            row("dp-image (laplace)", "dp-image", 8192.0, 0.950, 0.850, 0.51),  # 5 points short: no match
        ],
    }
    m = {x["baseline"]: x for x in matched_protection(result)}
    # blur protects at 99.0 (its weaker adversary): only epsilon 8 (98.0 >= 98.0) matches; lower SSIM
    assert m["blur"]["dp_image_epsilon"] == 8.0 and m["blur"]["dp_image_higher"] is False
    # pixelate 16 at 90.0: both dp-image rows match, the higher-SSIM one (2048, 89.5 >= 89) wins
    assert m["pixelate (16 blocks)"]["dp_image_epsilon"] == 2048.0 and m["pixelate (16 blocks)"]["dp_image_higher"]
    text = matched_protection_text(result)
    assert "NOT met" in text[0] and "met" in text[1]
    # dlib alone: pixelate 16 protects 97.0, epsilon 8192 (95.0) is 2 points short, 2048 (96.0) matches
    by_dlib = {x["baseline"]: x for x in matched_protection(result, "dlib")}
    assert by_dlib["pixelate (16 blocks)"]["dp_image_epsilon"] == 2048.0
    assert len(text) == 3 * 2  # weakest-of-both, then each adversary alone
    result["rows"][0]["dlib.informed.protection"] = 1.0
    result["rows"][0]["facenet.informed.protection"] = 1.0
    assert matched_protection(result)[0]["dp_image"] is None
    assert "no dp-image setting reaches" in matched_protection_text(result)[0]


def test_frechet_distance_matches_the_closed_form() -> None:
    from streamdp.eval.metrics import frechet_distance

    rng = np.random.default_rng(0)
    a = rng.normal(0.0, 1.0, (20000, 4))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # independent coordinates: |mu_a - mu_b|^2 + sum (sigma_a - sigma_b)^2
    b = rng.normal([1.0, 0, 0, 0], [1.0, 2.0, 0.5, 1.0], (20000, 4))
    expected = 1.0 + (1 - 2.0) ** 2 + (1 - 0.5) ** 2
    assert frechet_distance(a, b) == pytest.approx(expected, rel=0.05)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-6)
    b[:10] = np.nan  # not-found rows are dropped
    assert np.isfinite(frechet_distance(a, b))
    assert np.isnan(frechet_distance(a[:1], b))


def test_line_progress_prints_each_tenth_with_remaining_time(capsys) -> None:
    """Without a terminal, long phases report as plain lines (one per 10%), not a silent hour."""
    from streamdp.eval.progress import progress_bar as _bar

    with _bar(40, "probes", enabled=False, lines=True) as bar:
        for _ in range(40):
            bar.update(1)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 10
    assert lines[0].startswith("streamdp eval: probes: 4/40 (10%)") and "min left" in lines[0]
    assert lines[-1].startswith("streamdp eval: probes: 40/40 (100%)")
    with _bar(40, "quiet", enabled=False, lines=False) as bar:
        bar.update(40)
    assert capsys.readouterr().err == ""


def test_threshold_at_far_accepts_that_share_of_impostors() -> None:
    from streamdp.eval.metrics import protection_rate, threshold_at_far

    d = np.random.default_rng(0).uniform(0.5, 1.5, 100_000)
    t = threshold_at_far(d, 0.01)
    assert t == pytest.approx(0.51, abs=0.002)
    assert (d <= t).mean() == pytest.approx(0.01, abs=1e-4)
    assert np.isnan(threshold_at_far(np.array([np.nan]), 0.01))
    # a stricter threshold can only raise protection
    outs = np.array([0.4, 0.55, 0.7, 1.2])
    assert protection_rate(outs, 0.6) <= protection_rate(outs, 0.5)
