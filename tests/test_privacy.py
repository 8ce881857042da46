"""Tests of the latent privacy mechanisms, exact samplers and accounting (numpy; no torch).

Statistical tests use fixed seeds (hence the filtered warning) and a KS statistic implemented in
numpy; each one is paired with a check that the same test *rejects* a wrong distribution, so a
broken sampler cannot pass by accident.
"""

from __future__ import annotations

import math
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from streamdp.errors import ModelError
from streamdp.privacy import (
    MECHANISMS,
    REQUIRED_METADATA,
    PrivacyLedger,
    TrackNoiseBank,
    build_latent_mechanism,
    dp_to_zcdp,
    read_model_metadata,
    zcdp_to_dp,
)
from streamdp.privacy import sampling
from streamdp.privacy.mechanisms import GRID_BITS

pytestmark = pytest.mark.filterwarnings("ignore:privacy noise seeded:UserWarning")

G = 2.0**-GRID_BITS


def meta(D: int = 16, B: float = 2.5, ident: str = "0:8", **extra: str) -> dict[str, str]:
    m = {
        "streamdp.format": "dpimage-v1",
        "streamdp.crop_size": "32",
        "streamdp.latent_dim": str(D),
        "streamdp.clip_norm": "linf",
        "streamdp.clip_bound": str(B),
        "streamdp.delta_l1": repr(2 * B * D),
        "streamdp.delta_l2": repr(2 * B * math.sqrt(D)),
        "streamdp.identity_dims": ident,
        "streamdp.mask_feather": "0.15",
        "streamdp.training_data": "none (test)",
        "streamdp.version": "test",
        "streamdp.sha256": "0" * 64,
        "streamdp.latent_prior": "normal",
    }
    m.update(extra)
    return m


def mech(name: str, eps: float = 8.0, D: int = 16, seed: int | None = 0, **kw):
    return build_latent_mechanism(name, epsilon=eps, delta=1e-6, metadata=meta(D), seed=seed, **kw)


def ks_stat(samples: np.ndarray, cdf) -> float:
    """Two-sided KS statistic sup |F_n - F|, valid for discrete F too (checks both sides of jumps)."""
    x = np.sort(np.asarray(samples, dtype=np.float64))
    n = len(x)
    uniq, last = np.unique(x, return_index=False, return_counts=True)
    f_emp_hi = np.cumsum(last) / n  # F_n at each distinct value
    f_emp_lo = f_emp_hi - last / n  # F_n just below it
    f = cdf(uniq)
    f_lo = cdf_left(cdf, uniq)
    return float(max(np.max(np.abs(f_emp_hi - f)), np.max(np.abs(f_emp_lo - f_lo))))


def cdf_left(cdf, x: np.ndarray) -> np.ndarray:
    """P(X < x) for integer-valued or continuous X given on the sample's support."""
    return cdf(x - 0.5) if getattr(cdf, "discrete", False) else cdf(x)


def ks_crit(n: int, alpha: float = 0.001) -> float:
    return math.sqrt(-0.5 * math.log(alpha / 2)) / math.sqrt(n)


def discrete_laplace_cdf(scale: float):
    a = math.exp(-1.0 / scale)

    def cdf(k):
        k = np.floor(np.asarray(k, dtype=np.float64))
        return np.where(k >= 0, 1.0 - a ** (k + 1) / (1 + a), a ** (-k) / (1 + a))

    cdf.discrete = True
    return cdf


def erlang_cdf(shape: int, scale: float):
    def cdf(x):
        x = np.asarray(x, dtype=np.float64) / scale
        terms = np.zeros_like(x)
        term = np.ones_like(x)
        for k in range(shape):
            if k:
                term = term * x / k
            terms = terms + term
        return np.clip(1.0 - np.exp(-x) * terms, 0.0, 1.0)

    return cdf


def normal_cdf(sigma: float, discrete: bool = False):
    from math import erf

    verf = np.vectorize(erf)

    def cdf(x):
        x = np.asarray(x, dtype=np.float64)
        if discrete:
            x = np.floor(x) + 0.5  # continuity correction on the integers
        return 0.5 * (1 + verf(x / (sigma * math.sqrt(2))))

    cdf.discrete = discrete
    return cdf


