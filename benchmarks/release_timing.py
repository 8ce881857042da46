"""Does a release's running time depend on the noise it draws? (issue #15 finding 6)

For the default generator geometry (D = 32, B = 2) and the autoencoder's (D = 128), at epsilon 8,
measures per release the wall time of
  raw:     the exact sampler alone (``mechanism.sample_noise``), drawn on the release path;
  bank:    ``TrackNoiseBank`` releases one at a time (the reserve has refilled: a pop);
  burst:   ``TrackNoiseBank`` releases back to back, more than the reserve holds (padded draws);
and the Spearman correlation of each with the drawn noise's magnitude sum(|k|)/t. The raw sampler's
time tracks the magnitude; the bank's should not (correlation near 0, spread unrelated to it).

    .venv/bin/python benchmarks/release_timing.py [--releases 300]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra = np.argsort(np.argsort(a)).astype(float)
    rb = np.argsort(np.argsort(b)).astype(float)
    return float(np.corrcoef(ra, rb)[0, 1])


def _meta(dim: int, bound: float) -> dict[str, str]:
    return {
        "streamdp.format": "dpimage-gan-v1",
        "streamdp.crop_size": "128",
        "streamdp.latent_dim": str(dim),
        "streamdp.clip_norm": "linf",
        "streamdp.clip_bound": str(bound),
        "streamdp.delta_l1": str(2 * bound * dim),
        "streamdp.delta_l2": str(2 * bound * dim**0.5),
        "streamdp.identity_dims": f"0:{dim}",
        "streamdp.mask_feather": "0.1",
        "streamdp.training_data": "benchmark",
        "streamdp.version": "bench",
        "streamdp.sha256": "0" * 64,
        "streamdp.latent_prior": "normal:1.0",
    }


def run(dim: int, bound: float, releases: int) -> None:
    from streamdp.privacy.accounting import TrackNoiseBank
    from streamdp.privacy.mechanisms import build_latent_mechanism

    mech = build_latent_mechanism("laplace", epsilon=8.0, metadata=_meta(dim, bound), seed=None)
    t_units = float(mech.scale_units)
    z = np.zeros((1, dim))

    raw_t, raw_m = [], []
    for _ in range(releases):
        t0 = time.perf_counter()
        n = mech.sample_noise(1)
        raw_t.append(time.perf_counter() - t0)
        raw_m.append(np.abs(n / mech.geo.grid).sum() / t_units)

    bank = TrackNoiseBank(mech, 1e9)
    time.sleep(bank.reserve.budget_s * (bank.reserve.size + 2))  # let the reserve fill
    bank_t, bank_m = [], []
    for i in range(releases):
        time.sleep(bank.reserve.budget_s * 1.5)  # the reserve refills between releases
        t0 = time.perf_counter()
        bank.release_for(("s", i), 0.0, z[0])
        bank_t.append(time.perf_counter() - t0)
        bank_m.append(np.abs(bank._slots[("s", i)].noise / mech.geo.grid).sum() / t_units)

    burst = TrackNoiseBank(mech, 1e9)
    burst_t, burst_m = [], []
    for i in range(min(releases, 60)):
        t0 = time.perf_counter()
        burst.release_for(("b", i), 0.0, z[0])
        burst_t.append(time.perf_counter() - t0)
        burst_m.append(np.abs(burst._slots[("b", i)].noise / mech.geo.grid).sum() / t_units)

    print(f"\nD = {dim}, B = {bound}, epsilon 8, {releases} releases; budget {bank.reserve.budget_s * 1e3:.2f} ms")
    print(f"{'path':<8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'spearman(time, |noise|)':>24}")
    for name, t, m in (("raw", raw_t, raw_m), ("bank", bank_t, bank_m), ("burst", burst_t, burst_m)):
        t = np.asarray(t) * 1e3
        print(f"{name:<8} {np.median(t):8.3f} {np.percentile(t, 99):8.3f} {t.max():8.3f} {_spearman(t, np.asarray(m)):24.3f}")
    print(f"overruns: bank {bank.reserve.overruns}/{bank.reserve.draws}, burst {burst.reserve.overruns}/{burst.reserve.draws}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--releases", type=int, default=300)
    args = ap.parse_args()
    run(32, 2.0, args.releases)
    run(128, 3.0, args.releases)


if __name__ == "__main__":
    main()