# --- clipping: the enforced sensitivity bound ---------------------------------------------------


@pytest.mark.parametrize("name", MECHANISMS)
def test_clip_holds_for_adversarial_latents(name):
    m = mech(name)
    rng = np.random.default_rng(1)
    dirs = rng.standard_normal((200, 16))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    bad = np.concatenate(
        [
            dirs * 1e6,
            dirs * 1e300,
            np.full((1, 16), np.nan),
            np.full((1, 16), np.inf),
            np.full((1, 16), -np.inf),
            np.array([[np.nan, np.inf, -np.inf, 1e308, -1e308, 0.0] + [3.0] * 10]),
            rng.standard_cauchy((100, 16)) * 1e3,
        ]
    )
    c = m.clip(bad)
    assert c.shape == bad.shape
    assert np.all(np.isfinite(c))
    assert np.all(np.abs(c) <= 2.5)
    assert np.all(c[200 * 2] == 0.0)  # NaN -> centre
    assert np.all(c[401] == 2.5) and np.all(c[402] == -2.5)
    # the release stays in the clip set too, even when handed the raw (unclipped) latent
    r = m.release(bad, m.sample_noise(len(bad)))
    assert np.all(np.isfinite(r)) and np.all(np.abs(r) <= 2.5)
    # the worst pair realises exactly the stated diameter, never more
    pair = m.clip(np.stack([np.full(16, 1e9), np.full(16, -1e9)]))
    assert np.abs(pair[0] - pair[1]).sum() == pytest.approx(m.geo.delta_l1)
    assert m.geo.delta_l1 == 2 * 2.5 * 16


def test_clip_is_identity_inside_the_box_and_checks_shape():
    m = mech("laplace")
    z = np.random.default_rng(2).uniform(-2.5, 2.5, (10, 16))
    assert np.array_equal(m.clip(z), z)
    with pytest.raises(ValueError):
        m.clip(np.zeros((3, 15)))


def test_outputs_lie_on_the_grid_whatever_the_input():
    """The Mironov attack needs input-dependent low bits; every pre-post-processing output is k*g."""
    m = mech("laplace", eps=50.0, postprocess="clamp")
    z = m.clip(np.random.default_rng(3).standard_normal((50, 16)) * 0.3 + 1e-7)
    y = m.snap(z) + m.sample_noise(50)
    assert np.array_equal(y / G, np.round(y / G))
    out = m.release(z, m.sample_noise(50))
    inside = np.abs(out) < 2.5
    assert np.array_equal(out[inside] / G, np.round(out[inside] / G))


# --- noise distributions --------------------------------------------------------------------------


def test_laplace_noise_matches_discrete_laplace_of_delta_over_eps():
    eps = 40.0  # scale = 2*2.5*16/40 = 2 latent units = 2048 grid units
    m = mech("laplace", eps=eps)
    assert m.scale == pytest.approx(2 * 2.5 * 16 / eps)
    noise = m.sample_noise(1000).ravel() / G  # 16000 integers
    scale_units = m.scale / G
    n = len(noise)
    assert ks_stat(noise, discrete_laplace_cdf(scale_units)) < ks_crit(n)
    a = math.exp(-1 / scale_units)
    assert np.var(noise) == pytest.approx(2 * a / (1 - a) ** 2, rel=0.05)
    assert abs(np.mean(noise)) < 4 * math.sqrt(2) * scale_units / math.sqrt(n)
    # the test has power: a 10 % wrong scale is rejected
    assert ks_stat(noise, discrete_laplace_cdf(scale_units * 1.1)) > ks_crit(n)


def test_exact_samplers_small_scales():
    rng = np.random.Generator(np.random.PCG64(5))
    # Bernoulli(exp(-gamma)) frequencies, gamma below and above 1
    for gamma in (Fraction(7, 10), Fraction(5, 2)):
        k = sum(sampling.bernoulli_exp(rng, gamma) for _ in range(20000))
        p = math.exp(-float(gamma))
        assert abs(k / 20000 - p) < 4 * math.sqrt(p * (1 - p) / 20000)
    # discrete Laplace with a non-integer rational scale: exact pmf at 0
    x = sampling.discrete_laplace_array(rng, Fraction(3, 2), 20000)
    a = math.exp(-2 / 3)
    p0 = (1 - a) / (1 + a)
    assert abs(np.mean(x == 0) - p0) < 4 * math.sqrt(p0 * (1 - p0) / 20000)
    assert ks_stat(x, discrete_laplace_cdf(1.5)) < ks_crit(len(x))
    # big integers (scale beyond 2**62) go through the byte-wise randbelow
    assert abs(sampling.discrete_laplace(rng, Fraction(2**70, 3))) < 2**80
    assert 0 <= sampling.randbelow(rng, 2**100 + 7) < 2**100 + 7


def test_gaussian_sigma_matches_rho_and_samples_match():
    eps, delta = 20.0, 1e-6
    m = mech("gaussian", eps=eps)
    rho = dp_to_zcdp(eps, delta)
    assert zcdp_to_dp(rho, delta) <= eps
    assert zcdp_to_dp(rho, delta) == pytest.approx(eps, rel=1e-9)
    assert m.rho == rho
    d2 = 2 * 2.5 * math.sqrt(16)
    assert m.sigma == pytest.approx(d2 / math.sqrt(2 * rho), rel=1e-9)
    c = m.cost()
    assert c.rho == rho and c.delta == delta and c.epsilon <= eps
    noise = m.sample_noise(500).ravel() / G  # 8000 integers
    s_units = m.sigma / G
    assert np.std(noise) == pytest.approx(s_units, rel=0.05)
    assert ks_stat(noise, normal_cdf(s_units, discrete=True)) < ks_crit(len(noise))
    assert ks_stat(noise, normal_cdf(s_units * 1.15, discrete=True)) > ks_crit(len(noise))


def test_metric_noise_radius_is_gamma_and_direction_uniform():
    eps, D = 30.0, 16
    m = mech("metric", eps=eps, D=D)
    scale = 2 * 2.5 * math.sqrt(D) / eps
    assert m.radius_scale == pytest.approx(scale)
    noise = m.sample_noise(4000)
    r = np.linalg.norm(noise, axis=1)
    assert ks_stat(r, erlang_cdf(D, scale)) < ks_crit(len(r))
    assert ks_stat(r, erlang_cdf(D, scale * 1.05)) > ks_crit(len(r))
    assert r.mean() == pytest.approx(D * scale, rel=0.02)
    u = noise / r[:, None]
    assert np.abs(u.mean(axis=0)).max() < 5 / math.sqrt(4000 * D)
    cov = u.T @ u / len(u)
    assert np.abs(np.diag(cov) - 1 / D).max() < 0.02
    assert m.cost().epsilon == eps
    assert m.describe()["epsilon_per_unit_l2"] == pytest.approx(eps / (2 * 2.5 * math.sqrt(D)))


def test_identity_only_noises_only_the_identity_slice():
    m = mech("identity-only", eps=8.0)
    n = m.sample_noise(20)
    assert np.all(n[:, 8:] == 0) and np.any(n[:, :8] != 0)
    assert m.delta1 == 2 * 2.5 * 8
    z = m.clip(np.random.default_rng(4).standard_normal((20, 16)))
    out = m.release(z, n)
    assert np.abs(out[:, 8:] - z[:, 8:]).max() <= G / 2 + 1e-7  # passed through (grid rounding only)
    assert m.cost().scope == "identity-slice"
    assert "WITHOUT noise" in m.describe()["unprotected"]


def test_none_reports_infinite_epsilon_and_changes_nothing():
    m = mech("none")
    assert math.isinf(m.cost().epsilon)
    z = m.clip(np.random.default_rng(5).standard_normal((4, 16)))
    assert np.allclose(m.release(z, m.sample_noise(4)), z, atol=1e-6)
    assert m.describe()["epsilon_per_release"] == "inf"


def test_heavy_noise_post_processing_gives_prior_like_latents():
    m = mech("laplace", eps=1.0)  # scale 40: the release carries almost nothing
    z = m.clip(np.full((2000, 16), 2.5))
    out = m.release(z, m.sample_noise(2000))
    assert abs(out.mean()) < 0.1 and out.std() == pytest.approx(1.0, abs=0.1)
    m2 = mech("laplace", eps=1e6)  # scale 4e-5: the release is the latent
    out2 = m2.release(z[:10], m2.sample_noise(10))
    assert np.abs(out2 - z[:10]).max() < 0.01


def test_noise_from_os_entropy_unless_seeded():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = mech("laplace", seed=None).sample_noise(1)
        b = mech("laplace", seed=None).sample_noise(1)
    assert not np.array_equal(a, b)
    with pytest.warns(UserWarning, match="tests only"):
        s1 = build_latent_mechanism("laplace", epsilon=8, metadata=meta(), seed=7).sample_noise(1)
    with pytest.warns(UserWarning):
        s2 = build_latent_mechanism("laplace", epsilon=8, metadata=meta(), seed=7).sample_noise(1)
    assert np.array_equal(s1, s2)


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError):
        mech("laplace", eps=0.0)
    with pytest.raises(ValueError):
        mech("laplace", eps=math.inf)
    with pytest.raises(ValueError):
        mech("bogus")


# --- accounting over time ---------------------------------------------------------------------------


def test_noise_reused_within_interval_fresh_after_and_per_track():
    m = mech("laplace", eps=8.0)
    bank = TrackNoiseBank(m, release_interval_s=10.0)
    n0 = bank.noise_for("a", 0.0)
    assert np.array_equal(bank.noise_for("a", 4.9), n0)
    assert np.array_equal(bank.noise_for("a", 9.99), n0)
    n1 = bank.noise_for("a", 10.0)
    assert not np.array_equal(n1, n0)
    assert np.array_equal(bank.noise_for("a", 19.0), n1)
    nb = bank.noise_for("b", 5.0)
    assert not np.array_equal(nb, n1)
    assert bank.ledger.releases("a") == 2 and bank.ledger.releases("b") == 1
    # no clock: every call is its own release; a clock going backwards starts afresh
    bank.noise_for("c", None)
    bank.noise_for("c", None)
    assert bank.ledger.releases("c") == 2
    bank.noise_for("a", 3.0)
    assert bank.ledger.releases("a") == 3


def test_release_for_reuses_the_released_latent_not_just_the_noise():
    m = mech("laplace", eps=100.0)
    bank = TrackNoiseBank(m, 10.0)
    rng = np.random.default_rng(6)
    z0, z1 = rng.standard_normal(16), rng.standard_normal(16)
    r0 = bank.release_for(("s", 1), 0.0, z0)
    assert np.array_equal(bank.release_for(("s", 1), 5.0, z1), r0)  # later frame: same release
    r1 = bank.release_for(("s", 1), 10.0, z1)
    assert not np.array_equal(r1, r0)
    batch = bank.release_batch([("s", 1), ("s", 2)], [12.0, 12.0], np.stack([z0, z1]))
    assert np.array_equal(batch[0], r1)
    assert bank.ledger.releases(("s", 1)) == 2 and bank.ledger.releases(("s", 2)) == 1


def test_ledger_sums_epsilon_over_intervals_and_tracks():
    eps = 8.0
    m = mech("laplace", eps=eps)
    bank = TrackNoiseBank(m, 10.0)
    for t in np.arange(0.0, 25.0, 1 / 30):  # track 1: 25 s -> releases at 0, 10, 20
        bank.noise_for(1, float(t))
    for t in np.arange(3.0, 8.0, 1 / 30):  # track 2: 5 s -> one release
        bank.noise_for(2, float(t))
    rep = bank.ledger.report()
    rows = {r["track"]: r for r in rep["per_track"]}
    assert rows["1"]["releases"] == 3 and rows["1"]["epsilon"] == pytest.approx(3 * eps)
    assert rows["2"]["releases"] == 1 and rows["2"]["epsilon"] == pytest.approx(eps)
    assert rep["worst_case"]["track"] == "1" and rep["worst_case"]["epsilon"] == pytest.approx(3 * eps)
    assert rep["all_tracks_one_person"]["epsilon"] == pytest.approx(4 * eps)
    assert rep["releases"] == 4 and rep["tracks"] == 2
    assert rep["mechanism"]["name"] == "laplace"
    assert rows["1"]["first_release_s"] == 0.0 and rows["1"]["last_release_s"] == pytest.approx(20.0)


def test_gaussian_ledger_adds_rho_then_converts():
    eps, delta = 8.0, 1e-6
    m = mech("gaussian", eps=eps)
    led = PrivacyLedger(m, 10.0)
    led.record("t", 0.0, releases=4)
    e4 = led.epsilon("t")
    assert e4 == pytest.approx(zcdp_to_dp(4 * m.rho, delta))
    assert eps < e4 < 4 * eps  # tighter than basic composition, worse than one release
    assert led.report()["per_track"][0]["rho"] == pytest.approx(4 * m.rho)


def test_none_ledger_reports_infinity_honestly():
    led = PrivacyLedger(mech("none"), 10.0)
    led.record("x", 0.0)
    rep = led.report()
    assert rep["worst_case"]["epsilon"] == "inf"
    assert rep["scope"] == "none"


# --- model metadata ------------------------------------------------------------------------------


def _tiny_onnx(path: Path, metadata: dict[str, str]) -> Path:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["face"], ["latent"], axes=[2, 3], keepdims=0)],
        "tiny",
        [helper.make_tensor_value_info("face", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("latent", TensorProto.FLOAT, ["N", 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for k, v in metadata.items():
        p = model.metadata_props.add()
        p.key, p.value = k, v
    onnx.save(model, str(path))
    return path


def test_model_without_required_metadata_is_refused(tmp_path):
    full = meta(D=3, ident="0:2")
    ok = read_model_metadata(_tiny_onnx(tmp_path / "ok.onnx", full))
    assert ok["streamdp.latent_dim"] == "3"
    for drop in (("streamdp.delta_l1",), ("streamdp.sha256", "streamdp.clip_bound")):
        p = _tiny_onnx(tmp_path / "bad.onnx", {k: v for k, v in full.items() if k not in drop})
        with pytest.raises(ModelError, match="lacks required metadata: " + ", ".join(d for d in REQUIRED_METADATA if d in drop)):
            read_model_metadata(p)
    with pytest.raises(ModelError, match="lacks required metadata"):
        read_model_metadata(_tiny_onnx(tmp_path / "none.onnx", {}))


def test_model_with_wrong_or_understated_metadata_is_refused(tmp_path):
    with pytest.raises(ModelError, match="format"):
        read_model_metadata(_tiny_onnx(tmp_path / "f.onnx", meta(**{"streamdp.format": "other"})))
    # a Delta smaller than the true diameter of the clip set (the paper's flaw) is caught
    with pytest.raises(ModelError, match="understate"):
        read_model_metadata(_tiny_onnx(tmp_path / "d.onnx", meta(**{"streamdp.delta_l1": "10"})))
    with pytest.raises(ModelError, match="clip_norm"):
        read_model_metadata(_tiny_onnx(tmp_path / "n.onnx", meta(**{"streamdp.clip_norm": "l2"})))
    with pytest.raises(ModelError, match="malformed"):
        read_model_metadata(_tiny_onnx(tmp_path / "m.onnx", meta(**{"streamdp.identity_dims": "all"})))
    with pytest.raises(ModelError, match="not found"):
        read_model_metadata(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load"):
        read_model_metadata(tmp_path / "junk.onnx")
    with pytest.raises(ModelError):
        build_latent_mechanism("laplace", epsilon=1.0, metadata=meta(**{"streamdp.delta_l2": "1"}), seed=None)


def test_posterior_uses_the_declared_prior_spread():
    m = build_latent_mechanism("laplace", epsilon=1.0, metadata=meta(**{"streamdp.latent_prior": "normal:0.5"}), seed=3)
    out = m.release(m.clip(np.zeros((2000, 16))), m.sample_noise(2000))
    assert out.std() == pytest.approx(0.5, abs=0.05)
    no_prior = {k: v for k, v in meta().items() if k != "streamdp.latent_prior"}
    assert build_latent_mechanism("laplace", epsilon=1.0, metadata=no_prior, seed=3).postprocess == "clamp"
    with pytest.raises(ModelError, match="latent_prior"):
        build_latent_mechanism("laplace", epsilon=1.0, metadata=meta(**{"streamdp.latent_prior": "normal:x"}), seed=3)


# --- audit #15: randomness, timing, load-time refusals ----------------------------------------------
def test_uniform_draws_come_from_the_os_csprng(monkeypatch):
    """Finding 7: the exact samplers' uniform integers are os.urandom's bytes, not a PRNG stream."""
    from streamdp.privacy import sampling as smp

    calls = []
    real = smp.os.urandom

    def spy(n):
        calls.append(n)
        return real(n)

    monkeypatch.setattr(smp.os, "urandom", spy)
    m = mech("laplace", seed=None)
    assert isinstance(m.rng, smp.OsEntropy) and m.describe()["noise_source"] == "OS CSPRNG (os.urandom)"
    m.sample_noise(4)
    assert calls, "noise drawn without reading the OS CSPRNG"
    src = smp.OsEntropy()
    x = np.array([src.randbelow(10) for _ in range(20000)])
    counts = np.bincount(x, minlength=10)
    assert counts.min() > 1750 and counts.max() < 2250  # uniform on 0..9 (6 sigma)
    assert 0 <= src.randbelow(2**100 + 7) < 2**100 + 7


def test_release_noise_comes_from_the_reserve_in_a_fixed_budget():
    """Finding 6: a release pops a vector drawn ahead; every draw is padded to one fixed budget."""
    import time

    from streamdp.privacy.accounting import TrackNoiseBank

    m = mech("laplace", seed=None)
    bank = TrackNoiseBank(m, 10.0)
    res = bank.reserve
    assert res.budget_s >= 0.005
    deadline = time.monotonic() + 5.0
    while len(res._queue) < res.size and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(res._queue) == res.size, "the reserve fills in the background before any face"
    first = res._queue[0].copy()
    bank.release_for("a", 0.0, np.zeros(16))
    assert np.array_equal(bank._slots["a"].noise, first), "the release used the pre-drawn vector"
    t0 = time.perf_counter()
    res._draw_padded()
    assert time.perf_counter() - t0 >= res.budget_s, "a draw on the release path takes the whole budget"
    rep = bank.ledger.report()
    assert rep["noise_timing"]["budget_ms"] > 0 and "overruns" in rep["noise_timing"]
    seeded = TrackNoiseBank(mech("laplace", seed=3), 10.0)
    assert seeded.reserve.budget_s == 0.0  # tests only: reproducible, drawn in order


@pytest.mark.parametrize(
    "bad",
    [
        {"streamdp.clip_bound": "0.0005"},  # below the 2^-10 grid step: clips everything to 0
        {"streamdp.delta_l1": "nan"},
        {"streamdp.delta_l2": "nan"},
        {"streamdp.delta_l1": "inf"},
    ],
)
def test_degenerate_privacy_metadata_is_refused_at_load(bad):
    """Finding 8: refused when the model is loaded, not at the first release."""
    from streamdp.errors import ModelError
    from streamdp.privacy.mechanisms import LatentGeometry

    with pytest.raises(ModelError):
        LatentGeometry.from_metadata(meta(**bad))


def test_cli_summary_names_the_scope_and_a_seeded_runs_lack_of_privacy():
    """Finding 4/5: identity-only says what it covers; a seeded run prints no finite epsilon."""
    from streamdp.privacy.accounting import PrivacyLedger, without_privacy_if_seeded
    from streamdp.runner import Outcome

    def entry(name, seeded):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = build_latent_mechanism(name, epsilon=8, metadata=meta(), seed=1 if seeded else None)
        led = PrivacyLedger(m)
        led.record(("0", 1), 0.0)
        priv = without_privacy_if_seeded(led.report(), seeded)
        return {"status": "ok", "input": "a.mp4", "output": "b.mp4", "kind": "video", "frames_out": 5,
                "faces": {"faces_detected": 5}, "tracks": {"total": 1}, "privacy": priv}

    lines = Outcome([entry("identity-only", False)]).summary_lines()
    assert any("epsilon 8, covering only the identity-slice" in line for line in lines), lines
    lines = Outcome([entry("laplace", True)]).summary_lines()
    assert any("epsilon inf (no guarantee: a fixed seed)" in line for line in lines), lines
    rep = entry("laplace", True)["privacy"]
    assert rep["worst_case"]["epsilon"] == "inf" and rep["all_tracks_one_person"]["epsilon"] == "inf"
    assert rep["calibrated_worst_case"]["epsilon"] == 8.0
